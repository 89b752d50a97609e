//! The state of one request's session, shared by every `TypedSession` extractor of the
//! request and by the layer, which persists it after the handler.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::HeaderMap;

use crate::{
    chain::Chain,
    config::Config,
    decode::{self, collect_changes},
    key::Rejected,
    meta::{duration_millis, from_millis, to_millis, CREATED_KEY, TTL_KEY},
    record::{FieldMap, RawRecord},
    schema::{SchemaFields, SessionData},
    session_cookie::{request_values, CookieOut, MAX_COOKIE_LEN},
    store::{DynStore, LoadKeys, Patch, Record},
    DecodePolicy, Schema, SessionError, SessionId, StoreError,
};

/// The longest a session lives past its last write or refresh, however long its timeout:
/// 400 days, the longest lifetime browsers give a cookie (RFC 6265bis caps `Max-Age` and
/// `Expires` there), so the store never keeps a session its cookie cannot outlive.
pub(crate) const LONGEST_LIFETIME: Duration = Duration::from_secs(400 * 24 * 60 * 60);
/// How many fresh IDs to try when the store reports collisions.
const ID_ATTEMPTS: usize = 4;

/// What the layer shares with every request: the store and the configuration.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn DynStore>,
    pub(crate) config: Config,
    /// The cookie's attributes, rendered once.
    pub(crate) cookie_attributes: String,
}

impl Shared {
    pub(crate) fn new(store: Arc<dyn DynStore>, config: Config) -> Self {
        let cookie_attributes = config.cookie.attributes();
        Self {
            store,
            config,
            cookie_attributes,
        }
    }
}

/// One request's session. Cheap to clone; clones share the state.
#[derive(Clone)]
pub(crate) struct RequestSession(Arc<Inner>);

struct Inner {
    shared: Arc<Shared>,
    used: AtomicBool,
    /// The layer is done with this session (saved it, or found nothing to save): changes
    /// made from now on are saved only by an explicit `TypedSession::save`. Set while the
    /// state is locked, so a change merged after that lock sees it.
    finished: AtomicBool,
    /// How many times the session was destroyed in this request. Changes an extractor made
    /// before a destroy belong to the session that ended: it compares this with the count
    /// it last saw, and drops them.
    destroys: AtomicU32,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    loaded: Option<Loaded>,
    /// Writes not yet saved: store key → new value, or `None` to remove it.
    pending: BTreeMap<Cow<'static, str>, Option<Bytes>>,
    regenerate: bool,
    /// A destroyed session's ID, to delete from the store.
    doomed: Option<SessionId>,
    /// Errors from extractors dropped with changes that could not be encoded.
    errors: Vec<SessionError>,
    /// The cookie to send with the response.
    cookie: Option<CookieOut>,
}

/// What the store holds (as far as loaded) plus the writes of this request.
struct Loaded {
    /// `None` for a session that is not stored (yet).
    id: Option<SessionId>,
    /// The record as loaded (this request's writes are in `State::pending`); `None` while
    /// empty, so a new session allocates no map.
    base: Option<Arc<FieldMap>>,
    /// Schemas whose keys were already asked of the store.
    loaded_schemas: Vec<&'static Schema>,
    /// Whether every key of the record was loaded.
    complete: bool,
    expires_at: Option<SystemTime>,
    created: Option<SystemTime>,
    ttl: Option<Duration>,
    /// The cookie was signed by a previous key and must be re-signed.
    stale_key: bool,
    /// The request's cookie tag, verified under the current key: re-sent with the ID while
    /// the ID does not change, instead of signing again.
    tag: Option<[u8; 32]>,
    /// The store read the record with a previous key and wants it rewritten.
    stale_record: bool,
}

impl Loaded {
    fn fresh() -> Self {
        Self {
            id: None,
            base: None,
            loaded_schemas: Vec::new(),
            complete: true,
            expires_at: None,
            created: None,
            ttl: None,
            stale_key: false,
            stale_record: false,
            tag: None,
        }
    }

    /// Adds keys loaded later (another schema's, or the whole record for a migration).
    fn merge(&mut self, record: Record) {
        match &mut self.base {
            Some(base) if !base.is_empty() => {
                let base = Arc::make_mut(base);
                for (key, value) in record.fields.iter() {
                    base.insert(key.clone(), value.clone());
                }
            }
            _ => self.base = Some(record.fields),
        }
        if record.expires_at.is_some() {
            self.expires_at = record.expires_at;
        }
        self.stale_record |= record.stale;
    }
}

/// What `persist` works from, taken out of the state under the lock.
struct Snapshot {
    doomed: Option<SessionId>,
    regenerate: bool,
    pending: BTreeMap<Cow<'static, str>, Option<Bytes>>,
    id: Option<SessionId>,
    stale_key: bool,
    stale_record: bool,
    created: Option<SystemTime>,
    ttl: Option<Duration>,
    expires_at: Option<SystemTime>,
    tag: Option<[u8; 32]>,
}

impl State {
    /// Queues a write. Removing a key the loaded record does not have changes nothing (the
    /// flash-message pattern takes a value on every page, a page may always say "do not
    /// remember me"): it only cancels a write of that key queued earlier in this request.
    fn queue(&mut self, key: Cow<'static, str>, value: Option<Bytes>) {
        let stored = || {
            self.loaded
                .as_ref()
                .and_then(|loaded| loaded.base.as_ref())
                .is_some_and(|base| base.contains_key(key.as_ref()))
        };
        if value.is_some() || stored() {
            self.pending.insert(key, value);
        } else {
            self.pending.remove(key.as_ref());
        }
    }

    /// Whether something is waiting for a save.
    fn has_unsaved(&self) -> bool {
        !self.pending.is_empty()
            || self.doomed.is_some()
            || self.regenerate
            || !self.errors.is_empty()
    }

    /// What schemas decode from: the loaded record with this request's unsaved writes.
    fn view(&self) -> RawRecord {
        let base = self.loaded.as_ref().and_then(|l| l.base.clone());
        let overlay = (!self.pending.is_empty()).then(|| Arc::new(self.pending.clone()));
        RawRecord::from_parts(base, overlay)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every critical section leaves the state consistent, so a poisoned lock is usable.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn decode_millis(bytes: Option<&Bytes>) -> Option<u64> {
    crate::meta::parse_u64(bytes?)
}

impl RequestSession {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self(Arc::new(Inner {
            shared,
            used: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            destroys: AtomicU32::new(0),
            state: Mutex::new(State::default()),
        }))
    }

    /// How many times the session was destroyed in this request so far.
    pub(crate) fn destroys(&self) -> u32 {
        self.0.destroys.load(Ordering::Acquire)
    }

    /// Whether any extractor touched the session in this request.
    pub(crate) fn is_used(&self) -> bool {
        self.0.used.load(Ordering::Acquire)
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.0.shared
    }

    fn config(&self) -> &Config {
        &self.0.shared.config
    }

    fn store(&self) -> &dyn DynStore {
        &*self.0.shared.store
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.0.state)
    }

    /// Loads what schema `T` needs and decodes it.
    pub(crate) async fn extract<T: SessionData>(
        &self,
        headers: &HeaderMap,
    ) -> Result<(Box<T::Fields>, Option<u32>), SessionError> {
        self.0.used.store(true, Ordering::Release);
        self.ensure_loaded::<T>(headers).await?;
        let mut state = self.state();
        let view = state.view();
        let decoded = decode::decode::<T>(&view, self.config().decode_policy)
            .map_err(SessionError::Decode)?;
        state.pending.extend(decoded.extra);
        Ok((decoded.fields, decoded.stored_version))
    }

    async fn ensure_loaded<T: SessionData>(&self, headers: &HeaderMap) -> Result<(), SessionError> {
        let schema = T::SCHEMA;
        // First load of the request: find the cookie and read this schema's keys plus metadata.
        let first = self.state().loaded.is_none();
        if first {
            let (id, stale_key, tag) = match self.cookie_id(headers) {
                Some(found) => found,
                None => {
                    self.state().loaded.get_or_insert_with(Loaded::fresh);
                    return Ok(());
                }
            };
            let record = match self
                .store()
                .load(&id, LoadKeys::Only(schema.load_keys()))
                .await
            {
                Ok(record) => record,
                // Unreadable data under the session's ID: like a record that fails to
                // decode, it does not take the visitor's every request down. It is left as
                // it is; the new session gets a new ID.
                Err(err @ StoreError::Corrupt(_))
                    if self.config().decode_policy == DecodePolicy::Lenient =>
                {
                    tracing::warn!(
                        error = %Chain(&err),
                        "the session cookie names unreadable data in the store; starting a new session"
                    );
                    None
                }
                Err(err) => return Err(err.into()),
            };
            let mut loaded = Loaded::fresh();
            if let Some(record) = record {
                loaded.complete = record.complete;
                // Only a partial record is ever asked again, for another schema's keys.
                if !record.complete {
                    loaded.loaded_schemas.push(schema);
                }
                loaded.expires_at = record.expires_at;
                loaded.stale_record = record.stale;
                loaded.created =
                    decode_millis(record.fields.get(CREATED_KEY)).and_then(from_millis);
                loaded.ttl = decode_millis(record.fields.get(TTL_KEY)).map(Duration::from_millis);
                loaded.base = Some(record.fields);
                loaded.stale_key = stale_key;
                loaded.tag = tag;
                loaded.id = Some(id);
                if self.past_absolute_timeout(loaded.created) {
                    tracing::debug!("session reached its absolute timeout; starting a new one");
                    if let Some(id) = loaded.id.take() {
                        self.store().delete(&id).await?;
                    }
                    loaded = Loaded::fresh();
                }
            } else {
                tracing::debug!(
                    "session cookie names a session the store does not have; starting a new one"
                );
            }
            let mut state = self.state();
            if state.loaded.is_none() {
                state.loaded = Some(loaded);
            }
        }

        // A later schema: load its keys (values this request wrote are kept).
        let missing: Option<SessionId> = {
            let state = self.state();
            let loaded = state.loaded.as_ref().expect("set above");
            match &loaded.id {
                Some(id)
                    if !loaded.complete
                        && !loaded
                            .loaded_schemas
                            .iter()
                            .any(|s| std::ptr::eq(*s, schema)) =>
                {
                    Some(id.clone())
                }
                _ => None,
            }
        };
        if let Some(id) = missing {
            let record = self
                .store()
                .load(&id, LoadKeys::Only(schema.load_keys()))
                .await?;
            let mut state = self.state();
            let loaded = state.loaded.as_mut().expect("set above");
            loaded.loaded_schemas.push(schema);
            if let Some(record) = record {
                loaded.merge(record);
            }
        }

        // A migration needs every key of the schema's namespace.
        let full: Option<SessionId> = {
            let state = self.state();
            let version = decode::stored_version::<T>(&state.view()).ok().flatten();
            let loaded = state.loaded.as_ref().expect("set above");
            match &loaded.id {
                Some(id) if !loaded.complete && decode::needs_full_record::<T>(version) => {
                    Some(id.clone())
                }
                _ => None,
            }
        };
        if let Some(id) = full {
            let record = self.store().load(&id, LoadKeys::All).await?;
            let mut state = self.state();
            let loaded = state.loaded.as_mut().expect("set above");
            loaded.complete = true;
            if let Some(record) = record {
                loaded.merge(record);
            }
        }
        Ok(())
    }

    /// The verified session ID in the request's cookie, and whether it was signed by a
    /// previous key. Anything else is ignored (and logged without the value).
    fn cookie_id(&self, headers: &HeaderMap) -> Option<(SessionId, bool, Option<[u8; 32]>)> {
        let name = self.config().cookie.name.as_str();
        let mut rejected = None;
        for header in headers.get_all(http::header::COOKIE) {
            for value in request_values(header.as_bytes(), name) {
                if value.len() > MAX_COOKIE_LEN {
                    rejected = Some("oversized");
                    continue;
                }
                let Ok(value) = std::str::from_utf8(value) else {
                    rejected = Some("not valid text");
                    continue;
                };
                match self.config().keys.verify(value) {
                    Ok(verified) => {
                        let tag = (!verified.stale_key).then_some(verified.tag);
                        return Some((
                            SessionId::from_str_unverified(verified.value),
                            verified.stale_key,
                            tag,
                        ));
                    }
                    Err(Rejected::Malformed) => rejected = Some("malformed"),
                    Err(Rejected::BadSignature) => rejected = Some("bad signature"),
                }
            }
        }
        if let Some(reason) = rejected {
            tracing::warn!(
                cookie = name,
                reason,
                "ignoring a session cookie that failed verification; starting a new session"
            );
        }
        None
    }

    fn past_absolute_timeout(&self, created: Option<SystemTime>) -> bool {
        match (self.config().expiry.absolute_timeout, created) {
            (Some(limit), Some(created)) => created
                .checked_add(limit)
                .is_some_and(|end| end <= SystemTime::now()),
            _ => false,
        }
    }

    /// Called when an extractor is dropped: moves its changes into the pending writes. If
    /// the layer has already saved the session (the extractor outlived the handler, moved
    /// into a spawned task), whatever is still unsaved is lost: that is logged as an error
    /// rather than dropped silently.
    pub(crate) fn release<T: SessionData>(
        &self,
        fields: &mut T::Fields,
        stored_version: &mut Option<u32>,
    ) {
        self.flush::<T>(fields, stored_version);
        if !self.0.finished.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.state();
        if state.has_unsaved() {
            tracing::error!(
                schema = T::SCHEMA.name(),
                "session changes made after the response was sent are lost: the session \
                 was saved when the handler returned; make changes before that, or call \
                 `TypedSession::save` after them"
            );
            state.pending.clear();
            state.doomed = None;
            state.regenerate = false;
            state.errors.clear();
        }
    }

    /// Moves the changes of an extractor into the pending writes.
    pub(crate) fn flush<T: SessionData>(
        &self,
        fields: &mut T::Fields,
        stored_version: &mut Option<u32>,
    ) {
        if fields.state().is_clean() {
            return;
        }
        let mut writes = Vec::new();
        let result = collect_changes::<T>(fields, *stored_version, &mut writes);
        fields.state_mut().clear();
        let mut state = self.state();
        match result {
            Ok(()) => {
                state.loaded.get_or_insert_with(Loaded::fresh);
                let version_key = T::SCHEMA.version_key();
                let mut version = None;
                for (key, value) in writes {
                    if key == version_key {
                        version = Some((key, value));
                    } else {
                        state.queue(key, value);
                    }
                }
                // The version describes the schema's fields written with it: with none left
                // to write (all taken again), it waits too, so a new session that only set
                // and took fields is not created.
                if let Some((key, value)) = version {
                    let fields_written = T::SCHEMA
                        .fields()
                        .iter()
                        .any(|field| state.pending.contains_key(field.store_key()));
                    if fields_written {
                        state.pending.insert(key, value);
                        if stored_version.is_none_or(|v| v < T::SCHEMA.version()) {
                            *stored_version = Some(T::SCHEMA.version());
                        }
                    } else {
                        state.pending.remove(&key);
                    }
                }
            }
            Err(err) => state.errors.push(SessionError::Encode(err)),
        }
    }

    pub(crate) fn id(&self) -> Option<SessionId> {
        self.state().loaded.as_ref().and_then(|l| l.id.clone())
    }

    pub(crate) fn regenerate(&self) {
        self.state().regenerate = true;
    }

    /// Forgets the session: its record is deleted after the handler; writes made after
    /// this start a new session.
    pub(crate) fn destroy(&self) {
        let mut state = self.state();
        self.0.destroys.fetch_add(1, Ordering::AcqRel);
        let old = state.loaded.replace(Loaded::fresh()).and_then(|l| l.id);
        if old.is_some() {
            state.doomed = old;
        }
        state.pending.clear();
        state.regenerate = false;
    }

    pub(crate) fn set_expiry(&self, ttl: Option<Duration>) {
        let mut state = self.state();
        state.loaded.get_or_insert_with(Loaded::fresh).ttl = ttl;
        let value = ttl.map(|ttl| Bytes::from(duration_millis(ttl).to_string()));
        state.queue(Cow::Borrowed(TTL_KEY), value);
    }

    /// Whether this request changed nothing, needs no refresh and no re-signing: the common
    /// read-only case, decided without cloning anything.
    pub(crate) fn nothing_to_persist(&self) -> bool {
        self.nothing_to_persist_in(&self.state())
    }

    /// After the handler: whether there is nothing to persist, in which case the layer is
    /// done with the session.
    pub(crate) fn finish_if_nothing_to_persist(&self) -> bool {
        let state = self.state();
        let done = self.nothing_to_persist_in(&state);
        if done {
            self.0.finished.store(true, Ordering::Release);
        }
        done
    }

    fn nothing_to_persist_in(&self, state: &State) -> bool {
        let Some(loaded) = &state.loaded else {
            return true;
        };
        // A cookie decided by an early save (a new session, a regenerated ID) still has to
        // reach the browser, even if nothing changed after it.
        if state.has_unsaved()
            || state.cookie.is_some()
            || loaded.stale_key
            || loaded.stale_record
            || loaded.id.is_none()
        {
            return false;
        }
        let (deadline, _) = self.deadline(loaded.created, loaded.ttl, SystemTime::now());
        !self.refresh_due(loaded.expires_at, deadline, loaded.ttl)
    }

    /// Whether a read-only request should push the expiry out: only once the new deadline
    /// gains at least the refresh interval over the stored one. The interval is at most a
    /// quarter of the session's idle timeout, so a read always leaves the session at least
    /// three quarters of it to live, however short it is.
    fn refresh_due(
        &self,
        current: Option<SystemTime>,
        deadline: SystemTime,
        ttl: Option<Duration>,
    ) -> bool {
        let expiry = &self.config().expiry;
        let idle = ttl.unwrap_or(expiry.idle_timeout).min(LONGEST_LIFETIME);
        let interval = expiry.refresh_interval.min(idle / 4);
        current.is_some_and(|current| {
            deadline
                .duration_since(current)
                .is_ok_and(|gain| gain >= interval)
        })
    }

    /// When a session written now expires, and the cookie's Max-Age for it (`None` for a
    /// session-only cookie).
    fn deadline(
        &self,
        created: Option<SystemTime>,
        ttl: Option<Duration>,
        now: SystemTime,
    ) -> (SystemTime, Option<Duration>) {
        let expiry = &self.config().expiry;
        let mut deadline = now + ttl.unwrap_or(expiry.idle_timeout).min(LONGEST_LIFETIME);
        // A limit too far out to represent is no limit.
        if let Some(end) = expiry
            .absolute_timeout
            .and_then(|limit| created.unwrap_or(now).checked_add(limit))
        {
            deadline = deadline.min(end);
        }
        let persistent = expiry.persistent_cookie || ttl.is_some();
        let max_age = persistent.then(|| deadline.duration_since(now).unwrap_or_default());
        (deadline, max_age)
    }

    /// Writes this request's changes to the store: destroy, regenerate, create or save
    /// as needed, or a throttled expiry refresh. Decides the response cookie.
    /// `early` is set for a save from inside the handler: the saved writes are then folded
    /// into the loaded record so later extractors in the same request see them.
    pub(crate) async fn persist(&self, early: bool) -> Result<(), SessionError> {
        // After the handler, the response future has already asked this.
        if early && self.nothing_to_persist() {
            return Ok(());
        }
        let Snapshot {
            doomed,
            regenerate,
            pending,
            id,
            stale_key,
            stale_record,
            created,
            ttl,
            expires_at,
            tag,
        } = {
            let mut state = self.state();
            if !early {
                self.0.finished.store(true, Ordering::Release);
            }
            if let Some(err) = state.errors.pop() {
                for other in state.errors.drain(..) {
                    tracing::error!(error = %Chain(&other), "session error");
                }
                return Err(err);
            }
            let doomed = state.doomed.take();
            let regenerate = std::mem::take(&mut state.regenerate);
            let pending = std::mem::take(&mut state.pending);
            let Some(loaded) = state.loaded.as_mut() else {
                return Ok(());
            };
            if !early {
                // Nothing decodes after the final save: let go of the loaded record, so a
                // store that shares records need not copy it to apply the patch.
                loaded.base = None;
            }
            Snapshot {
                doomed,
                regenerate,
                pending,
                id: loaded.id.clone(),
                stale_key: loaded.stale_key,
                stale_record: loaded.stale_record,
                created: loaded.created,
                ttl: loaded.ttl,
                expires_at: loaded.expires_at,
                tag: loaded.tag.take(),
            }
        };

        if let Some(old) = &doomed {
            self.store().delete(old).await?;
            self.state().cookie = Some(CookieOut::Remove);
        }

        let now = SystemTime::now();
        let (deadline, max_age) = self.deadline(created, ttl, now);
        let mut patch = Patch::expiry_only(deadline);
        for (key, value) in pending {
            match value {
                Some(bytes) => patch.set.push((key, bytes)),
                None => patch.remove.push(key),
            }
        }
        // After a write to an existing session, the cookie is re-sent when the store gave a
        // new ID, when its Max-Age slides, or when it was signed by a previous key.
        let resend = |replaced: Option<SessionId>, id: SessionId| {
            replaced.or_else(|| (max_age.is_some() || stale_key).then_some(id))
        };

        // A save from an extractor that outlived its response (in a spawned task) cannot give
        // the browser a new cookie any more: refuse what would need one, before writing.
        let after_response = early && self.0.finished.load(Ordering::Acquire);
        if after_response && (regenerate || (id.is_none() && !patch.is_empty())) {
            return Err(SessionError::ResponseSent);
        }

        let cookie_id = match id.clone() {
            Some(old) if regenerate => Some(self.regenerate_in_store(&old, &patch).await?),
            Some(id) if !patch.is_empty() => {
                let replaced = self.store().save(&id, &patch).await?;
                resend(replaced, id)
            }
            Some(id) => {
                if stale_record || self.refresh_due(expires_at, deadline, ttl) {
                    match self.store().touch(&id, deadline).await {
                        Ok(replaced) => resend(replaced, id),
                        // Deleted or expired since the load (a logout in another tab): this
                        // request changed nothing, so nothing is lost and it answers as
                        // usual. No cookie: a removal cookie could reach the browser after,
                        // and so remove, the cookie of a session started since.
                        Err(StoreError::NotFound) => {
                            tracing::debug!(
                                "session ended while a read-only request ran; expiry not refreshed"
                            );
                            return Ok(());
                        }
                        Err(err) => return Err(err.into()),
                    }
                } else if stale_key {
                    Some(id)
                } else {
                    return Ok(());
                }
            }
            None if !patch.is_empty() => {
                patch.set.push((
                    Cow::Borrowed(CREATED_KEY),
                    Bytes::from(to_millis(now).to_string()),
                ));
                Some(self.create_in_store(&patch).await?)
            }
            None => return Ok(()),
        };

        // A store that keeps the session in the cookie itself gave it a new value: after the
        // response, that value has nowhere to go, so the change is not kept anywhere.
        if after_response
            && cookie_id
                .as_ref()
                .is_some_and(|new| Some(new) != id.as_ref())
        {
            return Err(SessionError::ResponseSent);
        }

        let mut state = self.state();
        if let Some(loaded) = state.loaded.as_mut() {
            if early {
                patch.apply_to(Arc::make_mut(loaded.base.get_or_insert_with(Arc::default)));
            }
            loaded.created = loaded.created.or(Some(now));
            loaded.expires_at = Some(deadline);
            loaded.stale_key = false;
            loaded.stale_record = false;
            if let Some(new) = &cookie_id {
                loaded.id = Some(new.clone());
            }
        }
        if let Some(cookie_id) = cookie_id {
            // The request's own cookie still names this ID under the current key.
            let tag = tag.filter(|_| id.as_ref() == Some(&cookie_id));
            state.cookie = Some(CookieOut::Set {
                id: cookie_id,
                max_age,
                tag,
            });
        }
        Ok(())
    }

    async fn regenerate_in_store(
        &self,
        old: &SessionId,
        patch: &Patch,
    ) -> Result<SessionId, SessionError> {
        for _ in 0..ID_ATTEMPTS {
            let new = SessionId::generate();
            match self.store().regenerate(old, &new, patch).await {
                Ok(replaced) => return Ok(replaced.unwrap_or(new)),
                Err(StoreError::Collision) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(SessionError::IdExhausted)
    }

    async fn create_in_store(&self, patch: &Patch) -> Result<SessionId, SessionError> {
        for _ in 0..ID_ATTEMPTS {
            let id = SessionId::generate();
            match self.store().create(&id, patch).await {
                Ok(replaced) => return Ok(replaced.unwrap_or(id)),
                Err(StoreError::Collision) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(SessionError::IdExhausted)
    }

    /// The cookie decided by [`persist`](Self::persist), if any.
    pub(crate) fn take_cookie(&self) -> Option<CookieOut> {
        self.state().cookie.take()
    }
}
