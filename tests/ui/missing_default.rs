use session_runtime::SessionData;

#[derive(serde::Serialize, serde::Deserialize)]
struct UserId(u64);

#[derive(SessionData)]
struct Auth {
    user: UserId,
}

fn main() {}
