//! Helpers shared by the demo app and the end-to-end tests of `session-runtime`.
//!
//! This crate is not published; it exists so that `examples/` and `tests/` at the top of
//! the repository use `session-runtime` exactly as an application would.

pub mod codec;
pub mod demo;
pub mod http;
pub mod logs;
pub mod redis_harness;
pub mod sql_harness;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::SystemTime,
};

use session_runtime::{
    store::{LoadKeys, Patch, Record, WriteResult},
    SessionId, SessionStore, StoreError,
};

/// An error and its sources, `outer: inner: innermost`: what a report that walks
/// [`source()`](std::error::Error::source) shows (anyhow's `{:#}`, the layer's log lines).
pub fn report(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cause = e.source();
    }
    out
}

/// xorshift64*: a small deterministic generator, so a randomized test replays from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % n as u64).expect("fits")
    }
}

/// One call a [`Recording`] store saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `load`, with the keys asked for (`None` = all).
    Load(Option<Vec<String>>),
    /// `create` with its patch.
    Create(Patch),
    /// `save` with its patch.
    Save(Patch),
    /// `regenerate` with its patch.
    Regenerate(Patch),
    /// `delete`.
    Delete,
    /// `touch`.
    Touch,
}

/// Wraps a real store, records every call, and can be switched to fail like a store whose
/// backend went away.
#[derive(Clone)]
pub struct Recording<S> {
    inner: S,
    calls: Arc<Mutex<Vec<Call>>>,
    failing: Arc<AtomicBool>,
    failures: Arc<AtomicUsize>,
    unreadable: Arc<AtomicBool>,
}

impl<S: SessionStore + Clone> Recording<S> {
    /// Records calls made to `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            calls: Arc::default(),
            failing: Arc::default(),
            failures: Arc::default(),
            unreadable: Arc::default(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Takes the calls recorded so far.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.calls.lock().unwrap())
    }

    /// While `true`, every call fails with a backend error.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// While `true`, loads fail with [`StoreError::Corrupt`], as for data the store cannot
    /// read under the session's ID; the stored record itself is untouched.
    pub fn set_unreadable(&self, unreadable: bool) {
        self.unreadable.store(unreadable, Ordering::SeqCst);
    }

    /// How many calls failed because of [`Recording::set_failing`].
    pub fn failures(&self) -> usize {
        self.failures.load(Ordering::SeqCst)
    }

    fn record(&self, call: Call) -> Result<(), StoreError> {
        self.calls.lock().unwrap().push(call);
        if self.failing.load(Ordering::SeqCst) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::backend("store switched off by the test"));
        }
        Ok(())
    }
}

impl<S: SessionStore + Clone> SessionStore for Recording<S> {
    async fn load(&self, id: &SessionId, keys: LoadKeys<'_>) -> Result<Option<Record>, StoreError> {
        let asked = match keys {
            LoadKeys::All => None,
            LoadKeys::Only(keys) => Some(keys.iter().map(ToString::to_string).collect()),
        };
        self.record(Call::Load(asked))?;
        if self.unreadable.load(Ordering::SeqCst) {
            return Err(StoreError::corrupt("record damaged by the test"));
        }
        self.inner.load(id, keys).await
    }

    async fn create(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        self.record(Call::Create(patch.clone()))?;
        self.inner.create(id, patch).await
    }

    async fn save(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        self.record(Call::Save(patch.clone()))?;
        self.inner.save(id, patch).await
    }

    async fn regenerate(&self, old: &SessionId, new: &SessionId, patch: &Patch) -> WriteResult {
        self.record(Call::Regenerate(patch.clone()))?;
        self.inner.regenerate(old, new, patch).await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.record(Call::Delete)?;
        self.inner.delete(id).await
    }

    async fn touch(&self, id: &SessionId, expires_at: SystemTime) -> WriteResult {
        self.record(Call::Touch)?;
        self.inner.touch(id, expires_at).await
    }
}

/// Wraps a store so that loads return only the keys asked for, as a store that honours
/// [`LoadKeys::Only`] does (the shipped stores return whole records).
#[derive(Clone)]
pub struct OnlyAskedKeys<S>(pub S);

impl<S: SessionStore + Clone> SessionStore for OnlyAskedKeys<S> {
    async fn load(&self, id: &SessionId, keys: LoadKeys<'_>) -> Result<Option<Record>, StoreError> {
        let Some(mut record) = self.0.load(id, LoadKeys::All).await? else {
            return Ok(None);
        };
        if let LoadKeys::Only(keys) = keys {
            let fields = record
                .fields
                .iter()
                .filter(|(k, _)| LoadKeys::Only(keys).wants(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            record.fields = std::sync::Arc::new(fields);
            record.complete = false;
        }
        Ok(Some(record))
    }

    async fn create(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        self.0.create(id, patch).await
    }

    async fn save(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        self.0.save(id, patch).await
    }

    async fn regenerate(&self, old: &SessionId, new: &SessionId, patch: &Patch) -> WriteResult {
        self.0.regenerate(old, new, patch).await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.0.delete(id).await
    }

    async fn touch(&self, id: &SessionId, expires_at: SystemTime) -> WriteResult {
        self.0.touch(id, expires_at).await
    }
}
