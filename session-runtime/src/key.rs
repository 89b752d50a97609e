//! Secret keys that sign session cookies, with rotation.

use std::fmt;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length of an encoded HMAC-SHA256 tag (32 bytes in unpadded base64url).
const TAG_LEN: usize = 43;

/// A secret key for signing session cookies with HMAC-SHA256.
///
/// At least 32 bytes; generate one with [`Key::generate`] and keep it in your secret store,
/// or every restart logs everyone out. `Debug` prints `Key(REDACTED)`.
///
/// ```
/// use session_runtime::Key;
///
/// let key = Key::generate();
/// assert_eq!(format!("{key:?}"), "Key(REDACTED)");
/// assert!(Key::from_bytes(&[7u8; 16]).is_err());
/// let from_config = Key::from_bytes(&[7u8; 64]).unwrap();
/// # let _ = from_config;
/// ```
#[derive(Clone)]
pub struct Key {
    /// HMAC-SHA256 already keyed with the secret: each use clones this state instead of
    /// hashing the key pads again.
    mac: HmacSha256,
}

impl Key {
    /// The shortest accepted secret, in bytes.
    pub const MIN_LEN: usize = 32;

    /// A random 64-byte key from the operating system's CSPRNG.
    ///
    /// ```
    /// use session_runtime::Key;
    ///
    /// // Fine for tests and demos. Sessions signed with it die with the process, so a real app
    /// // loads its key from its secret store instead (`Key::from_bytes`).
    /// let key = Key::generate();
    /// # let _ = key;
    /// ```
    pub fn generate() -> Self {
        let mut secret = [0u8; 64];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        Self::keyed(&secret)
    }

    fn keyed(secret: &[u8]) -> Self {
        Self {
            mac: HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length"),
        }
    }

    /// A key from secret bytes; fails when shorter than [`Key::MIN_LEN`].
    ///
    /// ```
    /// use session_runtime::Key;
    ///
    /// # std::env::set_var("SESSION_SECRET", "0123456789abcdef0123456789abcdef0123456789abcdef");
    /// let secret = std::env::var("SESSION_SECRET").expect("SESSION_SECRET is set");
    /// let key = Key::from_bytes(secret.as_bytes())?;
    /// assert!(Key::from_bytes(b"too short").is_err());
    /// # Ok::<(), session_runtime::KeyError>(())
    /// ```
    pub fn from_bytes(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < Self::MIN_LEN {
            return Err(KeyError { len: secret.len() });
        }
        Ok(Self::keyed(secret))
    }

    /// A 32-byte subkey for `purpose`: HMAC-SHA256 of the purpose under this key, so each
    /// use of one secret gets an independent key.
    #[cfg_attr(not(feature = "cookie-store"), allow(dead_code))]
    pub(crate) fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }

    /// `value.tag`, the tag being HMAC-SHA256 of the value under this key.
    #[cfg(test)]
    pub(crate) fn sign(&self, value: &str) -> String {
        signed(value, &self.tag(value))
    }

    /// HMAC-SHA256 of `value` under this key.
    pub(crate) fn tag(&self, value: &str) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Checks `tag` against `value` in constant time.
    fn verify(&self, value: &str, tag: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(value.as_bytes());
        mac.verify_slice(tag).is_ok()
    }
}

/// `value.tag` from a tag computed earlier.
#[cfg(test)]
pub(crate) fn signed(value: &str, tag: &[u8; 32]) -> String {
    let mut out = String::with_capacity(signed_len(value));
    push_signed(&mut out, value, tag);
    out
}

/// The length of `value.tag`.
pub(crate) fn signed_len(value: &str) -> usize {
    value.len() + 1 + TAG_LEN
}

/// Appends `value.tag` to `out`.
pub(crate) fn push_signed(out: &mut String, value: &str, tag: &[u8; 32]) {
    out.push_str(value);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, out);
}

impl TryFrom<&[u8]> for Key {
    type Error = KeyError;
    fn try_from(secret: &[u8]) -> Result<Self, KeyError> {
        Self::from_bytes(secret)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(REDACTED)")
    }
}

/// A secret too short to be a [`Key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    len: usize,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a session key needs at least {} bytes of secret, got {}",
            Key::MIN_LEN,
            self.len
        )
    }
}

impl std::error::Error for KeyError {}

/// The current key, which signs, and previous keys, which still verify.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    pub(crate) current: Key,
    pub(crate) previous: Vec<Key>,
}

/// Why a signed value was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    Malformed,
    BadSignature,
}

/// A verified value, and whether it must be re-signed with the current key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Verified<'a> {
    pub(crate) value: &'a str,
    pub(crate) stale_key: bool,
    /// The tag, so the same cookie can be sent again without signing again.
    pub(crate) tag: [u8; 32],
}

impl Keys {
    /// Splits `value.tag` and checks the tag with the current key, then the previous ones.
    pub(crate) fn verify<'a>(&self, signed: &'a str) -> Result<Verified<'a>, Rejected> {
        // `value.tag` with a fixed-length tag: split at the known position (no scan).
        let split = signed
            .len()
            .checked_sub(TAG_LEN + 1)
            .filter(|&dot| dot > 0 && signed.as_bytes()[dot] == b'.')
            .ok_or(Rejected::Malformed)?;
        let (value, tag) = (&signed[..split], &signed[split + 1..]);
        let mut decoded = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(tag, &mut decoded) {
            Ok(32) => {}
            _ => return Err(Rejected::Malformed),
        }
        let tag = decoded;
        if self.current.verify(value, &tag) {
            return Ok(Verified {
                value,
                stale_key: false,
                tag,
            });
        }
        if self.previous.iter().any(|key| key.verify(value, &tag)) {
            return Ok(Verified {
                value,
                stale_key: true,
                tag,
            });
        }
        Err(Rejected::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(current: &Key, previous: &[&Key]) -> Keys {
        Keys {
            current: current.clone(),
            previous: previous.iter().map(|k| (*k).clone()).collect(),
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        let err = Key::from_bytes(&[1; 31]).unwrap_err();
        assert!(err.to_string().contains("at least 32 bytes"));
        assert!(Key::try_from(&[1u8; 32][..]).is_ok());
    }

    #[test]
    fn signatures_verify_and_rotate() {
        let old = Key::generate();
        let new = Key::generate();
        let signed_old = old.sign("abc");
        let signed_new = new.sign("abc");
        let rotated = keys(&new, &[&old]);
        let fresh = rotated.verify(&signed_new).unwrap();
        assert_eq!((fresh.value, fresh.stale_key), ("abc", false));
        assert_eq!(
            signed("abc", &fresh.tag),
            signed_new,
            "the tag re-encodes to the cookie"
        );
        let old_one = rotated.verify(&signed_old).unwrap();
        assert_eq!((old_one.value, old_one.stale_key), ("abc", true));
        assert_eq!(
            keys(&new, &[]).verify(&signed_old),
            Err(Rejected::BadSignature)
        );
    }

    #[test]
    fn tampering_is_rejected() {
        let key = Key::generate();
        let k = keys(&key, &[]);
        let signed = key.sign("abc");
        let (value, tag) = signed.rsplit_once('.').unwrap();
        assert_eq!(k.verify(&format!("abd.{tag}")), Err(Rejected::BadSignature));
        let mut bad_tag = tag.to_owned();
        bad_tag.replace_range(0..1, if tag.starts_with('A') { "B" } else { "A" });
        assert_eq!(
            k.verify(&format!("{value}.{bad_tag}")),
            Err(Rejected::BadSignature)
        );
        for malformed in ["", ".", "abc", "abc.", ".tag", "abc.!!!", "a.b.c"] {
            assert!(k.verify(malformed).is_err(), "{malformed}");
        }
        // Client input with multi-byte characters around the tag position: rejected, no
        // panic on a split inside a character.
        for malformed in [
            format!("é.{}x", "é".repeat(21)),
            format!("abc{}", "é".repeat(22)),
            format!("abcé{}", "A".repeat(42)),
            format!(".{tag}"),
        ] {
            assert_eq!(
                k.verify(&malformed),
                Err(Rejected::Malformed),
                "{malformed}"
            );
        }
        assert_eq!(
            k.verify(&format!("{value}.{tag}.{tag}")),
            Err(Rejected::BadSignature)
        );
        // A value holding dots is fine: the tag is the fixed-length tail.
        let dotted = key.sign("a.b");
        assert_eq!(k.verify(&dotted).unwrap().value, "a.b");
        assert_eq!(
            k.verify(&format!("abc.{}", "!".repeat(43))),
            Err(Rejected::Malformed)
        );
    }
}
