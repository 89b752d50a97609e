use session_runtime::SessionData;

#[derive(SessionData)]
struct Wrapper<T> {
    value: T,
}

fn main() {}
