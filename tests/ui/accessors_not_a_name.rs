use session_runtime::SessionData;

#[derive(SessionData)]
#[session(accessors = "not a name")]
struct Cart {
    items: Vec<String>,
}

fn main() {}
