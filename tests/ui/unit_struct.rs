use session_runtime::SessionData;

#[derive(SessionData)]
struct Nothing;

fn main() {}
