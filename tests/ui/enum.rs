use session_runtime::SessionData;

#[derive(SessionData)]
enum State {
    LoggedOut,
    LoggedIn { user: u64 },
}

fn main() {}
