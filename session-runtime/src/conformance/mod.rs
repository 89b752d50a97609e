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
//! different fields of one session all survive. Then it runs 400 random operations against
//! a model of the contract ([`random_operations_match_a_model`]; a failure names the seed
//! to replay). It needs a Tokio runtime (it sleeps past short expiries and spawns
//! concurrent writers) and takes about two seconds.
//!
//! Each check is also public, for a store that can keep only some of the promises (a
//! client-side store cannot detect a deleted session, for instance).

mod checks;
mod model;

use std::{
    borrow::Cow,
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;

pub use self::checks::*;
pub use self::model::random_operations_match_a_model;
use crate::{
    store::{LoadKeys, Patch, Record},
    SessionId, SessionStore,
};

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
    let store = Arc::new(store);
    create_and_load(&*store).await;
    load_only_some_keys(&*store).await;
    save_applies_a_patch(&*store).await;
    save_removes_fields(&*store).await;
    create_never_overwrites(&*store).await;
    records_expire(&*store).await;
    touch_extends_expiry(&*store).await;
    regenerate_moves_the_record(&*store).await;
    regenerate_refuses_missing_and_taken_ids(&*store).await;
    delete_removes_the_record(&*store).await;
    no_resurrection_after_delete(&*store).await;
    no_resurrection_after_expiry(&*store).await;
    writes_with_a_past_expiry_end_the_record(&*store).await;
    concurrent_patches_to_different_fields_survive(Arc::clone(&store)).await;
    random_operations_match_a_model(&*store, rand::random()).await;
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
    create_and_load(&store).await;
    load_only_some_keys(&store).await;
    save_applies_a_patch(&store).await;
    save_removes_fields(&store).await;
    records_expire(&store).await;
    touch_extends_expiry(&store).await;
    regenerate_checks(&store, false).await;
    no_resurrection_after_expiry(&store).await;
    writes_with_a_past_expiry_end_the_record(&store).await;
}

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
