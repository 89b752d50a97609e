use session_runtime::SessionData;

#[derive(SessionData)]
struct Auth {
    id: u64,
}

fn main() {}
