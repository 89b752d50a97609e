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
