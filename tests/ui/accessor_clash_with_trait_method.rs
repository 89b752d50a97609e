use session_runtime::SessionData;

// `drop` is `Drop::drop` on `TypedSession`, and `type_id` is `Any::type_id` once `Any` is
// imported: either would hide the field's getter.
#[derive(SessionData)]
struct Cart {
    drop: bool,
    type_id: u32,
}

fn main() {}
