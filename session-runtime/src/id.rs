//! Session IDs.

use std::{
    fmt,
    hash::{Hash, Hasher},
    sync::Arc,
};

use arrayvec::ArrayString;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use rand::RngCore;

/// Bytes of CSPRNG output in a generated ID (128 bits).
const ID_BYTES: usize = 16;

/// IDs up to this many bytes are held inline: generating, verifying, cloning and storing
/// one does not allocate.
const INLINE_LEN: usize = 38;

/// A session ID: 128 bits from a CSPRNG, base64url-encoded (22 characters).
///
/// The ID is a bearer secret: whoever holds it holds the session. `Debug` shows only its
/// first characters. In the cookie it travels signed (see [`Key`](crate::Key)), and the
/// layer only ever adopts IDs that it issued itself.
///
/// Cheap to clone: IDs of up to 38 bytes (every generated one) are held inline, longer ones
/// (such as a client-side store's sealed record) are reference-counted.
#[derive(Clone)]
pub struct SessionId(Repr);

#[derive(Clone)]
enum Repr {
    Inline(ArrayString<INLINE_LEN>),
    Shared(Arc<str>),
}

impl SessionId {
    /// A fresh random ID from the thread-local CSPRNG.
    ///
    /// ```
    /// use session_runtime::SessionId;
    ///
    /// let id = SessionId::generate();
    /// assert_eq!(id.as_str().len(), 22); // 128 random bits, base64url
    /// assert_ne!(id, SessionId::generate());
    /// ```
    pub fn generate() -> Self {
        let mut random = [0u8; ID_BYTES];
        rand::thread_rng().fill_bytes(&mut random);
        let mut text = [0u8; INLINE_LEN];
        let len = URL_SAFE_NO_PAD
            .encode_slice(random, &mut text)
            .expect("22 characters fit the inline buffer");
        // base64url is ASCII.
        Self::from_str_unverified(std::str::from_utf8(&text[..len]).unwrap_or_default())
    }

    /// An ID chosen by a store (for example a client-side store whose "ID" is the encrypted
    /// record). Never call this with a value taken from a request.
    ///
    /// ```
    /// use session_runtime::SessionId;
    ///
    /// // A store that numbers its records hands out their numbers as IDs.
    /// let id = SessionId::from_store("record-1234");
    /// assert_eq!(id.as_str(), "record-1234");
    /// ```
    pub fn from_store(value: impl Into<String>) -> Self {
        Self::from_str_unverified(&value.into())
    }

    /// An ID from text the caller vouches for (a verified cookie, or a store's choice).
    pub(crate) fn from_str_unverified(value: &str) -> Self {
        match ArrayString::from(value) {
            Ok(inline) => Self(Repr::Inline(inline)),
            Err(_) => Self(Repr::Shared(Arc::from(value))),
        }
    }

    /// The ID as text, as stores key records by it.
    ///
    /// ```
    /// use session_runtime::SessionId;
    ///
    /// let id = SessionId::generate();
    /// let redis_key = format!("session:{{{}}}", id.as_str());
    /// # assert!(redis_key.ends_with('}'));
    /// ```
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(text) => text,
            Repr::Shared(text) => text,
        }
    }
}

impl PartialEq for SessionId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SessionId {}

impl Hash for SessionId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix: String = self.as_str().chars().take(4).collect();
        write!(f, "SessionId({prefix}…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_128_bit_base64url_and_distinct() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 22);
        let bytes = URL_SAFE_NO_PAD.decode(a.as_str()).unwrap();
        assert_eq!(bytes.len(), 16);
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn short_and_long_ids_keep_their_text_and_compare_by_it() {
        let long = "x".repeat(INLINE_LEN + 1);
        for text in ["", "a", "é-ü", &"y".repeat(INLINE_LEN), &long] {
            let id = SessionId::from_store(text);
            assert_eq!(id.as_str(), text);
            assert_eq!(id.clone(), id);
            assert_eq!(SessionId::from_str_unverified(text), id);
        }
        assert_ne!(SessionId::from_store("a"), SessionId::from_store("ab"));
        // Hashes as its text does, inline or shared (stores may key maps by either).
        use std::hash::BuildHasher;
        let hasher = std::collections::hash_map::RandomState::new();
        for id in [SessionId::generate(), SessionId::from_store(long.as_str())] {
            assert_eq!(hasher.hash_one(&id), hasher.hash_one(id.as_str()));
        }
        assert_ne!(
            SessionId::from_store(long.as_str()),
            SessionId::from_store("x".repeat(INLINE_LEN + 2))
        );
        // A multi-byte character straddling the inline limit still round-trips.
        let straddling = format!("{}é", "z".repeat(INLINE_LEN - 1));
        assert_eq!(
            SessionId::from_store(straddling.as_str()).as_str(),
            straddling
        );
    }
}
