//! Session IDs.

use std::fmt;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use rand::RngCore;

/// Bytes of CSPRNG output in a generated ID (128 bits).
const ID_BYTES: usize = 16;

/// A session ID: 128 bits from a CSPRNG, base64url-encoded (22 characters).
///
/// The ID is a bearer secret: whoever holds it holds the session. `Debug` shows only its
/// first characters. In the cookie it travels signed (see [`Key`](crate::Key)), and the
/// layer only ever adopts IDs that it issued itself.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh random ID from the thread-local CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; ID_BYTES];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// An ID chosen by a store (for example a client-side store whose "ID" is the encrypted
    /// record). Never call this with a value taken from a request.
    pub fn from_store(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The ID as text, as stores key records by it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix: String = self.0.chars().take(4).collect();
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
}
