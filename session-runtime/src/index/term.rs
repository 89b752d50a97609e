//! What an index term is: the traits that turn an indexed field's value into the text the
//! index keeps, and the limit on it.

use crate::{CodecError, CodecErrorKind, EncodeError};

/// The longest index term, in bytes: a longer value cannot index a session (its save fails
/// with a [`SessionError::Encode`](crate::SessionError::Encode)).
pub const MAX_INDEX_TERM_LEN: usize = 255;

/// A type whose values name what sessions are indexed by: a user ID, an account name. Its
/// [`index_term`](Self::index_term) is the text the index keeps, and must be *injective*:
/// two different values never give the same term.
///
/// Implemented for strings and integers. For your own ID type, give it the term of what it
/// wraps:
///
/// ```
/// use session_runtime::{index::IndexKey, SessionData};
///
/// #[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct UserId(u64);
///
/// impl IndexKey for UserId {
///     fn index_term(&self) -> String {
///         self.0.index_term()
///     }
/// }
///
/// #[derive(SessionData)]
/// struct Auth {
///     #[session(index)]
///     user: Option<UserId>,
/// }
/// # fn main() {}
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot name indexed sessions",
    label = "not an index key",
    note = "implement `session_runtime::index::IndexKey` for it (strings and integers already do)"
)]
pub trait IndexKey {
    /// The text the index keeps for this value; at most [`MAX_INDEX_TERM_LEN`] bytes.
    fn index_term(&self) -> String;
}

impl IndexKey for str {
    fn index_term(&self) -> String {
        self.to_owned()
    }
}

impl IndexKey for String {
    fn index_term(&self) -> String {
        self.clone()
    }
}

impl<T: IndexKey + ?Sized> IndexKey for &T {
    fn index_term(&self) -> String {
        (**self).index_term()
    }
}

macro_rules! integer_keys {
    ($($int:ty),*) => {$(
        impl IndexKey for $int {
            fn index_term(&self) -> String {
                self.to_string()
            }
        }

        /// `0` indexes nothing, as the default value of the field.
        impl IndexValue for $int {
            type Key = $int;
            fn index_key(&self) -> Option<&$int> {
                (*self != 0).then_some(self)
            }
        }
    )*};
}

integer_keys!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

/// The type of a `#[session(index)]` field: a value that indexes the session under its
/// [`Key`](Self::Key), or nothing.
///
/// `Option<K>` (for any [`IndexKey`] `K`) indexes under `K` when `Some`; `String` under
/// itself when not empty; integers under themselves when not `0`. The field's default
/// indexes nothing.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a `#[session(index)]` field",
    label = "not an indexable field type",
    note = "an indexed field is an `Option<K>`, a `String` or an integer, with `K` a `session_runtime::index::IndexKey` (strings, integers, or your own type with an `impl IndexKey`)"
)]
pub trait IndexValue {
    /// What the sessions are listed by: `u64` for an `Option<u64>` field.
    type Key: IndexKey + ?Sized;

    /// The key this value indexes the session under; `None` for none.
    fn index_key(&self) -> Option<&Self::Key>;
}

impl<K: IndexKey> IndexValue for Option<K> {
    type Key = K;
    fn index_key(&self) -> Option<&K> {
        self.as_ref()
    }
}

/// The empty string indexes nothing, as the default value of the field.
impl IndexValue for String {
    type Key = str;
    fn index_key(&self) -> Option<&str> {
        (!self.is_empty()).then_some(self.as_str())
    }
}

/// The term a field's value indexes under, if any (called by the generated code).
#[doc(hidden)]
pub fn index_term<V: IndexValue + ?Sized>(value: &V) -> Option<String> {
    value.index_key().map(IndexKey::index_term)
}

/// `term`, or the error of an index term over [`MAX_INDEX_TERM_LEN`].
pub(crate) fn check_term(
    schema: &'static str,
    field: &'static str,
    term: String,
) -> Result<String, EncodeError> {
    if term.len() > MAX_INDEX_TERM_LEN {
        return Err(EncodeError {
            schema,
            field,
            source: CodecError::new(
                CodecErrorKind::Encode,
                format!(
                    "an index term of {} bytes is over the limit of {MAX_INDEX_TERM_LEN}",
                    term.len()
                ),
            ),
        });
    }
    Ok(term)
}
