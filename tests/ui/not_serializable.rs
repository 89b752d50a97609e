use session_runtime::SessionData;

#[derive(Default)]
struct Connection;

#[derive(SessionData)]
struct Cart {
    items: Vec<String>,
    conn: Connection,
}

fn main() {}
