//! The state of one request's session, shared by every `TypedSession` extractor of the
//! request and by the layer, which persists it after the handler. Loading is in `load`,
//! saving in `persist`.

mod load;
mod persist;
mod sealing;

#[cfg(feature = "encryption")]
pub(crate) use sealing::seal_patch;

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    ops::Bound,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::SystemTime,
};

use bytes::Bytes;

use crate::{
    config::Config,
    decode::collect_changes,
    expiry::Lifetime,
    key::Signer,
    meta::IDLE_TIMEOUT_KEY,
    record::{FieldMap, RawRecord},
    schema::{SchemaFields, SessionData},
    session_cookie::CookieOut,
    store::{DynStore, Record},
    Schema, SessionError, SessionId,
};

/// What the layer shares with every request: the store and the configuration.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn DynStore>,
    pub(crate) config: Config,
    /// When the layer was built: the start of the window for 0.1-format cookies.
    built: SystemTime,
    /// The cookie's attributes, rendered once.
    pub(crate) cookie_attributes: String,
    /// Tags and checks cookies, for this name and purpose.
    pub(crate) signer: Signer,
    /// Seals and opens field values, when the layer encrypts them at rest.
    #[cfg(feature = "encryption")]
    pub(crate) sealer: Option<Arc<crate::seal::Sealer>>,
}

impl Shared {
    pub(crate) fn new(store: Arc<dyn DynStore>, config: Config) -> Self {
        let built = SystemTime::now();
        Self {
            cookie_attributes: config.cookie.attributes(),
            signer: signer(&config, built),
            #[cfg(feature = "encryption")]
            sealer: sealer(&config),
            store,
            config,
            built,
        }
    }

    /// Renders what derives from the configuration again, after a change to it.
    pub(crate) fn configured(&mut self) {
        self.cookie_attributes = self.config.cookie.attributes();
        self.signer = signer(&self.config, self.built);
        #[cfg(feature = "encryption")]
        {
            self.sealer = sealer(&self.config);
        }
    }
}

#[cfg(feature = "encryption")]
fn sealer(config: &Config) -> Option<Arc<crate::seal::Sealer>> {
    crate::seal::Sealer::new(
        config.encryption,
        &config.keys.current,
        &config.keys.previous,
        &config.purpose,
    )
}

fn signer(config: &Config, built: SystemTime) -> Signer {
    let legacy_until = built.checked_add(config.legacy_window);
    Signer::new(
        &config.keys,
        &config.cookie.name,
        &config.purpose,
        legacy_until,
    )
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
    /// Nothing this request has not saved yet is saved: its handler panicked, or the save
    /// policy refuses its response.
    abandoned: AtomicBool,
    /// How many `TypedSession`s of this request are alive.
    live: AtomicU32,
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
    /// Counts the flushes that queued writes: a handle remembers the count when it read.
    generation: u64,
    /// Store key → the generation that last queued a write to it, and the handle's number.
    changed_at: HashMap<&'static str, (u64, u64)>,
    /// How many handles were extracted.
    handles: u64,
}

/// One `TypedSession`'s place among the request's handles: its number, and the generation
/// of the session's writes when it read the session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Handle {
    id: u64,
    seen: u64,
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
    lifetime: Lifetime,
    /// The cookie was signed by a previous key and must be re-signed.
    stale_key: bool,
    /// The request's cookie tag, verified under the current key: re-sent with the ID while
    /// the ID does not change, instead of signing again.
    tag: Option<[u8; 32]>,
    /// The store read the record with a previous key and wants it rewritten.
    stale_record: bool,
    /// Opens the session's stored values (its data key), when the layer encrypts at rest.
    #[cfg(feature = "encryption")]
    opener: Option<Arc<crate::seal::Opener>>,
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
            lifetime: Lifetime::Layer,
            stale_key: false,
            stale_record: false,
            tag: None,
            #[cfg(feature = "encryption")]
            opener: None,
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
    lifetime: Lifetime,
    expires_at: Option<SystemTime>,
    tag: Option<[u8; 32]>,
    #[cfg(feature = "encryption")]
    opener: Option<Arc<crate::seal::Opener>>,
}

impl State {
    /// Queues a write. Removing a key the loaded record does not have changes nothing (the
    /// flash-message pattern takes a value on every page, a page may always say "do not
    /// remember me"): it only cancels a write of that key queued earlier in this request.
    fn queue(&mut self, key: Cow<'static, str>, value: Option<Bytes>) {
        if value.is_none() && crate::store::is_entry_prefix(&key) {
            self.queue_clear(key);
            return;
        }
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

    /// Queues the clear of a map field (`key` is its entry prefix): this request's
    /// unsaved writes of its entries go, and the save removes every entry the store holds
    /// then. A session not stored yet has no entries to remove.
    fn queue_clear(&mut self, prefix: Cow<'static, str>) {
        let queued: Vec<Cow<'static, str>> = self
            .pending
            .range::<str, _>((Bound::Included(prefix.as_ref()), Bound::Unbounded))
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(prefix.as_ref()))
            .cloned()
            .collect();
        for key in queued {
            self.pending.remove(&key);
        }
        let stored = self
            .loaded
            .as_ref()
            .is_some_and(|loaded| loaded.id.is_some());
        if stored {
            self.pending.insert(prefix, None);
        }
    }

    /// Whether this request queued a write of a field: its key, or one of its entries.
    fn writes_field(&self, info: &crate::schema::FieldInfo) -> bool {
        match info.entry_prefix() {
            Some(prefix) => self
                .pending
                .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                .next()
                .is_some_and(|(key, _)| key.starts_with(prefix)),
            None => self.pending.contains_key(info.store_key()),
        }
    }

    /// Whether something is waiting for a save.
    fn has_unsaved(&self) -> bool {
        !self.pending.is_empty()
            || self.doomed.is_some()
            || self.regenerate
            || !self.errors.is_empty()
    }

    /// Numbers a new handle, and notes the writes it has seen.
    fn next_handle(&mut self) -> Handle {
        self.handles += 1;
        Handle {
            id: self.handles,
            seen: self.generation,
        }
    }

    /// What schemas decode from: the loaded record with this request's unsaved writes.
    fn view(&self) -> RawRecord {
        let base = self.loaded.as_ref().and_then(|l| l.base.clone());
        let overlay = (!self.pending.is_empty()).then(|| Arc::new(self.pending.clone()));
        let view = RawRecord::from_parts(base, overlay);
        #[cfg(feature = "encryption")]
        let view = view.sealed(self.loaded.as_ref().and_then(|l| l.opener.clone()));
        view
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every critical section leaves the state consistent, so a poisoned lock is usable.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RequestSession {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self(Arc::new(Inner {
            shared,
            used: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            live: AtomicU32::new(0),
            destroys: AtomicU32::new(0),
            state: Mutex::new(State::default()),
        }))
    }

    /// A `TypedSession` of this request was made.
    pub(crate) fn handle_made(&self) {
        self.0.live.fetch_add(1, Ordering::AcqRel);
    }

    /// A `TypedSession` of this request was dropped.
    pub(crate) fn handle_dropped(&self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }

    /// After the handler: a handle still alive (moved into a task, an upgrade, a clone kept
    /// somewhere) holds its changes until it is dropped, and the session is saved without
    /// them. Said once per request, before the save.
    pub(crate) fn warn_of_live_handles(&self) {
        let live = self.0.live.load(Ordering::Acquire);
        if live > 0 {
            tracing::warn!(
                live,
                "a TypedSession is still alive after the handler returned (moved into a task or \
                 an upgrade?): the session is saved now without the changes it holds; call \
                 `save().await` on it before moving it, and after changing it later"
            );
        }
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

    /// Called when an extractor is dropped: moves its changes into the pending writes. If
    /// the layer has already saved the session (the extractor outlived the handler, moved
    /// into a spawned task), whatever is still unsaved is lost: that is logged as an error
    /// rather than dropped silently.
    pub(crate) fn release<T: SessionData>(
        &self,
        fields: &mut T::Fields,
        stored_version: &mut Option<u32>,
        handle: Handle,
    ) {
        self.flush::<T>(fields, stored_version, handle);
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

    /// Drops every change not saved yet, and every later one: the request's handler
    /// panicked, or the save policy refuses its response. A cookie an early save decided
    /// still goes out (it names what that save stored).
    pub(crate) fn abandon(&self) {
        self.0.abandoned.store(true, Ordering::Release);
        let mut state = self.state();
        state.pending.clear();
        state.doomed = None;
        state.regenerate = false;
        state.errors.clear();
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        self.0.abandoned.load(Ordering::Acquire)
    }

    /// Moves the changes of an extractor into the pending writes.
    ///
    /// A field that another handle of the request changed since this `handle` read it, and
    /// that this one changed from what it read (`f_mut`), is not written: its value would be
    /// stale, and would overwrite the newer change (a middleware that kept its handle across
    /// `next.run()`). A field set wholesale (`set_f`) or taken (`take_f`) is written: the
    /// later change wins.
    pub(crate) fn flush<T: SessionData>(
        &self,
        fields: &mut T::Fields,
        stored_version: &mut Option<u32>,
        handle: Handle,
    ) {
        if fields.state().is_clean() {
            return;
        }
        if self.is_abandoned() {
            fields.state_mut().clear();
            return;
        }
        let mut state = self.state();
        drop_stale_changes(&state, T::SCHEMA, fields.state_mut(), handle);
        let mut writes = Vec::new();
        let result = collect_changes::<T>(fields, *stored_version, &mut writes);
        fields.state_mut().clear();
        match result {
            Ok(()) => queue_writes(&mut state, T::SCHEMA, writes, stored_version, handle),
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
        state.changed_at.clear();
        state.regenerate = false;
    }

    pub(crate) fn set_lifetime(&self, lifetime: Lifetime) {
        let mut state = self.state();
        state.loaded.get_or_insert_with(Loaded::fresh).lifetime = lifetime;
        state.queue(Cow::Borrowed(IDLE_TIMEOUT_KEY), lifetime.encode());
    }

    /// What the layer knows of the session's times.
    pub(crate) fn metadata(&self) -> crate::SessionMetadata {
        let state = self.state();
        let Some(loaded) = &state.loaded else {
            return crate::SessionMetadata::default();
        };
        let expiry = &self.config().expiry;
        crate::SessionMetadata {
            created: loaded.created,
            expires_at: loaded.expires_at,
            last_refresh: expiry.last_refresh(loaded.created, loaded.expires_at, loaded.lifetime),
            session_only: match loaded.lifetime {
                Lifetime::Layer => !expiry.persistent_cookie,
                Lifetime::IdleTimeout(_) => false,
                Lifetime::SessionOnly => true,
            },
        }
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
        let (expires_at, _) =
            self.config()
                .expiry
                .expires_at(loaded.created, loaded.lifetime, SystemTime::now());
        !self.config().expiry.refresh_due(
            loaded.expires_at,
            expires_at,
            loaded.lifetime.idle_timeout(),
        )
    }
}

/// Forgets the changes of `fields` that another handle of the request made stale (see
/// [`RequestSession::flush`]). Not generic: compiled once, not once per schema.
fn drop_stale_changes(
    state: &State,
    schema: &'static Schema,
    fields: &mut crate::changes::FieldState,
    handle: Handle,
) {
    // Only writes other handles made since this one read can be newer: none in the
    // common request with one handle, which then skips the check.
    let others_wrote = state
        .changed_at
        .values()
        .any(|&(at, by)| at > handle.seen && by != handle.id);
    for (index, info) in schema.fields().iter().enumerate().filter(|_| others_wrote) {
        let changed_since = state
            .changed_at
            .get(info.store_key())
            .is_some_and(|&(at, by)| at > handle.seen && by != handle.id);
        if changed_since && fields.is_changed(index) && !fields.is_replaced(index) {
            fields.forget(index);
            tracing::warn!(
                schema = schema.name(),
                field = info.name(),
                "a session field was changed through two handles in one request, the \
                 later from what it read before the other's change: that stale change is \
                 dropped; keep one TypedSession per schema across `next.run()`, or set the \
                 field with `set_`"
            );
        }
    }
}

/// Queues a handle's writes (its schema's version last, and only with fields to go with
/// it). Not generic: compiled once, not once per schema.
fn queue_writes(
    state: &mut State,
    schema: &'static Schema,
    writes: Vec<crate::record::FieldWrite>,
    stored_version: &mut Option<u32>,
    handle: Handle,
) {
    state.loaded.get_or_insert_with(Loaded::fresh);
    if !writes.is_empty() {
        state.generation += 1;
        // Another handle can only be stale against these writes if it exists:
        // with one handle so far, there is nothing to record (a handle taken
        // later reads them).
        if state.handles > 1 {
            let generation = state.generation;
            for (key, _) in &writes {
                if let Cow::Borrowed(key) = key {
                    state.changed_at.insert(key, (generation, handle.id));
                }
            }
        }
    }
    let version_key = schema.version_key();
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
        let fields_written = schema
            .fields()
            .iter()
            .any(|field| state.writes_field(field));
        if fields_written {
            state.pending.insert(key, value);
            if stored_version.is_none_or(|v| v < schema.version()) {
                *stored_version = Some(schema.version());
            }
        } else {
            state.pending.remove(&key);
        }
    }
}
