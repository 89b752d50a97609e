//! `RedisStore` against real Redis servers: the shared one (with a unique key prefix) and
//! private ones this test starts, kills and restarts (a persistent single server and a
//! 3-master cluster).

use std::time::{Duration, SystemTime};

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    routing::{get, post},
    Router,
};
use redis::{sentinel::SentinelNodeConnectionInfo, RedisConnectionInfo};
use session_runtime::{
    conformance,
    store::{LoadKeys, Patch},
    DecodePolicy, Key, RedisLayout, RedisStore, SessionData, SessionId, SessionLayer, SessionStore,
    StoreError, TypedSession,
};
use session_suite::http::{cookie_pair, id_of, request, send, text};
use session_suite::{
    redis_harness::{
        self, bytes_sent_for, can_start_servers, command_calls, info, shared_redis_url,
        unique_prefix, RedisCluster, RedisServer, SentinelSetup,
    },
    Call, Recording,
};

/// The shared server's store in the hash layout under a fresh prefix, or `None` (skipped).
async fn shared_store(test: &str) -> Option<RedisStore> {
    redis_harness::shared_store(test, RedisLayout::Hash).await
}

#[derive(SessionData, Debug)]
struct Cart {
    items: Vec<String>,
    theme: String,
}

async fn add(mut cart: TypedSession<Cart>, item: String) -> String {
    cart.items_mut().push(item);
    cart.items().len().to_string()
}

async fn show(cart: TypedSession<Cart>) -> String {
    format!("{:?}", cart.items())
}

fn app<S: SessionStore + Clone>(store: S) -> Router {
    Router::new()
        .route("/add", post(add))
        .route("/show", get(show))
        // Short-lived: these sessions live on a shared server.
        .layer(
            SessionLayer::new(store, Key::generate()).with_idle_timeout(Duration::from_secs(300)),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_passes_the_conformance_suite() {
    let Some(store) = shared_store("conformance").await else {
        return;
    };
    conformance::run(store).await;
}

/// Fields of a schema with its own codec (bytes that are not text) travel to Redis and back
/// byte for byte, beside JSON ones.
#[tokio::test]
async fn redis_store_keeps_each_schemas_encoding() {
    let Some(store) = shared_store("codecs").await else {
        return;
    };
    session_suite::codec::check_codecs_side_by_side(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_passes_the_conformance_suite_on_a_cluster() {
    if !can_start_servers("cluster conformance") {
        return;
    }
    let cluster = RedisCluster::start(3);
    let store = RedisStore::connect_cluster(cluster.urls())
        .await
        .expect("connect to the cluster");
    conformance::run(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerate_works_across_cluster_slots() {
    if !can_start_servers("cluster regenerate") {
        return;
    }
    let cluster = RedisCluster::start(3);
    for layout in [RedisLayout::Hash, RedisLayout::Log] {
        regenerate_across_slots(&cluster, layout).await;
    }
}

async fn regenerate_across_slots(cluster: &RedisCluster, layout: RedisLayout) {
    let store = RedisStore::connect_cluster(cluster.urls())
        .await
        .unwrap()
        .with_layout(layout);
    let urls = cluster.urls();
    let mut keyslot = redis::Client::open(urls[0].as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let slot = |conn: &mut redis::Connection, key: &str| -> i64 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(conn)
            .unwrap()
    };
    let later = SystemTime::now() + Duration::from_secs(60);
    let mut id = SessionId::generate();
    store
        .create(
            &id,
            &Patch {
                set: vec![("n".into(), b"0".to_vec().into())],
                remove: vec![],
                expires_at: later,
            },
        )
        .await
        .unwrap();
    let mut crossed = 0;
    for n in 1..=10u8 {
        let new = SessionId::generate();
        if slot(&mut keyslot, &store.key(&id)) != slot(&mut keyslot, &store.key(&new)) {
            crossed += 1;
        }
        let patch = Patch {
            set: vec![("n".into(), n.to_string().into_bytes().into())],
            remove: vec![],
            expires_at: later,
        };
        store.regenerate(&id, &new, &patch).await.unwrap();
        assert!(
            store.load(&id, LoadKeys::All).await.unwrap().is_none(),
            "old ID dead"
        );
        let record = store.load(&new, LoadKeys::All).await.unwrap().unwrap();
        assert_eq!(record.fields["n"], n.to_string().into_bytes());
        id = new;
    }
    assert!(crossed > 0, "at least one move crossed slots");

    // A regenerate that moves an unreadable record aside puts it back as it was.
    let client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    let id = SessionId::generate();
    let key = store.key(&id);
    redis::cmd("SET")
        .arg(&key)
        .arg("not a session")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let new = SessionId::generate();
    let patch = Patch {
        set: vec![("n".into(), b"1".to_vec().into())],
        remove: vec![],
        expires_at: later,
    };
    let result = store.regenerate(&id, &new, &patch).await;
    assert!(
        matches!(result, Err(StoreError::Corrupt(_))),
        "{layout:?}: {result:?}"
    );
    let left: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        left.as_deref(),
        Some("not a session"),
        "{layout:?}: put back under its ID"
    );
    let aside: bool = redis::cmd("EXISTS")
        .arg(format!("{key}:moving"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!aside, "{layout:?}: nothing left aside");
    assert!(
        store.load(&new, LoadKeys::All).await.unwrap().is_none(),
        "{layout:?}: nothing under the new ID"
    );
}

#[tokio::test]
async fn sessions_are_hashes_with_one_field_per_session_field() {
    let Some(store) = shared_store("layout").await else {
        return;
    };
    let app = app(store.clone());
    let response = send(&app, request("POST", "/add", None, "apple")).await;
    let id = id_of(&cookie_pair(&response));
    let mut conn = redis::Client::open(shared_redis_url().unwrap().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = store.key(&id);
    let kind: String = redis::cmd("TYPE")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kind, "hash");
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut fields = fields;
    fields.sort();
    assert_eq!(fields, ["__created", "__exp", "__v.Cart", "items"]);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        (290_000..=300_000).contains(&ttl),
        "the idle timeout (300 s) became the TTL: {ttl}"
    );
}

#[tokio::test]
async fn over_redis_a_read_writes_nothing_and_an_update_writes_one_field() {
    let Some(store) = shared_store("layer").await else {
        return;
    };
    let store = Recording::new(store);
    let app = app(store.clone());
    let response = send(&app, request("POST", "/add", None, "apple")).await;
    let cookie = cookie_pair(&response);
    store.take_calls();
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    assert_eq!(text(response).await, r#"["apple"]"#);
    assert!(matches!(store.take_calls()[..], [Call::Load(_)]));
    send(&app, request("POST", "/add", Some(&cookie), "pear")).await;
    let calls = store.take_calls();
    let [Call::Load(_), Call::Save(patch)] = &calls[..] else {
        panic!("{calls:?}")
    };
    assert_eq!(patch.set.len(), 1);
    assert_eq!(patch.set[0].0, "items");
}

#[derive(SessionData)]
struct Wide {
    a: u8,
    b: u8,
    c: u8,
    d: u8,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_redis_concurrent_requests_changing_different_fields_all_survive() {
    let Some(store) = shared_store("layer-concurrency").await else {
        return;
    };
    let app = Router::new()
        .route(
            "/set/{field}",
            post(
                |axum::extract::Path(field): axum::extract::Path<String>,
                 mut wide: TypedSession<Wide>| async move {
                    match field.as_str() {
                        "a" => wide.set_a(1),
                        "b" => wide.set_b(2),
                        "c" => wide.set_c(3),
                        _ => wide.set_d(4),
                    }
                },
            ),
        )
        .route(
            "/sum",
            get(|wide: TypedSession<Wide>| async move {
                format!("{}{}{}{}", wide.a(), wide.b(), wide.c(), wide.d())
            }),
        )
        .layer(SessionLayer::new(store, Key::generate()));
    let response = send(&app, request("POST", "/set/a", None, "")).await;
    let cookie = cookie_pair(&response);
    for _ in 0..10 {
        let tasks: Vec<_> = ["b", "c", "d"]
            .into_iter()
            .map(|f| {
                let (app, cookie) = (app.clone(), cookie.clone());
                tokio::spawn(async move {
                    send(
                        &app,
                        request("POST", &format!("/set/{f}"), Some(&cookie), ""),
                    )
                    .await
                    .status()
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), StatusCode::OK);
        }
    }
    let response = send(&app, request("GET", "/sum", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "1234");
}

#[tokio::test]
async fn garbage_in_redis_falls_back_per_field_and_never_panics() {
    let Some(store) = shared_store("garbage").await else {
        return;
    };
    let signing = Key::generate();
    let with_policy = |policy| {
        Router::new()
            .route("/add", post(add))
            .route("/show", get(show))
            .layer(SessionLayer::new(store.clone(), signing.clone()).with_decode_policy(policy))
    };
    let app = with_policy(DecodePolicy::Lenient);
    let response = send(&app, request("POST", "/add", None, "apple")).await;
    let cookie = cookie_pair(&response);
    let key = store.key(&id_of(&cookie));
    let mut conn = redis::Client::open(shared_redis_url().unwrap().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for (field, value) in [
        ("items", &b"\xff\x00not json"[..]),
        ("__created", b"yesterday"),
        ("__exp", b"-12"),
        ("__v.Cart", b"[]"),
    ] {
        redis::cmd("HSET")
            .arg(&key)
            .arg(field)
            .arg(value)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "[]");
    // A hash that is not a session at all.
    redis::cmd("DEL")
        .arg(&key)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    redis::cmd("SET")
        .arg(&key)
        .arg("a string")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    // Unreadable, not unavailable: the visitor gets a new session (read-only: no cookie
    // yet), and the data under the old ID is left alone.
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "[]");
    let response = send(&app, request("POST", "/add", Some(&cookie), "pear")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let fresh = cookie_pair(&response);
    assert_ne!(
        id_of(&fresh),
        id_of(&cookie),
        "a new ID, never the unreadable one"
    );
    let response = send(&app, request("GET", "/show", Some(&fresh), "")).await;
    assert_eq!(text(response).await, r#"["pear"]"#);
    let left: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, "a string", "the unreadable data is not overwritten");
    // Under the strict policy it is an error, a 500: trying again would not help.
    let strict = with_policy(DecodePolicy::Strict);
    let response = send(&strict, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let response = send(&strict, request("POST", "/add", Some(&cookie), "plum")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let left: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, "a string");
    redis::cmd("DEL")
        .arg(&key)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_gives_503s_then_recovers_without_losing_acknowledged_writes() {
    if !can_start_servers("restart") {
        return;
    }
    let mut server = RedisServer::start_persistent();
    let store = RedisStore::connect(server.url().as_str()).await.unwrap();
    let app = app(store);
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = cookie_pair(&response);
    for item in ["b", "c"] {
        let response = send(&app, request("POST", "/add", Some(&cookie), item)).await;
        assert_eq!(response.status(), StatusCode::OK, "acknowledged");
    }

    server.kill();
    for _ in 0..3 {
        let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = send(&app, request("POST", "/add", Some(&cookie), "lost")).await;
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "a failed save is not an OK"
        );
    }

    server.restart();
    // The same app instance recovers by itself (the connection reconnects).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let body = loop {
        let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
        if response.status() == StatusCode::OK {
            break text(response).await;
        }
        assert!(std::time::Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        body, r#"["a", "b", "c"]"#,
        "every acknowledged write survived"
    );
    let response = send(&app, request("POST", "/add", Some(&cookie), "d")).await;
    assert_eq!(text(response).await, "4");
}

/// Once a call finds Redis down, the others fail at once without being sent: with probes an
/// hour apart, a restarted server receives nothing from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_calls_are_not_sent_until_a_probe_is_due() {
    if !can_start_servers("outage") {
        return;
    }
    let (_guard, logs) = session_suite::logs::capture();
    let mut server = RedisServer::start();
    let store = RedisStore::connect(server.url())
        .await
        .unwrap()
        .with_outage_probe(Duration::from_secs(3600), Duration::from_millis(500));
    let app = app(store);
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = cookie_pair(&response);

    server.kill();
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    server.restart();
    let commands = ["hgetall", "ping", "evalsha", "eval", "set"];
    // The harness's own PING, that saw the server up.
    let before = commands.map(|command| command_calls(&server.url(), command));
    for (method, uri, body) in [("GET", "/show", ""), ("POST", "/add", "b")] {
        for _ in 0..5 {
            let response = send(&app, request(method, uri, Some(&cookie), body)).await;
            assert_eq!(
                response.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{method} {uri}: no probe is due, so Redis is still taken for down"
            );
        }
    }
    let response = send(&app, request("POST", "/add", None, "new")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    for (command, before) in commands.into_iter().zip(before) {
        assert_eq!(
            command_calls(&server.url(), command),
            before,
            "the restarted server received a {command} while the store took it for down"
        );
    }
    assert_eq!(
        logs.text()
            .matches("Redis is down: failing calls at once")
            .count(),
        1,
        "the outage is logged once, not per call"
    );
}

/// A server that stops answering (frozen: its connections open, nothing answered) costs one
/// call its response timeout; the calls after it are not sent (only the probes' `PING`s
/// are), and once it answers again the same store serves, with every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_stops_answering_costs_one_timeout_then_probes_find_it_back() {
    if !can_start_servers("frozen") {
        return;
    }
    let server = RedisServer::start();
    let store = RedisStore::connect(server.url()).await.unwrap();
    let app = app(store);
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = cookie_pair(&response);
    let response = send(&app, request("POST", "/add", Some(&cookie), "b")).await;
    assert_eq!(text(response).await, "2");
    let (reads, writes) = (
        command_calls(&server.url(), "hgetall"),
        command_calls(&server.url(), "evalsha"),
    );

    server.pause();
    // The first call waits for its response timeout and finds Redis down.
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    for round in 0..10 {
        let response = send(&app, request("POST", "/add", Some(&cookie), "lost")).await;
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{round}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.resume();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let body = loop {
        let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
        if response.status() == StatusCode::OK {
            break text(response).await;
        }
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(std::time::Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(body, r#"["a", "b"]"#, "nothing written while down");
    // The frozen server received the first call's read, then only PINGs: none of the ten
    // writes (each would have read the session first).
    assert_eq!(
        command_calls(&server.url(), "hgetall"),
        reads + 2,
        "the read that met the freeze and the one that recovered"
    );
    assert_eq!(
        command_calls(&server.url(), "evalsha"),
        writes,
        "no write was sent"
    );
    assert!(
        command_calls(&server.url(), "ping") >= 1,
        "the probes' PINGs"
    );
}

#[derive(SessionData)]
struct Big21 {
    counter: u64,
    s01: String,
    s02: String,
    s03: String,
    s04: String,
    s05: String,
    s06: String,
    s07: String,
    s08: String,
    s09: String,
    s10: String,
    s11: String,
    s12: String,
    s13: String,
    s14: String,
    s15: String,
    s16: String,
    s17: String,
    s18: String,
    s19: String,
    s20: String,
}

#[tokio::test]
async fn an_update_of_one_field_sends_a_small_flat_number_of_bytes() {
    if !can_start_servers("bytes") {
        return;
    }
    let server = RedisServer::start();
    let url = server.url();
    let store = RedisStore::connect(url.as_str()).await.unwrap();
    let app = Router::new()
        .route(
            "/fill",
            post(|mut s: TypedSession<Big21>| async move {
                let long = || "x".repeat(100);
                s.set_s01(long());
                s.set_s02(long());
                s.set_s03(long());
                s.set_s04(long());
                s.set_s05(long());
                s.set_s06(long());
                s.set_s07(long());
                s.set_s08(long());
                s.set_s09(long());
                s.set_s10(long());
                s.set_s11(long());
                s.set_s12(long());
                s.set_s13(long());
                s.set_s14(long());
                s.set_s15(long());
                s.set_s16(long());
                s.set_s17(long());
                s.set_s18(long());
                s.set_s19(long());
                s.set_s20(long());
            }),
        )
        .route(
            "/bump",
            post(|mut s: TypedSession<Big21>| async move {
                *s.counter_mut() += 1;
                s.counter().to_string()
            }),
        )
        .route(
            "/grow",
            post(|mut s: TypedSession<Cart>| async move {
                s.items_mut()
                    .extend((0..200).map(|i| format!("item {i} {}", "y".repeat(50))));
            }),
        )
        .layer(SessionLayer::new(store, Key::generate()));
    let response = send(&app, request("POST", "/fill", None, "")).await;
    let cookie = cookie_pair(&response);
    let bump = || request("POST", "/bump", Some(&cookie), "");
    // Warm up: scripts loaded, connection set up.
    bytes_sent_for(&url, &app, 1, bump).await;
    let small = bytes_sent_for(&url, &app, 1, bump).await;
    assert!(small <= 240, "an update of one field sent {small} bytes");
    // The session grows by an order of magnitude; the update costs the same.
    send(&app, request("POST", "/grow", Some(&cookie), "")).await;
    let after_growth = bytes_sent_for(&url, &app, 1, bump).await;
    assert!(
        after_growth.abs_diff(small) <= 2,
        "bytes grew with the session: {small} -> {after_growth}"
    );
    println!("bytes sent to Redis for one update: {small} (after growth: {after_growth})");
}

#[tokio::test]
async fn a_flushed_script_cache_is_reloaded_on_noscript() {
    if !can_start_servers("noscript") {
        return;
    }
    let server = RedisServer::start();
    let store = RedisStore::connect(server.url().as_str()).await.unwrap();
    let app = app(store);
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = cookie_pair(&response);
    let mut conn = redis::Client::open(server.url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let response = send(&app, request("POST", "/add", Some(&cookie), "b")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "2");
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, r#"["a", "b"]"#);
}

/// The least-privilege ACLs the README recommends (for the hash layout, then for the log
/// layout), for the prefix `myapp:session:` and the password `password`.
fn readme_acls() -> Vec<Vec<String>> {
    include_str!("../README.md")
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("ACL SETUSER "))
        .map(|line| line.split_whitespace().skip(1).map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_runs_as_the_readme_least_privilege_acl_user() {
    if !can_start_servers("acl") {
        return;
    }
    let acls = readme_acls();
    assert_eq!(acls.len(), 2, "the README shows one ACL per layout");
    for (acl, layout) in acls.into_iter().zip([RedisLayout::Hash, RedisLayout::Log]) {
        runs_as_acl_user(acl, layout).await;
    }
}

async fn runs_as_acl_user(acl: Vec<String>, layout: RedisLayout) {
    let server = RedisServer::start();
    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut setuser = redis::cmd("ACL");
    for arg in acl {
        setuser.arg(arg);
    }
    setuser.query_async::<()>(&mut admin).await.unwrap();
    let as_user =
        |password: &str| format!("redis://sessions:{password}@127.0.0.1:{}", server.port());

    let store = RedisStore::connect(as_user("password"))
        .await
        .expect("connect as the ACL user")
        .with_key_prefix("myapp:session:")
        .with_layout(layout);
    conformance::run(store.clone()).await;
    if layout == RedisLayout::Log {
        // Compaction's commands are allowed too: the log shrinks.
        let id = SessionId::generate();
        let key = store.key(&id);
        let expires_at = SystemTime::now() + Duration::from_secs(60);
        let patch = |n: usize| Patch {
            set: vec![("n".into(), format!("{n:0>100}").into_bytes().into())],
            remove: Vec::new(),
            expires_at,
        };
        store.create(&id, &patch(0)).await.unwrap();
        for n in 1..40 {
            store.save(&id, &patch(n)).await.unwrap();
        }
        let strlen = |mut admin: redis::aio::MultiplexedConnection| {
            let key = key.clone();
            async move {
                redis::cmd("LRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .query_async::<Vec<Vec<u8>>>(&mut admin)
                    .await
                    .unwrap()
                    .iter()
                    .map(Vec::len)
                    .sum::<usize>()
            }
        };
        let before = strlen(admin.clone()).await;
        store.load(&id, LoadKeys::All).await.unwrap();
        let after = strlen(admin.clone()).await;
        assert!(after < before / 10, "compacted: {before} -> {after}");
    }
    // The layer's whole lifecycle, regenerate and destroy included.
    let lifecycle = Router::new()
        .route("/add", post(add))
        .route("/show", get(show))
        .route(
            "/regenerate",
            post(|mut cart: TypedSession<Cart>| async move { cart.regenerate() }),
        )
        .route(
            "/logout",
            post(|mut cart: TypedSession<Cart>| async move { cart.destroy() }),
        )
        .layer(SessionLayer::new(store.clone(), Key::generate()));
    let response = send(&lifecycle, request("POST", "/add", None, "a")).await;
    let cookie = cookie_pair(&response);
    let response = send(
        &lifecycle,
        request("POST", "/regenerate", Some(&cookie), ""),
    )
    .await;
    let cookie = cookie_pair(&response);
    let response = send(&lifecycle, request("POST", "/add", Some(&cookie), "b")).await;
    assert_eq!(text(response).await, "2");
    let response = send(&lifecycle, request("POST", "/logout", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = send(&lifecycle, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]", "logged out");

    // Keys outside the user's pattern are refused, and that is a store error, not a panic.
    let outside = RedisStore::connect(as_user("password"))
        .await
        .unwrap()
        .with_key_prefix("other:");
    let response = send(&app(outside), request("POST", "/add", None, "a")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    // A wrong password fails to connect, and the error does not repeat the password.
    let err = RedisStore::connect(as_user("not-the-password"))
        .await
        .expect_err("a wrong password is refused");
    let message = session_suite::report(&err);
    assert!(
        message.contains("Password authentication failed"),
        "says why: {message}"
    );
    assert!(!message.contains("not-the-password"), "{message}");
}

/// A store reaching the master through `setup`'s Sentinel, under a fresh key prefix.
async fn through_sentinel(setup: &SentinelSetup, test: &str) -> RedisStore {
    RedisStore::connect_sentinel([setup.sentinel_url()], SentinelSetup::MASTER)
        .await
        .expect("connect through the Sentinel")
        .with_key_prefix(unique_prefix(test))
}

/// Sends `make()` until it answers 200, within 30 s; every other answer must be a 503 (the
/// store between two masters). Returns the response and how many 503s came first.
async fn until_ok(
    app: &Router,
    make: impl Fn() -> Request<Body>,
) -> (axum::response::Response, usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut unavailable = 0;
    loop {
        let response = send(app, make()).await;
        if response.status() == StatusCode::OK {
            return (response, unavailable);
        }
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        unavailable += 1;
        assert!(std::time::Instant::now() < deadline, "no failover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_sentinel_the_store_follows_a_failover_without_losing_replicated_writes() {
    if !can_start_servers("sentinel") {
        return;
    }
    let mut setup = SentinelSetup::start();
    // A master the Sentinels do not know fails at connect, not at the first request.
    let unknown = RedisStore::connect_sentinel([setup.sentinel_url()], "no-such-master").await;
    assert!(unknown.is_err());
    let store = through_sentinel(&setup, "sentinel").await;
    conformance::run(store.clone()).await;

    let app = app(store.clone());
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = cookie_pair(&response);
    let response = send(&app, request("POST", "/add", Some(&cookie), "b")).await;
    assert_eq!(response.status(), StatusCode::OK);
    setup.wait_for_replication();

    setup.master().kill();
    // During the failover requests fail with 503; then the same store serves them from the
    // promoted replica, with every write that had reached it.
    let (response, failed) = until_ok(&app, || request("GET", "/show", Some(&cookie), "")).await;
    assert!(failed > 0, "the master's loss was noticed");
    assert_eq!(text(response).await, r#"["a", "b"]"#);
    let response = send(&app, request("POST", "/add", Some(&cookie), "c")).await;
    assert_eq!(text(response).await, "3");

    // The write landed on the promoted replica, now a master.
    let mut promoted = redis::Client::open(setup.replica().url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut promoted).await.unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
    let items: Option<String> = redis::cmd("HGET")
        .arg(store.key(&id_of(&cookie)))
        .arg("items")
        .query_async(&mut promoted)
        .await
        .unwrap();
    assert_eq!(items.as_deref(), Some(r#"["a","b","c"]"#));
}

/// A failover the operator asks for leaves the old master running, as a replica that
/// answers writes with `READONLY`: the store moves to the new master all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_sentinel_writes_move_to_the_new_master_after_a_manual_failover() {
    if !can_start_servers("sentinel manual failover") {
        return;
    }
    let setup = SentinelSetup::start();
    let store = through_sentinel(&setup, "sentinel-manual").await;
    let app = app(store.clone());
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = cookie_pair(&response);
    setup.wait_for_replication();

    let mut sentinel = redis::Client::open(setup.sentinel_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // Refused (NOGOODSLAVE) until the Sentinel has heard from the replica itself.
    while let Err(err) = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(SentinelSetup::MASTER)
        .query_async::<()>(&mut sentinel)
        .await
    {
        assert!(
            std::time::Instant::now() < deadline,
            "failover refused: {err}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A server closes its clients' connections when its role changes: a fresh one each time.
    let promoted = setup.replica().url();
    while !info(&promoted, "replication").contains("role:master") {
        assert!(std::time::Instant::now() < deadline, "no failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut promoted = redis::Client::open(promoted)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    // Writes fail while the store still talks to the old master, then succeed on the new.
    let added: usize = loop {
        let response = send(&app, request("POST", "/add", Some(&cookie), "b")).await;
        if response.status() == StatusCode::OK {
            let added = text(response).await.parse().unwrap();
            let on_new: Option<String> = redis::cmd("HGET")
                .arg(store.key(&id_of(&cookie)))
                .arg("items")
                .query_async(&mut promoted)
                .await
                .unwrap();
            if on_new.is_some_and(|items| items.matches('b').count() == added - 1) {
                break added;
            }
        } else {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "writes never reached the new master"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(added >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_sentinel_a_password_protected_master_is_reached_with_its_credentials() {
    if !can_start_servers("sentinel with a password") {
        return;
    }
    let mut setup = SentinelSetup::start_with_password(Some("s3cret"));
    // Without the master's password the store fails at connect, saying why.
    let err = RedisStore::connect_sentinel([setup.sentinel_url()], SentinelSetup::MASTER)
        .await
        .expect_err("the master asks for a password");
    let message = session_suite::report(&err);
    assert!(message.contains("NOAUTH"), "{message}");

    let master = SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(RedisConnectionInfo::default().set_password("s3cret"));
    let store =
        RedisStore::connect_sentinel_with([setup.sentinel_url()], SentinelSetup::MASTER, master)
            .await
            .expect("connect with the master's password")
            .with_key_prefix(unique_prefix("sentinel-auth"));
    let app = app(store);
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = cookie_pair(&response);

    // The promoted replica asks for the same password: the store reaches it too.
    setup.wait_for_replication();
    setup.master().kill();
    until_ok(&app, || request("POST", "/add", Some(&cookie), "b")).await;
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    let items = text(response).await;
    assert!(items.ends_with(r#""b"]"#), "{items}");
}

/// While the master is gone, a burst of requests does not turn into a burst of connections
/// to the Sentinels: one call at a time asks them, and calls right after a failed attempt
/// fail without asking again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn through_sentinel_a_burst_during_a_failover_asks_the_sentinels_a_few_times_only() {
    if !can_start_servers("sentinel burst") {
        return;
    }
    let mut setup = SentinelSetup::start();
    let store = through_sentinel(&setup, "sentinel-burst").await;
    let app = app(store);
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = cookie_pair(&response);

    setup.master().kill();
    // The first request after the kill finds the connection dead.
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let connections = || {
        info(&setup.sentinel_url(), "stats")
            .lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .expect("total_connections_received")
    };
    let before = connections();
    let burst: Vec<_> = (0..200)
        .map(|_| {
            let (app, cookie) = (app.clone(), cookie.clone());
            tokio::spawn(async move {
                send(&app, request("GET", "/show", Some(&cookie), ""))
                    .await
                    .status()
            })
        })
        .collect();
    for request in burst {
        let status = request.await.unwrap();
        assert!(
            status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::OK,
            "{status}"
        );
    }
    // One for each INFO of this test, and a few resolution attempts.
    let asked = connections() - before;
    assert!(
        asked <= 20,
        "{asked} connections to the Sentinel for 200 requests"
    );
}

/// A URL read from configuration, as a `String`, connects as it is.
#[tokio::test]
async fn connect_takes_the_url_as_any_string() {
    let Some(url) = shared_redis_url() else {
        return;
    };
    let owned: String = url.clone();
    let store = RedisStore::connect(&owned).await.unwrap();
    let id = SessionId::generate();
    assert!(store.load(&id, LoadKeys::All).await.unwrap().is_none());
    assert!(RedisStore::connect(owned).await.is_ok());
}
