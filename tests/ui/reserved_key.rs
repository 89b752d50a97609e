use session_runtime::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(rename = "__created")]
    created: u64,
}

fn main() {}
