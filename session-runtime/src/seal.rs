//! Encryption at rest: every field value sealed with AES-256-GCM before it reaches the
//! store, under a data key of its own session, bound to its store key.
//!
//! Each session has a random 256-bit *data key*. Its field values are sealed under it, with
//! the value's store key as associated data: a value copied to another field does not open,
//! and one copied to another session (another data key) does not either. The data key is
//! stored in the record itself, under the reserved key `__dk`, sealed in turn
//! under a *wrapping key* derived (HKDF) from the layer's [`Key`] and bound to the layer's
//! purpose. Rotating the layer's key therefore re-seals one small value per session (its
//! data key), on the session's next request, never the fields: a rotation races with no
//! write of a field.
//!
//! Stored layout of a sealed value (the field's value and the data key alike): a random
//! 96-bit nonce, the ciphertext, the 128-bit tag; 28 bytes more than the plaintext.

use std::{fmt, sync::Arc};

use aes_gcm::{
    aead::{AeadInPlace, KeyInit},
    Aes256Gcm, Nonce, Tag,
};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::{meta::RESERVED_KEY_PREFIX, Key, SessionId};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// What sealing adds to a value: the nonce and the tag.
pub(crate) const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// `info` of the key that seals data keys.
const WRAP_INFO: &str = "session-runtime/v1 at-rest data-key wrapping";
/// `info` of the key that derives the data key of a session stored without one.
const DERIVE_INFO: &str = "session-runtime/v1 at-rest data-key derivation";
/// Associated data of a sealed data key, before the layer's purpose.
const WRAP_AAD: &[u8] = b"session-runtime/v1 data key";

/// Whether the layer seals field values before they reach the store; chosen with
/// [`SessionLayer::with_encryption`](crate::SessionLayer::with_encryption).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Encryption {
    /// Values are stored as the schema's codec encodes them. The default.
    #[default]
    Off,
    /// Every field value is sealed (AES-256-GCM) before it reaches the store. A stored
    /// value that does not open (copied from another session or field, sealed under a key
    /// the layer no longer has, or written in clear) reads as a field that fails to
    /// decode: it takes its default and the other fields survive (under
    /// [`DecodePolicy::Strict`](crate::DecodePolicy::Strict), the request fails).
    On,
    /// As [`On`](Self::On), and a stored value that does not open is read as it is, in
    /// clear: for switching encryption on in an app whose store already holds sessions.
    /// Their fields stay readable, and each is sealed when the app next writes it. Anyone
    /// who can write to the store can then also write values the app reads, as without
    /// encryption: switch to [`On`](Self::On) once the sessions stored before have expired
    /// (after the idle timeout, or the absolute timeout if shorter).
    AcceptingPlaintext,
}

/// The layer's sealing keys: the current key's (which seals) and the previous keys' (which
/// still open data keys, for rotation).
pub(crate) struct Sealer {
    mode: Encryption,
    /// Associated data of every sealed data key: the fixed prefix and the layer's purpose.
    wrap_aad: Vec<u8>,
    current: Aes256Gcm,
    previous: Vec<Aes256Gcm>,
    /// Derives the data key of a session stored without one: the same for every request
    /// that meets it, so concurrent first writes agree.
    derive: Hmac<Sha256>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("mode", &self.mode)
            .field("previous_keys", &self.previous.len())
            .finish_non_exhaustive()
    }
}

/// One session's data key: its cipher, and the key itself (to seal it again for a write
/// that must store it).
#[derive(Clone)]
pub(crate) struct DataKey(Box<(Aes256Gcm, [u8; 32])>);

impl DataKey {
    fn new(raw: [u8; 32]) -> Self {
        Self(Box::new((cipher(&raw), raw)))
    }

    fn cipher(&self) -> &Aes256Gcm {
        &self.0 .0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(REDACTED)")
    }
}

/// What a view of a stored record opens its sealed values with: the session's data key,
/// and whether a value that does not open is read in clear.
#[derive(Debug, Clone)]
pub(crate) struct Opener {
    key: DataKey,
    accept_plaintext: bool,
}

impl Opener {
    /// The session's data key.
    pub(crate) fn key(&self) -> &DataKey {
        &self.key
    }

    /// The plaintext of the value stored under `name`: `Ok(None)` when it is read as
    /// stored (not a sealed key, or in clear under `AcceptingPlaintext`), `Err` when it
    /// does not open.
    pub(crate) fn open(&self, name: &str, value: &[u8]) -> Result<Option<Vec<u8>>, ()> {
        if !is_sealed(name) {
            return Ok(None);
        }
        match open_bytes(self.key.cipher(), name.as_bytes(), value) {
            Some(plaintext) => Ok(Some(plaintext)),
            None if self.accept_plaintext => Ok(None),
            None => Err(()),
        }
    }
}

/// A record's data key as a load found it.
pub(crate) struct Opened {
    /// The key to open and seal this session's values with.
    pub(crate) key: DataKey,
    /// The data key sealed under the current key, to store with the request's next write:
    /// set when the record had none, or had it sealed under a previous or unknown key.
    pub(crate) rewrap: Option<Bytes>,
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

/// `nonce || ciphertext || tag` of `plaintext` under `cipher`.
fn seal_bytes(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut out[NONCE_LEN..])
        .expect("AES-GCM seals any value a store can hold");
    out.extend_from_slice(&tag);
    Bytes::from(out)
}

/// The plaintext of `sealed`, if it opens under `cipher`.
fn open_bytes(cipher: &Aes256Gcm, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < OVERHEAD {
        return None;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut plaintext = ciphertext.to_vec();
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            &mut plaintext,
            Tag::from_slice(tag),
        )
        .ok()?;
    Some(plaintext)
}

/// Whether values under `key` are sealed: every key but the runtime's metadata.
pub(crate) fn is_sealed(key: &str) -> bool {
    !key.starts_with(RESERVED_KEY_PREFIX)
}

impl Sealer {
    /// The sealer of a layer with these keys and purpose; `None` when `mode` is off.
    pub(crate) fn new(
        mode: Encryption,
        current: &Key,
        previous: &[Key],
        purpose: &str,
    ) -> Option<Arc<Self>> {
        if mode == Encryption::Off {
            return None;
        }
        let mut wrap_aad = WRAP_AAD.to_vec();
        wrap_aad.extend_from_slice(&(purpose.len() as u64).to_be_bytes());
        wrap_aad.extend_from_slice(purpose.as_bytes());
        Some(Arc::new(Self {
            mode,
            wrap_aad,
            current: cipher(&current.subkey(WRAP_INFO)),
            previous: previous
                .iter()
                .map(|k| cipher(&k.subkey(WRAP_INFO)))
                .collect(),
            derive: <Hmac<Sha256> as Mac>::new_from_slice(&current.subkey(DERIVE_INFO))
                .expect("HMAC accepts keys of any length"),
        }))
    }

    /// A new random data key.
    pub(crate) fn new_key(&self) -> DataKey {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        DataKey::new(raw)
    }

    /// `key` sealed under the current key, as the record stores it.
    pub(crate) fn wrap_key(&self, key: &DataKey) -> Bytes {
        self.wrap(&key.0 .1)
    }

    fn wrap(&self, raw: &[u8; 32]) -> Bytes {
        seal_bytes(&self.current, &self.wrap_aad, raw)
    }

    /// The data key of the record stored under `id`, from its stored form `sealed`.
    ///
    /// A record without one (stored before encryption was on), or with one no key of the
    /// layer opens, gets the key derived from the layer's current key and `id`, the same for
    /// every request that meets it, so that concurrent first writes agree; its values
    /// stored before do not open under it (in clear, they are read as such in
    /// [`Encryption::AcceptingPlaintext`]).
    pub(crate) fn data_key(&self, id: &SessionId, sealed: Option<&[u8]>) -> Opened {
        if let Some(sealed) = sealed {
            if let Some(raw) = open_bytes(&self.current, &self.wrap_aad, sealed) {
                if let Ok(raw) = <[u8; 32]>::try_from(raw.as_slice()) {
                    return Opened {
                        key: DataKey::new(raw),
                        rewrap: None,
                    };
                }
            }
            let previous = self
                .previous
                .iter()
                .find_map(|c| open_bytes(c, &self.wrap_aad, sealed))
                .and_then(|raw| <[u8; 32]>::try_from(raw.as_slice()).ok());
            if let Some(raw) = previous {
                tracing::debug!("session data key sealed under a previous key; re-sealing it");
                return Opened {
                    key: DataKey::new(raw),
                    rewrap: Some(self.wrap(&raw)),
                };
            }
            tracing::warn!(
                "a session's data key does not open under any of the layer's keys (retired, or not this app's): its fields read as undecodable"
            );
        }
        let mut mac = self.derive.clone();
        mac.update(id.as_str().as_bytes());
        let raw: [u8; 32] = mac.finalize().into_bytes().into();
        Opened {
            key: DataKey::new(raw),
            rewrap: Some(self.wrap(&raw)),
        }
    }

    /// What a view of a record whose data key is `key` opens its values with.
    pub(crate) fn opener(&self, key: &DataKey) -> Arc<Opener> {
        Arc::new(Opener {
            key: key.clone(),
            accept_plaintext: self.mode == Encryption::AcceptingPlaintext,
        })
    }

    /// `value` as stored under `name`: sealed under `key`, unless `name` is metadata.
    pub(crate) fn seal_value(&self, key: &DataKey, name: &str, value: &Bytes) -> Bytes {
        if is_sealed(name) {
            seal_bytes(key.cipher(), name.as_bytes(), value)
        } else {
            value.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(mode: Encryption, key: &Key) -> Arc<Sealer> {
        Sealer::new(mode, key, &[], "").expect("on")
    }

    #[test]
    fn values_open_only_under_their_key_and_store_key() {
        let key = Key::generate();
        let s = sealer(Encryption::On, &key);
        let dk = s.new_key();
        let other = s.new_key();
        let sealed = seal_bytes(dk.cipher(), b"cart.items", b"[1,2]");
        assert_eq!(sealed.len(), 5 + OVERHEAD);
        assert_eq!(
            open_bytes(dk.cipher(), b"cart.items", &sealed).as_deref(),
            Some(&b"[1,2]"[..])
        );
        assert_eq!(open_bytes(dk.cipher(), b"cart.other", &sealed), None);
        assert_eq!(open_bytes(other.cipher(), b"cart.items", &sealed), None);
        assert_eq!(open_bytes(dk.cipher(), b"cart.items", &sealed[..10]), None);
        let mut flipped = sealed.to_vec();
        flipped[NONCE_LEN] ^= 1;
        assert_eq!(open_bytes(dk.cipher(), b"cart.items", &flipped), None);
    }

    #[test]
    fn data_keys_open_under_previous_keys_and_are_resealed() {
        let (old, new) = (Key::generate(), Key::generate());
        let before = sealer(Encryption::On, &old);
        let dk = before.new_key();
        let wrapped = before.wrap_key(&dk);
        let sealed = seal_bytes(dk.cipher(), b"a", b"1");
        let id = SessionId::generate();

        let after = Sealer::new(Encryption::On, &new, &[old], "").expect("on");
        let opened = after.data_key(&id, Some(&wrapped));
        assert!(opened.rewrap.is_some());
        assert_eq!(
            open_bytes(opened.key.cipher(), b"a", &sealed).as_deref(),
            Some(&b"1"[..])
        );
        let again = after.data_key(&id, opened.rewrap.as_deref());
        assert!(again.rewrap.is_none());

        // Without the old key, the derived key: the same for every request, and not the
        // session's.
        let unknown = sealer(Encryption::On, &new).data_key(&id, Some(&wrapped));
        assert!(unknown.rewrap.is_some());
        assert_eq!(open_bytes(unknown.key.cipher(), b"a", &sealed), None);
        let derived = sealer(Encryption::On, &new).data_key(&id, None);
        let sealed_by_derived = seal_bytes(derived.key.cipher(), b"a", b"2");
        assert_eq!(
            open_bytes(unknown.key.cipher(), b"a", &sealed_by_derived).as_deref(),
            Some(&b"2"[..])
        );
    }

    #[test]
    fn a_purpose_binds_the_data_key() {
        let key = Key::generate();
        let shop = Sealer::new(Encryption::On, &key, &[], "shop").expect("on");
        let admin = Sealer::new(Encryption::On, &key, &[], "admin").expect("on");
        let wrapped = shop.wrap_key(&shop.new_key());
        let id = SessionId::generate();
        assert!(shop.data_key(&id, Some(&wrapped)).rewrap.is_none());
        assert!(admin.data_key(&id, Some(&wrapped)).rewrap.is_some());
    }
}
