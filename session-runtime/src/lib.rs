//! Typed, server-side sessions for axum.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod codec;
pub mod decode;
mod migrate;
mod schema;

pub use codec::{Codec, CodecError, CodecErrorKind, JsonCodec};
pub use decode::DecodePolicy;
pub use migrate::{MigrationError, RawFields};
pub use schema::{FieldInfo, FieldState, Schema, SchemaFields, SessionData};

/// Derives [`SessionData`](trait@SessionData) for a struct with named fields.
pub use session_macros::SessionData;

/// Items the derive's generated code names. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::codec::{Codec, CodecError};
    pub use crate::migrate::{MigrationError, RawFields};
    pub use crate::schema::{
        FieldDefault, FieldInfo, FieldState, Schema, SchemaFields, SessionData, Storable,
    };
}
