use session_runtime::SessionData;

#[derive(SessionData)]
#[session(crate = "not_a_crate")]
struct Cart {
    items: Vec<String>,
}

fn main() {}
