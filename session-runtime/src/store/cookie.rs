//! `CookieStore`: the whole session in an encrypted, authenticated cookie.

use std::{borrow::Borrow, fmt, time::SystemTime};

use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Nonce,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use rand::RngCore;

use std::sync::Arc;

use bytes::Bytes;

use super::{FieldKey, FieldMap, LoadKeys, Patch, Record, SessionStore, StoreError, WriteResult};
use crate::{Key, SessionId};

/// Bound to every ciphertext, so a value encrypted for another purpose never decrypts here.
const AAD: &[u8] = b"session-runtime/v2 cookie-store";
/// HKDF `info` of the encryption key: no other job of the key (the cookie's tag above all)
/// produces it.
const KEY_INFO: &str = "session-runtime/v2 cookie-store aes-256-gcm";
/// 0.1's associated data and key derivation (`HMAC(secret, label)`, the very function that
/// tagged cookies), only to open 0.1's cookies, which the layer accepts during its
/// migration window only.
const LEGACY_AAD: &[u8] = b"session-runtime/cookie-store/v1";
const LEGACY_PURPOSE: &str = "session-runtime cookie-store encryption v1";
/// Format byte at the start of the plaintext.
const FORMAT: u8 = 1;
const NONCE_LEN: usize = 12;

/// A store that keeps no server-side state: the whole session travels in the cookie,
/// encrypted and authenticated with AES-256-GCM. Behind the `cookie-store` cargo feature.
///
/// It plugs into the same [`SessionLayer`](crate::SessionLayer) and
/// [`TypedSession`](crate::TypedSession) as the server-side stores; switching is one line.
/// The cookie is re-sent only when the session changed or its expiry is refreshed. Idle and
/// absolute timeouts are enforced from the expiry and creation time sealed inside the cookie,
/// not only by the browser's `Max-Age`.
///
/// **Keys**: the encryption key is derived from a [`Key`]; keys given to
/// [`CookieStore::with_previous_keys`] still decrypt, and a cookie read with one of them is
/// re-encrypted with the current key on that request.
///
/// **Size**: browsers drop cookies over about 4096 bytes (name, value and attributes). The
/// encrypted value is about `4/3 × (41 + Σ(6 + key + value))` bytes (metadata such as
/// `__created` and `__v.<schema>` counts as fields) plus the layer's
/// signature; a session that would exceed the limit makes the request fail with a `500` and a
/// logged error naming the size, never a silently dropped cookie. Keep large or growing data
/// (carts of unbounded size, histories) in a server-side store.
///
/// **Key use**: every write seals the session with a fresh random 96-bit nonce. AES-GCM
/// with random nonces stays within its security bound for about 2³² seals per key: at a
/// thousand writes a second that is about 50 days. Rotate the key (the new one current, the
/// old one in [`CookieStore::with_previous_keys`]) well within that, e.g. monthly; the
/// encryption key is derived from the [`Key`] with HKDF for this job alone.
///
/// **Set an absolute timeout** ([`SessionLayer::with_absolute_timeout`](crate::SessionLayer::with_absolute_timeout)):
/// a cookie-stored session cannot be revoked, so the absolute timeout is what bounds how
/// long a stolen cookie works.
///
/// **What it cannot do**:
/// - revoke: a stolen cookie stays valid until it expires, even after `destroy()` (which
///   only asks the browser to delete it) or `regenerate()` (which issues a new value but
///   cannot invalidate the old one);
/// - keep concurrent writes: two requests that change different fields each send back a
///   whole cookie, and the browser keeps the last one;
/// - hide the size of the session, or keep data from a user who keeps old cookies (replay).
///
/// ```
/// use session_runtime::{CookieStore, Key, SessionLayer};
///
/// let store = CookieStore::new(&Key::generate());
/// let layer = SessionLayer::new(store, Key::generate());
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct CookieStore {
    current: Aes256Gcm,
    /// Previous keys: they still open, and what they opened is sealed again.
    previous: Vec<Aes256Gcm>,
    /// The current key, then the previous ones, as 0.1 derived them: they open 0.1's
    /// cookies (with 0.1's associated data).
    legacy: Vec<Aes256Gcm>,
}

impl fmt::Debug for CookieStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieStore")
            .field("keys", &"REDACTED")
            .field("previous_keys", &self.previous.len())
            .finish()
    }
}

fn cipher(key: &Key) -> Aes256Gcm {
    Aes256Gcm::new(&key.subkey(KEY_INFO).into())
}

fn legacy_cipher(key: &Key) -> Aes256Gcm {
    Aes256Gcm::new(&key.legacy_subkey(LEGACY_PURPOSE).into())
}

impl CookieStore {
    /// A store encrypting with a key derived from `key`. It may be the layer's signing key
    /// (the two uses get independent subkeys) or a separate one.
    ///
    /// ```
    /// use session_runtime::{CookieStore, Key, SessionLayer};
    ///
    /// let key = Key::generate();
    /// let layer = SessionLayer::new(CookieStore::new(&key), key);
    /// # let _ = layer;
    /// ```
    pub fn new(key: &Key) -> Self {
        Self {
            current: cipher(key),
            previous: Vec::new(),
            legacy: vec![legacy_cipher(key)],
        }
    }

    /// Keys that no longer encrypt but still decrypt, for key rotation. Takes keys or
    /// references to them, as [`SessionLayer::with_previous_keys`](crate::SessionLayer::with_previous_keys) does.
    ///
    /// ```
    /// use session_runtime::{CookieStore, Key};
    ///
    /// # let (current, retired) = (Key::generate(), Key::generate());
    /// // Cookies encrypted with `retired` still open, and are re-encrypted with `current`.
    /// let store = CookieStore::new(&current).with_previous_keys([&retired]);
    /// # let _ = store;
    /// ```
    #[must_use]
    pub fn with_previous_keys<K: Borrow<Key>>(mut self, keys: impl IntoIterator<Item = K>) -> Self {
        let keys: Vec<K> = keys.into_iter().collect();
        self.previous = keys.iter().map(|k| cipher(k.borrow())).collect();
        // The current key's 0.1 form stays first.
        self.legacy.truncate(1);
        self.legacy
            .extend(keys.iter().map(|k| legacy_cipher(k.borrow())));
        self
    }

    fn seal(&self, fields: &FieldMap, expires_at: SystemTime) -> Result<SessionId, StoreError> {
        let plaintext = encode(fields, expires_at)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .current
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: AAD,
                },
            )
            .map_err(|_| StoreError::backend("encrypting the session failed"))?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(SessionId::from_store(URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// Decrypts and decodes a cookie value: the fields, the expiry, and whether a previous
    /// key was needed. `None` for anything that is not a live session sealed by our keys.
    fn open(&self, id: &SessionId) -> Option<(FieldMap, SystemTime, bool)> {
        let sealed = URL_SAFE_NO_PAD.decode(id.as_str()).ok()?;
        if sealed.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let payload = |aad| Payload {
            msg: ciphertext,
            aad,
        };
        let nonce = Nonce::from_slice(nonce);
        let (plaintext, stale) = match self.current.decrypt(nonce, payload(AAD)) {
            Ok(plaintext) => (plaintext, false),
            Err(_) => (
                self.previous
                    .iter()
                    .find_map(|c| c.decrypt(nonce, payload(AAD)).ok())
                    .or_else(|| {
                        self.legacy
                            .iter()
                            .find_map(|c| c.decrypt(nonce, payload(LEGACY_AAD)).ok())
                    })?,
                true,
            ),
        };
        let (fields, expires_at) = decode(&plaintext)?;
        (expires_at > SystemTime::now()).then_some((fields, expires_at, stale))
    }

    fn rewrite(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        let (mut fields, _, _) = self.open(id).ok_or(StoreError::NotFound)?;
        patch.apply_to(&mut fields);
        self.seal(&fields, patch.expires_at).map(Some)
    }
}

fn encode(fields: &FieldMap, expires_at: SystemTime) -> Result<Vec<u8>, StoreError> {
    let too_big = |what: &str| {
        StoreError::Rejected(format!("{what} is too large for the cookie store").into())
    };
    let mut out = Vec::with_capacity(consumed(fields));
    out.push(FORMAT);
    let millis = crate::meta::to_millis(expires_at);
    out.extend_from_slice(&millis.to_be_bytes());
    let count = u32::try_from(fields.len()).map_err(|_| too_big("the number of fields"))?;
    out.extend_from_slice(&count.to_be_bytes());
    for (key, value) in fields {
        let key_len = u16::try_from(key.len()).map_err(|_| too_big("a key"))?;
        let value_len = u32::try_from(value.len()).map_err(|_| too_big("a value"))?;
        out.extend_from_slice(&key_len.to_be_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&value_len.to_be_bytes());
        out.extend_from_slice(value);
    }
    Ok(out)
}

/// Reads the plaintext format; `None` on any inconsistency (never panics).
fn decode(bytes: &[u8]) -> Option<(FieldMap, SystemTime)> {
    let mut rest = bytes;
    let mut take = |n: usize| -> Option<&[u8]> {
        if rest.len() < n {
            return None;
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    };
    if take(1)? != [FORMAT] {
        return None;
    }
    let millis = u64::from_be_bytes(take(8)?.try_into().ok()?);
    let count = u32::from_be_bytes(take(4)?.try_into().ok()?);
    let mut fields = FieldMap::with_capacity_and_hasher(
        usize::try_from(count).unwrap_or(0).min(256),
        rustc_hash::FxBuildHasher,
    );
    for _ in 0..count {
        let key_len = u16::from_be_bytes(take(2)?.try_into().ok()?);
        let key = FieldKey::new(std::str::from_utf8(take(usize::from(key_len))?).ok()?);
        let value_len = u32::from_be_bytes(take(4)?.try_into().ok()?);
        let value = Bytes::copy_from_slice(take(usize::try_from(value_len).ok()?)?);
        fields.insert(key, value);
    }
    // No trailing bytes.
    let trailing = bytes.len() - consumed(&fields);
    let expires_at = crate::meta::from_millis(millis)?;
    (trailing == 0).then_some((fields, expires_at))
}

/// How many bytes the encoded form of `fields` takes.
fn consumed(fields: &FieldMap) -> usize {
    13 + fields
        .iter()
        .map(|(k, v)| 6 + k.len() + v.len())
        .sum::<usize>()
}

impl SessionStore for CookieStore {
    async fn load(
        &self,
        id: &SessionId,
        _keys: LoadKeys<'_>,
    ) -> Result<Option<Record>, StoreError> {
        Ok(self.open(id).map(|(fields, expires_at, stale)| Record {
            fields: Arc::new(fields),
            expires_at: Some(expires_at),
            stale,
            complete: true,
        }))
    }

    async fn create(&self, _id: &SessionId, patch: &Patch) -> WriteResult {
        let mut fields =
            FieldMap::with_capacity_and_hasher(patch.set.len(), rustc_hash::FxBuildHasher);
        patch.apply_to(&mut fields);
        self.seal(&fields, patch.expires_at).map(Some)
    }

    async fn save(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        self.rewrite(id, patch)
    }

    async fn regenerate(&self, old: &SessionId, _new: &SessionId, patch: &Patch) -> WriteResult {
        // A fresh nonce makes a fresh value; the old value cannot be revoked.
        self.rewrite(old, patch)
    }

    async fn delete(&self, _id: &SessionId) -> Result<(), StoreError> {
        // Nothing on the server: the layer sends the removal cookie.
        Ok(())
    }

    async fn touch(&self, id: &SessionId, expires_at: SystemTime) -> WriteResult {
        self.rewrite(id, &Patch::expiry_only(expires_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plaintext_format_round_trips_and_rejects_garbage() {
        let fields: FieldMap = [
            (FieldKey::from("a"), Bytes::from_static(b"1")),
            (FieldKey::from("bb"), Bytes::new()),
        ]
        .into_iter()
        .collect();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let bytes = encode(&fields, at).unwrap();
        assert_eq!(decode(&bytes), Some((fields, at)));
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "truncated at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None, "trailing bytes");
        let mut wrong_format = bytes;
        wrong_format[0] = 9;
        assert_eq!(decode(&wrong_format), None);
        assert_eq!(
            decode(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255]),
            None,
            "huge count"
        );
    }

    /// Seals `fields` as 0.1 did: its key derivation and associated data.
    fn sealed_as_0_1(key: &Key, fields: &FieldMap, expires_at: SystemTime) -> SessionId {
        let plaintext = encode(fields, expires_at).unwrap();
        let nonce = [7u8; NONCE_LEN];
        let ciphertext = legacy_cipher(key)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: LEGACY_AAD,
                },
            )
            .unwrap();
        SessionId::from_store(URL_SAFE_NO_PAD.encode([&nonce[..], &ciphertext].concat()))
    }

    #[test]
    fn cookies_sealed_as_0_1_open_as_stale_and_reseal_in_the_current_format() {
        let (key, retired) = (Key::generate(), Key::generate());
        let fields: FieldMap = [(FieldKey::from("user"), Bytes::from_static(b"\"ada\""))]
            .into_iter()
            .collect();
        let later = SystemTime::now() + std::time::Duration::from_secs(60);
        let store = CookieStore::new(&key).with_previous_keys([&retired]);
        for sealer in [&key, &retired] {
            let old = sealed_as_0_1(sealer, &fields, later);
            let (opened, _, stale) = store.open(&old).expect("opens");
            assert!(stale);
            assert_eq!(opened, fields);
        }
        let current = store.seal(&fields, later).unwrap();
        assert!(
            !store.open(&current).unwrap().2,
            "current seals are not stale"
        );
        // The current format does not open under 0.1's derivation, nor the reverse with
        // the associated data swapped.
        let other = CookieStore::new(&Key::generate());
        assert!(other.open(&current).is_none());
        assert!(other.open(&sealed_as_0_1(&key, &fields, later)).is_none());
    }
}
