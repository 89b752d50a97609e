use session_runtime::SessionData;

#[derive(SessionData)]
struct Borrowing<'a> {
    name: std::borrow::Cow<'a, str>,
}

fn main() {}
