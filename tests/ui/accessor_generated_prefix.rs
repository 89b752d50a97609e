use session_runtime::SessionData;

// Names starting with `__sr_` are the derive's own items in the accessor type: a field whose
// accessor would take one is refused at the field, whatever the accessor's kind.
#[derive(SessionData)]
#[allow(non_snake_case)]
struct Clash {
    #[session(rename = "member")]
    __sr_member: u64,
    #[session(rename = "field0")]
    __sr_field0: u64,
    ok: u64,
}

fn main() {}
