//! The session index: find a user's sessions by the value of a `#[session(index)]` field,
//! and revoke them, from a handler or from anywhere else.
//!
//! An indexed field's value is the session's *index term* (its [`IndexKey`] as text). The
//! layer stores the term with the session, under the field's index key (`__ix.` and the
//! field's store key), in the same write as the field itself, and a store that
//! [supports the index](crate::SessionStore::supports_index) keeps the reverse mapping in
//! that same atomic write. So a listing never returns a session that no longer carries the
//! value, and revoking them all never misses one that does.

use std::{borrow::Borrow, fmt, marker::PhantomData, str::FromStr, sync::Arc, time::SystemTime};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub(crate) mod term;

pub(crate) use self::term::check_term;
#[doc(hidden)]
pub use self::term::index_term;
pub use self::term::{IndexKey, IndexValue, MAX_INDEX_TERM_LEN};

use crate::{
    changes::FieldState,
    expiry::Lifetime,
    meta::{from_millis, parse_u64, CREATED_KEY, IDLE_TIMEOUT_KEY},
    record::{FieldMap, RawRecord},
    schema::{FieldInfo, SchemaFields, SessionData},
    session::Shared,
    SessionError, SessionId, StoreError,
};

/// The HKDF label of the key that derives session handles from IDs.
const HANDLE_INFO: &str = "session-runtime handle v1";
/// A handle's bytes (128 bits of an HMAC-SHA256).
const HANDLE_LEN: usize = 16;

/// A typed handle on one `#[session(index)]` field of schema `S`, of type `V`: sessions are
/// listed by `V`'s [`Key`](IndexValue::Key) (`u64` for an `Option<u64>` field). The derive
/// gives one per indexed field, as `S::by_<field>()`:
///
/// ```
/// use session_runtime::{index::Index, SessionData};
///
/// #[derive(SessionData)]
/// struct Auth {
///     #[session(index)]
///     user_id: Option<u64>,
///     device: String,
/// }
///
/// let index: Index<Auth, Option<u64>> = Auth::by_user_id();
/// assert_eq!(index.field(), "user_id");
/// ```
pub struct Index<S, V> {
    field: usize,
    _marker: PhantomData<fn() -> (S, V)>,
}

impl<S, V> Clone for Index<S, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, V> Copy for Index<S, V> {}

impl<S: SessionData, V> fmt::Debug for Index<S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("schema", &S::SCHEMA.name())
            .field("field", &self.field())
            .finish()
    }
}

impl<S: SessionData, V> Index<S, V> {
    /// The handle on the field at `field` (called by the generated code).
    #[doc(hidden)]
    pub const fn new(field: usize) -> Self {
        Self {
            field,
            _marker: PhantomData,
        }
    }

    /// The indexed field's Rust name.
    pub fn field(&self) -> &'static str {
        self.info().name()
    }

    fn info(&self) -> &'static FieldInfo {
        &S::SCHEMA.fields()[self.field]
    }

    /// The field's position in the schema.
    pub(crate) fn position(&self) -> usize {
        self.field
    }

    /// The store key of the field's index term.
    pub(crate) fn key(&self) -> &'static str {
        self.info().index_key()
    }

    /// The term `key` is listed under; an error when it is too long to be one.
    fn term_of<Q: IndexKey + ?Sized>(&self, key: &Q) -> Result<String, SessionError>
    where
        V: IndexValue,
        V::Key: Borrow<Q>,
    {
        check_term(S::SCHEMA.name(), self.field(), key.index_term()).map_err(SessionError::Encode)
    }
}

/// An opaque name for one of the sessions a listing returned, to revoke it by. It is not the
/// session's ID and reveals nothing of it (a keyed hash of it, under a key derived from the
/// layer's), so it can go into a page or a form: [`Display`](fmt::Display) and
/// [`FromStr`] round-trip it as 22 URL-safe characters. It changes when the session's ID
/// does (at regenerate) and when the layer's key is rotated.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionHandle([u8; HANDLE_LEN]);

impl SessionHandle {
    /// The handle of the session `id`, under the layer's current key.
    pub(crate) fn of(shared: &Shared, id: &SessionId) -> Self {
        let key = shared.config.keys.current.subkey(HANDLE_INFO);
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts keys of any length");
        mac.update(id.as_str().as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut handle = [0; HANDLE_LEN];
        handle.copy_from_slice(&tag[..HANDLE_LEN]);
        Self(handle)
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHandle({self})")
    }
}

/// A string that is not a [`SessionHandle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidHandle;

impl fmt::Display for InvalidHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a session handle")
    }
}

impl std::error::Error for InvalidHandle {}

impl FromStr for SessionHandle {
    type Err = InvalidHandle;

    /// ```
    /// use session_runtime::index::SessionHandle;
    ///
    /// assert!("AAAAAAAAAAAAAAAAAAAAAA".parse::<SessionHandle>().is_ok());
    /// assert!("not a handle".parse::<SessionHandle>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, InvalidHandle> {
        if s.len() != 22 {
            return Err(InvalidHandle);
        }
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| InvalidHandle)?;
        let handle: [u8; HANDLE_LEN] = bytes.try_into().map_err(|_| InvalidHandle)?;
        Ok(Self(handle))
    }
}

/// One session of a listing: what a "your devices" page shows.
#[derive(Clone)]
pub struct IndexedSession {
    handle: SessionHandle,
    current: bool,
    created: Option<SystemTime>,
    expires_at: Option<SystemTime>,
    last_seen: Option<SystemTime>,
    fields: Arc<FieldMap>,
    /// Opens its sealed values, when the layer encrypts at rest.
    #[cfg(feature = "encryption")]
    opener: Option<Arc<crate::seal::Opener>>,
}

impl fmt::Debug for IndexedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexedSession")
            .field("handle", &self.handle)
            .field("current", &self.current)
            .field("created", &self.created)
            .field("expires_at", &self.expires_at)
            .field("last_seen", &self.last_seen)
            .finish_non_exhaustive()
    }
}

impl IndexedSession {
    /// The name to revoke it by.
    pub fn handle(&self) -> &SessionHandle {
        &self.handle
    }

    /// Whether it is the session of the request that listed it.
    pub fn is_current(&self) -> bool {
        self.current
    }

    /// When it was created.
    pub fn created(&self) -> Option<SystemTime> {
        self.created
    }

    /// When it expires, if the store tells.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// When it was last used: its last write or expiry refresh (so to within the layer's
    /// refresh interval, a minute by default). `None` when the store does not tell the
    /// expiry, or the absolute timeout set it.
    pub fn last_seen(&self) -> Option<SystemTime> {
        self.last_seen
    }

    /// Its fields of schema `T`, as stored (not migrated; a field that fails to decode
    /// takes its default): the `device` an app set at login, say. Decoded on each call.
    pub fn data<T: SessionData>(&self) -> T {
        let record = RawRecord::new(Arc::clone(&self.fields));
        #[cfg(feature = "encryption")]
        let record = record.sealed(self.opener.clone());
        T::Fields::from_record(record, FieldState::new()).into_data()
    }
}

/// Lists and revokes sessions by index outside a request: an admin page, a password reset
/// for another user, a job. From [`SessionLayer::sessions`](crate::SessionLayer::sessions);
/// cheap to clone, and it shares the layer's store and key.
///
/// ```
/// # async fn example() -> Result<(), session_runtime::SessionError> {
/// use session_runtime::{Key, MemoryStore, SessionData, SessionLayer};
///
/// #[derive(SessionData)]
/// struct Auth {
///     #[session(index)]
///     user_id: Option<u64>,
/// }
///
/// let layer = SessionLayer::new(MemoryStore::new(), Key::generate());
/// let sessions = layer.sessions();
/// // After a password reset for user 42:
/// let revoked = sessions.revoke_all(Auth::by_user_id(), &42).await?;
/// assert_eq!(revoked, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Sessions {
    shared: Arc<Shared>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

impl Sessions {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The live sessions whose indexed field holds `key`, oldest first.
    pub async fn list<S: SessionData, V: IndexValue, Q: IndexKey + ?Sized>(
        &self,
        index: Index<S, V>,
        key: &Q,
    ) -> Result<Vec<IndexedSession>, SessionError>
    where
        V::Key: Borrow<Q>,
    {
        let term = index.term_of(key)?;
        list(&self.shared, index.key(), &term, None).await
    }

    /// Revokes the session named `handle` if its indexed field holds `key`: whether it did.
    pub async fn revoke<S: SessionData, V: IndexValue, Q: IndexKey + ?Sized>(
        &self,
        index: Index<S, V>,
        key: &Q,
        handle: &SessionHandle,
    ) -> Result<bool, SessionError>
    where
        V::Key: Borrow<Q>,
    {
        let term = index.term_of(key)?;
        revoke(&self.shared, index.key(), &term, |found| found == handle)
            .await
            .map(|n| n > 0)
    }

    /// Revokes every session whose indexed field holds `key` ("sign out everywhere"): how
    /// many it revoked. A session that holds it when this is called is revoked, or its
    /// field changed before it could be. Each session is deleted on its own: if the store
    /// fails midway, those revoked so far stay revoked, and calling again finishes the job.
    pub async fn revoke_all<S: SessionData, V: IndexValue, Q: IndexKey + ?Sized>(
        &self,
        index: Index<S, V>,
        key: &Q,
    ) -> Result<usize, SessionError>
    where
        V::Key: Borrow<Q>,
    {
        let term = index.term_of(key)?;
        revoke(&self.shared, index.key(), &term, |_| true).await
    }
}

/// The index's sessions under `term`, oldest first; `current` marks the request's own.
pub(crate) async fn list(
    shared: &Shared,
    index_key: &str,
    term: &str,
    current: Option<&SessionId>,
) -> Result<Vec<IndexedSession>, SessionError> {
    let store = check_store(shared)?;
    let found = store.find_indexed(index_key, term.as_bytes()).await?;
    let expiry = &shared.config.expiry;
    let mut listed: Vec<IndexedSession> = found
        .into_iter()
        .map(|(id, record)| {
            let created = record
                .fields
                .get(CREATED_KEY)
                .and_then(|v| parse_u64(v))
                .and_then(from_millis);
            let lifetime = Lifetime::decode(record.fields.get(IDLE_TIMEOUT_KEY).map(|v| &v[..]));
            IndexedSession {
                #[cfg(feature = "encryption")]
                opener: shared.sealer.as_ref().map(|sealer| {
                    let sealed = record.fields.get(crate::meta::DATA_KEY_KEY);
                    sealer.opener(&sealer.data_key(&id, sealed.map(|v| &v[..])).key)
                }),
                handle: SessionHandle::of(shared, &id),
                current: current == Some(&id),
                created,
                expires_at: record.expires_at,
                last_seen: expiry.last_refresh(created, record.expires_at, lifetime),
                fields: record.fields,
            }
        })
        .collect();
    listed.sort_by_key(|s| s.created);
    Ok(listed)
}

/// Revokes the sessions under `term` that `pick` chooses by handle; how many.
pub(crate) async fn revoke(
    shared: &Shared,
    index_key: &str,
    term: &str,
    pick: impl Fn(&SessionHandle) -> bool,
) -> Result<usize, SessionError> {
    let store = check_store(shared)?;
    let found = store.find_indexed(index_key, term.as_bytes()).await?;
    let mut revoked = 0;
    for (id, _) in found {
        if pick(&SessionHandle::of(shared, &id))
            && store
                .delete_indexed(&id, index_key, term.as_bytes())
                .await?
        {
            revoked += 1;
        }
    }
    if revoked > 0 {
        tracing::debug!(revoked, index = index_key, "sessions revoked");
    }
    Ok(revoked)
}

/// The layer's store, or the error of one that cannot index.
fn check_store(shared: &Shared) -> Result<&dyn crate::store::DynStore, SessionError> {
    if shared.store.supports_index() {
        Ok(&*shared.store)
    } else {
        Err(SessionError::Store(StoreError::unsupported_index()))
    }
}
