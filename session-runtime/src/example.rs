//! What `#[derive(SessionData)]` generates, on an example schema: the accessors of
//! [`Cart`] are the methods of [`CartAccessors`], which
//! [`TypedSession<Cart>`](crate::TypedSession) dereferences to.
//!
//! A schema's accessor type is normally out of reach (and out of the docs); naming it with
//! `#[session(accessors = "CartAccessors")]`, as here, puts it next to the struct, so that
//! its methods show in your crate's docs too. This module exists for the docs only.
//!
//! ```
//! use std::collections::BTreeMap;
//! use session_runtime::{SessionData, TypedSession};
//!
//! #[derive(SessionData)]
//! #[session(namespace = "shop", accessors = "ShopAccessors")]
//! pub struct Shop {
//!     pub user_id: Option<u64>,
//!     #[session(entries)]
//!     pub items: BTreeMap<String, u32>,
//! }
//!
//! // The accessor type is a type like any other now.
//! fn count(shop: &ShopAccessors) -> usize {
//!     shop.items().len()
//! }
//!
//! async fn handler(shop: TypedSession<Shop>) -> String {
//!     count(&shop).to_string()
//! }
//! # fn main() {}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::SessionData;

/// One line of the example cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// How many.
    pub quantity: u32,
}

/// An example schema with one field of each kind: plain, renamed, indexed, a map stored
/// entry by entry, and one never stored. Its accessors are [`CartAccessors`].
#[derive(SessionData, Debug)]
#[session(namespace = "example", accessors = "CartAccessors", crate = "crate")]
pub struct Cart {
    /// Who is logged in: indexed, so their sessions can be listed (`Cart::by_user_id()`).
    #[session(index)]
    pub user_id: Option<u64>,
    /// Stored under the key `th`.
    #[session(rename = "th")]
    pub theme: String,
    /// Stored entry by entry: `items_mut()` returns an [`EntriesMut`](crate::EntriesMut).
    #[session(entries)]
    pub items: BTreeMap<String, Line>,
    /// Never stored: its default on every load.
    #[session(skip)]
    pub scratch: Vec<u8>,
}
