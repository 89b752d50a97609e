use session_runtime::SessionData;

#[derive(SessionData)]
struct Pair(u64, String);

fn main() {}
