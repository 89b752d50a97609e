use session_runtime::SessionData;

#[derive(SessionData)]
#[session(versoin = 2)]
struct Cart {
    items: Vec<String>,
}

fn main() {}
