//! Typed, server-side sessions for axum.
//!
//! Declare the session as a struct, derive [`SessionData`](macro@SessionData), and take
//! [`TypedSession<T>`] as a handler argument. Field names are checked by the compiler, and
//! after the handler only the fields that changed are written to the store, so two
//! concurrent requests that change different fields both keep their change.
//!
//! ```
//! use axum::{routing::{get, post}, Router};
//! use session_runtime::{Key, MemoryStore, SessionData, SessionLayer, TypedSession};
//!
//! #[derive(SessionData)]
//! struct Cart {
//!     user_id: Option<u64>,
//!     items: Vec<String>,
//! }
//!
//! async fn add(mut cart: TypedSession<Cart>, item: String) -> String {
//!     cart.items_mut().push(item); // marks `items` changed
//!     format!("{} items", cart.items().len())
//! }
//!
//! async fn login(mut cart: TypedSession<Cart>) {
//!     cart.set_user_id(Some(42)); // marks `user_id` changed
//!     cart.regenerate(); // new session ID, same data: defends against session fixation
//! }
//!
//! let app: Router = Router::new()
//!     .route("/add", post(add))
//!     .route("/login", post(login))
//!     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
//! ```
//!
//! See [`SessionData`](trait@SessionData) for the generated accessors and the
//! `#[session(...)]` attributes, [`SessionLayer`] for cookie and expiry settings, and
//! [`store`] for the storage contract.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod chain;
mod changes;
mod codec;
mod config;
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
#[doc(hidden)]
pub mod decode;
mod entries;
mod entry_map;
mod error;
#[cfg(doc)]
pub mod example;
mod expiry;
mod generated;
mod id;
pub mod index;
mod key;
mod layer;
mod meta;
mod migrate;
mod record;
mod registry;
mod schema;
#[cfg(feature = "encryption")]
mod seal;
mod session;
mod session_cookie;

pub mod store;
mod typed_session;

pub use codec::{Codec, CodecError, CodecErrorKind, JsonCodec};
pub use config::{ConfigError, SavePolicy};
pub use decode::DecodePolicy;
pub use entries::{EntriesError, EntriesMut};
pub use entry_map::{EntryKey, EntryMap};
pub use error::{DecodeError, EncodeError, SessionError};
pub use expiry::SessionMetadata;
pub use id::SessionId;
pub use key::{Key, KeyError};
pub use layer::{ResponseFuture, SessionLayer, SessionService};
pub use migrate::{MigrationError, RawFields};
pub use schema::{Schema, SessionData};
#[cfg(feature = "encryption")]
#[cfg_attr(docsrs, doc(cfg(feature = "encryption")))]
pub use seal::Encryption;
pub use session_cookie::SameSite;
#[cfg(feature = "cookie-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "cookie-store")))]
pub use store::CookieStore;
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub use store::MySqlStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use store::PostgresStore;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::SqliteStore;
pub use store::{MemoryStore, SessionStore, StoreError};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::{RedisLayout, RedisStore};
pub use typed_session::TypedSession;

/// Derives [`SessionData`](trait@SessionData) for a struct with named fields.
pub use session_macros::SessionData;

/// Items the derive's generated code names. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::changes::FieldState;
    pub use crate::codec::{Codec, CodecError, JsonCodec};
    pub use crate::entries::{
        entries_force, entries_get, entries_mut, entries_set, entries_take, entries_take_map,
        entries_writes, EntriesCell, EntriesError, EntriesMut,
    };
    pub use crate::entry_map::{
        EntryMap, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_KEY_LEN, ENTRY_SEPARATOR, MAX_KEY_LEN_LIMIT,
    };
    pub use crate::error::DecodeError;
    pub use crate::generated::{
        assert_field, field_force, field_get, field_mut, field_set, field_take, field_take_whole,
        Core, DecodeFn, FieldDef, FieldDefault, Member, MemberMut, SessionField, Storable,
    };
    pub use crate::index::{index_term, Index, IndexValue};
    pub use crate::meta::{
        CREATED_KEY, DATA_KEY_KEY, IDLE_TIMEOUT_KEY, INDEX_KEY_PREFIX, NAMESPACE_SEPARATOR,
        RESERVED_KEY_PREFIX, VERSION_KEY_PREFIX,
    };
    pub use crate::migrate::{MigrationError, RawFields};
    pub use crate::record::FieldWrite;
    pub use crate::record::RawRecord;
    pub use crate::schema::{FieldInfo, Schema, SchemaFields, SessionData};
}
