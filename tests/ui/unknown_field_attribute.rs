use session_runtime::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(renmae = "i")]
    items: Vec<String>,
}

fn main() {}
