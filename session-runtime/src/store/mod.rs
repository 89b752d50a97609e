//! The storage contract every backend keeps, and the stores that ship with the crate.
//!
//! A store keeps one record per session: a map of store keys to encoded values, and an
//! expiry. Its unit of write is a [`Patch`]: the fields to set, the fields to remove and the
//! new expiry, never a whole record. That is what lets two concurrent requests that change
//! different fields both keep their change.
//!
//! # The contract
//!
//! Every [`SessionStore`] must:
//!
//! 1. **Load** returns `Ok(None)` for a session that does not exist or has expired. With
//!    [`LoadKeys::Only`] it may return just those keys (returning more is allowed).
//! 2. **Create** writes a new record and fails with [`StoreError::Collision`] if a live
//!    record already has the ID. It never overwrites another session.
//! 3. **Save** applies a patch to an existing record atomically: all of it or nothing. If the
//!    record is gone (deleted or expired) it fails with [`StoreError::NotFound`] and never
//!    brings it back. Fields the patch does not name are left as they are.
//! 4. **Regenerate** moves a record to a new ID and applies a patch, atomically: afterwards
//!    the old ID loads nothing and the new one loads the record. `NotFound` if the old
//!    record is gone, `Collision` if the new ID is taken; in both cases nothing changes.
//! 5. **Delete** removes the record; deleting a missing record is not an error.
//! 6. **Touch** sets a new expiry without rewriting fields; `NotFound` if the record is gone.
//! 7. After its expiry, a record is never returned again; a write whose expiry has already
//!    passed ends the record at once.
//!
//! Writes to different fields of one session never overwrite each other; writes to the same
//! field are last-writer-wins. Values are bytes, not text: a store keeps any byte string
//! exactly (a layer that encrypts at rest stores nothing else).
//!
//! # Map fields
//!
//! A `#[session(entries)]` map field keeps each entry under a key of its own, its field's
//! key, `#` and the entry's encoded key (`cart.items#sku-1`); no field's key contains `#`.
//! A key that *ends* in `#` names all of a field's entries at once:
//!
//! - in [`LoadKeys::Only`], every key that starts with it is wanted
//!   ([`LoadKeys::wants`] says which);
//! - in [`Patch::remove`], every key that starts with it is removed: a map's `clear`.
//!   Removals apply before the patch's sets, all in the same atomic write, so a patch
//!   that clears a map and sets one of its entries leaves exactly that entry. Entries other
//!   writes added before this one are removed with the rest; entries written after it are
//!   not.
//!
//! A store that finds data it cannot read as a record under a session's ID (another
//! program's key under its prefix, say) fails with [`StoreError::Corrupt`], leaving that data
//! as it is, and keeps [`StoreError::Backend`] for failures that trying again may cure.
//!
//! A store may replace a session's ID in any write by returning `Some(new_id)`: a
//! client-side store whose "ID" is the encrypted record does so on every write. Server-side
//! stores return `None`. An ID a store chooses must be all RFC 6265 cookie octets.
//!
//! # The session index
//!
//! A schema's `#[session(index)]` field stores its *index term* (the text of its value)
//! under a reserved key of the record, `__ix.` and the field's store key, in the same patch
//! as the field: set when the field holds a value that indexes, removed when it does not.
//! A store whose [`SessionStore::supports_index`] is `true` must also:
//!
//! 8. **Find** with [`SessionStore::find_indexed`] every live record that holds `term`
//!    under `index`, and only those, at a cost that grows with their number, never with the
//!    store's size: its reverse mapping from (`index`, `term`) to IDs changes in the same
//!    atomic write as the record (a create, save, regenerate, delete or expiry), so it is
//!    never stale.
//! 9. **Delete if indexed** with [`SessionStore::delete_indexed`]: delete the record only if
//!    it still holds `term` under `index`, atomically, and say whether it did.
//! 10. Keep no entry for a record that is gone: an expired record's entries go when it does,
//!     or at the latest when a find meets them, so they do not pile up.
//!
//! # For store authors
//!
//! - **Atomic regenerate**: no load, at any moment, may see the record under both IDs, nor
//!   may a write land on the old ID after the move; a moment where *neither* ID loads is
//!   allowed (a request then starts a fresh session, as after any lost race), as long as
//!   the record ends up whole under the new ID or, if the move fails, whole under the old.
//! - **`Record::complete: false`** costs a load per further schema a request uses, and a
//!   whole-record load (`LoadKeys::All`) before a migration: return the whole record when
//!   that is as cheap as the keys asked for.
//! - **`Record::expires_at: None`** means the store does not know the expiry: the layer
//!   then never refreshes it on reads (it cannot tell when a refresh is due), so return it
//!   when you can.
//! - **Errors become responses**: see [`StoreError`]'s variants.
//! - **Saves happen whatever the handler answered**: the changes a handler made are saved
//!   even when it returns an error response.
//! - The public conformance suite (feature `conformance`) checks every rule above that can
//!   be observed from outside.

#[cfg(feature = "cookie-store")]
mod cookie;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod sql;

use std::{
    borrow::Cow, error::Error as StdError, fmt, future::Future, pin::Pin, sync::Arc,
    time::SystemTime,
};

use bytes::Bytes;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisLayout, RedisStore};
#[cfg(feature = "cookie-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "cookie-store")))]
pub use cookie::CookieStore;
pub use memory::MemoryStore;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite")))
)]
pub use sql::CleanupTask;
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub use sql::MySqlStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use sql::PostgresStore;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sql::SqliteStore;

pub use crate::record::{FieldKey, FieldMap};
use crate::SessionId;

/// Which keys a load needs.
#[derive(Debug, Clone, Copy)]
pub enum LoadKeys<'a> {
    /// The whole record.
    All,
    /// Only these store keys (the store may return more). A key ending in `#` stands for
    /// every key that starts with it (the entries of a map field, see
    /// [Map fields](self#map-fields)).
    Only(&'a [&'a str]),
}

impl LoadKeys<'_> {
    /// Whether a load asked for `key`: every key for [`LoadKeys::All`], and for
    /// [`LoadKeys::Only`] the keys it names and those under a prefix it names.
    ///
    /// ```
    /// use session_runtime::store::LoadKeys;
    ///
    /// let keys = LoadKeys::Only(&["user", "cart.items#"]);
    /// assert!(keys.wants("user") && keys.wants("cart.items#sku-1"));
    /// assert!(!keys.wants("cart.items") && !keys.wants("theme"));
    /// assert!(LoadKeys::All.wants("theme"));
    /// ```
    pub fn wants(&self, key: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(keys) => keys.iter().any(|wanted| {
                *wanted == key || (is_entry_prefix(wanted) && key.starts_with(wanted))
            }),
        }
    }
}

/// Whether a store key names all of a map field's entries: it ends in `#` (see
/// [Map fields](self#map-fields)).
///
/// ```
/// use session_runtime::store::is_entry_prefix;
///
/// assert!(is_entry_prefix("cart.items#"));
/// assert!(!is_entry_prefix("cart.items#sku-1") && !is_entry_prefix("theme"));
/// ```
pub fn is_entry_prefix(key: &str) -> bool {
    key.ends_with(crate::entry_map::ENTRY_SEPARATOR)
}

/// A loaded record. `Debug` shows each value's length, never its bytes (they are session
/// data: tokens, personal data).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Store key → encoded value. Shared, so a store that keeps records in memory can hand
    /// one out without copying it.
    pub fields: Arc<FieldMap>,
    /// When the record expires, if the store knows.
    pub expires_at: Option<SystemTime>,
    /// The store read the record with a previous key and wants it written again with the
    /// current one (the layer then refreshes it on this request, even if nothing changed).
    pub stale: bool,
    /// The record holds every key, whatever [`LoadKeys`] asked for: the layer then never
    /// loads this session again in the same request (for another schema or a migration).
    pub complete: bool,
}

/// One write to a record: fields to set, fields to remove, the new expiry. `Debug` shows
/// each value's length, never its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Patch {
    /// Store key → new encoded value.
    pub set: Vec<(Cow<'static, str>, Bytes)>,
    /// Store keys to delete. A key ending in `#` deletes every key that starts with it (a
    /// map field's entries: see [Map fields](self#map-fields)).
    pub remove: Vec<Cow<'static, str>>,
    /// The record's new expiry.
    pub expires_at: SystemTime,
}

/// Store keys with the length of their values, for `Debug` without the values.
struct Lengths<I>(I);

/// A value's length, as `Debug` shows it in place of the value.
struct Length(usize);

impl fmt::Debug for Length {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0)
    }
}

impl<'a, K: fmt::Debug + 'a, I: Iterator<Item = (K, &'a Bytes)> + Clone> fmt::Debug for Lengths<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .clone()
                    .map(|(key, value)| (key, Length(value.len()))),
            )
            .finish()
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("fields", &Lengths(self.fields.iter()))
            .field("expires_at", &self.expires_at)
            .field("stale", &self.stale)
            .field("complete", &self.complete)
            .finish()
    }
}

impl fmt::Debug for Patch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Patch")
            .field("set", &Lengths(self.set.iter().map(|(k, v)| (k, v))))
            .field("remove", &self.remove)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Patch {
    /// A patch that only sets the expiry.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use session_runtime::store::Patch;
    ///
    /// let touch = Patch::expiry_only(SystemTime::now() + Duration::from_secs(3600));
    /// assert!(touch.is_empty());
    /// ```
    pub fn expiry_only(expires_at: SystemTime) -> Self {
        Self {
            set: Vec::new(),
            remove: Vec::new(),
            expires_at,
        }
    }

    /// Whether the patch changes no field.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use session_runtime::store::Patch;
    ///
    /// let patch = Patch {
    ///     set: vec![("theme".into(), "\"dark\"".into())],
    ///     remove: vec![],
    ///     expires_at: SystemTime::now(),
    /// };
    /// assert!(!patch.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    /// Whether the patch sets or removes an index term (a key under `__ix.`): the writes
    /// after which a store's index changes.
    pub(crate) fn touches_index(&self) -> bool {
        self.set
            .iter()
            .map(|(key, _)| key)
            .chain(&self.remove)
            .any(|key| key.starts_with(crate::meta::INDEX_KEY_PREFIX))
    }

    /// Applies the field changes to a map (for stores that keep records as maps).
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use session_runtime::store::{FieldMap, Patch};
    ///
    /// let mut record = FieldMap::default();
    /// record.insert("theme".into(), "\"light\"".into());
    /// record.insert("legacy".into(), "1".into());
    /// let patch = Patch {
    ///     set: vec![("theme".into(), "\"dark\"".into())],
    ///     remove: vec!["legacy".into()],
    ///     expires_at: SystemTime::now(),
    /// };
    /// patch.apply_to(&mut record);
    /// assert_eq!(&record["theme"][..], b"\"dark\"");
    /// assert!(!record.contains_key("legacy"));
    ///
    /// // A map field's clear: every entry goes, then the patch's own entries are set.
    /// record.insert("items#a".into(), "1".into());
    /// record.insert("items#b".into(), "2".into());
    /// let clear = Patch {
    ///     set: vec![("items#c".into(), "3".into())],
    ///     remove: vec!["items#".into()],
    ///     expires_at: SystemTime::now(),
    /// };
    /// clear.apply_to(&mut record);
    /// let mut keys: Vec<&str> = record.keys().map(|k| k.as_str()).collect();
    /// keys.sort();
    /// assert_eq!(keys, ["items#c", "theme"]);
    /// ```
    pub fn apply_to(&self, fields: &mut FieldMap) {
        for key in &self.remove {
            if is_entry_prefix(key) {
                fields.retain(|stored, _| !stored.starts_with(key.as_ref()));
            } else {
                fields.remove(key.as_ref());
            }
        }
        for (key, value) in &self.set {
            // An existing key keeps its name; only a new one is allocated.
            match fields.get_mut(key.as_ref()) {
                Some(slot) => *slot = value.clone(),
                None => {
                    fields.insert(FieldKey::from(key.clone()), value.clone());
                }
            }
        }
    }
}

/// A store operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The session does not exist (deleted, expired, or never created). On a save, the
    /// request's changes are dropped and it answers `500` (the session ended while it ran);
    /// on a read's refresh, nothing happens.
    NotFound,
    /// Another live session already has this ID. The layer tries a few fresh IDs before it
    /// gives up with a `500`.
    Collision,
    /// The store refused the record, e.g. because it is too large: `500`.
    Rejected(Box<dyn StdError + Send + Sync>),
    /// The backend failed: connection lost, timeout, protocol error: `503`, since trying
    /// again later may work.
    Backend(Box<dyn StdError + Send + Sync>),
    /// What the store holds under this session's ID is not a record it can read: another
    /// program's data under the store's key prefix, or a record damaged outside the store.
    /// Unlike [`StoreError::Backend`], trying again will not help. On a load, the layer
    /// treats it like a record that fails to decode: under the default
    /// [`DecodePolicy::Lenient`](crate::DecodePolicy::Lenient) it logs a warning and starts
    /// a new session under a new ID, leaving the unreadable data as it is; under
    /// [`DecodePolicy::Strict`](crate::DecodePolicy::Strict) the request fails with a `500`.
    Corrupt(Box<dyn StdError + Send + Sync>),
    /// The store cannot do what was asked: the session index, on a store that does not
    /// keep one (see [`SessionStore::supports_index`]). A `500`: the app needs another
    /// store.
    Unsupported(&'static str),
}

impl StoreError {
    /// A backend failure caused by `source`.
    ///
    /// ```
    /// use session_runtime::StoreError;
    ///
    /// // In a store whose database call failed:
    /// # let io_error = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    /// let err = StoreError::backend(io_error);
    /// assert!(std::error::Error::source(&err).is_some());
    /// ```
    pub fn backend(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Backend(source.into())
    }

    /// Unreadable stored data, described by `source`.
    ///
    /// ```
    /// use session_runtime::StoreError;
    ///
    /// // In a store that found something it did not write under a session's key:
    /// let err = StoreError::corrupt("the session's key holds a list, not a record");
    /// assert!(matches!(err, StoreError::Corrupt(_)));
    /// ```
    pub fn corrupt(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Corrupt(source.into())
    }

    /// The error of a store that does not keep the session index.
    pub(crate) fn unsupported_index() -> Self {
        Self::Unsupported(
            "this session store does not keep the session index: a schema with a \
             `#[session(index)]` field, and listing or revoking sessions by index, need a \
             store that does (MemoryStore, RedisStore and the SQL stores do)",
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("the session does not exist in the store"),
            Self::Collision => f.write_str("another session already has this ID"),
            Self::Rejected(_) => f.write_str("the session store refused the record"),
            Self::Backend(_) => f.write_str("the session store failed"),
            Self::Corrupt(_) => f.write_str("the stored session record is unreadable"),
            Self::Unsupported(what) => f.write_str(what),
        }
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Rejected(e) | Self::Backend(e) | Self::Corrupt(e) => Some(&**e),
            Self::NotFound | Self::Collision | Self::Unsupported(_) => None,
        }
    }
}

/// The result of a write: `Some(id)` when the store replaced the session's ID.
pub type WriteResult = Result<Option<SessionId>, StoreError>;

/// A session backend. See the [module documentation](self) for the contract every
/// implementation keeps.
///
/// Implementations write `async fn`s; the futures must be `Send`.
pub trait SessionStore: Send + Sync + 'static {
    /// Loads a record, or `None` when it does not exist or expired.
    fn load(
        &self,
        id: &SessionId,
        keys: LoadKeys<'_>,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// Creates a record; [`StoreError::Collision`] if the ID is taken.
    fn create(&self, id: &SessionId, patch: &Patch) -> impl Future<Output = WriteResult> + Send;

    /// Applies a patch to an existing record; [`StoreError::NotFound`] if it is gone.
    fn save(&self, id: &SessionId, patch: &Patch) -> impl Future<Output = WriteResult> + Send;

    /// Moves a record from `old` to `new` and applies a patch, atomically.
    fn regenerate(
        &self,
        old: &SessionId,
        new: &SessionId,
        patch: &Patch,
    ) -> impl Future<Output = WriteResult> + Send;

    /// Deletes a record.
    fn delete(&self, id: &SessionId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Sets a record's expiry without rewriting its fields.
    fn touch(
        &self,
        id: &SessionId,
        expires_at: SystemTime,
    ) -> impl Future<Output = WriteResult> + Send;

    /// Whether the store keeps the session index (see [the contract](self#the-session-index)).
    /// `false` by default: the layer then refuses indexed schemas with
    /// [`StoreError::Unsupported`] rather than store their terms unindexed.
    fn supports_index(&self) -> bool {
        false
    }

    /// The live sessions whose record holds `term` under the index key `index`, with their
    /// whole records, in any order.
    fn find_indexed(
        &self,
        index: &str,
        term: &[u8],
    ) -> impl Future<Output = Result<Vec<(SessionId, Record)>, StoreError>> + Send {
        let _ = (index, term);
        async { Err(StoreError::unsupported_index()) }
    }

    /// Deletes the session `id` if its record still holds `term` under `index`, atomically:
    /// whether it did.
    fn delete_indexed(
        &self,
        id: &SessionId,
        index: &str,
        term: &[u8],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = (id, index, term);
        async { Err(StoreError::unsupported_index()) }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`SessionStore`] with boxed futures, so the request layer can hold any store behind one
/// pointer type.
pub(crate) trait DynStore: Send + Sync + 'static {
    fn load<'a>(
        &'a self,
        id: &'a SessionId,
        keys: LoadKeys<'a>,
    ) -> BoxFuture<'a, Result<Option<Record>, StoreError>>;
    fn create<'a>(&'a self, id: &'a SessionId, patch: &'a Patch) -> BoxFuture<'a, WriteResult>;
    fn save<'a>(&'a self, id: &'a SessionId, patch: &'a Patch) -> BoxFuture<'a, WriteResult>;
    fn regenerate<'a>(
        &'a self,
        old: &'a SessionId,
        new: &'a SessionId,
        patch: &'a Patch,
    ) -> BoxFuture<'a, WriteResult>;
    fn delete<'a>(&'a self, id: &'a SessionId) -> BoxFuture<'a, Result<(), StoreError>>;
    fn touch<'a>(&'a self, id: &'a SessionId, expires_at: SystemTime)
        -> BoxFuture<'a, WriteResult>;
    fn supports_index(&self) -> bool;
    fn find_indexed<'a>(
        &'a self,
        index: &'a str,
        term: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<(SessionId, Record)>, StoreError>>;
    fn delete_indexed<'a>(
        &'a self,
        id: &'a SessionId,
        index: &'a str,
        term: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}

/// A shared store is a store: the layer and an admin task can hold one `Arc` of it.
///
/// ```
/// use std::sync::Arc;
/// use session_runtime::{Key, MemoryStore, SessionLayer};
///
/// let store = Arc::new(MemoryStore::new());
/// let layer = SessionLayer::new(Arc::clone(&store), Key::generate());
/// assert!(store.is_empty());
/// # let _ = layer;
/// ```
impl<S: SessionStore> SessionStore for Arc<S> {
    fn load(
        &self,
        id: &SessionId,
        keys: LoadKeys<'_>,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send {
        (**self).load(id, keys)
    }
    fn create(&self, id: &SessionId, patch: &Patch) -> impl Future<Output = WriteResult> + Send {
        (**self).create(id, patch)
    }
    fn save(&self, id: &SessionId, patch: &Patch) -> impl Future<Output = WriteResult> + Send {
        (**self).save(id, patch)
    }
    fn regenerate(
        &self,
        old: &SessionId,
        new: &SessionId,
        patch: &Patch,
    ) -> impl Future<Output = WriteResult> + Send {
        (**self).regenerate(old, new, patch)
    }
    fn delete(&self, id: &SessionId) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).delete(id)
    }
    fn touch(
        &self,
        id: &SessionId,
        expires_at: SystemTime,
    ) -> impl Future<Output = WriteResult> + Send {
        (**self).touch(id, expires_at)
    }
    fn supports_index(&self) -> bool {
        (**self).supports_index()
    }
    fn find_indexed(
        &self,
        index: &str,
        term: &[u8],
    ) -> impl Future<Output = Result<Vec<(SessionId, Record)>, StoreError>> + Send {
        (**self).find_indexed(index, term)
    }
    fn delete_indexed(
        &self,
        id: &SessionId,
        index: &str,
        term: &[u8],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).delete_indexed(id, index, term)
    }
}

impl<S: SessionStore> DynStore for S {
    fn load<'a>(
        &'a self,
        id: &'a SessionId,
        keys: LoadKeys<'a>,
    ) -> BoxFuture<'a, Result<Option<Record>, StoreError>> {
        Box::pin(SessionStore::load(self, id, keys))
    }
    fn create<'a>(&'a self, id: &'a SessionId, patch: &'a Patch) -> BoxFuture<'a, WriteResult> {
        Box::pin(SessionStore::create(self, id, patch))
    }
    fn save<'a>(&'a self, id: &'a SessionId, patch: &'a Patch) -> BoxFuture<'a, WriteResult> {
        Box::pin(SessionStore::save(self, id, patch))
    }
    fn regenerate<'a>(
        &'a self,
        old: &'a SessionId,
        new: &'a SessionId,
        patch: &'a Patch,
    ) -> BoxFuture<'a, WriteResult> {
        Box::pin(SessionStore::regenerate(self, old, new, patch))
    }
    fn delete<'a>(&'a self, id: &'a SessionId) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SessionStore::delete(self, id))
    }
    fn touch<'a>(
        &'a self,
        id: &'a SessionId,
        expires_at: SystemTime,
    ) -> BoxFuture<'a, WriteResult> {
        Box::pin(SessionStore::touch(self, id, expires_at))
    }
    fn supports_index(&self) -> bool {
        SessionStore::supports_index(self)
    }
    fn find_indexed<'a>(
        &'a self,
        index: &'a str,
        term: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<(SessionId, Record)>, StoreError>> {
        Box::pin(SessionStore::find_indexed(self, index, term))
    }
    fn delete_indexed<'a>(
        &'a self,
        id: &'a SessionId,
        index: &'a str,
        term: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(SessionStore::delete_indexed(self, id, index, term))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_patches_print_value_lengths_never_values() {
        let mut fields = FieldMap::default();
        fields.insert(
            FieldKey::new("token"),
            Bytes::from_static(b"\"s3cret-token\""),
        );
        let record = Record {
            fields: Arc::new(fields),
            ..Record::default()
        };
        let mut patch = Patch::expiry_only(SystemTime::UNIX_EPOCH);
        patch.set.push((
            Cow::Borrowed("password"),
            Bytes::from_static(b"\"hunter2\""),
        ));
        patch.remove.push(Cow::Borrowed("old"));
        let shown = format!("{record:?} {patch:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(shown.contains("\"token\": <14 bytes>"), "{shown}");
        assert!(shown.contains("\"password\": <9 bytes>"), "{shown}");
        assert!(shown.contains("\"old\""), "{shown}");
    }
}
