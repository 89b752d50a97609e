use std::collections::BTreeMap;

use session_runtime::SessionData;

fn empty() -> BTreeMap<String, u32> {
    BTreeMap::new()
}

#[derive(SessionData)]
struct Cart {
    #[session(entries, index)]
    a: BTreeMap<String, u32>,
    #[session(entries, default = empty)]
    b: BTreeMap<String, u32>,
    #[session(entries(max = 0))]
    c: BTreeMap<String, u32>,
    #[session(entries(max_key_len = 1000))]
    d: BTreeMap<String, u32>,
    #[session(entries(limit = 3))]
    e: BTreeMap<String, u32>,
    #[session(rename = "f#g")]
    f: u32,
}

fn main() {}
