use std::cell::Cell;

use session_runtime::SessionData;

// A session is shared by the request's extractors across threads: `Cell` is not `Sync`.
#[derive(SessionData)]
struct Counter {
    hits: Cell<u32>,
}

fn main() {}
