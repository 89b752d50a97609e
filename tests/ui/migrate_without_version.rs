use session_runtime::{MigrationError, RawFields, SessionData};

fn upgrade(_from: u32, _fields: &mut RawFields) -> Result<(), MigrationError> {
    Ok(())
}

#[derive(SessionData)]
#[session(migrate = upgrade)]
struct Cart {
    items: Vec<String>,
}

fn main() {}
