use std::collections::BTreeMap;

use session_runtime::SessionData;

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Sku(String);

#[derive(SessionData)]
struct Cart {
    #[session(entries)]
    items: BTreeMap<Sku, u32>,
}

fn main() {}
