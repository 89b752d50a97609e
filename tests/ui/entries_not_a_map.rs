use session_runtime::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(entries)]
    items: Vec<String>,
}

fn main() {}
