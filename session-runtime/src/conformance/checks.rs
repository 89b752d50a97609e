//! The targeted checks, one rule of the store contract each.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use super::{created, field, in_a_minute, load_all, patch};
use crate::{
    store::{LoadKeys, Record},
    SessionId, SessionStore, StoreError,
};

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
    // `complete` promises every key: the layer then reads another schema's keys from this
    // record instead of asking again, and would see their defaults.
    if record.complete {
        assert_eq!(
            field(&record, "b"),
            Some("2"),
            "load: a record marked `complete` must hold every key, not only those asked for; \
             the store returned {:?}",
            record.fields.keys().collect::<Vec<_>>()
        );
    }
}

/// Values are bytes, not text: every byte value, invalid UTF-8 and a 64 KiB value come back
/// exactly as written, by create and by save (a layer that encrypts values at rest stores
/// nothing else).
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::values_are_bytes(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn values_are_bytes<S: SessionStore>(store: &S) {
    use bytes::Bytes;
    use rand::RngCore;
    use std::borrow::Cow;

    let every_byte: Bytes = (0..=255u8).chain((0..=255u8).rev()).collect();
    let mut large = vec![0u8; 64 * 1024];
    rand::thread_rng().fill_bytes(&mut large);
    let large = Bytes::from(large);
    let not_utf8 = Bytes::from_static(b"\xff\xfe\x00\x80 \xc3\x28");

    let mut create = patch(&[], &[], in_a_minute());
    create
        .set
        .push((Cow::Borrowed("every_byte"), every_byte.clone()));
    create
        .set
        .push((Cow::Borrowed("not_utf8"), not_utf8.clone()));
    let id = SessionId::generate();
    let id = store
        .create(&id, &create)
        .await
        .expect("create a session with binary values")
        .unwrap_or(id);
    let mut save = patch(&[], &[], in_a_minute());
    save.set.push((Cow::Borrowed("large"), large.clone()));
    save.set.push((Cow::Borrowed("again"), not_utf8.clone()));
    let id = store
        .save(&id, &save)
        .await
        .expect("save binary values")
        .unwrap_or(id);
    let record = load_all(store, &id).await.expect("the session exists");
    for (key, expected) in [
        ("every_byte", &every_byte),
        ("not_utf8", &not_utf8),
        ("large", &large),
        ("again", &not_utf8),
    ] {
        let got = record.fields.get(key);
        assert!(
            got == Some(expected),
            "values are bytes: `{key}` ({} bytes written) came back as {:?}",
            expected.len(),
            got.map(|v| format!("{} bytes, not the same", v.len()))
        );
    }
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

pub(super) async fn regenerate_checks<S: SessionStore>(store: &S, old_must_die: bool) {
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
    let record = fifty_concurrent_saves(&store, &id, None).await;
    assert_eq!(field(&record, "start"), Some("1"));
}

/// Saves `field0` to `field49` of session `id` at once, each with the expiry given (`None`:
/// a minute from the save), checks that every one succeeded and survived, and returns the
/// record.
async fn fifty_concurrent_saves<S: SessionStore>(
    store: &Arc<S>,
    id: &SessionId,
    expires_at: Option<SystemTime>,
) -> Record {
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let (store, id) = (Arc::clone(store), id.clone());
            tokio::spawn(async move {
                let key = format!("field{n}");
                let value = n.to_string();
                let expires_at = expires_at.unwrap_or_else(in_a_minute);
                store
                    .save(&id, &patch(&[(&key, &value)], &[], expires_at))
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    let what = match expires_at {
        None => "concurrent patches to different fields",
        Some(_) => "concurrent saves to different fields that keep the expiry",
    };
    for task in tasks {
        if let Err(err) = task.await.expect("writer task") {
            panic!("{what}: each succeeds, got {err:?}");
        }
    }
    let record = load_all(&**store, id).await.expect("still there");
    for n in 0..50 {
        assert_eq!(
            field(&record, &format!("field{n}")),
            Some(n.to_string().as_str()),
            "{what} must all survive (field{n} lost)"
        );
    }
    record
}

/// A save whose expiry is the one the record already has (what a layer sends between two
/// refreshes of the expiry) applies like any other: to one field or several, new or
/// existing, also 50 of them at once to different fields; a save with a later expiry then
/// still moves it; and after a delete or once expired, such a save fails with `NotFound`
/// and brings nothing back.
///
/// ```
/// use std::sync::Arc;
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::saves_that_keep_the_expiry(Arc::new(MemoryStore::new())).await;
/// # });
/// ```
pub async fn saves_that_keep_the_expiry<S: SessionStore>(store: Arc<S>) {
    let id = created(&*store, &[("a", "1")], in_a_minute()).await;
    // The expiry as the store reports it (it may round it), as a layer gets it. A store
    // that does not report expiry never gets a kept one from the layer.
    let Some(expires_at) = load_all(&*store, &id).await.and_then(|r| r.expires_at) else {
        return;
    };
    let kept = |record: &Record| record.expires_at.expect("the store reported an expiry");
    for (set, what) in [
        (&[("a", "10")][..], "an existing field"),
        (&[("b", "2")][..], "a new field"),
        (&[("a", "11"), ("c", "3")][..], "several fields"),
    ] {
        let saved = store.save(&id, &patch(set, &[], expires_at)).await;
        assert!(
            matches!(saved, Ok(None)),
            "a save of {what} that keeps the expiry succeeds, got {saved:?}"
        );
        let record = load_all(&*store, &id).await.expect("still there");
        for (key, value) in set {
            assert_eq!(
                field(&record, key),
                Some(*value),
                "a save of {what} keeps {key}"
            );
        }
        assert_eq!(kept(&record), expires_at, "the expiry stays as it was");
    }
    fifty_concurrent_saves(&store, &id, Some(expires_at)).await;
    let later = expires_at + Duration::from_secs(30);
    store
        .save(&id, &patch(&[("a", "12")], &[], later))
        .await
        .expect("a save with a later expiry");
    let record = load_all(&*store, &id).await.expect("still there");
    assert!(
        kept(&record) > expires_at,
        "a save with a later expiry moves it"
    );
    let expires_at = kept(&record);
    store.delete(&id).await.expect("delete");
    let saved = store
        .save(&id, &patch(&[("a", "13")], &[], expires_at))
        .await;
    assert!(
        matches!(saved, Err(StoreError::NotFound)),
        "a save that keeps the expiry after delete must fail with NotFound, got {saved:?}"
    );
    assert!(
        load_all(&*store, &id).await.is_none(),
        "a save that keeps the expiry must not resurrect a deleted session"
    );
    let id = created(
        &*store,
        &[("a", "1")],
        SystemTime::now() + Duration::from_millis(200),
    )
    .await;
    let expires_at = kept(&load_all(&*store, &id).await.expect("created record loads"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let saved = store
        .save(&id, &patch(&[("a", "2")], &[], expires_at))
        .await;
    assert!(
        matches!(saved, Err(StoreError::NotFound)),
        "a save that keeps the expiry after expiry must fail with NotFound, got {saved:?}"
    );
    assert!(
        load_all(&*store, &id).await.is_none(),
        "a save that keeps the expiry must not resurrect an expired session"
    );
}

/// A removed key ending in `#` removes every key under it (a map field's clear), before the
/// same patch's sets, and nothing else; `LoadKeys::Only` with such a key returns the keys
/// under it.
///
/// ```
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::clears_remove_every_key_under_a_prefix(&MemoryStore::new()).await;
/// # });
/// ```
pub async fn clears_remove_every_key_under_a_prefix<S: SessionStore>(store: &S) {
    let id = created(
        store,
        &[
            ("m#a", "1"),
            ("m#b", "2"),
            ("m", "whole"),
            ("mx#a", "3"),
            ("n.m#a", "4"),
            ("other", "5"),
        ],
        in_a_minute(),
    )
    .await;
    let record = store
        .load(&id, LoadKeys::Only(&["m#", "other"]))
        .await
        .expect("load")
        .expect("the session exists");
    assert_eq!(
        (field(&record, "m#a"), field(&record, "m#b")),
        (Some("1"), Some("2")),
        "load: `LoadKeys::Only` with a key ending in `#` must return every key under it; the \
         store returned {:?}",
        record.fields.keys().collect::<Vec<_>>()
    );
    let id = store
        .save(
            &id,
            &patch(&[("m#c", "6"), ("m#a", "7")], &["m#"], in_a_minute()),
        )
        .await
        .expect("save a clear")
        .unwrap_or(id);
    let record = load_all(store, &id).await.expect("still there");
    let mut keys: Vec<&str> = record.fields.keys().map(|k| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["m", "m#a", "m#c", "mx#a", "n.m#a", "other"],
        "save: a removed key ending in `#` removes every key that starts with it (and no \
         other), before the patch's sets"
    );
    assert_eq!(
        field(&record, "m#a"),
        Some("7"),
        "the set after the clear stands"
    );
}

/// A clear racing 20 writes of new entries under the same prefix is atomic: every entry
/// stored before both goes, the other keys stay, and what is left under the prefix is some
/// of the new entries, each whole.
///
/// ```
/// use std::sync::Arc;
/// use session_runtime::{conformance, MemoryStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// conformance::a_clear_racing_entry_writes_is_atomic(Arc::new(MemoryStore::new())).await;
/// # });
/// ```
pub async fn a_clear_racing_entry_writes_is_atomic<S: SessionStore>(store: Arc<S>) {
    let old: Vec<(String, String)> = (0..20)
        .map(|n| (format!("m#old{n}"), n.to_string()))
        .collect();
    let mut initial: Vec<(&str, &str)> =
        old.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    initial.push(("kept", "1"));
    let id = created(&*store, &initial, in_a_minute()).await;
    let mut tasks: Vec<_> = (0..20)
        .map(|n| {
            let (store, id) = (Arc::clone(&store), id.clone());
            tokio::spawn(async move {
                let key = format!("m#new{n}");
                store
                    .save(&id, &patch(&[(&key, "new")], &[], in_a_minute()))
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    let (clearing, clear_id) = (Arc::clone(&store), id.clone());
    tasks.insert(
        10,
        tokio::spawn(async move {
            clearing
                .save(&clear_id, &patch(&[], &["m#"], in_a_minute()))
                .await
                .map(|_| ())
        }),
    );
    for task in tasks {
        task.await
            .expect("writer task")
            .expect("a concurrent save succeeds");
    }
    let record = load_all(&*store, &id).await.expect("still there");
    assert_eq!(
        field(&record, "kept"),
        Some("1"),
        "a clear removes only its prefix"
    );
    for key in record.fields.keys() {
        assert!(
            !key.starts_with("m#old"),
            "a clear must remove every key under its prefix that was stored before it \
             ({key} survived)"
        );
        if key.starts_with("m#") {
            assert_eq!(field(&record, key), Some("new"), "{key} is whole");
        }
    }
}
