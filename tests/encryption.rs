//! Encryption at rest (`SessionLayer::with_encryption`), on every server-side store: what
//! the store holds is not the values (searched for in the raw store: Redis keys, SQL rows),
//! values swapped between sessions or fields do not open, key rotation, a key the layer
//! does not have, switching encryption on over plaintext sessions, the session index and
//! concurrent writes to different fields, all with encryption on.

use std::{
    borrow::Cow,
    time::{Duration, SystemTime},
};

use axum::{
    body::Bytes,
    extract::Path,
    http::StatusCode,
    routing::{get, post},
    Router,
};
use session_runtime::{
    store::{LoadKeys, Patch},
    DecodePolicy, Encryption, Key, RedisLayout, RedisStore, SessionData, SessionError, SessionId,
    SessionLayer, SessionStore, TypedSession,
};
use session_suite::{
    http::Browser,
    redis_harness::{can_start_servers, shared_redis_url, unique_prefix, RedisCluster},
    sql_harness::Made,
};

#[derive(SessionData)]
#[session(namespace = "vault")]
struct Vault {
    #[session(index)]
    user_id: Option<u64>,
    token: String,
    note: String,
    visits: u64,
}

/// Sixteen fields, for concurrent writes to different ones.
#[derive(SessionData)]
#[session(namespace = "wide")]
struct Wide {
    f0: u32,
    f1: u32,
    f2: u32,
    f3: u32,
    f4: u32,
    f5: u32,
    f6: u32,
    f7: u32,
    f8: u32,
    f9: u32,
    f10: u32,
    f11: u32,
    f12: u32,
    f13: u32,
    f14: u32,
    f15: u32,
}

const WIDE: usize = 16;

async fn login(
    mut vault: TypedSession<Vault>,
    Path((user, token)): Path<(u64, String)>,
) -> &'static str {
    vault.set_user_id(Some(user));
    vault.set_token(token);
    vault.regenerate();
    "in"
}

async fn note(mut vault: TypedSession<Vault>, Path(text): Path<String>) -> &'static str {
    vault.set_note(text);
    "noted"
}

async fn visit(mut vault: TypedSession<Vault>) -> &'static str {
    *vault.visits_mut() += 1;
    "visited"
}

/// Saves a new session early, then changes it again in the same request.
async fn early(
    mut vault: TypedSession<Vault>,
    Path(text): Path<String>,
) -> Result<String, SessionError> {
    vault.set_note(text);
    vault.save().await?;
    *vault.visits_mut() += 1;
    Ok(show(vault).await)
}

async fn show(vault: TypedSession<Vault>) -> String {
    format!(
        "{}|{}|{}|{}",
        vault.user_id().map_or("-".to_owned(), |u| u.to_string()),
        vault.token(),
        vault.note(),
        vault.visits()
    )
}

async fn tokens(vault: TypedSession<Vault>) -> Result<String, SessionError> {
    let sessions = vault.sessions(Vault::by_user_id()).await?;
    let mut tokens: Vec<String> = sessions
        .iter()
        .map(|s| s.data::<Vault>().token.clone())
        .collect();
    tokens.sort();
    Ok(tokens.join(","))
}

async fn bump(mut wide: TypedSession<Wide>, Path(n): Path<usize>) -> &'static str {
    let field = match n {
        0 => wide.f0_mut(),
        1 => wide.f1_mut(),
        2 => wide.f2_mut(),
        3 => wide.f3_mut(),
        4 => wide.f4_mut(),
        5 => wide.f5_mut(),
        6 => wide.f6_mut(),
        7 => wide.f7_mut(),
        8 => wide.f8_mut(),
        9 => wide.f9_mut(),
        10 => wide.f10_mut(),
        11 => wide.f11_mut(),
        12 => wide.f12_mut(),
        13 => wide.f13_mut(),
        14 => wide.f14_mut(),
        _ => wide.f15_mut(),
    };
    *field += 1;
    "bumped"
}

async fn wide(wide: TypedSession<Wide>) -> String {
    [
        wide.f0(),
        wide.f1(),
        wide.f2(),
        wide.f3(),
        wide.f4(),
        wide.f5(),
        wide.f6(),
        wide.f7(),
        wide.f8(),
        wide.f9(),
        wide.f10(),
        wide.f11(),
        wide.f12(),
        wide.f13(),
        wide.f14(),
        wide.f15(),
    ]
    .map(|v| v.to_string())
    .join(",")
}

fn routes(layer: SessionLayer) -> Router {
    Router::new()
        .route("/login/{user}/{token}", post(login))
        .route("/note/{text}", post(note))
        .route("/visit", post(visit))
        .route("/early/{text}", post(early))
        .route("/show", get(show))
        .route("/tokens", get(tokens))
        .route("/bump/{n}", post(bump))
        .route("/wide", get(wide))
        .layer(layer)
}

fn sealed_layer<S: SessionStore>(store: S, key: &Key) -> SessionLayer {
    SessionLayer::new(store, key.clone()).with_encryption(Encryption::On)
}

/// Where a test's records live, to read them as the backend holds them.
enum Raw {
    /// The store's own records (a `MemoryStore` has no other form).
    Loads,
    /// Every key under a prefix, on each of these Redis servers.
    Redis { urls: Vec<String>, prefix: String },
    /// The fields table of a SQL store.
    Sql(Made),
}

/// Every byte string the backend holds for the test, with where it was found.
async fn dump<S: SessionStore>(raw: &Raw, store: &S, ids: &[SessionId]) -> Vec<(String, Vec<u8>)> {
    match raw {
        Raw::Loads => {
            let mut out = Vec::new();
            for id in ids {
                if let Some(record) = store.load(id, LoadKeys::All).await.expect("load") {
                    for (key, value) in record.fields.iter() {
                        out.push((key.to_string(), value.to_vec()));
                    }
                }
            }
            out
        }
        Raw::Redis { urls, prefix } => {
            let mut out = Vec::new();
            for url in urls {
                let client = redis::Client::open(url.as_str()).expect("a Redis URL");
                let mut conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("connect to Redis");
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{prefix}*"))
                    .query_async(&mut conn)
                    .await
                    .expect("KEYS");
                for key in keys {
                    let kind: String = redis::cmd("TYPE")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .expect("TYPE");
                    let values: Vec<Vec<u8>> = match kind.as_str() {
                        "hash" => redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await,
                        "string" => redis::cmd("GET")
                            .arg(&key)
                            .query_async(&mut conn)
                            .await
                            .map(|v: Vec<u8>| vec![v]),
                        "list" => {
                            redis::cmd("LRANGE")
                                .arg(&key)
                                .arg(0)
                                .arg(-1)
                                .query_async(&mut conn)
                                .await
                        }
                        "zset" => {
                            redis::cmd("ZRANGE")
                                .arg(&key)
                                .arg(0)
                                .arg(-1)
                                .query_async(&mut conn)
                                .await
                        }
                        "set" => {
                            redis::cmd("SMEMBERS")
                                .arg(&key)
                                .query_async(&mut conn)
                                .await
                        }
                        other => panic!("{key}: a Redis {other} the test does not read"),
                    }
                    .expect("read a key");
                    out.extend(values.into_iter().map(|v| (key.clone(), v)));
                }
            }
            assert!(!out.is_empty(), "the test's Redis keys were found");
            out
        }
        Raw::Sql(made) => made.stored_rows().await,
    }
}

/// Whether `needle` occurs in any byte string of the dump.
fn found(dump: &[(String, Vec<u8>)], needle: &str) -> Option<String> {
    dump.iter()
        .find(|(_, v)| v.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .map(|(k, _)| k.clone())
}

fn random() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(SystemTime::now())
}

fn user() -> u64 {
    random() >> 32
}

fn secret(what: &str) -> String {
    format!("{what}-{:016x}", random())
}

async fn logged_in(app: &Router, user: u64, token: &str) -> Browser {
    let mut browser = Browser::default();
    browser
        .ok(app, "POST", &format!("/login/{user}/{token}"))
        .await;
    browser
}

/// A raw write to one stored value of a session, as someone with access to the store
/// could make.
async fn overwrite<S: SessionStore>(store: &S, id: &SessionId, key: &'static str, value: Bytes) {
    let patch = Patch {
        set: vec![(Cow::Borrowed(key), value)],
        remove: Vec::new(),
        expires_at: SystemTime::now() + Duration::from_secs(600),
    };
    store.save(id, &patch).await.expect("a raw save");
}

async fn stored<S: SessionStore>(store: &S, id: &SessionId, key: &str) -> Option<Bytes> {
    let record = store.load(id, LoadKeys::All).await.expect("load")?;
    record.fields.get(key).cloned()
}

/// Values reach the store sealed, come back whole (through regenerate, a listing and a
/// later schema), and nothing of them is in the raw store.
async fn values_are_sealed_in_the_store<S: SessionStore + Clone>(store: S, raw: &Raw) {
    let key = Key::generate();
    let layer = sealed_layer(store.clone(), &key);
    let app = routes(layer.clone());
    let (ada, token, text) = (user(), secret("token"), secret("note"));
    let mut browser = logged_in(&app, ada, &token).await;
    browser.ok(&app, "POST", &format!("/note/{text}")).await;
    browser.ok(&app, "POST", "/visit").await;
    assert_eq!(
        browser.ok(&app, "GET", "/show").await,
        format!("{ada}|{token}|{text}|1")
    );
    let phone_token = secret("token");
    let phone = logged_in(&app, ada, &phone_token).await;
    let mut expected = [token.clone(), phone_token.clone()];
    expected.sort();
    assert_eq!(
        browser.ok(&app, "GET", "/tokens").await,
        expected.join(","),
        "a listing opens each session's values"
    );
    let listed = layer
        .sessions()
        .list(Vault::by_user_id(), &ada)
        .await
        .expect("list");
    assert_eq!(listed.len(), 2);

    let ids = [browser.id(), phone.id()];
    let dump = dump(raw, &store, &ids).await;
    for needle in [&token, &phone_token, &text] {
        assert_eq!(found(&dump, needle), None, "{needle} is stored in clear");
    }
    // The store's own view: each value is its plaintext plus nonce and tag, and the data
    // key is stored (sealed).
    let record = store
        .load(&ids[0], LoadKeys::All)
        .await
        .expect("load")
        .expect("stored");
    let token_len = record.fields.get("vault.token").map(|v| v.len());
    assert_eq!(token_len, Some(format!("\"{token}\"").len() + 28));
    assert_eq!(record.fields.get("__dk").map(|v| v.len()), Some(60));
    assert_eq!(
        record.fields.get("__ix.vault.user_id").map(|v| &v[..]),
        Some(ada.to_string().as_bytes()),
        "index terms stay in clear: the index looks them up"
    );

    // Another schema of the same session, loaded later in a request, opens too.
    browser.ok(&app, "POST", "/bump/3").await;
    assert_eq!(
        browser.ok(&app, "GET", "/wide").await,
        "0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0"
    );
    assert_eq!(
        browser.ok(&app, "GET", "/show").await,
        format!("{ada}|{token}|{text}|1")
    );
}

/// A sealed value copied to another session, or to another field of its own session, does
/// not open: that field reads as its default and the others survive; under the strict
/// decode policy the request fails.
async fn swapped_values_do_not_open<S: SessionStore + Clone>(store: S) {
    let key = Key::generate();
    let app = routes(sealed_layer(store.clone(), &key));
    let (ada, bob) = (user(), user());
    let (ada_token, bob_token) = (secret("ada"), secret("bob"));
    let mut ada_browser = logged_in(&app, ada, &ada_token).await;
    let mut bob_browser = logged_in(&app, bob, &bob_token).await;
    bob_browser.ok(&app, "POST", "/note/bobs-note").await;
    let (ada_id, bob_id) = (ada_browser.id(), bob_browser.id());

    let sealed_token = stored(&store, &ada_id, "vault.token")
        .await
        .expect("ada's token is stored");
    overwrite(&store, &bob_id, "vault.token", sealed_token.clone()).await;
    overwrite(&store, &ada_id, "vault.note", sealed_token).await;

    assert_eq!(
        bob_browser.ok(&app, "GET", "/show").await,
        format!("{bob}||bobs-note|0"),
        "another session's value reads as the field's default"
    );
    assert_eq!(
        ada_browser.ok(&app, "GET", "/show").await,
        format!("{ada}|{ada_token}||0"),
        "another field's value reads as the field's default"
    );

    let strict = routes(sealed_layer(store.clone(), &key).with_decode_policy(DecodePolicy::Strict));
    let (status, _) = bob_browser.call(&strict, "GET", "/show").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);

    // A write of the field replaces the value that did not open.
    bob_browser.ok(&app, "POST", "/login/7/fresh").await;
    assert_eq!(
        bob_browser.ok(&strict, "GET", "/show").await,
        "7|fresh|bobs-note|0"
    );
}

/// Rotation: sessions sealed under the old key open with it as a previous key, and their
/// data key is sealed again under the new key on that request (once), so the old key can
/// go; a key the layer does not have opens nothing.
async fn keys_rotate<S: SessionStore + Clone>(store: S) {
    let (old, new, unknown) = (Key::generate(), Key::generate(), Key::generate());
    let before = routes(sealed_layer(store.clone(), &old));
    let (ada, token) = (user(), secret("token"));
    let mut browser = logged_in(&before, ada, &token).await;
    let id = browser.id();
    let sealed_before = stored(&store, &id, "__dk").await.expect("a data key");
    let token_before = stored(&store, &id, "vault.token").await;

    let rotated = routes(sealed_layer(store.clone(), &new).with_previous_keys([&old]));
    assert_eq!(
        browser.ok(&rotated, "GET", "/show").await,
        format!("{ada}|{token}||0")
    );
    let sealed_after = stored(&store, &id, "__dk").await.expect("a data key");
    assert_ne!(sealed_before, sealed_after, "the data key is sealed again");
    assert_eq!(
        stored(&store, &id, "vault.token").await,
        token_before,
        "the fields are not rewritten"
    );
    browser.ok(&rotated, "GET", "/show").await;
    assert_eq!(
        stored(&store, &id, "__dk").await,
        Some(sealed_after),
        "once"
    );

    let old_gone = routes(sealed_layer(store.clone(), &new));
    assert_eq!(
        browser.ok(&old_gone, "GET", "/show").await,
        format!("{ada}|{token}||0"),
        "the old key is no longer needed"
    );

    // A layer that verifies the cookie but has none of the sealing keys.
    let stranger = sealed_layer(store.clone(), &unknown);
    let mut impostor = Browser {
        cookie: Some(stranger.cookie_for(&id)),
    };
    let stranger_app = routes(stranger);
    assert_eq!(
        impostor.ok(&stranger_app, "GET", "/show").await,
        "-|||0",
        "values sealed under an unknown key read as defaults"
    );
    let strict = sealed_layer(store.clone(), &unknown).with_decode_policy(DecodePolicy::Strict);
    let mut strict_browser = Browser {
        cookie: Some(strict.cookie_for(&id)),
    };
    let (status, _) = strict_browser.call(&routes(strict), "GET", "/show").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

/// Switching encryption on over sessions stored in clear: `On` reads them as defaults;
/// `AcceptingPlaintext` reads them and seals each field the app writes.
async fn plaintext_sessions_when_switching_on<S: SessionStore + Clone>(store: S, raw: &Raw) {
    let key = Key::generate();
    let clear = routes(SessionLayer::new(store.clone(), key.clone()));
    let (ada, token) = (user(), secret("token"));
    let mut browser = logged_in(&clear, ada, &token).await;
    browser.ok(&clear, "POST", "/note/first").await;
    let id = browser.id();
    assert!(found(&dump(raw, &store, std::slice::from_ref(&id)).await, &token).is_some());

    let migrating = routes(
        SessionLayer::new(store.clone(), key.clone())
            .with_encryption(Encryption::AcceptingPlaintext),
    );
    assert_eq!(
        browser.ok(&migrating, "GET", "/show").await,
        format!("{ada}|{token}|first|0")
    );
    let later = secret("later");
    browser
        .ok(&migrating, "POST", &format!("/note/{later}"))
        .await;
    assert_eq!(
        browser.ok(&migrating, "GET", "/show").await,
        format!("{ada}|{token}|{later}|0")
    );
    let dumped = dump(raw, &store, std::slice::from_ref(&id)).await;
    assert_eq!(
        found(&dumped, &later),
        None,
        "a field written since is sealed"
    );
    assert!(
        found(&dumped, &token).is_some(),
        "an unchanged field is as it was"
    );

    let sealed_only = routes(sealed_layer(store.clone(), &key));
    assert_eq!(
        browser.ok(&sealed_only, "GET", "/show").await,
        format!("-||{later}|0"),
        "`On` reads only sealed values"
    );
}

/// Concurrent requests that change different fields all keep their change, sealed.
async fn concurrent_writes_to_different_fields_survive<S: SessionStore + Clone>(store: S) {
    let app = routes(sealed_layer(store, &Key::generate()));
    let mut browser = Browser::default();
    browser.ok(&app, "POST", "/bump/0").await;
    let tasks: Vec<_> = (0..WIDE)
        .map(|n| {
            let (app, mut browser) = (app.clone(), browser.clone());
            tokio::spawn(async move { browser.ok(&app, "POST", &format!("/bump/{n}")).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("a request");
    }
    let expected: Vec<String> = (0..WIDE)
        .map(|n| if n == 0 { "2" } else { "1" }.to_owned())
        .collect();
    assert_eq!(browser.ok(&app, "GET", "/wide").await, expected.join(","));
}

/// A new session saved early in its request, then changed again: both writes sealed under
/// the one data key the first stored.
async fn an_early_save_of_a_new_session<S: SessionStore + Clone>(store: S, raw: &Raw) {
    let app = routes(sealed_layer(store.clone(), &Key::generate()));
    let text = secret("early");
    let mut browser = Browser::default();
    assert_eq!(
        browser.ok(&app, "POST", &format!("/early/{text}")).await,
        format!("-||{text}|1")
    );
    assert_eq!(
        browser.ok(&app, "GET", "/show").await,
        format!("-||{text}|1")
    );
    let dumped = dump(raw, &store, &[browser.id()]).await;
    assert_eq!(found(&dumped, &text), None);
}

/// Every flow above on `store`.
async fn every_flow<S: SessionStore + Clone>(store: S, raw: &Raw) {
    values_are_sealed_in_the_store(store.clone(), raw).await;
    swapped_values_do_not_open(store.clone()).await;
    keys_rotate(store.clone()).await;
    plaintext_sessions_when_switching_on(store.clone(), raw).await;
    an_early_save_of_a_new_session(store.clone(), raw).await;
    concurrent_writes_to_different_fields_survive(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_memory_store() {
    every_flow(session_runtime::MemoryStore::new(), &Raw::Loads).await;
}

async fn on_redis(layout: RedisLayout, test: &str) {
    let Some(url) = shared_redis_url() else {
        session_suite::redis_harness::skip_without_redis(test, "no Redis answers");
        return;
    };
    let prefix = unique_prefix(test);
    let store = RedisStore::connect(url.as_str())
        .await
        .expect("connect")
        .with_key_prefix(prefix.clone())
        .with_layout(layout);
    every_flow(
        store,
        &Raw::Redis {
            urls: vec![url],
            prefix,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_hashes() {
    on_redis(RedisLayout::Hash, "sealed-hash").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_logs() {
    on_redis(RedisLayout::Log, "sealed-log").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster() {
    if !can_start_servers("encryption on a cluster") {
        return;
    }
    let cluster = RedisCluster::start(3);
    for layout in [RedisLayout::Hash, RedisLayout::Log] {
        let prefix = unique_prefix("sealed-cluster");
        let store = RedisStore::connect_cluster(cluster.urls())
            .await
            .expect("connect to the cluster")
            .with_key_prefix(prefix.clone())
            .with_layout(layout);
        let raw = Raw::Redis {
            urls: cluster.urls().iter().map(|u| u.to_string()).collect(),
            prefix,
        };
        every_flow(store, &raw).await;
    }
}

macro_rules! on_sql {
    ($test:ident, $make:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let Some((store, made)) = $make(stringify!($test)).await else {
                return;
            };
            every_flow(store, &Raw::Sql(made)).await;
        }
    };
}

on_sql!(on_postgres, session_suite::sql_harness::postgres);
on_sql!(on_mysql, session_suite::sql_harness::mysql);
on_sql!(on_sqlite, session_suite::sql_harness::sqlite);

/// What sealing adds to an update on Redis: the nonce and tag of the one changed value
/// (28 bytes, and a digit more in the argument's length).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_on_redis_grows_by_the_nonce_and_tag_only() {
    let Some(url) = shared_redis_url() else {
        session_suite::redis_harness::skip_without_redis("sealed bytes", "no Redis answers");
        return;
    };
    for layout in [RedisLayout::Hash, RedisLayout::Log] {
        let mut per_update = Vec::new();
        for encryption in [Encryption::Off, Encryption::On] {
            let store = RedisStore::connect(url.as_str())
                .await
                .expect("connect")
                .with_key_prefix(unique_prefix("sealed-bytes"))
                .with_layout(layout);
            let app = routes(SessionLayer::new(store, Key::generate()).with_encryption(encryption));
            let mut browser = logged_in(&app, 1, &secret("token")).await;
            browser
                .ok(&app, "POST", "/note/a-longer-note-to-carry")
                .await;
            let cookie = browser.cookie.clone().expect("a cookie");
            // Counts up to 100 first, so both runs send values of the same length.
            for _ in 0..100 {
                browser.ok(&app, "POST", "/visit").await;
            }
            let bytes = session_suite::redis_harness::bytes_sent_for(&url, &app, 100, || {
                session_suite::http::request("POST", "/visit", Some(&cookie), "")
            })
            .await;
            per_update.push(bytes / 100);
        }
        let (clear, sealed) = (per_update[0], per_update[1]);
        // The log layout's mean also carries its share of compactions, which write the
        // whole record (every sealed value 28 bytes longer): up to one more overhead.
        let most = match layout {
            RedisLayout::Hash => clear + 30,
            _ => clear + 60,
        };
        assert!(
            (clear + 28..=most).contains(&sealed),
            "{layout:?}: {clear} bytes per update in clear, {sealed} sealed"
        );
    }
}
