use session_runtime::SessionData;

#[derive(SessionData)]
struct Auth {
    #[session(skip, index)]
    user_id: Option<u64>,
}

fn main() {}
