//! `RedisStore` with `RedisLayout::Log` (one list per session that writes append to)
//! against real Redis servers: the shared one, with a unique key prefix, and private ones
//! this test starts (a cluster, and a server whose traffic it counts).

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{
    http::StatusCode,
    routing::{get, post},
    Router,
};
use redis::aio::MultiplexedConnection;
use session_runtime::{
    conformance,
    store::{LoadKeys, Patch, Record},
    DecodePolicy, Key, RedisLayout, RedisStore, SessionData, SessionId, SessionLayer, SessionStore,
    StoreError, TypedSession,
};
use session_suite::http::{cookie_pair, id_of, request, send, text};
use session_suite::redis_harness::{
    self, bytes_sent_for, can_start_servers, shared_redis_url, skip_without_redis, unique_prefix,
    RedisCluster, RedisServer,
};
use session_suite::Rng;

/// The shared server's store in the log layout under a fresh prefix, or `None` (skipped).
async fn shared_store(test: &str) -> Option<RedisStore> {
    redis_harness::shared_store(test, RedisLayout::Log).await
}

async fn raw_connection() -> MultiplexedConnection {
    redis::Client::open(
        shared_redis_url()
            .expect("checked by shared_store")
            .as_str(),
    )
    .unwrap()
    .get_multiplexed_async_connection()
    .await
    .unwrap()
}

/// A log's items, as Redis holds them.
async fn items(conn: &mut MultiplexedConnection, key: &str) -> Vec<Vec<u8>> {
    redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .unwrap()
}

/// The bytes a log holds: all its items'.
async fn strlen(conn: &mut MultiplexedConnection, key: &str) -> usize {
    items(conn, key).await.iter().map(Vec::len).sum()
}

async fn pttl(conn: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

fn in_an_hour() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

fn set(fields: &[(&str, String)], expires_at: SystemTime) -> Patch {
    Patch {
        set: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned().into(), v.clone().into_bytes().into()))
            .collect(),
        remove: Vec::new(),
        expires_at,
    }
}

async fn load(store: &RedisStore, id: &SessionId) -> Option<Record> {
    store.load(id, LoadKeys::All).await.expect("load")
}

fn value(record: &Record, field: &str) -> Option<String> {
    record
        .fields
        .get(field)
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_log_layout_passes_the_conformance_suite() {
    let Some(store) = shared_store("log-conformance").await else {
        return;
    };
    conformance::run(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_log_layout_passes_the_conformance_suite_on_a_cluster() {
    if !can_start_servers("log cluster conformance") {
        return;
    }
    let cluster = RedisCluster::start(3);
    let store = RedisStore::connect_cluster(cluster.urls())
        .await
        .expect("connect to the cluster")
        .with_layout(RedisLayout::Log);
    conformance::run(store).await;
}

/// Fields of a schema with its own codec (bytes that are not text) travel byte for byte.
#[tokio::test]
async fn the_log_layout_keeps_each_schemas_encoding() {
    let Some(store) = shared_store("log-codecs").await else {
        return;
    };
    session_suite::codec::check_codecs_side_by_side(store).await;
}

#[derive(SessionData, Debug)]
struct Cart {
    items: Vec<String>,
    theme: String,
}

fn cart_app(store: RedisStore, policy: DecodePolicy, key: &Key) -> Router {
    Router::new()
        .route(
            "/add",
            post(|mut cart: TypedSession<Cart>, item: String| async move {
                cart.items_mut().push(item);
                cart.items().len().to_string()
            }),
        )
        .route(
            "/theme",
            post(|mut cart: TypedSession<Cart>, theme: String| async move {
                cart.set_theme(theme);
            }),
        )
        .route(
            "/show",
            get(|cart: TypedSession<Cart>| async move {
                format!("{:?} {}", cart.items(), cart.theme())
            }),
        )
        // Short-lived: these sessions live on a shared server.
        .layer(
            SessionLayer::new(store, key.clone())
                .with_idle_timeout(Duration::from_secs(300))
                .with_decode_policy(policy),
        )
}

/// A session is one list; a read leaves it as it is and an update appends one item, with
/// only the changed field and the expiry, not the record.
#[tokio::test]
async fn a_session_is_one_list_that_an_update_appends_to() {
    let Some(store) = shared_store("log-append").await else {
        return;
    };
    let app = cart_app(store.clone(), DecodePolicy::Lenient, &Key::generate());
    let response = send(&app, request("POST", "/theme", None, "dark".repeat(500))).await;
    let cookie = cookie_pair(&response);
    let key = store.key(&id_of(&cookie));
    let mut conn = raw_connection().await;
    let kind: String = redis::cmd("TYPE")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kind, "list");
    assert_eq!(
        items(&mut conn, &key).await.len(),
        2,
        "a header and the entries"
    );
    let created = strlen(&mut conn, &key).await;
    assert!(created > 2000, "the record holds the theme: {created}");

    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert!(text(response).await.starts_with("[] dark"));
    assert_eq!(
        strlen(&mut conn, &key).await,
        created,
        "a read writes nothing"
    );

    send(&app, request("POST", "/add", Some(&cookie), "apple")).await;
    assert_eq!(items(&mut conn, &key).await.len(), 3, "one item more");
    let grown = strlen(&mut conn, &key).await - created;
    assert!(
        (20..80).contains(&grown),
        "an update appends its field and the expiry, not the record: {grown} bytes"
    );
    let ttl = pttl(&mut conn, &key).await;
    assert!(
        (250_000..=300_000).contains(&ttl),
        "the key carries the session's TTL: {ttl}"
    );
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert!(text(response).await.starts_with(r#"["apple"] dark"#));
}

/// Once replaced entries outweigh the live ones, a load writes the log back compacted: it
/// shrinks, keeps every field, the expiry and the TTL, and writes go on appending to it.
#[tokio::test]
async fn a_load_compacts_a_log_whose_dead_entries_outweigh_the_live_ones() {
    let Some(store) = shared_store("log-compaction").await else {
        return;
    };
    let mut conn = raw_connection().await;
    let id = SessionId::generate();
    let key = store.key(&id);
    let expires_at = in_an_hour();
    let big = "b".repeat(600);
    store
        .create(
            &id,
            &set(&[("big", big.clone()), ("n", "0".into())], expires_at),
        )
        .await
        .unwrap();
    let live = strlen(&mut conn, &key).await;
    // Each save appends "n" and the expiry; no load yet, so nothing compacts.
    let mut n = 0;
    while strlen(&mut conn, &key).await <= 2 * live + 1024 {
        n += 1;
        store
            .save(&id, &set(&[("n", n.to_string())], expires_at))
            .await
            .unwrap();
    }
    let before = strlen(&mut conn, &key).await;
    let ttl_before = pttl(&mut conn, &key).await;
    let record = load(&store, &id).await.expect("the session loads");
    assert_eq!(value(&record, "n"), Some(n.to_string()));
    assert_eq!(value(&record, "big"), Some(big.clone()));
    let after = strlen(&mut conn, &key).await;
    assert!(
        after < live + 16,
        "the load compacted the log: {before} -> {after} bytes (live record {live})"
    );
    let ttl_after = pttl(&mut conn, &key).await;
    assert!(
        ttl_after > 0 && ttl_after <= ttl_before,
        "the TTL is kept: {ttl_before} -> {ttl_after}"
    );
    // The compacted log reads the same, expiry included, and takes further writes.
    let again = load(&store, &id).await.expect("the session loads");
    assert_eq!(value(&again, "n"), Some(n.to_string()));
    assert_eq!(again.expires_at, record.expires_at);
    let expires = record.expires_at.expect("the log holds the expiry");
    let diff = expires
        .duration_since(expires_at)
        .unwrap_or_else(|e| e.duration());
    assert!(diff < Duration::from_millis(2), "expiry kept: {diff:?}");
    store
        .save(
            &id,
            &Patch {
                set: vec![("n".into(), "last".into())],
                remove: vec!["big".into()],
                expires_at,
            },
        )
        .await
        .unwrap();
    let last = load(&store, &id).await.expect("the session loads");
    assert_eq!(value(&last, "n"), Some("last".into()));
    assert_eq!(
        value(&last, "big"),
        None,
        "a removal after a compaction holds"
    );
    store.delete(&id).await.unwrap();
}

/// Writers append while readers compact the same log: a compaction stands down when the
/// log changed since it was read, so no write is lost. Every field ends at the last value
/// its writer wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compactions_never_lose_a_concurrent_write() {
    let Some(store) = shared_store("log-compaction-race").await else {
        return;
    };
    let store = Arc::new(store);
    let mut conn = raw_connection().await;
    let id = SessionId::generate();
    let key = store.key(&id);
    let fields = ["w0", "w1", "w2", "w3"];
    let initial: Vec<_> = fields.iter().map(|f| (*f, "0".to_owned())).collect();
    store
        .create(&id, &set(&initial, in_an_hour()))
        .await
        .unwrap();
    const WRITES: usize = 1000;
    let writers = fields.map(|field| {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move {
            for n in 1..=WRITES {
                let padded = format!("{n:0>40}");
                store
                    .save(&id, &set(&[(field, padded)], in_an_hour()))
                    .await
                    .unwrap();
            }
        })
    });
    // Each field only ever grows (one writer, one write at a time), so a load that finds a
    // field smaller than an earlier load did has seen a write undone.
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move {
                let mut seen = [0_u64; 4];
                for _ in 0..4 * WRITES {
                    let record = load(&store, &id).await.expect("the session loads");
                    for (field, seen) in fields.iter().zip(&mut seen) {
                        let now: u64 = value(&record, field).unwrap().parse().unwrap();
                        assert!(now >= *seen, "{field} went back from {seen} to {now}");
                        *seen = now;
                    }
                }
            })
        })
        .collect();
    for task in writers.into_iter().chain(readers) {
        task.await.unwrap();
    }
    // 4 * 1000 appends of ~70 bytes: without compactions the log would hold ~280 KB.
    let len = strlen(&mut conn, &key).await;
    assert!(len < 8 * 1024, "the readers compacted the log: {len} bytes");
    let record = load(&store, &id).await.expect("the session loads");
    for field in fields {
        assert_eq!(
            value(&record, field),
            Some(format!("{WRITES:0>40}")),
            "{field} kept its last write"
        );
    }
    store.delete(&id).await.unwrap();
}

/// Lists that are not session logs, and a string, written under a session's key: every
/// load either reads them or fails as `Corrupt`, never panics, and leaves them as they are.
#[tokio::test]
async fn a_garbage_log_is_corrupt_never_a_panic() {
    let Some(store) = shared_store("log-garbage").await else {
        return;
    };
    let mut conn = raw_connection().await;
    let id = SessionId::generate();
    let key = store.key(&id);
    store
        .create(&id, &set(&[("a", "\"x\"".into())], in_an_hour()))
        .await
        .unwrap();
    store
        .save(&id, &set(&[("b", "\"y\"".into())], in_an_hour()))
        .await
        .unwrap();
    let valid = items(&mut conn, &key).await;
    assert_eq!(valid.len(), 3);
    let header = valid[0].clone();
    let entries = |item: &[u8]| vec![header.clone(), item.to_vec()];
    let mut cases: Vec<Vec<Vec<u8>>> = vec![
        vec![b"a string".to_vec()],
        vec![Vec::new()],
        vec![header[..5].to_vec(), valid[1].clone()],
        vec![valid[1].clone(), header.clone()],
        entries(b"+"),
        entries(b"+\x05ab"),
        entries(b"+\x01a\x0a\"x\""),
        entries(b"*\x01a"),
        entries(b"+\x02\xff\xfe\x01x"),
        entries(b"+\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"),
        entries(b"+\x01a\xff\xff\xff\xff\xff\xff\xff\xff\x7f"),
        entries(b"E\x01\x02"),
        entries(&valid[1][..valid[1].len() - 1]),
    ];
    let mut rng = Rng(0x106_6A5B);
    let byte = |rng: &mut Rng| rng.next_u64().to_le_bytes()[0];
    for _ in 0..300 {
        let mut log = valid.clone();
        let item = 1 + rng.below(log.len() - 1);
        let damaged = &mut log[item];
        match rng.below(3) {
            0 => {
                let at = rng.below(damaged.len());
                damaged[at] = byte(&mut rng);
            }
            1 => damaged.truncate(rng.below(damaged.len())),
            _ => {
                let extra = 1 + rng.below(12);
                damaged.extend((0..extra).map(|_| byte(&mut rng)));
            }
        }
        cases.push(log);
    }
    let mut corrupt = 0;
    for case in &cases {
        redis::cmd("DEL")
            .arg(&key)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        let mut push = redis::cmd("RPUSH");
        push.arg(&key);
        for item in case {
            push.arg(&item[..]);
        }
        push.query_async::<()>(&mut conn).await.unwrap();
        match store.load(&id, LoadKeys::All).await {
            Ok(_) => {}
            Err(StoreError::Corrupt(_)) => corrupt += 1,
            Err(other) => panic!("{case:?}: {other:?}"),
        }
        assert_eq!(
            &items(&mut conn, &key).await,
            case,
            "a load never rewrites what it cannot read"
        );
    }
    // The hand-written cases are all unreadable; most random ones are too.
    assert!(corrupt >= 13 + 100, "{corrupt} of {} corrupt", cases.len());
    // Another program's string under the key is unreadable too, and stays.
    redis::cmd("SET")
        .arg(&key)
        .arg("not a session")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert!(matches!(
        store.load(&id, LoadKeys::All).await,
        Err(StoreError::Corrupt(_))
    ));
    let saved = store
        .save(&id, &set(&[("a", "1".into())], in_an_hour()))
        .await;
    assert!(matches!(saved, Err(StoreError::Corrupt(_))), "{saved:?}");
    let left: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, "not a session");
    store.delete(&id).await.unwrap();
}

/// A store reads only its own layout: a hash under the log layout, or a log under the hash
/// layout, is unreadable data; through the layer the visitor gets a new session (lenient) or
/// a 500 (strict), and the data stays as it was.
#[tokio::test]
async fn each_layout_refuses_the_others_records_without_touching_them() {
    let Some(url) = shared_redis_url() else {
        skip_without_redis("log-switch", "no Redis answers on the shared URL");
        return;
    };
    let prefix = unique_prefix("log-switch");
    let hash_store = RedisStore::connect(url.as_str())
        .await
        .unwrap()
        .with_key_prefix(prefix.clone());
    let log_store = hash_store.clone().with_layout(RedisLayout::Log);
    let key = Key::generate();
    // Written as a hash, read as a log.
    let hash_app = cart_app(hash_store.clone(), DecodePolicy::Lenient, &key);
    let response = send(&hash_app, request("POST", "/add", None, "apple")).await;
    let cookie = cookie_pair(&response);
    let as_log = cart_app(log_store.clone(), DecodePolicy::Lenient, &key);
    let response = send(&as_log, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "[] ");
    let response = send(&as_log, request("POST", "/add", Some(&cookie), "pear")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let fresh = cookie_pair(&response);
    assert_ne!(
        id_of(&fresh),
        id_of(&cookie),
        "a new ID, never the unreadable one"
    );
    let strict = cart_app(log_store.clone(), DecodePolicy::Strict, &key);
    let response = send(&strict, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let response = send(&hash_app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(
        text(response).await,
        r#"["apple"] "#,
        "the hash is untouched"
    );
    // Written as a log, read as a hash.
    let id = SessionId::generate();
    log_store
        .create(&id, &set(&[("a", "1".into())], in_an_hour()))
        .await
        .unwrap();
    assert!(matches!(
        hash_store.load(&id, LoadKeys::All).await,
        Err(StoreError::Corrupt(_))
    ));
    let record = load(&log_store, &id).await.expect("the log is untouched");
    assert_eq!(value(&record, "a"), Some("1".into()));
    for id in [id, id_of(&cookie), id_of(&fresh)] {
        hash_store.delete(&id).await.unwrap();
    }
}

#[derive(SessionData)]
struct Counter {
    counter: u64,
    padding: String,
}

/// An update sends its field, not the record, whatever the session's size; compactions add
/// about one entry's size per update, also whatever the size.
#[tokio::test]
async fn an_update_sends_a_small_flat_number_of_bytes_compactions_included() {
    if !can_start_servers("log bytes") {
        return;
    }
    let server = RedisServer::start();
    let url = server.url();
    let store = RedisStore::connect(url.as_str())
        .await
        .unwrap()
        .with_layout(RedisLayout::Log);
    let app = Router::new()
        .route(
            "/fill/{size}",
            post(
                |axum::extract::Path(size): axum::extract::Path<usize>,
                 mut s: TypedSession<Counter>| async move {
                    s.set_padding("p".repeat(size));
                },
            ),
        )
        .route(
            "/bump",
            post(|mut s: TypedSession<Counter>| async move {
                *s.counter_mut() += 1;
                s.counter().to_string()
            }),
        )
        .layer(SessionLayer::new(store, Key::generate()));
    let mut figures = Vec::new();
    for size in [2_000, 20_000] {
        let response = send(&app, request("POST", &format!("/fill/{size}"), None, "")).await;
        let cookie = cookie_pair(&response);
        let bump = || request("POST", "/bump", Some(&cookie), "");
        // Warm up: scripts loaded, connection set up.
        bytes_sent_for(&url, &app, 1, bump).await;
        let one = bytes_sent_for(&url, &app, 1, bump).await;
        assert!(one <= 240, "an update of one field sent {one} bytes");
        // Enough updates for compactions at both sizes (the larger one compacts after
        // ~20 000 bytes of entries, ~500 updates).
        let updates = 2000;
        let total = bytes_sent_for(&url, &app, updates, bump).await;
        let per_update = total / updates;
        println!(
            "{size}-byte session: one update {one} bytes, {per_update} per update with compactions"
        );
        assert!(
            per_update <= 240,
            "with compactions an update sent {per_update} bytes ({one} without)"
        );
        figures.push((one, per_update));
    }
    let [(small, small_avg), (large, large_avg)] = figures[..] else {
        unreachable!()
    };
    assert!(small.abs_diff(large) <= 2, "{small} -> {large}");
    assert!(
        small_avg.abs_diff(large_avg) <= 20,
        "with compactions: {small_avg} -> {large_avg}"
    );
}

/// The store as the layer drives it: every write of a session comes right after its load,
/// which lets the log layout save with plain commands (a session it has just loaded
/// without index terms).
#[derive(Clone)]
struct LoadingFirst(RedisStore);

impl SessionStore for LoadingFirst {
    async fn load(&self, id: &SessionId, keys: LoadKeys<'_>) -> Result<Option<Record>, StoreError> {
        self.0.load(id, keys).await
    }

    async fn create(&self, id: &SessionId, patch: &Patch) -> session_runtime::store::WriteResult {
        self.0.create(id, patch).await
    }

    async fn save(&self, id: &SessionId, patch: &Patch) -> session_runtime::store::WriteResult {
        let _ = self.0.load(id, LoadKeys::All).await;
        self.0.save(id, patch).await
    }

    async fn regenerate(
        &self,
        old: &SessionId,
        new: &SessionId,
        patch: &Patch,
    ) -> session_runtime::store::WriteResult {
        let _ = self.0.load(old, LoadKeys::All).await;
        self.0.regenerate(old, new, patch).await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.0.delete(id).await
    }

    async fn touch(
        &self,
        id: &SessionId,
        expires_at: SystemTime,
    ) -> session_runtime::store::WriteResult {
        let _ = self.0.load(id, LoadKeys::All).await;
        self.0.touch(id, expires_at).await
    }

    fn supports_index(&self) -> bool {
        self.0.supports_index()
    }

    async fn find_indexed(
        &self,
        index: &str,
        term: &[u8],
    ) -> Result<Vec<(SessionId, Record)>, StoreError> {
        self.0.find_indexed(index, term).await
    }

    async fn delete_indexed(
        &self,
        id: &SessionId,
        index: &str,
        term: &[u8],
    ) -> Result<bool, StoreError> {
        self.0.delete_indexed(id, index, term).await
    }
}

/// The whole contract holds for saves made with plain commands: every write preceded by a
/// load, as the layer does it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_saves_pass_the_conformance_suite() {
    let Some(store) = shared_store("log-plain-conformance").await else {
        return;
    };
    conformance::run(LoadingFirst(store)).await;
}

/// The same on a cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_saves_pass_the_conformance_suite_on_a_cluster() {
    if !can_start_servers("log cluster plain conformance") {
        return;
    }
    let cluster = RedisCluster::start(3);
    let store = RedisStore::connect_cluster(cluster.urls())
        .await
        .expect("connect to the cluster")
        .with_layout(RedisLayout::Log);
    conformance::run(LoadingFirst(store)).await;
}

/// A save of a session just loaded without index terms is `RPUSHX` and `PEXPIRE`, no
/// script; it never resurrects a deleted session. A session with index terms, or one never
/// loaded, is saved by the script, which keeps the index's scores with the new expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loaded_session_without_index_terms_is_saved_without_a_script() {
    if !can_start_servers("log plain saves") {
        return;
    }
    let server = RedisServer::start();
    let url = server.url();
    let store = RedisStore::connect(url.as_str())
        .await
        .unwrap()
        .with_layout(RedisLayout::Log);
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let count = |command: &str| redis_harness::command_calls(&url, command);
    let id = SessionId::generate();
    let key = store.key(&id);
    // A create is plain commands too; a second create of the ID is refused and changes
    // nothing, and no temporary key is left behind.
    store
        .create(&id, &set(&[("a", "0".into())], in_an_hour()))
        .await
        .unwrap();
    let taken = store
        .create(&id, &set(&[("a", "other".into())], in_an_hour()))
        .await;
    assert!(matches!(taken, Err(StoreError::Collision)), "{taken:?}");
    assert_eq!(count("evalsha"), 0, "no script for a create");
    assert_eq!(count("renamenx"), 2);
    // Read through another store: this one must not have loaded the session yet.
    let reader = RedisStore::connect(url.as_str())
        .await
        .unwrap()
        .with_layout(RedisLayout::Log);
    assert_eq!(
        value(&load(&reader, &id).await.unwrap(), "a"),
        Some("0".into())
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, std::slice::from_ref(&key), "only the session's key");
    assert!(pttl(&mut conn, &key).await > 3_500_000, "with its TTL");
    // Never loaded: the script (the first call also loads it into Redis).
    for n in ["1", "2"] {
        let scripts = count("evalsha");
        store
            .save(&id, &set(&[("a", n.into())], in_an_hour()))
            .await
            .unwrap();
        assert!(count("evalsha") > scripts, "a script ran");
    }
    // Loaded, no terms: plain commands, and the fields and the TTL follow.
    let (scripts, pushes) = (count("evalsha"), count("rpushx"));
    for n in 2..12 {
        load(&store, &id).await.expect("the session loads");
        let later = SystemTime::now() + Duration::from_secs(7200);
        store
            .save(&id, &set(&[("a", n.to_string())], later))
            .await
            .unwrap();
    }
    assert_eq!(count("evalsha"), scripts, "no script");
    assert_eq!(count("rpushx"), pushes + 10, "ten plain appends");
    assert_eq!(
        value(&load(&store, &id).await.unwrap(), "a"),
        Some("11".into())
    );
    assert!(pttl(&mut conn, &key).await > 3_600_000, "the TTL follows");
    // Deleted after its load: the plain save finds nothing and writes nothing.
    load(&store, &id).await.expect("the session loads");
    store.delete(&id).await.unwrap();
    let late = store
        .save(&id, &set(&[("a", "late".into())], in_an_hour()))
        .await;
    assert!(matches!(late, Err(StoreError::NotFound)), "{late:?}");
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!exists, "a late save does not resurrect the session");

    // A session with an index term: loaded, saved with the script, its score raised.
    let id = SessionId::generate();
    let mut with_term = set(&[("a", "0".into())], in_an_hour());
    with_term.set.push(("__ix.user_id".into(), "42".into()));
    store.create(&id, &with_term).await.unwrap();
    let sets: Vec<String> = redis::cmd("KEYS")
        .arg("session:ix:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let [set_key] = &sets[..] else {
        panic!("one index set: {sets:?}")
    };
    let score = |mut conn: MultiplexedConnection| {
        let (set_key, member) = (set_key.clone(), id.as_str().to_owned());
        async move {
            redis::cmd("ZSCORE")
                .arg(set_key)
                .arg(member)
                .query_async::<f64>(&mut conn)
                .await
                .unwrap()
        }
    };
    let before = score(conn.clone()).await;
    load(&store, &id).await.expect("the session loads");
    let scripts = count("evalsha");
    let later = SystemTime::now() + Duration::from_secs(7200);
    store
        .save(&id, &set(&[("a", "1".into())], later))
        .await
        .unwrap();
    assert!(count("evalsha") > scripts, "the script keeps the index");
    let after = score(conn.clone()).await;
    assert!(
        after >= before + 3_000_000.0,
        "the score follows the expiry: {before} -> {after}"
    );
    let found = store.find_indexed("__ix.user_id", b"42").await.unwrap();
    assert_eq!(found.len(), 1);
}
