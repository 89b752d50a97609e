//! Secret keys that sign session cookies, with rotation.

use std::{fmt, time::SystemTime};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hkdf::Hkdf;
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
    /// HKDF-SHA256 over the secret: each job's key is expanded from it with its own `info`
    /// ([`Key::subkey`]), so no output of one job is ever the key of another.
    hkdf: Hkdf<Sha256>,
    /// HMAC-SHA256 keyed with the raw secret: how 0.1 tagged cookies (`HMAC(secret, id)`)
    /// and derived the cookie store's key. Only read cookies of that format, during the
    /// layer's migration window.
    legacy: HmacSha256,
}

/// `info` of the key that tags session cookies.
const SIGNING_INFO: &str = "session-runtime/v2 cookie signature";

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
            hkdf: Hkdf::new(None, secret),
            legacy: HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length"),
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

    /// The 32-byte key of one job (`info` names it): HKDF-SHA256-Expand of the secret.
    pub(crate) fn subkey(&self, info: &str) -> [u8; 32] {
        let mut key = [0; 32];
        self.hkdf
            .expand(info.as_bytes(), &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        key
    }

    /// 0.1's subkey for `purpose`, `HMAC(secret, purpose)`: only to open what 0.1 sealed.
    #[cfg_attr(not(feature = "cookie-store"), allow(dead_code))]
    pub(crate) fn legacy_subkey(&self, purpose: &str) -> [u8; 32] {
        let mut mac = self.legacy.clone();
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The cookie-tagging MAC of this key for cookies named `name` and signed for `purpose`,
    /// with both already absorbed: a request's tag then costs the ID's bytes only.
    fn signer(&self, name: &str, purpose: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.subkey(SIGNING_INFO))
            .expect("HMAC accepts keys of any length");
        for part in [name, purpose] {
            absorb(&mut mac, part);
        }
        mac
    }
}

/// Feeds `part` to `mac` as its length (8 bytes, big endian) and its bytes, so that no two
/// sequences of parts make the same input.
fn absorb(mac: &mut HmacSha256, part: &str) {
    mac.update(&(part.len() as u64).to_be_bytes());
    mac.update(part.as_bytes());
}

/// `value.tag` from a tag computed earlier.
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

/// The current key, which signs, and previous keys, which still verify: as configured.
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
    /// Signed by a previous key, or in 0.1's format: re-sign it.
    pub(crate) stale_key: bool,
    /// The tag, so the same cookie can be sent again without signing again.
    pub(crate) tag: [u8; 32],
}

/// Tags and checks the values of one layer's cookies: `HMAC(k, len‖name ‖ len‖purpose ‖
/// len‖id)` with `k` the key's [`SIGNING_INFO`] subkey, so a cookie verifies only under the
/// name and purpose it was issued for, whatever else shares the key.
#[derive(Clone)]
pub(crate) struct Signer {
    current: HmacSha256,
    previous: Vec<HmacSha256>,
    /// 0.1's `HMAC(secret, id)` of every key, accepted until `legacy_until`.
    legacy: Vec<HmacSha256>,
    legacy_until: Option<SystemTime>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("keys", &"REDACTED")
            .field("previous_keys", &self.previous.len())
            .field("legacy_until", &self.legacy_until)
            .finish()
    }
}

impl Signer {
    /// The signer of cookies named `name` for `purpose`; 0.1-format cookies verify until
    /// `legacy_until` (never, with `None`).
    pub(crate) fn new(
        keys: &Keys,
        name: &str,
        purpose: &str,
        legacy_until: Option<SystemTime>,
    ) -> Self {
        Self {
            current: keys.current.signer(name, purpose),
            previous: keys
                .previous
                .iter()
                .map(|key| key.signer(name, purpose))
                .collect(),
            legacy: std::iter::once(&keys.current)
                .chain(&keys.previous)
                .map(|key| key.legacy.clone())
                .collect(),
            legacy_until,
        }
    }

    /// The tag of `id` under the current key.
    pub(crate) fn tag(&self, id: &str) -> [u8; 32] {
        let mut mac = self.current.clone();
        absorb(&mut mac, id);
        mac.finalize().into_bytes().into()
    }

    /// Splits `value.tag` and checks the tag with the current key, then the previous ones,
    /// then (within the migration window) in 0.1's format. Constant time per check.
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
        let checks = |mac: &HmacSha256| {
            let mut mac = mac.clone();
            absorb(&mut mac, value);
            mac.verify_slice(&tag).is_ok()
        };
        if checks(&self.current) {
            return Ok(Verified {
                value,
                stale_key: false,
                tag,
            });
        }
        let legacy_open = self
            .legacy_until
            .is_some_and(|until| SystemTime::now() < until);
        let legacy = |mac: &HmacSha256| {
            let mut mac = mac.clone();
            mac.update(value.as_bytes());
            mac.verify_slice(&tag).is_ok()
        };
        if self.previous.iter().any(checks) || (legacy_open && self.legacy.iter().any(legacy)) {
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
    use std::time::Duration;

    use super::*;

    fn signer(current: &Key, previous: &[&Key]) -> Signer {
        signer_for(current, previous, "id", "")
    }

    fn signer_for(current: &Key, previous: &[&Key], name: &str, purpose: &str) -> Signer {
        let keys = Keys {
            current: current.clone(),
            previous: previous.iter().map(|k| (*k).clone()).collect(),
        };
        Signer::new(&keys, name, purpose, None)
    }

    fn sign(signer: &Signer, value: &str) -> String {
        signed(value, &signer.tag(value))
    }

    /// A cookie as 0.1 signed it: `HMAC(secret, id)`.
    fn legacy_signed(secret: &[u8], value: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(secret).unwrap();
        mac.update(value.as_bytes());
        signed(value, &mac.finalize().into_bytes().into())
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
        let signed_old = sign(&signer(&old, &[]), "abc");
        let signed_new = sign(&signer(&new, &[]), "abc");
        let rotated = signer(&new, &[&old]);
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
            signer(&new, &[]).verify(&signed_old),
            Err(Rejected::BadSignature)
        );
    }

    /// One key, several layers: a cookie verifies only under the name and purpose it was
    /// issued for, and the length prefixes keep `("ab", "c")` apart from `("a", "bc")`.
    #[test]
    fn a_tag_binds_the_cookie_name_and_the_purpose() {
        let key = Key::generate();
        let issued = sign(&signer_for(&key, &[], "id", ""), "root");
        for (name, purpose) in [("__Host-admin", ""), ("id", "admin"), ("ID", "")] {
            assert_eq!(
                signer_for(&key, &[], name, purpose).verify(&issued),
                Err(Rejected::BadSignature),
                "{name} {purpose}"
            );
        }
        let ab_c = sign(&signer_for(&key, &[], "ab", "c"), "x");
        assert!(signer_for(&key, &[], "ab", "c").verify(&ab_c).is_ok());
        assert_eq!(
            signer_for(&key, &[], "a", "bc").verify(&ab_c),
            Err(Rejected::BadSignature)
        );
    }

    /// 0.1's cookies (`HMAC(secret, id)`) verify, as a previous key's do, only while the
    /// migration window is open.
    #[test]
    fn legacy_cookies_verify_only_within_the_window() {
        let secret = [9u8; 32];
        let key = Key::from_bytes(&secret).unwrap();
        let keys = Keys {
            current: key,
            previous: Vec::new(),
        };
        let cookie = legacy_signed(&secret, "abc");
        let open = Signer::new(
            &keys,
            "id",
            "",
            Some(SystemTime::now() + Duration::from_secs(60)),
        );
        let verified = open.verify(&cookie).unwrap();
        assert_eq!((verified.value, verified.stale_key), ("abc", true));
        let closed = Signer::new(
            &keys,
            "id",
            "",
            Some(SystemTime::now() - Duration::from_secs(1)),
        );
        assert_eq!(closed.verify(&cookie), Err(Rejected::BadSignature));
        let never = Signer::new(&keys, "id", "", None);
        assert_eq!(never.verify(&cookie), Err(Rejected::BadSignature));
        // And a current cookie is not a legacy one.
        assert!(!open.verify(&sign(&open, "abc")).unwrap().stale_key);
    }

    /// Each job's key comes from HKDF with its own info: the signing key, the cookie store's
    /// key and 0.1's keys all differ, and no cookie tag is another job's key.
    #[test]
    fn each_job_has_its_own_derived_key() {
        let key = Key::generate();
        let signing = key.subkey(SIGNING_INFO);
        let store = key.subkey("session-runtime/v2 cookie-store aes-256-gcm");
        let legacy = key.legacy_subkey("session-runtime cookie-store encryption v1");
        assert_ne!(signing, store);
        assert_ne!(store, legacy);
        assert_ne!(signing, legacy);
        let tags = signer(&key, &[]);
        for label in [
            "session-runtime/v2 cookie-store aes-256-gcm",
            "session-runtime cookie-store encryption v1",
            SIGNING_INFO,
        ] {
            let tag = tags.tag(label);
            assert!(tag != store && tag != signing && tag != legacy, "{label}");
        }
    }

    #[test]
    fn tampering_is_rejected() {
        let key = Key::generate();
        let k = signer(&key, &[]);
        let signed = sign(&k, "abc");
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
        let dotted = sign(&k, "a.b");
        assert_eq!(k.verify(&dotted).unwrap().value, "a.b");
        assert_eq!(
            k.verify(&format!("abc.{}", "!".repeat(43))),
            Err(Rejected::Malformed)
        );
    }
}
