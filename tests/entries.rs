//! Map fields stored entry by entry (`#[session(entries)]`), on every server-side store:
//! concurrent changes to different entries all survive, same-entry writes are
//! last-writer-wins, `clear` removes what the store holds when it is saved (atomically),
//! keys never escape their field, bounds, one bad entry, and only changed entries written.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Router,
};
use session_runtime::{
    store::{LoadKeys, Patch},
    EntriesError, Key, RedisLayout, RedisStore, SessionData, SessionId, SessionLayer, SessionStore,
    TypedSession,
};
use session_suite::{
    http::{request, send, Browser},
    redis_harness::{can_start_servers, shared_redis_url, unique_prefix, RedisCluster},
};
use tokio::sync::Notify;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Line {
    qty: u32,
}

#[derive(SessionData)]
#[session(namespace = "shop")]
struct Shop {
    #[session(entries)]
    cart: BTreeMap<String, Line>,
    #[session(entries(max = 3, max_key_len = 12))]
    small: HashMap<u64, String>,
    note: String,
}

/// The ways a test holds up a request: a clear that waits until told to go on.
#[derive(Clone, Default)]
struct Gate {
    loaded: Arc<Notify>,
    go: Arc<Notify>,
}

async fn add(
    mut shop: TypedSession<Shop>,
    Path(sku): Path<String>,
) -> Result<String, EntriesError> {
    shop.cart_mut().insert(sku, Line { qty: 1 })?;
    Ok("added".into())
}

async fn bump(mut shop: TypedSession<Shop>, Path(sku): Path<String>) -> StatusCode {
    match shop.cart_mut().get_mut(sku.as_str()) {
        Some(line) => {
            line.qty += 1;
            StatusCode::OK
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn put(mut shop: TypedSession<Shop>, Path((sku, qty)): Path<(String, u32)>) -> &'static str {
    shop.cart_mut()
        .insert(sku, Line { qty })
        .expect("within bounds");
    "put"
}

async fn remove(mut shop: TypedSession<Shop>, Path(sku): Path<String>) -> String {
    match shop.cart_mut().remove(sku.as_str()) {
        Some(line) => format!("removed {}", line.qty),
        None => "absent".into(),
    }
}

async fn clear(mut shop: TypedSession<Shop>) -> &'static str {
    shop.cart_mut().clear();
    "cleared"
}

/// Loads the session, waits for the test, then clears.
async fn slow_clear(State(gate): State<Gate>, mut shop: TypedSession<Shop>) -> &'static str {
    let _ = shop.cart().len();
    gate.loaded.notify_one();
    gate.go.notified().await;
    shop.cart_mut().clear();
    "cleared"
}

async fn note(mut shop: TypedSession<Shop>, Path(text): Path<String>) -> &'static str {
    shop.set_note(text);
    "noted"
}

async fn small(
    mut shop: TypedSession<Shop>,
    Path((key, value)): Path<(u64, String)>,
) -> Result<String, EntriesError> {
    shop.small_mut().insert(key, value)?;
    Ok(format!("{}", shop.small().len()))
}

/// The cart as `sku=qty` pairs, in key order, then the note.
async fn show(shop: TypedSession<Shop>) -> String {
    let cart: Vec<String> = shop
        .cart()
        .iter()
        .map(|(sku, line)| format!("{sku}={}", line.qty))
        .collect();
    format!("{}|{}", cart.join(","), shop.note())
}

async fn count(shop: TypedSession<Shop>) -> String {
    shop.cart().len().to_string()
}

fn routes(layer: SessionLayer, gate: Gate) -> Router {
    Router::new()
        .route("/add/{sku}", post(add))
        .route("/bump/{sku}", post(bump))
        .route("/put/{sku}/{qty}", post(put))
        .route("/remove/{sku}", post(remove))
        .route("/clear", post(clear))
        .route("/slow-clear", post(slow_clear))
        .route("/note/{text}", post(note))
        .route("/small/{key}/{value}", post(small))
        .route("/show", get(show))
        .route("/count", get(count))
        .with_state(gate)
        .layer(layer)
}

fn app<S: SessionStore>(store: S) -> (Router, Gate) {
    let gate = Gate::default();
    let layer = SessionLayer::new(store, Key::generate());
    (routes(layer, gate.clone()), gate)
}

/// Fires `uris` at once, each as its own request with the browser's cookie: the statuses.
async fn at_once(
    app: &Router,
    browser: &Browser,
    method: &str,
    uris: Vec<String>,
) -> Vec<StatusCode> {
    let tasks: Vec<_> = uris
        .into_iter()
        .map(|uri| {
            let app = app.clone();
            let cookie = browser.cookie.clone();
            let method = method.to_owned();
            tokio::spawn(async move {
                send(&app, request(&method, &uri, cookie.as_deref(), ""))
                    .await
                    .status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("request task"));
    }
    statuses
}

/// The record's keys as the store holds them.
async fn stored_keys<S: SessionStore>(store: &S, id: &SessionId) -> Vec<String> {
    let record = store
        .load(id, LoadKeys::All)
        .await
        .expect("load")
        .expect("the session exists");
    let mut keys: Vec<String> = record.fields.keys().map(ToString::to_string).collect();
    keys.sort();
    keys
}

async fn concurrent_inserts_of_different_keys_all_survive<S: SessionStore + Clone>(store: S) {
    let (app, _) = app(store);
    let mut browser = Browser::default();
    browser.ok(&app, "POST", "/add/first").await;
    let uris = (0..50).map(|n| format!("/add/item-{n:02}")).collect();
    let statuses = at_once(&app, &browser, "POST", uris).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(browser.ok(&app, "GET", "/count").await, "51");
    let shown = browser.ok(&app, "GET", "/show").await;
    for n in 0..50 {
        assert!(shown.contains(&format!("item-{n:02}=1")), "{shown}");
    }

    // Changes in place of different entries, at once: every one counts.
    let uris = (0..20).map(|n| format!("/bump/item-{n:02}")).collect();
    let statuses = at_once(&app, &browser, "POST", uris).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let shown = browser.ok(&app, "GET", "/show").await;
    for n in 0..20 {
        assert!(shown.contains(&format!("item-{n:02}=2")), "{shown}");
    }
    assert!(shown.contains("item-20=1"), "{shown}");

    // Removals of different entries, at once, next to inserts: each lands.
    let mut uris: Vec<String> = (0..10).map(|n| format!("/remove/item-{n:02}")).collect();
    uris.extend((0..10).map(|n| format!("/add/new-{n}")));
    let statuses = at_once(&app, &browser, "POST", uris).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let shown = browser.ok(&app, "GET", "/show").await;
    for n in 0..10 {
        assert!(!shown.contains(&format!("item-{n:02}=")), "{shown}");
        assert!(shown.contains(&format!("new-{n}=1")), "{shown}");
    }
    assert_eq!(browser.ok(&app, "GET", "/count").await, "51");
}

async fn same_key_writes_are_last_writer_wins<S: SessionStore + Clone>(store: S) {
    let (app, _) = app(store);
    let mut browser = Browser::default();
    browser.ok(&app, "POST", "/add/other").await;
    let uris = (1..=20).map(|n| format!("/put/same/{n}")).collect();
    let statuses = at_once(&app, &browser, "POST", uris).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let shown = browser.ok(&app, "GET", "/show").await;
    let (cart, _) = shown.split_once('|').expect("cart|note");
    let lines: Vec<&str> = cart.split(',').collect();
    assert_eq!(lines.len(), 2, "{shown}");
    let qty: u32 = lines[1]
        .strip_prefix("same=")
        .expect("the entry")
        .parse()
        .expect("a number");
    assert!((1..=20).contains(&qty), "{shown}");
    assert_eq!(lines[0], "other=1");
}

async fn clear_removes_what_the_store_holds_when_saved<S: SessionStore + Clone>(store: S) {
    let (app, gate) = app(store.clone());
    let mut browser = Browser::default();
    browser.ok(&app, "POST", "/add/a").await;
    browser.ok(&app, "POST", "/note/kept").await;

    // The clear loads, another request adds an entry and saves, then the clear saves: the
    // entry added after the clear's load is removed too (it was in the store at save time).
    let cookie = browser.cookie.clone();
    let slow = {
        let app = app.clone();
        tokio::spawn(async move {
            send(&app, request("POST", "/slow-clear", cookie.as_deref(), ""))
                .await
                .status()
        })
    };
    gate.loaded.notified().await;
    browser.ok(&app, "POST", "/add/late").await;
    assert_eq!(browser.ok(&app, "GET", "/show").await, "a=1,late=1|kept");
    gate.go.notify_one();
    assert_eq!(slow.await.expect("the clear"), StatusCode::OK);
    assert_eq!(browser.ok(&app, "GET", "/show").await, "|kept");

    // An insert saved after the clear survives it.
    browser.ok(&app, "POST", "/add/after").await;
    assert_eq!(browser.ok(&app, "GET", "/show").await, "after=1|kept");
    let keys = stored_keys(&store, &browser.id()).await;
    assert!(keys.contains(&"shop.cart#after".to_owned()), "{keys:?}");
    assert!(
        !keys
            .iter()
            .any(|k| k == "shop.cart#a" || k == "shop.cart#late"),
        "{keys:?}"
    );

    // A clear racing inserts of new entries is atomic: every entry that was there before
    // goes, and what is left is some of the new ones.
    let mut uris: Vec<String> = (0..20).map(|n| format!("/add/old-{n}")).collect();
    uris.push("/add/x".into());
    at_once(&app, &browser, "POST", uris).await;
    assert_eq!(browser.ok(&app, "GET", "/count").await, "22");
    let mut uris: Vec<String> = (0..20).map(|n| format!("/add/fresh-{n}")).collect();
    uris.push("/clear".into());
    let statuses = at_once(&app, &browser, "POST", uris).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let shown = browser.ok(&app, "GET", "/show").await;
    let (cart, note) = shown.split_once('|').expect("cart|note");
    assert_eq!(note, "kept");
    for line in cart.split(',').filter(|l| !l.is_empty()) {
        assert!(line.starts_with("fresh-"), "{shown}");
    }
}

async fn keys_never_escape_their_field<S: SessionStore + Clone>(store: S) {
    let (app, _) = app(store.clone());
    let mut browser = Browser::default();
    browser.ok(&app, "POST", "/note/mine").await;
    // Keys that look like separators, metadata, another field or an escaped key.
    let hostile = [
        "a%23b",
        "__v.shop",
        "..",
        "note",
        "%2541",
        "cart%23x",
        "~",
        "a%20b",
        "%E2%82%AC",
    ];
    for sku in hostile {
        browser.ok(&app, "POST", &format!("/add/{sku}")).await;
    }
    let shown = browser.ok(&app, "GET", "/show").await;
    let (cart, note) = shown.split_once('|').expect("cart|note");
    assert_eq!(note, "mine", "{shown}");
    let mut expected: Vec<String> = [
        "a#b", "__v.shop", "..", "note", "%41", "cart#x", "~", "a b", "€",
    ]
    .iter()
    .map(|k| format!("{k}=1"))
    .collect();
    expected.sort();
    assert_eq!(cart, expected.join(","), "{shown}");
    let keys = stored_keys(&store, &browser.id()).await;
    let entries: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("shop.cart#"))
        .collect();
    assert_eq!(entries.len(), hostile.len(), "{keys:?}");
    for key in &keys {
        let suffix = key.strip_prefix("shop.cart#");
        if let Some(suffix) = suffix {
            assert!(
                suffix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-%~".contains(&b)),
                "{key}"
            );
        } else {
            assert!(
                ["shop.note", "__v.shop", "__created"].contains(&key.as_str()),
                "unexpected key {key} in {keys:?}"
            );
        }
    }
}

async fn bounds_are_clear_errors<S: SessionStore + Clone>(store: S) {
    let (app, _) = app(store);
    let mut browser = Browser::default();
    for n in 1..=3 {
        assert_eq!(
            browser.ok(&app, "POST", &format!("/small/{n}/v")).await,
            n.to_string()
        );
    }
    let (status, body) = browser.call(&app, "POST", "/small/4/v").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("`small` already holds its most entries (3)"),
        "{body}"
    );
    // Replacing an entry of a full map is fine.
    assert_eq!(browser.ok(&app, "POST", "/small/2/w").await, "3");
    let (status, body) = browser.call(&app, "POST", "/small/1234567890123/v").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("13 bytes long"), "{body}");
    // The cart's default key bound is 128 encoded bytes.
    let long = "x".repeat(129);
    let (status, body) = browser.call(&app, "POST", &format!("/add/{long}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(browser.ok(&app, "GET", "/count").await, "0");
}

async fn one_bad_entry_resets_that_entry_only<S: SessionStore + Clone>(store: S) {
    let (app, _) = app(store.clone());
    let mut browser = Browser::default();
    for sku in ["a", "b", "c"] {
        browser.ok(&app, "POST", &format!("/add/{sku}")).await;
    }
    browser.ok(&app, "POST", "/note/n").await;
    let id = browser.id();
    let far = SystemTime::now() + Duration::from_secs(600);
    store
        .save(
            &id,
            &Patch {
                set: vec![
                    (
                        "shop.cart#b".into(),
                        axum::body::Bytes::from_static(b"not json"),
                    ),
                    // A key no `String` encodes to (an escaped letter): not an entry.
                    (
                        "shop.cart#%61".into(),
                        axum::body::Bytes::from_static(b"{\"qty\":9}"),
                    ),
                ],
                remove: vec![],
                expires_at: far,
            },
        )
        .await
        .expect("overwrite");
    assert_eq!(browser.ok(&app, "GET", "/show").await, "a=1,c=1|n");
    // Writing the entry again replaces the bad value.
    browser.ok(&app, "POST", "/put/b/5").await;
    assert_eq!(browser.ok(&app, "GET", "/show").await, "a=1,b=5,c=1|n");
}

async fn every_flow<S: SessionStore + Clone>(store: S) {
    concurrent_inserts_of_different_keys_all_survive(store.clone()).await;
    same_key_writes_are_last_writer_wins(store.clone()).await;
    clear_removes_what_the_store_holds_when_saved(store.clone()).await;
    keys_never_escape_their_field(store.clone()).await;
    bounds_are_clear_errors(store.clone()).await;
    one_bad_entry_resets_that_entry_only(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_memory_store() {
    every_flow(session_runtime::MemoryStore::new()).await;
}

async fn on_redis(layout: RedisLayout, test: &str) {
    let Some(url) = shared_redis_url() else {
        session_suite::redis_harness::skip_without_redis(test, "no Redis answers");
        return;
    };
    let store = RedisStore::connect(url.as_str())
        .await
        .expect("connect")
        .with_key_prefix(unique_prefix(test))
        .with_layout(layout);
    every_flow(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_hashes() {
    on_redis(RedisLayout::Hash, "entries-hash").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_logs() {
    on_redis(RedisLayout::Log, "entries-log").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster() {
    if !can_start_servers("entries on a cluster") {
        return;
    }
    let cluster = RedisCluster::start(3);
    for layout in [RedisLayout::Hash, RedisLayout::Log] {
        let store = RedisStore::connect_cluster(cluster.urls())
            .await
            .expect("connect to the cluster")
            .with_key_prefix(unique_prefix("entries-cluster"))
            .with_layout(layout);
        every_flow(store).await;
    }
}

macro_rules! on_sql {
    ($test:ident, $make:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let Some((store, _made)) = $make(stringify!($test)).await else {
                return;
            };
            every_flow(store).await;
        }
    };
}

on_sql!(on_postgres, session_suite::sql_harness::postgres);
on_sql!(on_mysql, session_suite::sql_harness::mysql);
on_sql!(on_sqlite, session_suite::sql_harness::sqlite);

/// A request that adds one entry to a big map writes that entry only.
#[tokio::test]
async fn only_the_changed_entries_are_written() {
    use session_suite::{Call, Recording};
    let store = Recording::new(session_runtime::MemoryStore::new());
    let (app, _) = app(store.clone());
    let mut browser = Browser::default();
    for n in 0..10 {
        browser.ok(&app, "POST", &format!("/add/item-{n}")).await;
    }
    store.take_calls();
    browser.ok(&app, "POST", "/add/new").await;
    browser.ok(&app, "POST", "/bump/item-3").await;
    browser.ok(&app, "POST", "/remove/item-4").await;
    browser.ok(&app, "POST", "/clear").await;
    let saves: Vec<(Vec<String>, Vec<String>)> = store
        .take_calls()
        .into_iter()
        .filter_map(|call| match call {
            Call::Save(patch) => Some((
                patch.set.iter().map(|(k, _)| k.to_string()).collect(),
                patch.remove.iter().map(ToString::to_string).collect(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        saves,
        [
            (vec!["shop.cart#new".to_owned()], vec![]),
            (vec!["shop.cart#item-3".to_owned()], vec![]),
            (vec![], vec!["shop.cart#item-4".to_owned()]),
            (vec![], vec!["shop.cart#".to_owned()]),
        ]
    );
    // The load asks for the field's entries by their prefix.
    browser.ok(&app, "GET", "/show").await;
    let loads: Vec<Option<Vec<String>>> = store
        .take_calls()
        .into_iter()
        .filter_map(|call| match call {
            Call::Load(keys) => Some(keys),
            _ => None,
        })
        .collect();
    let keys = loads[0].clone().expect("only some keys");
    assert!(
        keys.contains(&"shop.cart#".to_owned()) && !keys.contains(&"shop.cart".to_owned()),
        "{keys:?}"
    );
}

/// A store that returns only the keys a load asks for still gives the map its entries.
#[tokio::test]
async fn a_store_that_honours_load_keys_returns_the_entries() {
    let store = session_suite::OnlyAskedKeys(session_runtime::MemoryStore::new());
    let (app, _) = app(store);
    let mut browser = Browser::default();
    browser.ok(&app, "POST", "/add/a").await;
    browser.ok(&app, "POST", "/add/b").await;
    assert_eq!(browser.ok(&app, "GET", "/show").await, "a=1,b=1|");
}

/// Clearing an empty map of a new session, or inserting then clearing, creates nothing;
/// clear then insert in one request keeps the insert.
#[tokio::test]
async fn clear_and_insert_in_one_request() {
    async fn clear_then_add(mut shop: TypedSession<Shop>) -> &'static str {
        shop.cart_mut()
            .insert("old", Line { qty: 1 })
            .expect("fits");
        shop.cart_mut().clear();
        shop.cart_mut()
            .insert("kept", Line { qty: 2 })
            .expect("fits");
        "ok"
    }
    async fn add_then_clear(mut shop: TypedSession<Shop>) -> &'static str {
        shop.cart_mut()
            .insert("gone", Line { qty: 1 })
            .expect("fits");
        shop.cart_mut().clear();
        "ok"
    }
    let store = session_runtime::MemoryStore::new();
    let layer = SessionLayer::new(store.clone(), Key::generate());
    let app = Router::new()
        .route("/clear-then-add", post(clear_then_add))
        .route("/add-then-clear", post(add_then_clear))
        .route("/show", get(show))
        .layer(layer);
    let mut browser = Browser::default();
    browser.ok(&app, "POST", "/add-then-clear").await;
    assert!(
        browser.cookie.is_none(),
        "a session with nothing in it was created"
    );
    assert!(store.is_empty());
    browser.ok(&app, "POST", "/clear-then-add").await;
    assert_eq!(browser.ok(&app, "GET", "/show").await, "kept=2|");
    // Again on the stored session: the stored entries go, the new one stays.
    browser.ok(&app, "POST", "/clear-then-add").await;
    assert_eq!(browser.ok(&app, "GET", "/show").await, "kept=2|");
}

/// The whole-map accessors: `set_` replaces every stored entry, `take_` empties the map,
/// `data()` holds the map.
#[tokio::test]
async fn whole_map_accessors() {
    async fn replace(mut shop: TypedSession<Shop>) -> Result<&'static str, EntriesError> {
        shop.set_cart(BTreeMap::from([("z".to_owned(), Line { qty: 7 })]))?;
        Ok("ok")
    }
    async fn take(mut shop: TypedSession<Shop>) -> String {
        let taken = shop.take_cart();
        format!("{}", taken.len())
    }
    async fn whole(mut shop: TypedSession<Shop>) -> String {
        let cart = &shop.data().cart;
        let keys: Vec<&String> = cart.keys().collect();
        let shown = format!("{keys:?}");
        // Changing entries after `data()` still marks them.
        shop.cart_mut().insert("w", Line { qty: 1 }).expect("fits");
        shown
    }
    let store = session_runtime::MemoryStore::new();
    let layer = SessionLayer::new(store.clone(), Key::generate());
    let app = Router::new()
        .route("/add/{sku}", post(add))
        .route("/replace", post(replace))
        .route("/take", post(take))
        .route("/whole", post(whole))
        .route("/show", get(show))
        .layer(layer);
    let mut browser = Browser::default();
    browser.ok(&app, "POST", "/add/a").await;
    browser.ok(&app, "POST", "/add/b").await;
    browser.ok(&app, "POST", "/replace").await;
    assert_eq!(browser.ok(&app, "GET", "/show").await, "z=7|");
    assert_eq!(browser.ok(&app, "POST", "/whole").await, "[\"z\"]");
    assert_eq!(browser.ok(&app, "GET", "/show").await, "w=1,z=7|");
    assert_eq!(browser.ok(&app, "POST", "/take").await, "2");
    assert_eq!(browser.ok(&app, "GET", "/show").await, "|");
    let keys = stored_keys(&store, &browser.id()).await;
    assert!(
        !keys.iter().any(|k| k.starts_with("shop.cart#")),
        "{keys:?}"
    );
}

/// Version 1 stored the cart as one value; version 2 stores it entry by entry, and
/// version 1 records are migrated on their next request (and the other way round).
mod migrations {
    use super::*;
    use session_runtime::{MigrationError, RawFields};

    #[derive(SessionData)]
    #[session(namespace = "mig", version = 2, migrate = to_entries)]
    struct Split {
        #[session(entries)]
        items: BTreeMap<String, u32>,
    }

    fn to_entries(from: u32, fields: &mut RawFields) -> Result<(), MigrationError> {
        if from < 2 {
            let items: BTreeMap<String, u32> = fields.take("items")?.unwrap_or_default();
            fields.insert_entries("items", &items)?;
        }
        Ok(())
    }

    #[derive(SessionData)]
    #[session(namespace = "back", version = 2, migrate = to_whole)]
    struct Joined {
        items: BTreeMap<String, u32>,
    }

    fn to_whole(from: u32, fields: &mut RawFields) -> Result<(), MigrationError> {
        if from < 2 {
            let items: BTreeMap<String, u32> = fields.take_entries("items")?;
            fields.insert("items", &items)?;
        }
        Ok(())
    }

    async fn split(mut s: TypedSession<Split>) -> String {
        s.items_mut().insert("c", 3).expect("fits");
        format!("{:?}", s.items())
    }

    async fn joined(j: TypedSession<Joined>) -> String {
        format!("{:?}", j.items())
    }

    /// A session made through the app, then given `set` as an older version stored it.
    async fn stored(
        app: &Router,
        store: &session_runtime::MemoryStore,
        set: Vec<(&'static str, &'static str)>,
    ) -> Browser {
        let mut browser = Browser::default();
        browser.ok(app, "POST", "/note/x").await;
        let patch = Patch {
            set: set
                .into_iter()
                .map(|(k, v)| (k.into(), axum::body::Bytes::from_static(v.as_bytes())))
                .collect(),
            remove: vec![],
            expires_at: SystemTime::now() + Duration::from_secs(600),
        };
        store.save(&browser.id(), &patch).await.expect("save");
        browser
    }

    #[tokio::test]
    async fn a_whole_value_becomes_entries_and_back() {
        let store = session_runtime::MemoryStore::new();
        let app = Router::new()
            .route("/split", post(split))
            .route("/joined", get(joined))
            .route("/note/{text}", post(note))
            .layer(SessionLayer::new(store.clone(), Key::generate()));

        let mut browser = stored(
            &app,
            &store,
            vec![("mig.items", r#"{"a b":1,"b":2}"#), ("__v.mig", "1")],
        )
        .await;
        assert_eq!(
            browser.ok(&app, "POST", "/split").await,
            r#"{"a b": 1, "b": 2, "c": 3}"#
        );
        let keys = stored_keys(&store, &browser.id()).await;
        assert_eq!(
            keys,
            [
                "__created",
                "__v.mig",
                "__v.shop",
                "mig.items#a%20b",
                "mig.items#b",
                "mig.items#c",
                "shop.note"
            ]
        );

        let mut browser = stored(
            &app,
            &store,
            vec![
                ("back.items#x", "5"),
                ("back.items#y", "6"),
                ("__v.back", "1"),
            ],
        )
        .await;
        assert_eq!(
            browser.ok(&app, "GET", "/joined").await,
            r#"{"x": 5, "y": 6}"#
        );
        let keys = stored_keys(&store, &browser.id()).await;
        assert_eq!(
            keys,
            [
                "__created",
                "__v.back",
                "__v.shop",
                "back.items",
                "shop.note"
            ]
        );
    }
}

/// With encryption at rest, each entry's value is sealed under its own store key: it reads
/// back, the store never holds it in clear, and a value copied to another entry does not
/// open there (that entry is left out, the others survive). The entry keys stay in clear.
#[tokio::test]
async fn entries_are_sealed_at_rest() {
    let store = session_runtime::MemoryStore::new();
    let layer = SessionLayer::new(store.clone(), Key::generate())
        .with_encryption(session_runtime::Encryption::On);
    let app = routes(layer, Gate::default());
    let mut browser = Browser::default();
    browser.ok(&app, "POST", "/put/a/4141414").await;
    browser.ok(&app, "POST", "/put/b/42").await;
    assert_eq!(browser.ok(&app, "GET", "/show").await, "a=4141414,b=42|");
    let id = browser.id();
    let record = store
        .load(&id, LoadKeys::All)
        .await
        .expect("load")
        .expect("stored");
    let a = record.fields.get("shop.cart#a").expect("entry a").clone();
    assert!(
        !a.windows(7).any(|w| w == b"4141414"),
        "the value is sealed"
    );
    store
        .save(
            &id,
            &Patch {
                set: vec![("shop.cart#b".into(), a)],
                remove: vec![],
                expires_at: SystemTime::now() + Duration::from_secs(600),
            },
        )
        .await
        .expect("copy a's value over b's");
    assert_eq!(browser.ok(&app, "GET", "/show").await, "a=4141414|");
}

/// Single-entry operations decode only their entry: adding to a 20-line map decodes none
/// of the 20, changing one decodes that one, and reading the whole map decodes each once.
mod lazy {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    static DECODED: AtomicUsize = AtomicUsize::new(0);

    /// A value that counts how often it is decoded.
    #[derive(Debug, Clone, serde::Serialize)]
    struct Counted(u32);

    impl<'de> serde::Deserialize<'de> for Counted {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            DECODED.fetch_add(1, Ordering::SeqCst);
            u32::deserialize(d).map(Counted)
        }
    }

    #[derive(SessionData)]
    #[session(namespace = "counted")]
    struct Tally {
        #[session(entries)]
        counts: BTreeMap<u32, Counted>,
    }

    async fn fill(mut tally: TypedSession<Tally>) -> &'static str {
        for n in 0..20 {
            tally.counts_mut().insert(n, Counted(n)).expect("fits");
        }
        "filled"
    }

    async fn add(mut tally: TypedSession<Tally>, Path(n): Path<u32>) -> String {
        let old = tally.counts_mut().insert(n, Counted(n)).expect("fits");
        format!("{old:?}")
    }

    async fn bump(mut tally: TypedSession<Tally>, Path(n): Path<u32>) -> String {
        let mut counts = tally.counts_mut();
        let value = counts.get_mut(&n).expect("present");
        value.0 += 100;
        value.0.to_string()
    }

    async fn drop_one(mut tally: TypedSession<Tally>, Path(n): Path<u32>) -> String {
        format!("{:?}", tally.counts_mut().remove(&n))
    }

    async fn total(tally: TypedSession<Tally>) -> String {
        let sum: u32 = tally.counts().values().map(|c| c.0).sum();
        format!("{} {sum}", tally.counts().len())
    }

    #[tokio::test]
    async fn single_entry_operations_decode_only_their_entry() {
        let app = Router::new()
            .route("/fill", post(fill))
            .route("/add/{n}", post(add))
            .route("/bump/{n}", post(bump))
            .route("/drop/{n}", post(drop_one))
            .route("/total", get(total))
            .layer(SessionLayer::new(
                session_runtime::MemoryStore::new(),
                Key::generate(),
            ));
        let mut browser = Browser::default();
        browser.ok(&app, "POST", "/fill").await;

        let decoded = |before: usize| DECODED.load(Ordering::SeqCst) - before;
        let before = DECODED.load(Ordering::SeqCst);
        assert_eq!(browser.ok(&app, "POST", "/add/50").await, "None");
        assert_eq!(decoded(before), 0, "an insert of a new key decodes nothing");

        let before = DECODED.load(Ordering::SeqCst);
        assert_eq!(browser.ok(&app, "POST", "/add/3").await, "Some(Counted(3))");
        assert_eq!(
            decoded(before),
            1,
            "replacing an entry decodes only its old value"
        );

        let before = DECODED.load(Ordering::SeqCst);
        assert_eq!(browser.ok(&app, "POST", "/bump/4").await, "104");
        assert_eq!(
            decoded(before),
            1,
            "a change in place decodes that entry only"
        );

        let before = DECODED.load(Ordering::SeqCst);
        assert_eq!(
            browser.ok(&app, "POST", "/drop/5").await,
            "Some(Counted(5))"
        );
        assert_eq!(decoded(before), 1);

        let before = DECODED.load(Ordering::SeqCst);
        // 20 filled + 50 - 5 (dropped); 0..20 sums to 190, +100 bumped, -5 dropped, +50.
        assert_eq!(browser.ok(&app, "GET", "/total").await, "20 335");
        assert_eq!(
            decoded(before),
            20,
            "reading the whole map decodes each entry once"
        );
    }
}
