//! How one field's value becomes bytes in the store and back.
//!
//! Every field is encoded on its own, so a field can be written, read and removed without
//! touching the others. [`JsonCodec`] (serde_json) is the default; a schema picks another
//! [`Codec`] with `#[session(codec = path)]`.

use std::{error::Error as StdError, fmt};

use serde::{de::DeserializeOwned, Serialize};

/// Encodes and decodes single field values.
///
/// ```
/// use session_runtime::{Codec, JsonCodec};
///
/// let bytes = JsonCodec::encode(&vec![1, 2, 3]).unwrap();
/// assert_eq!(bytes, b"[1,2,3]");
/// let back: Vec<u32> = JsonCodec::decode(&bytes).unwrap();
/// assert_eq!(back, [1, 2, 3]);
/// ```
///
/// A schema picks its codec with `#[session(codec = path)]`; every field of the schema is
/// then stored in it, and its migration hook gets `RawFields<path>`:
///
/// ```
/// use serde::{de::DeserializeOwned, Serialize};
/// use session_runtime::{Codec, CodecError, CodecErrorKind, SessionData};
///
/// /// Any serde format fits; JSON here to keep the example short (a binary format such as
/// /// MessagePack would call its own `to_vec`/`from_slice`).
/// struct Compact;
///
/// impl Codec for Compact {
///     fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
///         serde_json::to_vec(value).map_err(|e| CodecError::new(CodecErrorKind::Encode, e))
///     }
///
///     fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
///         serde_json::from_slice(bytes).map_err(|e| CodecError::new(CodecErrorKind::Decode, e))
///     }
/// }
///
/// #[derive(SessionData)]
/// #[session(codec = Compact)]
/// struct Prefs {
///     lang: String,
/// }
/// # fn main() {}
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a session codec",
    label = "`codec = ...` needs a type that implements `session_runtime::Codec`",
    note = "implement `session_runtime::Codec` for it (`encode` and `decode` of one field value), or drop `codec` to store fields as JSON"
)]
pub trait Codec: Send + Sync + 'static {
    /// Encodes one value.
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError>;
    /// Decodes one value.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError>;
}

/// JSON through `serde_json`: readable in the store, and tolerant of added struct fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
        // A `match`, not `map_err` with a closure: this is compiled once per field type.
        match serde_json::to_vec(value) {
            Ok(bytes) => Ok(bytes),
            Err(error) => Err(json_error(CodecErrorKind::Encode, error)),
        }
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        match serde_json::from_slice(bytes) {
            Ok(value) => Ok(value),
            Err(error) => Err(json_error(CodecErrorKind::Decode, error)),
        }
    }
}

#[cold]
fn json_error(kind: CodecErrorKind, error: serde_json::Error) -> CodecError {
    CodecError::new(kind, error)
}

/// What went wrong in a [`Codec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecErrorKind {
    /// A value could not be encoded (e.g. a map with non-string keys in JSON).
    Encode,
    /// Stored bytes did not decode as the field's type.
    Decode,
    /// The field is `#[session(skip)]` and has no stored form.
    NotPersisted,
}

/// A field value that could not be encoded or decoded.
#[derive(Debug)]
pub struct CodecError {
    kind: CodecErrorKind,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl CodecError {
    /// An error of `kind` caused by `source`.
    ///
    /// ```
    /// use session_runtime::{CodecError, CodecErrorKind};
    ///
    /// // In a `Codec::decode` that found bytes it cannot read.
    /// let err = CodecError::new(CodecErrorKind::Decode, "unknown format byte 0x07");
    /// assert_eq!(err.kind(), CodecErrorKind::Decode);
    /// ```
    pub fn new(kind: CodecErrorKind, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// What went wrong.
    ///
    /// ```
    /// use session_runtime::{CodecError, CodecErrorKind};
    ///
    /// let err = CodecError::new(CodecErrorKind::Encode, "a map with non-string keys");
    /// if err.kind() == CodecErrorKind::Encode {
    ///     // A handler stored a value its codec cannot write: a bug in the app, not in the store.
    /// }
    /// ```
    pub fn kind(&self) -> CodecErrorKind {
        self.kind
    }

    #[doc(hidden)]
    pub fn not_persisted(_index: usize) -> Self {
        Self {
            kind: CodecErrorKind::NotPersisted,
            source: None,
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The codec's own message is the source.
        f.write_str(match self.kind {
            CodecErrorKind::Encode => "failed to encode a session field",
            CodecErrorKind::Decode => "failed to decode a session field",
            CodecErrorKind::NotPersisted => "the session field is never stored",
        })
    }
}

impl StdError for CodecError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}
