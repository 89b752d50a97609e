use session_runtime::{RawFields, SessionData};

// The hook returns nothing instead of `Result<(), MigrationError>`: the error is at the path.
fn upgrade(_from: u32, _fields: &mut RawFields) {}

#[derive(SessionData)]
#[session(version = 2, migrate = upgrade)]
struct Cart {
    items: Vec<String>,
}

fn main() {}
