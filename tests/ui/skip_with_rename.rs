use session_runtime::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(skip, rename = "s")]
    scratch: Vec<u8>,
}

fn main() {}
