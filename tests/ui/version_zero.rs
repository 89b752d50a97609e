use session_runtime::SessionData;

#[derive(SessionData)]
#[session(version = 0)]
struct Cart {
    items: Vec<String>,
}

fn main() {}
