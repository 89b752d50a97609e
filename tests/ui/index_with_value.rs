use session_runtime::SessionData;

#[derive(SessionData)]
struct Auth {
    #[session(index = "user")]
    user_id: Option<u64>,
}

fn main() {}
