use session_runtime::SessionData;

// A braced struct without fields gets the same error as a unit struct.
#[derive(SessionData)]
struct Nothing {}

fn main() {}
