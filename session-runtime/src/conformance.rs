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

use std::{
    borrow::Cow,
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;

use crate::{
    store::{LoadKeys, Patch, Record},
    SessionId, SessionStore, StoreError,
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

fn in_a_minute() -> SystemTime {
    SystemTime::now() + Duration::from_secs(60)
}

fn patch(set: &[(&str, &str)], remove: &[&str], expires_at: SystemTime) -> Patch {
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

async fn created<S: SessionStore>(
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

async fn load_all<S: SessionStore>(store: &S, id: &SessionId) -> Option<Record> {
    store.load(id, LoadKeys::All).await.expect("load")
}

fn field<'r>(record: &'r Record, key: &str) -> Option<&'r str> {
    record
        .fields
        .get(key)
        .map(|v| std::str::from_utf8(v).expect("test values are text"))
}

/// A created record loads with its fields and an expiry; an unknown ID loads nothing.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::create_and_load(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn create_and_load<S: SessionStore>(store: &S) {
    let expires_at = in_a_minute();
    let id = created(store, &[("a", "1"), ("b", "2")], expires_at).await;
    let record = load_all(store, &id).await.expect("a created session loads");
    assert_eq!(field(&record, "a"), Some("1"), "create stores every field");
    assert_eq!(field(&record, "b"), Some("2"), "create stores every field");
    if let Some(at) = record.expires_at {
        let diff = at
            .duration_since(expires_at)
            .unwrap_or_else(|e| e.duration());
        assert!(
            diff < Duration::from_secs(2),
            "load reports the expiry that was set"
        );
    }
    let unknown = SessionId::generate();
    assert!(
        load_all(store, &unknown).await.is_none(),
        "an unknown ID loads nothing"
    );
}

/// `LoadKeys::Only` returns at least the asked keys that exist.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::load_only_some_keys(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn load_only_some_keys<S: SessionStore>(store: &S) {
    let id = created(store, &[("a", "1"), ("b", "2"), ("c", "3")], in_a_minute()).await;
    let record = store
        .load(&id, LoadKeys::Only(&["a", "c", "missing"]))
        .await
        .expect("load")
        .expect("the session exists");
    assert_eq!(field(&record, "a"), Some("1"));
    assert_eq!(field(&record, "c"), Some("3"));
    assert_eq!(field(&record, "missing"), None);
}

/// A save sets the patch's fields and leaves the others alone.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::save_applies_a_patch(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn save_applies_a_patch<S: SessionStore>(store: &S) {
    let id = created(store, &[("a", "1"), ("b", "2")], in_a_minute()).await;
    let id = store
        .save(&id, &patch(&[("b", "20"), ("c", "30")], &[], in_a_minute()))
        .await
        .expect("save")
        .unwrap_or(id);
    let record = load_all(store, &id).await.expect("still there");
    assert_eq!(
        field(&record, "a"),
        Some("1"),
        "save leaves other fields alone"
    );
    assert_eq!(field(&record, "b"), Some("20"), "save overwrites a field");
    assert_eq!(field(&record, "c"), Some("30"), "save adds a field");
}

/// A save removes the patch's removed fields.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::save_removes_fields(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn save_removes_fields<S: SessionStore>(store: &S) {
    let id = created(store, &[("a", "1"), ("b", "2")], in_a_minute()).await;
    let id = store
        .save(&id, &patch(&[], &["a", "never-there"], in_a_minute()))
        .await
        .expect("save")
        .unwrap_or(id);
    let record = load_all(store, &id).await.expect("still there");
    assert_eq!(field(&record, "a"), None, "a removed field is gone");
    assert_eq!(field(&record, "b"), Some("2"));
}

/// Creating under a live ID fails with `Collision` and changes nothing.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::create_never_overwrites(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn create_never_overwrites<S: SessionStore>(store: &S) {
    let id = SessionId::generate();
    if store
        .create(&id, &patch(&[("a", "1")], &[], in_a_minute()))
        .await
        .expect("create")
        .is_some()
    {
        // A store that picks its own IDs cannot collide.
        return;
    }
    let second = store
        .create(&id, &patch(&[("a", "other")], &[], in_a_minute()))
        .await;
    assert!(
        matches!(second, Err(StoreError::Collision)),
        "create on a live ID must fail with Collision, got {second:?}"
    );
    let record = load_all(store, &id).await.expect("still there");
    assert_eq!(
        field(&record, "a"),
        Some("1"),
        "a collision changes nothing"
    );
}

/// A record is not returned after its expiry.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::records_expire(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn records_expire<S: SessionStore>(store: &S) {
    let id = created(
        store,
        &[("a", "1")],
        SystemTime::now() + Duration::from_millis(300),
    )
    .await;
    assert!(load_all(store, &id).await.is_some());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        load_all(store, &id).await.is_none(),
        "an expired session must not load"
    );
}

/// Touch moves the expiry without changing fields.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::touch_extends_expiry(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn touch_extends_expiry<S: SessionStore>(store: &S) {
    let id = created(
        store,
        &[("a", "1")],
        SystemTime::now() + Duration::from_millis(400),
    )
    .await;
    let id = store
        .touch(&id, in_a_minute())
        .await
        .expect("touch")
        .unwrap_or(id);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let record = load_all(store, &id)
        .await
        .expect("a touched session outlives its old expiry");
    assert_eq!(field(&record, "a"), Some("1"), "touch keeps the fields");
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

/// Regenerate moves the record to the new ID, applies the patch, and the old ID is dead.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::regenerate_moves_the_record(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn regenerate_moves_the_record<S: SessionStore>(store: &S) {
    regenerate_checks(store, true).await;
}

async fn regenerate_checks<S: SessionStore>(store: &S, old_must_die: bool) {
    let old = created(store, &[("a", "1"), ("b", "2")], in_a_minute()).await;
    let new = SessionId::generate();
    let new = store
        .regenerate(&old, &new, &patch(&[("b", "20")], &["a"], in_a_minute()))
        .await
        .expect("regenerate")
        .unwrap_or(new);
    let record = load_all(store, &new)
        .await
        .expect("the new ID loads the record");
    assert_eq!(field(&record, "a"), None, "regenerate applies removals");
    assert_eq!(
        field(&record, "b"),
        Some("20"),
        "regenerate applies the patch"
    );
    assert_ne!(new, old, "regenerate gives the session a new ID");
    if old_must_die {
        assert!(
            load_all(store, &old).await.is_none(),
            "the old ID is dead after regenerate"
        );
    }
}

/// Regenerate fails with `NotFound` for a missing record and `Collision` for a taken ID.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::regenerate_refuses_missing_and_taken_ids(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn regenerate_refuses_missing_and_taken_ids<S: SessionStore>(store: &S) {
    let missing = SessionId::generate();
    let result = store
        .regenerate(
            &missing,
            &SessionId::generate(),
            &patch(&[("a", "1")], &[], in_a_minute()),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::NotFound)),
        "regenerate of a missing session must fail with NotFound, got {result:?}"
    );
    let a = created(store, &[("who", "a")], in_a_minute()).await;
    let b = created(store, &[("who", "b")], in_a_minute()).await;
    let result = store
        .regenerate(&a, &b, &patch(&[], &[], in_a_minute()))
        .await;
    assert!(
        matches!(result, Err(StoreError::Collision)),
        "regenerate onto a live ID must fail with Collision, got {result:?}"
    );
    let record_a = load_all(store, &a).await.expect("a is untouched");
    let record_b = load_all(store, &b).await.expect("b is untouched");
    assert_eq!(field(&record_a, "who"), Some("a"));
    assert_eq!(field(&record_b, "who"), Some("b"));
}

/// Delete removes the record; deleting again is fine.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::delete_removes_the_record(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn delete_removes_the_record<S: SessionStore>(store: &S) {
    let id = created(store, &[("a", "1")], in_a_minute()).await;
    store.delete(&id).await.expect("delete");
    assert!(
        load_all(store, &id).await.is_none(),
        "a deleted session must not load"
    );
    store
        .delete(&id)
        .await
        .expect("deleting a missing session is not an error");
}

/// A save or touch after delete fails with `NotFound` and does not bring the record back.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::no_resurrection_after_delete(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn no_resurrection_after_delete<S: SessionStore>(store: &S) {
    let id = created(store, &[("a", "1")], in_a_minute()).await;
    store.delete(&id).await.expect("delete");
    let saved = store
        .save(&id, &patch(&[("b", "2")], &[], in_a_minute()))
        .await;
    assert!(
        matches!(saved, Err(StoreError::NotFound)),
        "a save after delete must fail with NotFound, got {saved:?}"
    );
    let touched = store.touch(&id, in_a_minute()).await;
    assert!(
        matches!(touched, Err(StoreError::NotFound)),
        "a touch after delete must fail with NotFound, got {touched:?}"
    );
    assert!(
        load_all(store, &id).await.is_none(),
        "a late write must not resurrect a deleted session"
    );
}

/// A save after expiry fails with `NotFound` and does not bring the record back.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::no_resurrection_after_expiry(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn no_resurrection_after_expiry<S: SessionStore>(store: &S) {
    let id = created(
        store,
        &[("a", "1")],
        SystemTime::now() + Duration::from_millis(200),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let saved = store
        .save(&id, &patch(&[("b", "2")], &[], in_a_minute()))
        .await;
    assert!(
        matches!(saved, Err(StoreError::NotFound)),
        "a save after expiry must fail with NotFound, got {saved:?}"
    );
    assert!(
        load_all(store, &id).await.is_none(),
        "a late write must not resurrect an expired session"
    );
}

/// A write whose expiry has already passed ends the record at once: a create, save or touch
/// with such an expiry leaves nothing to load, not even for a moment.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::writes_with_a_past_expiry_end_the_record(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn writes_with_a_past_expiry_end_the_record<S: SessionStore>(store: &S) {
    let past = || SystemTime::now() - Duration::from_secs(1);
    let id = created(store, &[("a", "1")], past()).await;
    assert!(
        load_all(store, &id).await.is_none(),
        "a record created already expired must not load"
    );
    let id = created(store, &[("a", "1")], in_a_minute()).await;
    let replaced = store
        .save(&id, &patch(&[("b", "2")], &[], past()))
        .await
        .expect("save a live record");
    let id = replaced.unwrap_or(id);
    assert!(
        load_all(store, &id).await.is_none(),
        "a record saved with an expiry in the past must not load"
    );
    let id = created(store, &[("a", "1")], in_a_minute()).await;
    let replaced = store.touch(&id, past()).await.expect("touch a live record");
    let id = replaced.unwrap_or(id);
    assert!(
        load_all(store, &id).await.is_none(),
        "a record touched with an expiry in the past must not load"
    );
}

/// 50 concurrent patches, each to a different field of one session, all survive.
///
/// ```
/// use std::sync::Arc;
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::concurrent_patches_to_different_fields_survive(Arc::new(MemoryStore::new())).await;
/// # });
/// ```
pub async fn concurrent_patches_to_different_fields_survive<S: SessionStore>(store: Arc<S>) {
    let id = created(&*store, &[("start", "1")], in_a_minute()).await;
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let (store, id) = (Arc::clone(&store), id.clone());
            tokio::spawn(async move {
                let key = format!("field{n}");
                let value = n.to_string();
                store
                    .save(&id, &patch(&[(&key, &value)], &[], in_a_minute()))
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("writer task")
            .expect("a concurrent save succeeds");
    }
    let record = load_all(&*store, &id).await.expect("still there");
    for n in 0..50 {
        assert_eq!(
            field(&record, &format!("field{n}")),
            Some(n.to_string().as_str()),
            "concurrent patches to different fields must all survive (field{n} lost)"
        );
    }
    assert_eq!(field(&record, "start"), Some("1"));
}

/// How many operations [`random_operations_match_a_model`] runs.
const MODEL_STEPS: usize = 400;
/// The store keys the random operations use (a namespaced one and a non-ASCII one among
/// them).
const MODEL_KEYS: [&str; 4] = ["a", "b", "ns.c", "ü"];

/// A live record as the contract says it must be.
#[derive(Debug, Clone)]
struct Modelled {
    fields: std::collections::BTreeMap<String, Vec<u8>>,
    expires_at: SystemTime,
}

/// Random sequences of creates, saves, regenerates, touches, deletes and loads over a
/// handful of sessions and keys, every answer and every record checked against a model of
/// the contract: which IDs are live, which fields each record holds (set, overwritten,
/// removed, carried by a regenerate), which writes must fail with
/// [`StoreError::NotFound`] or [`StoreError::Collision`], and that a write with an expiry
/// in the past ends the record at once. Values are arbitrary bytes, empty ones included.
///
/// The operations come from `seed`; a failure names it, so the same sequence can be run
/// again. [`run`] calls it with a random seed.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::random_operations_match_a_model(&MemoryStore::new(), 7).await;
/// # });
/// ```
pub async fn random_operations_match_a_model<S: SessionStore>(store: &S, seed: u64) {
    use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
    use std::collections::HashMap;

    let mut rng = StdRng::seed_from_u64(seed);
    let mut model: HashMap<SessionId, Modelled> = HashMap::new();
    // Every ID used so far, live or not: writes to dead ones must fail.
    let mut ids: Vec<SessionId> = Vec::new();

    for step in 0..MODEL_STEPS {
        let at = |what: &str| format!("seed {seed}, step {step}: {what}");
        let now = SystemTime::now();
        // Expiries are far from now either way, so the model never races the clock.
        let random_patch = |rng: &mut StdRng| {
            let mut keys = MODEL_KEYS;
            keys.shuffle(rng);
            let set = rng.gen_range(0..=3);
            let remove = rng.gen_range(0..=2).min(keys.len() - set);
            Patch {
                set: keys[..set]
                    .iter()
                    .map(|k| {
                        let len = rng.gen_range(0..12);
                        let value: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                        (Cow::Owned((*k).to_owned()), Bytes::from(value))
                    })
                    .collect(),
                remove: keys[set..set + remove]
                    .iter()
                    .map(|k| Cow::Owned((*k).to_owned()))
                    .collect(),
                expires_at: if rng.gen_ratio(1, 10) {
                    now - Duration::from_secs(30)
                } else {
                    now + Duration::from_secs(rng.gen_range(60..3600))
                },
            }
        };
        let apply = |record: &mut Modelled, patch: &Patch| {
            for key in &patch.remove {
                record.fields.remove(key.as_ref());
            }
            for (key, value) in &patch.set {
                record.fields.insert(key.to_string(), value.to_vec());
            }
            record.expires_at = patch.expires_at;
        };
        let known = |rng: &mut StdRng, ids: &[SessionId]| ids.choose(rng).cloned();

        let mut touched: Vec<SessionId> = Vec::new();
        match rng.gen_range(0..6) {
            // Create, mostly under a new ID, sometimes under one already used.
            0 => {
                let reuse = rng.gen_ratio(1, 5);
                let id = match known(&mut rng, &ids).filter(|_| reuse) {
                    Some(id) => id,
                    None => {
                        let id = SessionId::generate();
                        ids.push(id.clone());
                        id
                    }
                };
                let patch = random_patch(&mut rng);
                let result = store.create(&id, &patch).await;
                let id = if model.contains_key(&id) {
                    assert!(
                        matches!(result, Err(StoreError::Collision)),
                        "{}",
                        at(&format!("create over a live record: {result:?}"))
                    );
                    id
                } else {
                    let new = result.unwrap_or_else(|e| panic!("{}", at(&format!("create: {e}"))));
                    let mut record = Modelled {
                        fields: Default::default(),
                        expires_at: patch.expires_at,
                    };
                    apply(&mut record, &patch);
                    let id = follow(new, id, &mut ids);
                    model.insert(id.clone(), record);
                    id
                };
                touched.push(id);
            }
            // Save or touch: applied to a live record, `NotFound` for any other.
            op @ (1 | 3) => {
                let Some(id) = known(&mut rng, &ids) else {
                    continue;
                };
                let patch = random_patch(&mut rng);
                let (what, result) = if op == 1 {
                    ("save", store.save(&id, &patch).await)
                } else {
                    ("touch", store.touch(&id, patch.expires_at).await)
                };
                match model.remove(&id) {
                    Some(mut record) => {
                        let new =
                            result.unwrap_or_else(|e| panic!("{}", at(&format!("{what}: {e}"))));
                        if op == 1 {
                            apply(&mut record, &patch);
                        } else {
                            record.expires_at = patch.expires_at;
                        }
                        let id = follow(new, id, &mut ids);
                        model.insert(id.clone(), record);
                        touched.push(id);
                    }
                    None => {
                        assert!(
                            matches!(result, Err(StoreError::NotFound)),
                            "{}",
                            at(&format!("{what} of a missing record: {result:?}"))
                        );
                        touched.push(id);
                    }
                }
            }
            // Regenerate, mostly to a new ID, sometimes onto one already used.
            2 => {
                let Some(old) = known(&mut rng, &ids) else {
                    continue;
                };
                let onto_known = rng.gen_ratio(1, 4);
                let new = match known(&mut rng, &ids).filter(|id| onto_known && *id != old) {
                    Some(id) => id,
                    None => {
                        let id = SessionId::generate();
                        ids.push(id.clone());
                        id
                    }
                };
                let patch = random_patch(&mut rng);
                let result = store.regenerate(&old, &new, &patch).await;
                let (old_live, new_live) = (model.contains_key(&old), model.contains_key(&new));
                if !old_live || new_live {
                    // Nothing may change; with both faults either answer is right.
                    let right = match result {
                        Err(StoreError::NotFound) => !old_live,
                        Err(StoreError::Collision) => new_live,
                        _ => false,
                    };
                    assert!(
                        right,
                        "{}",
                        at(&format!(
                            "regenerate (old live: {old_live}, new live: {new_live}): {result:?}"
                        ))
                    );
                } else {
                    let replaced =
                        result.unwrap_or_else(|e| panic!("{}", at(&format!("regenerate: {e}"))));
                    let mut record = model.remove(&old).expect("checked live");
                    apply(&mut record, &patch);
                    let new = follow(replaced, new, &mut ids);
                    model.insert(new.clone(), record);
                    touched.push(new);
                }
                touched.push(old);
            }
            // Delete.
            4 => {
                let Some(id) = known(&mut rng, &ids) else {
                    continue;
                };
                store
                    .delete(&id)
                    .await
                    .unwrap_or_else(|e| panic!("{}", at(&format!("delete: {e}"))));
                model.remove(&id);
                touched.push(id);
            }
            // A load of any ID, even an untouched one.
            _ => touched.extend(known(&mut rng, &ids)),
        }
        // A record whose expiry has passed is gone.
        model.retain(|_, record| record.expires_at > now);

        for id in &touched {
            let loaded = store
                .load(id, LoadKeys::All)
                .await
                .unwrap_or_else(|e| panic!("{}", at(&format!("load: {e}"))));
            match (model.get(id), loaded) {
                (None, None) => {}
                (Some(expected), Some(record)) => {
                    let fields: std::collections::BTreeMap<String, Vec<u8>> = record
                        .fields
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_vec()))
                        .collect();
                    assert_eq!(fields, expected.fields, "{}", at("the record's fields"));
                    if let Some(expires_at) = record.expires_at {
                        let off = expires_at
                            .duration_since(expected.expires_at)
                            .unwrap_or_else(|e| e.duration());
                        assert!(
                            off <= Duration::from_secs(1),
                            "{}",
                            at(&format!("the record's expiry is off by {off:?}"))
                        );
                    }
                }
                (expected, loaded) => panic!(
                    "{}",
                    at(&format!(
                        "load: the model has {expected:?}, the store {:?}",
                        loaded.map(|r| r.fields)
                    ))
                ),
            }
        }
    }
}

/// The ID to follow after a write: the store's replacement, if it chose one.
fn follow(replaced: Option<SessionId>, id: SessionId, ids: &mut Vec<SessionId>) -> SessionId {
    match replaced {
        Some(new) => {
            ids.push(new.clone());
            new
        }
        None => id,
    }
}
