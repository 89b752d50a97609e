//! A conformance suite for [`SessionStore`] implementations, your own included.
//!
//! Run it from a test with one call; it panics with a message naming the broken rule:
//!
//! ```no_run
//! # async fn example() {
//! use session_runtime::{conformance, MemoryStore};
//!
//! conformance::run(MemoryStore::new()).await;
//! # }
//! ```
//!
//! It checks every rule of the [store contract](crate::store): create, load (whole and
//! partial), patches that set and remove fields, expiry (writes with an expiry already
//! past included), touch, regenerate, delete, that a deleted or expired session is never
//! brought back by a late write, collision safety, and that 50 concurrent patches to
//! different fields of one session all survive, and that values are kept as any bytes (what
//! a layer that encrypts at rest stores). For a store that keeps the session index,
//! it checks that too (found under every write's term, never once ended, conditional
//! deletes, 100 concurrent logins); for one that does not, that it says so. Then it runs 400 random operations against
//! a model of the contract ([`random_operations_match_a_model`]; a failure names the seed
//! to replay). It needs a Tokio runtime (it sleeps past short expiries and spawns
//! concurrent writers) and takes about two seconds.
//!
//! Each check is also public, for a store that can keep only some of the promises (a
//! client-side store cannot detect a deleted session, for instance).

mod checks;
mod index;
mod model;

use std::{
    borrow::Cow,
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;

pub use self::checks::*;
pub use self::index::*;
pub use self::model::random_operations_match_a_model;
use crate::{
    store::{LoadKeys, Patch, Record},
    SessionId, SessionStore,
};

/// Runs each named check (a function of `&S`) in the suite, as the check of its name.
macro_rules! checks {
    ($suite:expr, $($check:ident),* $(,)?) => {
        $(
            $suite
                .check(stringify!($check), |s| async move { $check(&*s).await })
                .await;
        )*
    };
}

/// Runs every check against `store`.
///
/// In your store's tests (with Tokio's `macros` feature):
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// #[tokio::test(flavor = "multi_thread")]
/// async fn my_store_keeps_the_store_contract() {
///     conformance::run(MemoryStore::new()).await; // your store here
/// }
/// # fn main() {
/// #     tokio::runtime::Runtime::new().unwrap().block_on(conformance::run(MemoryStore::new()));
/// # }
/// ```
pub async fn run<S: SessionStore>(store: S) {
    if let Err(violations) = check(store).await {
        panic!("{violations}");
    }
}

/// Runs every check against `store`, as [`run`] does, and returns what it broke instead of
/// panicking: `conformance::check(store).await.unwrap()` then fails at your own line, with
/// every broken rule and the store's answer in the message.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::check(MemoryStore::new()).await.unwrap();
/// # });
/// ```
pub async fn check<S: SessionStore>(store: S) -> Result<(), Violations> {
    let store = Arc::new(store);
    let mut suite = Suite::new(&store);
    checks!(
        suite,
        create_and_load,
        load_only_some_keys,
        save_applies_a_patch,
        save_removes_fields,
        values_are_bytes,
        clears_remove_every_key_under_a_prefix,
        create_never_overwrites,
        records_expire,
        touch_extends_expiry,
        regenerate_moves_the_record,
        regenerate_refuses_missing_and_taken_ids,
        delete_removes_the_record,
        no_resurrection_after_delete,
        no_resurrection_after_expiry,
        writes_with_a_past_expiry_end_the_record,
    );
    suite
        .check(
            "concurrent_patches_to_different_fields_survive",
            |s| async move {
                concurrent_patches_to_different_fields_survive(s).await;
            },
        )
        .await;
    suite
        .check("saves_that_keep_the_expiry", |s| async move {
            saves_that_keep_the_expiry(s).await;
        })
        .await;
    suite
        .check("a_clear_racing_entry_writes_is_atomic", |s| async move {
            a_clear_racing_entry_writes_is_atomic(s).await;
        })
        .await;
    let seed = rand::random();
    suite
        .check("random_operations_match_a_model", move |s| async move {
            random_operations_match_a_model(&*s, seed).await;
        })
        .await;
    index_checks(&mut suite).await;
    suite.finish()
}

/// The index's checks for a store that keeps it; for one that does not, that it says so.
async fn index_checks<S: SessionStore>(suite: &mut Suite<S>) {
    if !suite.store.supports_index() {
        checks!(suite, no_index_is_an_error);
        return;
    }
    checks!(
        suite,
        index_follows_every_write,
        indexes_keep_apart,
        index_never_lists_ended_sessions,
        delete_indexed_checks_the_term,
    );
    suite
        .check("concurrent_index_writes_are_all_kept", |s| async move {
            concurrent_index_writes_are_all_kept(s).await;
        })
        .await;
}

/// The checks a client-side store can keep: one whose "ID" is the sealed record itself
/// (like [`CookieStore`](crate::store)), which cannot revoke old values, detect deletion,
/// refuse taken IDs or merge concurrent writes.
///
/// ```
/// # #[cfg(feature = "cookie-store")]
/// # fn main() {
/// use session_runtime::{conformance, CookieStore, Key};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::run_client_side(CookieStore::new(&Key::generate())).await;
/// # });
/// # }
/// # #[cfg(not(feature = "cookie-store"))]
/// # fn main() {}
/// ```
pub async fn run_client_side<S: SessionStore>(store: S) {
    let store = Arc::new(store);
    let mut suite = Suite::new(&store);
    checks!(
        suite,
        create_and_load,
        load_only_some_keys,
        save_applies_a_patch,
        save_removes_fields,
        clears_remove_every_key_under_a_prefix,
        records_expire,
        touch_extends_expiry,
        no_resurrection_after_expiry,
        writes_with_a_past_expiry_end_the_record,
    );
    suite
        .check("regenerate_moves_the_record", |s| async move {
            regenerate_checks(&*s, false).await;
        })
        .await;
    index_checks(&mut suite).await;
    if let Err(violations) = suite.finish() {
        panic!("{violations}");
    }
}

/// Runs every check, one after another, each in its own task, so that one failing does not
/// hide the others (the random model runs even when a targeted check failed first), and
/// reports them all together, each with its rule and the store's answer.
struct Suite<S> {
    store: Arc<S>,
    failures: Vec<String>,
}

impl<S: SessionStore> Suite<S> {
    fn new(store: &Arc<S>) -> Self {
        Self {
            store: Arc::clone(store),
            failures: Vec::new(),
        }
    }

    async fn check<F, Fut>(&mut self, name: &'static str, check: F)
    where
        F: FnOnce(Arc<S>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        if let Err(failed) = tokio::spawn(check(Arc::clone(&self.store))).await {
            let message = match failed.try_into_panic() {
                Ok(panic) => panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "panicked".to_owned()),
                Err(_) => "cancelled".to_owned(),
            };
            self.failures.push(format!("{name}: {message}"));
        }
    }

    /// Every failure, if any.
    fn finish(self) -> Result<(), Violations> {
        if self.failures.is_empty() {
            Ok(())
        } else {
            Err(Violations(self.failures))
        }
    }
}

/// The rules of the store contract a store broke: each check's name and its message, with
/// the store's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violations(Vec<String>);

impl Violations {
    /// Each broken rule: the check's name, then its message.
    pub fn rules(&self) -> &[String] {
        &self.0
    }
}

impl std::fmt::Display for Violations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the store breaks {} rule(s) of the store contract:\n- {}",
            self.0.len(),
            self.0.join("\n- ")
        )
    }
}

impl std::error::Error for Violations {}

// Helpers of the checks.

pub(super) fn in_a_minute() -> SystemTime {
    SystemTime::now() + Duration::from_secs(60)
}

pub(super) fn patch(set: &[(&str, &str)], remove: &[&str], expires_at: SystemTime) -> Patch {
    Patch {
        set: set
            .iter()
            .map(|(k, v)| {
                (
                    Cow::Owned((*k).to_owned()),
                    Bytes::copy_from_slice(v.as_bytes()),
                )
            })
            .collect(),
        remove: remove.iter().map(|k| Cow::Owned((*k).to_owned())).collect(),
        expires_at,
    }
}

pub(super) async fn created<S: SessionStore>(
    store: &S,
    set: &[(&str, &str)],
    expires_at: SystemTime,
) -> SessionId {
    let id = SessionId::generate();
    let replaced = store
        .create(&id, &patch(set, &[], expires_at))
        .await
        .expect("create a new session");
    replaced.unwrap_or(id)
}

pub(super) async fn load_all<S: SessionStore>(store: &S, id: &SessionId) -> Option<Record> {
    store.load(id, LoadKeys::All).await.expect("load")
}

pub(super) fn field<'r>(record: &'r Record, key: &str) -> Option<&'r str> {
    record
        .fields
        .get(key)
        .map(|v| std::str::from_utf8(v).expect("test values are text"))
}
