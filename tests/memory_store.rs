//! `MemoryStore`: the conformance suite, plus what is particular to it (bounded size,
//! eviction of expired records).

use std::{
    borrow::Cow,
    time::{Duration, SystemTime},
};

use session_runtime::{
    conformance,
    store::{LoadKeys, Patch},
    MemoryStore, SessionId, SessionStore,
};

fn patch(expires_at: SystemTime) -> Patch {
    Patch {
        set: vec![(Cow::Borrowed("k"), b"v".to_vec().into())],
        remove: vec![],
        expires_at,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_conformance_suite() {
    conformance::run(MemoryStore::new()).await;
}

/// Fields of a schema with its own codec are kept byte for byte beside JSON ones.
#[tokio::test]
async fn memory_store_keeps_each_schemas_encoding() {
    session_suite::codec::check_codecs_side_by_side(MemoryStore::new()).await;
}

#[tokio::test]
async fn the_number_of_sessions_is_bounded() {
    let store = MemoryStore::new().with_max_sessions(64);
    let later = SystemTime::now() + Duration::from_secs(60);
    let mut ids = Vec::new();
    for i in 0..1_000u64 {
        let id = SessionId::generate();
        store
            .create(&id, &patch(later + Duration::from_millis(i)))
            .await
            .unwrap();
        ids.push(id);
    }
    assert!(store.len() <= 64, "{} records", store.len());
    assert!(
        store.len() >= 40,
        "eviction frees a slice, not the store: {}",
        store.len()
    );
    // The newest (latest-expiring) sessions are kept.
    let newest = ids.last().unwrap();
    assert!(store.load(newest, LoadKeys::All).await.unwrap().is_some());
}

#[tokio::test]
async fn sessions_sharing_one_expiry_are_evicted_a_slice_at_a_time() {
    let store = MemoryStore::new().with_max_sessions(1_600);
    let same = SystemTime::now() + Duration::from_secs(60);
    for _ in 0..5_000 {
        store
            .create(&SessionId::generate(), &patch(same))
            .await
            .unwrap();
        assert!(store.len() <= 1_600, "{} records", store.len());
    }
    // Each full shard (100 records) drops an eighth when it must make room, never all.
    assert!(store.len() >= 1_400, "{} records", store.len());
}

#[tokio::test]
async fn expired_records_are_evicted_before_live_ones() {
    // 10 per shard: even if all 8 live sessions land in one shard, they fit.
    let store = MemoryStore::new().with_max_sessions(160);
    let soon = SystemTime::now() + Duration::from_millis(50);
    for _ in 0..2_000 {
        store
            .create(&SessionId::generate(), &patch(soon))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let later = SystemTime::now() + Duration::from_secs(60);
    let live: Vec<SessionId> = (0..8).map(|_| SessionId::generate()).collect();
    for id in &live {
        store.create(id, &patch(later)).await.unwrap();
    }
    for id in &live {
        assert!(store.load(id, LoadKeys::All).await.unwrap().is_some());
    }
    assert!(store.len() <= 160);
}

/// A full store evicts, so records may vanish; but it never holds more than its bound,
/// what a load returns is always exactly what was last written, and a vanished or deleted
/// record never comes back: 5000 random creates, saves, regenerates, touches and deletes in
/// a store bounded at 64, each answer checked against what is known.
#[tokio::test]
async fn eviction_loses_whole_records_only_and_brings_none_back() {
    use std::collections::HashMap;

    let store = MemoryStore::new().with_max_sessions(64);
    let mut rng = session_suite::Rng(0x5EED_0401);
    let mut ids: Vec<SessionId> = Vec::new();
    // What may be loaded: the last write of each record not known to be gone.
    let mut known: HashMap<SessionId, (Vec<u8>, SystemTime)> = HashMap::new();
    let expiry = |rng: &mut session_suite::Rng| {
        SystemTime::now() + Duration::from_secs(60 + rng.below(3600) as u64)
    };
    let write = |value: &[u8], expires_at| Patch {
        set: vec![(Cow::Borrowed("k"), value.to_vec().into())],
        remove: vec![],
        expires_at,
    };
    for step in 0..5_000 {
        let value = format!("{step}").into_bytes();
        let pick = |rng: &mut session_suite::Rng, ids: &[SessionId]| {
            (!ids.is_empty()).then(|| ids[rng.below(ids.len())].clone())
        };
        match rng.below(6) {
            0 | 1 => {
                let id = SessionId::generate();
                let at = expiry(&mut rng);
                store.create(&id, &write(&value, at)).await.unwrap();
                known.insert(id.clone(), (value, at));
                ids.push(id);
            }
            // A write to an existing record: applied if the store still has it.
            op @ (2 | 3 | 5) => {
                let Some(id) = pick(&mut rng, &ids) else {
                    continue;
                };
                let at = expiry(&mut rng);
                let moved_to = (op == 3).then(SessionId::generate);
                let result = match &moved_to {
                    None if op == 2 => store.save(&id, &write(&value, at)).await,
                    None => store.touch(&id, at).await,
                    Some(new) => store.regenerate(&id, new, &write(&value, at)).await,
                };
                match result {
                    Ok(_) => {
                        let (previous, _) = known
                            .remove(&id)
                            .unwrap_or_else(|| panic!("step {step}: a gone record was written"));
                        let value = if op == 5 { previous } else { value };
                        if let Some(new) = moved_to {
                            known.insert(new.clone(), (value, at));
                            ids.push(new);
                        } else {
                            known.insert(id, (value, at));
                        }
                    }
                    Err(session_runtime::StoreError::NotFound) => {
                        known.remove(&id);
                    }
                    Err(err) => panic!("step {step}: {err}"),
                }
            }
            _ => {
                let Some(id) = pick(&mut rng, &ids) else {
                    continue;
                };
                store.delete(&id).await.unwrap();
                known.remove(&id);
            }
        }
        // Every ID: a load finds the last write, or nothing (and then never again).
        if step % 50 == 0 {
            for id in &ids {
                match store.load(id, LoadKeys::All).await.unwrap() {
                    Some(record) => {
                        let (value, at) = known
                            .get(id)
                            .unwrap_or_else(|| panic!("step {step}: a gone record came back"));
                        assert_eq!(&record.fields["k"][..], &value[..], "step {step}");
                        assert_eq!(record.expires_at, Some(*at), "step {step}");
                    }
                    None => {
                        known.remove(id);
                    }
                }
            }
            assert!(store.len() <= 64, "step {step}: {} records", store.len());
        }
    }
    assert!(!known.is_empty(), "the store still holds sessions");
}

/// A flood of anonymous new sessions against a full store (4 000 creates against a 1 600
/// bound, none ever used again) evicts the flood's own sessions: every visitor who came
/// back (their session loaded again) keeps theirs, even those about to expire first.
#[tokio::test]
async fn a_flood_of_new_sessions_does_not_evict_returning_visitors() {
    let store = MemoryStore::new().with_max_sessions(1_600);
    let now = SystemTime::now();
    // Returning visitors, expiring before any of the flood.
    let mut returning = Vec::new();
    for _ in 0..300 {
        let id = SessionId::generate();
        store
            .create(&id, &patch(now + Duration::from_secs(60)))
            .await
            .unwrap();
        assert!(store.load(&id, LoadKeys::All).await.unwrap().is_some());
        returning.push(id);
    }
    // New visitors who never came back yet: evicted before the returning ones.
    let mut one_time = Vec::new();
    for _ in 0..4_000 {
        let id = SessionId::generate();
        store
            .create(&id, &patch(now + Duration::from_secs(3_600)))
            .await
            .unwrap();
        one_time.push(id);
    }
    assert!(store.len() <= 1_600 + 16, "bounded: {}", store.len());
    for id in &returning {
        assert!(
            store.load(id, LoadKeys::All).await.unwrap().is_some(),
            "a returning visitor was evicted"
        );
    }
    let mut survivors = 0;
    for id in &one_time {
        survivors += usize::from(store.load(id, LoadKeys::All).await.unwrap().is_some());
    }
    assert!(survivors < 1_600, "the flood evicted itself: {survivors}");
}

/// When established sessions alone fill the store, they are evicted too, closest to
/// expiry first: the bound always holds.
#[tokio::test]
async fn established_sessions_are_evicted_when_they_alone_fill_the_store() {
    let store = MemoryStore::new().with_max_sessions(160);
    let now = SystemTime::now();
    let mut ids = Vec::new();
    for i in 0..400u64 {
        let id = SessionId::generate();
        store
            .create(&id, &patch(now + Duration::from_secs(60 + i)))
            .await
            .unwrap();
        store.load(&id, LoadKeys::All).await.unwrap();
        ids.push(id);
    }
    assert!(store.len() <= 160 + 16, "bounded: {}", store.len());
    let last = ids.last().unwrap();
    assert!(store.load(last, LoadKeys::All).await.unwrap().is_some());
}

fn sized(key: &'static str, len: usize, expires_at: SystemTime) -> Patch {
    Patch {
        set: vec![(Cow::Borrowed(key), vec![b'x'; len].into())],
        remove: vec![],
        expires_at,
    }
}

/// One session cannot grow past the store's per-session limit: the write that would is
/// refused with a clear error and changes nothing; replacing or removing values frees room.
#[tokio::test]
async fn a_session_larger_than_the_limit_is_refused_and_nothing_changes() {
    use session_runtime::StoreError;

    let store = MemoryStore::new().with_max_session_bytes(1_000);
    let later = SystemTime::now() + Duration::from_secs(60);
    let id = SessionId::generate();
    store.create(&id, &sized("a", 899, later)).await.unwrap(); // 900 bytes with its key
    let err = store.save(&id, &sized("b", 199, later)).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    assert!(
        session_suite::report(&err).contains("1100 bytes, over this MemoryStore's limit of 1000"),
        "{}",
        session_suite::report(&err)
    );
    let record = store.load(&id, LoadKeys::All).await.unwrap().unwrap();
    assert_eq!(record.fields.len(), 1, "nothing applied");
    // Replacing `a` with a smaller value makes room for `b`.
    store.save(&id, &sized("a", 99, later)).await.unwrap();
    store.save(&id, &sized("b", 199, later)).await.unwrap();
    // Removing frees room too.
    let mut remove = Patch::expiry_only(later);
    remove.remove.push(Cow::Borrowed("b"));
    store.save(&id, &remove).await.unwrap();
    store.save(&id, &sized("c", 799, later)).await.unwrap();
    // A create over the limit, and a regenerate that would grow past it.
    assert!(store
        .create(&SessionId::generate(), &sized("a", 1_000, later))
        .await
        .is_err());
    let new = SessionId::generate();
    assert!(store
        .regenerate(&id, &new, &sized("d", 500, later))
        .await
        .is_err());
    assert!(
        store.load(&id, LoadKeys::All).await.unwrap().is_some(),
        "not moved"
    );
    assert!(store.load(&new, LoadKeys::All).await.unwrap().is_none());
}

/// Through the layer, a 10 MB field value on the default limit (1 MiB) is a 500, not stored.
#[tokio::test]
async fn a_ten_megabyte_field_is_refused_by_default() {
    use axum::{http::StatusCode, routing::post, Router};
    use session_runtime::{Key, SessionData, SessionLayer, TypedSession};
    use session_suite::http::{request, send};

    #[derive(SessionData)]
    #[session(namespace = "big")]
    struct Upload {
        blob: String,
    }

    let store = MemoryStore::new();
    let app = Router::new()
        .route(
            "/",
            post(|mut upload: TypedSession<Upload>| async move {
                upload.set_blob("x".repeat(10 * 1024 * 1024));
            }),
        )
        .layer(SessionLayer::new(store.clone(), Key::generate()));
    let response = send(&app, request("POST", "/", None, "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(store.is_empty());
}

/// A full store whose shards hold a few new sessions and many established ones evicts
/// every new one first, then the established ones closest to expiry: those that expire
/// last all survive, even though every new session expires later than any of them.
#[tokio::test]
async fn a_full_store_evicts_its_few_new_sessions_then_the_established_closest_to_expiry() {
    let store = MemoryStore::new().with_max_sessions(1_600);
    let now = SystemTime::now();
    let mut established = Vec::new();
    for i in 0..1_500u64 {
        let id = SessionId::generate();
        store
            .create(&id, &patch(now + Duration::from_secs(3_600 + i)))
            .await
            .unwrap();
        assert!(store.load(&id, LoadKeys::All).await.unwrap().is_some());
        established.push(id);
    }
    let mut fresh = Vec::new();
    for _ in 0..300 {
        let id = SessionId::generate();
        store
            .create(&id, &patch(now + Duration::from_secs(7_200)))
            .await
            .unwrap();
        fresh.push(id);
    }
    assert!(store.len() <= 1_600 + 16, "bounded: {}", store.len());
    for id in &established[1_200..] {
        assert!(
            store.load(id, LoadKeys::All).await.unwrap().is_some(),
            "an established session expiring late was evicted"
        );
    }
    let mut earliest_evicted = 0;
    for id in &established[..100] {
        earliest_evicted += usize::from(store.load(id, LoadKeys::All).await.unwrap().is_none());
    }
    assert!(
        earliest_evicted > 0,
        "the new sessions alone did not make room, so established ones closest to expiry went"
    );
}
