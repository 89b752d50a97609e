//! `RedisStore` through the faults an operator sees, each against a private `redis-server`
//! the test starts: connections dropped by Redis's idle `timeout` and by `CLIENT KILL`, and
//! `maxmemory` with `noeviction`, in both layouts.

use std::time::{Duration, SystemTime};

use axum::{
    http::StatusCode,
    routing::{get, post},
    Router,
};
use session_runtime::{
    store::Patch, Key, RedisLayout, RedisStore, SessionData, SessionId, SessionLayer, SessionStore,
    StoreError, TypedSession,
};
use session_suite::http::{cookie_pair, request, send, text};
use session_suite::redis_harness::{can_start_servers, info, RedisServer};

#[derive(SessionData)]
#[session(namespace = "ops")]
struct Notes {
    items: Vec<String>,
}

async fn add(mut notes: TypedSession<Notes>, item: String) -> String {
    notes.items_mut().push(item);
    notes.items().len().to_string()
}

async fn show(notes: TypedSession<Notes>) -> String {
    notes.items().join(",")
}

fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route("/add", post(add))
        .route("/show", get(show))
        .layer(layer)
}

async fn store(server: &RedisServer, layout: RedisLayout) -> RedisStore {
    RedisStore::connect(server.url().as_str())
        .await
        .unwrap()
        .with_layout(layout)
}

const LAYOUTS: [RedisLayout; 2] = [RedisLayout::Hash, RedisLayout::Log];

/// With Redis's own `timeout 1`, the store's idle connection is closed under it: the first
/// request after every pause (a read, a write to an existing session, a new session) still
/// answers 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_after_redis_closed_the_idle_connection_succeed() {
    if !can_start_servers("idle timeout") {
        return;
    }
    let server = RedisServer::start_with(&["--save", "", "--appendonly", "no", "--timeout", "1"]);
    for layout in LAYOUTS {
        let app = app(SessionLayer::new(
            store(&server, layout).await,
            Key::generate(),
        ));
        let response = send(&app, request("POST", "/add", None, "a")).await;
        let cookie = cookie_pair(&response);
        for (method, uri, cookie, body) in [
            ("GET", "/show", Some(cookie.as_str()), ""),
            ("POST", "/add", Some(cookie.as_str()), "b"),
            ("POST", "/add", None, "new"),
        ] {
            tokio::time::sleep(Duration::from_millis(2_100)).await;
            let response = send(&app, request(method, uri, cookie, body)).await;
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "{layout:?}: {method} {uri} after an idle disconnect"
            );
        }
        let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
        assert_eq!(text(response).await, "a,b", "{layout:?}");
    }
}

/// The store's connections, killed from another client again and again while requests
/// run: reads never fail (a read is retried once on a fresh connection); only a write in
/// flight at the kill may (it may have run, so it is never retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_survive_client_kill_under_load() {
    if !can_start_servers("client kill") {
        return;
    }
    let server = RedisServer::start();
    let app = app(SessionLayer::new(
        store(&server, RedisLayout::Hash).await,
        Key::generate(),
    ));
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = cookie_pair(&response);
    let admin = redis::Client::open(server.url().as_str()).unwrap();
    let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
    let (mut failed_reads, mut reads, mut kills) = (0, 0, 0);
    for _ in 0..20 {
        let readers: Vec<_> = (0..20)
            .map(|_| {
                let app = app.clone();
                let cookie = cookie.clone();
                tokio::spawn(async move {
                    send(&app, request("GET", "/show", Some(&cookie), ""))
                        .await
                        .status()
                })
            })
            .collect();
        // Kill every client but this one: the store's connection.
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("SKIPME")
            .arg("yes")
            .arg("TYPE")
            .arg("normal")
            .query_async(&mut admin)
            .await
            .unwrap();
        kills += killed;
        for reader in readers {
            reads += 1;
            failed_reads += usize::from(reader.await.unwrap() != StatusCode::OK);
        }
    }
    assert!(
        kills >= 10,
        "the store's connection was killed {kills} times"
    );
    assert_eq!(failed_reads, 0, "of {reads} reads");
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "a");
}

fn patch(set: &[(&'static str, usize)], remove: &[&'static str]) -> Patch {
    Patch {
        set: set
            .iter()
            .map(|(k, len)| ((*k).into(), vec![b'x'; *len].into()))
            .collect(),
        remove: remove.iter().map(|k| (*k).into()).collect(),
        expires_at: SystemTime::now() + Duration::from_secs(600),
    }
}

/// What the sessions take in Redis: every `session:*` key's `MEMORY USAGE`, and how many
/// there are.
fn session_memory(url: &str) -> (u64, usize) {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("session:*")
        .query(&mut conn)
        .unwrap();
    let bytes = keys
        .iter()
        .map(|key| {
            redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(key)
                .arg("SAMPLES")
                .arg(0)
                .query::<Option<u64>>(&mut conn)
                .unwrap()
                .unwrap_or(0)
        })
        .sum();
    (bytes, keys.len())
}

/// Puts Redis over its memory limit: some data, then `maxmemory` set 512 KiB under what it
/// uses (with `noeviction` it evicts nothing), so every write that may grow memory is
/// refused however its buffers come and go.
fn fill(url: &str) {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    for i in 0..16 {
        let () = redis::cmd("SET")
            .arg(format!("filler:{i}"))
            .arg(vec![b'f'; 64 * 1024])
            .query(&mut conn)
            .unwrap();
    }
    let used: u64 = info(url, "memory")
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO memory has used_memory");
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used - 512 * 1024)
        .query(&mut conn)
        .unwrap();
    let refused: redis::RedisResult<()> = redis::cmd("SET").arg("probe").arg("x").query(&mut conn);
    assert!(refused.is_err_and(|err| err.to_string().contains("OOM")));
}

/// A server whose writes `fill` can refuse.
fn limited_server() -> RedisServer {
    RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory-policy",
        "noeviction",
    ])
}

/// Under `maxmemory` with `noeviction`, every write script (save with and without
/// removals, regenerate, create, refresh) is refused as a whole, in both layouts: a clear
/// error, and Redis stays within its limit.
#[tokio::test]
async fn under_maxmemory_every_write_is_refused_and_redis_stays_within_its_limit() {
    if !can_start_servers("maxmemory") {
        return;
    }
    for layout in LAYOUTS {
        let server = limited_server();
        let store = store(&server, layout).await;
        let ids: Vec<SessionId> = (0..4).map(|_| SessionId::generate()).collect();
        for id in &ids {
            store
                .create(id, &patch(&[("a", 10), ("b", 10)], &[]))
                .await
                .unwrap();
        }
        fill(&server.url());
        let before = session_memory(&server.url());
        // Redis checks the limit at a script's first write, and only if that command may
        // grow memory: a script that began with `HDEL`, `PEXPIRE` or `RENAMENX` used to skip
        // the check and go on growing Redis with every write.
        let mut refusals = std::collections::BTreeMap::<&str, usize>::new();
        let mut note = |result: Result<Option<SessionId>, StoreError>, what: &'static str| {
            if let Err(err) = result {
                assert!(
                    matches!(err, StoreError::Backend(_)),
                    "{layout:?} {what}: {err:?}"
                );
                let report = session_suite::report(&err);
                assert!(report.contains("OOM"), "{layout:?} {what}: {report}");
                *refusals.entry(what).or_default() += 1;
            }
        };
        for _ in 0..50 {
            note(
                store.save(&ids[0], &patch(&[("c", 4096)], &[])).await,
                "save",
            );
            note(
                store.save(&ids[1], &patch(&[("c", 4096)], &["a"])).await,
                "save with a removal",
            );
            note(
                store
                    .regenerate(&ids[2], &SessionId::generate(), &patch(&[("c", 4096)], &[]))
                    .await,
                "regenerate",
            );
            note(
                store
                    .create(&SessionId::generate(), &patch(&[("c", 4096)], &[]))
                    .await,
                "create",
            );
            note(
                store
                    .touch(&ids[3], SystemTime::now() + Duration::from_secs(900))
                    .await,
                "refresh",
            );
        }
        for what in [
            "save",
            "save with a removal",
            "regenerate",
            "create",
            "refresh",
        ] {
            let refused = refusals.get(what).copied().unwrap_or(0);
            assert_eq!(
                refused, 50,
                "{layout:?}: {what} refused {refused} times of 50"
            );
        }
        let after = session_memory(&server.url());
        assert_eq!(after.1, before.1, "{layout:?}: no session was added");
        assert!(
            after.0 <= before.0,
            "{layout:?}: the sessions grew from {before:?} to {after:?} bytes while refusing writes"
        );
        // Nothing was half-applied: the untouched refresh target holds what it held.
        let record = store
            .load(&ids[3], session_runtime::store::LoadKeys::All)
            .await
            .unwrap()
            .expect("still there");
        assert_eq!(record.fields.len(), 2, "{layout:?}");
    }
}

/// A read whose throttled refresh is due while Redis refuses writes is served (200, its
/// data), not failed; the failed refresh is logged once.
#[tokio::test]
async fn a_read_is_served_when_its_refresh_is_refused() {
    if !can_start_servers("refresh under maxmemory") {
        return;
    }
    let (_guard, logs) = session_suite::logs::capture();
    for layout in LAYOUTS {
        let server = limited_server();
        let app = app(
            SessionLayer::new(store(&server, layout).await, Key::generate())
                .with_expiry_refresh_interval(Duration::ZERO),
        );
        let response = send(&app, request("POST", "/add", None, "kept")).await;
        let cookie = cookie_pair(&response);
        fill(&server.url());
        tokio::time::sleep(Duration::from_millis(20)).await;
        for _ in 0..3 {
            let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
            assert_eq!(response.status(), StatusCode::OK, "{layout:?}");
            assert_eq!(text(response).await, "kept", "{layout:?}");
        }
        let response = send(&app, request("POST", "/add", Some(&cookie), "more")).await;
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{layout:?}: a write is refused, clearly"
        );
    }
    let logged = logs.text();
    assert_eq!(
        logged
            .matches("could not refresh a session's expiry")
            .count(),
        1,
        "logged once: {logged}"
    );
}

/// With a per-session limit, a write that would make a session larger is refused with a
/// clear error and writes nothing, in both layouts and for every kind of write; replacing or
/// removing values frees room again (in the hash layout, where the size is exact).
#[tokio::test]
async fn a_session_over_the_stores_size_limit_is_refused_and_nothing_changes() {
    use session_runtime::store::LoadKeys;

    if !can_start_servers("size limit") {
        return;
    }
    let server = RedisServer::start();
    for layout in LAYOUTS {
        let store = store(&server, layout).await.with_max_session_bytes(2_000);
        let id = SessionId::generate();
        store.create(&id, &patch(&[("a", 900)], &[])).await.unwrap();
        let too_large = |result: Result<Option<SessionId>, StoreError>, what: &str| {
            let err = result.expect_err(what);
            assert!(
                matches!(err, StoreError::Rejected(_)),
                "{layout:?} {what}: {err:?}"
            );
            let report = session_suite::report(&err);
            assert!(report.contains("per-session size limit"), "{report}");
        };
        too_large(store.save(&id, &patch(&[("b", 1_500)], &[])).await, "save");
        too_large(
            store
                .create(&SessionId::generate(), &patch(&[("a", 2_500)], &[]))
                .await,
            "create",
        );
        let new = SessionId::generate();
        too_large(
            store
                .regenerate(&id, &new, &patch(&[("b", 1_500)], &[]))
                .await,
            "regenerate",
        );
        let record = store
            .load(&id, LoadKeys::All)
            .await
            .unwrap()
            .expect("not moved");
        assert_eq!(record.fields.len(), 1, "{layout:?}: nothing written");
        assert!(store.load(&new, LoadKeys::All).await.unwrap().is_none());
        // A refresh is never refused for size.
        store
            .touch(&id, SystemTime::now() + Duration::from_secs(900))
            .await
            .unwrap();
        if layout == RedisLayout::Hash {
            // Replacing `a` with a smaller value, or removing it, makes room.
            store.save(&id, &patch(&[("a", 100)], &[])).await.unwrap();
            store.save(&id, &patch(&[("b", 1_500)], &[])).await.unwrap();
            too_large(
                store.save(&id, &patch(&[("c", 500)], &[])).await,
                "save again",
            );
            store
                .save(&id, &patch(&[("c", 500)], &["b"]))
                .await
                .unwrap();
            let record = store.load(&id, LoadKeys::All).await.unwrap().unwrap();
            let mut keys: Vec<&str> = record.fields.keys().map(|k| k.as_str()).collect();
            keys.sort_unstable();
            assert_eq!(keys, ["a", "c"], "the size field stays hidden");
        }
    }
    // The bookkeeping keeps the whole store contract.
    for layout in LAYOUTS {
        let limited = store(&server, layout).await.with_max_session_bytes(1 << 20);
        session_runtime::conformance::check(limited)
            .await
            .unwrap_or_else(|violations| panic!("{layout:?}: {violations}"));
    }
    // Without a limit, the same writes pass.
    let store = store(&server, RedisLayout::Hash).await;
    let id = SessionId::generate();
    store.create(&id, &patch(&[("a", 900)], &[])).await.unwrap();
    store.save(&id, &patch(&[("b", 1_500)], &[])).await.unwrap();
}
