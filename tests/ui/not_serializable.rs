use session_runtime::SessionData;

// Deserialize but not Serialize: still not storable.
#[derive(Default, serde::Deserialize)]
struct Connection;

#[derive(SessionData)]
struct Cart {
    items: Vec<String>,
    conn: Connection,
}

fn main() {}
