use std::collections::BTreeMap;

use session_runtime::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(entries)]
    items: BTreeMap<String, u32>,
}

fn change(cart: &mut session_runtime::TypedSession<Cart>) {
    // The map is read through `items()`, and changed entry by entry through `items_mut()`:
    // a `&mut BTreeMap` would hide which entries changed.
    cart.items_mut().iter_mut().for_each(|(_, qty)| *qty += 1);
}

fn main() {}
