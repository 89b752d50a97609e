//! The request layer through a real axum `Router` (tower `oneshot`): laziness, per-field
//! writes, signed IDs and rotation, bad cookies, lifecycle, expiry, cookie settings,
//! migrations at load, and error responses.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use axum::{
    body::{Body, Bytes},
    http::{header, Request, StatusCode},
    routing::{get, post},
    Router,
};

use session_runtime::{
    store::{LoadKeys, Patch},
    DecodePolicy, Key, MemoryStore, MigrationError, RawFields, SameSite, SessionData, SessionError,
    SessionId, SessionLayer, SessionStore, TypedSession,
};
use session_suite::http::{
    attribute, cookie_pair, handing_out, id_of, request, send, set_cookies, text,
};
use session_suite::{Call, Recording};

#[derive(SessionData, Debug)]
struct Cart {
    user_id: Option<u64>,
    items: Vec<String>,
    #[session(rename = "th")]
    theme: String,
}

#[derive(SessionData, Debug)]
#[session(namespace = "prefs")]
struct Prefs {
    lang: String,
}

type Store = Recording<MemoryStore>;

fn store() -> Store {
    Recording::new(MemoryStore::new())
}

async fn add(mut cart: TypedSession<Cart>, item: String) -> String {
    cart.items_mut().push(item);
    cart.items().len().to_string()
}

async fn show(cart: TypedSession<Cart>) -> String {
    format!("{:?}|{}", cart.items(), cart.theme())
}

async fn read_nothing(_cart: TypedSession<Cart>) -> &'static str {
    "ok"
}

async fn no_session() -> &'static str {
    "plain"
}

async fn login(mut cart: TypedSession<Cart>) -> String {
    cart.set_user_id(Some(42));
    cart.regenerate();
    "in".into()
}

async fn logout(mut cart: TypedSession<Cart>) -> &'static str {
    cart.destroy();
    "out"
}

async fn whoami(cart: TypedSession<Cart>) -> String {
    format!("{:?}", cart.id().map(|id| id.as_str().to_owned()))
}

async fn remember(mut cart: TypedSession<Cart>) -> &'static str {
    cart.set_user_id(Some(1));
    cart.set_expiry(Some(Duration::from_secs(30 * 24 * 3600)));
    "remembered"
}

/// Back to the layer's idle timeout ("do not remember me"), on every page.
async fn forget_me(mut cart: TypedSession<Cart>) -> &'static str {
    cart.set_expiry(None);
    "ok"
}

/// The flash-message pattern: show a one-time value and clear it, on every page.
async fn flash(mut cart: TypedSession<Cart>) -> String {
    cart.take_theme()
}

/// One extractor sets a field, a later one takes it: the take wins, as the later change.
async fn set_then_take(mut first: TypedSession<Cart>, mut second: TypedSession<Cart>) -> String {
    first.set_theme("dark".into());
    drop(first);
    second.take_theme();
    let mut third = second;
    third.set_user_id(Some(7));
    third
        .take_user_id()
        .map_or("none".into(), |id| id.to_string())
}

async fn both(mut cart: TypedSession<Cart>, mut prefs: TypedSession<Prefs>) -> String {
    cart.set_theme("dark".into());
    prefs.set_lang("fr".into());
    format!("{}|{}", cart.theme(), prefs.lang())
}

async fn twice(mut first: TypedSession<Cart>) -> String {
    first.items_mut().push("a".into());
    drop(first);
    // Extracted again inside the handler via a second extractor would be the same; here we
    // check the shared session by reading it through a new request instead.
    "ok".into()
}

fn routes() -> Router {
    Router::new()
        .route("/add", post(add))
        .route("/show", get(show))
        .route("/read", get(read_nothing))
        .route("/plain", get(no_session))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/whoami", get(whoami))
        .route("/remember", post(remember))
        .route("/both", post(both))
        .route("/twice", post(twice))
        .route("/flash", get(flash))
        .route("/forget-me", post(forget_me))
        .route("/set-then-take", post(set_then_take))
}

fn app_with(layer: SessionLayer<Store>) -> Router {
    routes().layer(layer)
}

fn app(store: &Store, key: &Key) -> Router {
    app_with(SessionLayer::new(store.clone(), key.clone()))
}

fn writes(calls: &[Call]) -> Vec<&Call> {
    calls
        .iter()
        .filter(|c| !matches!(c, Call::Load(_)))
        .collect()
}

/// The patch of the only write among `calls`, which must be a save.
fn the_one_save(calls: &[Call]) -> &Patch {
    let [Call::Save(patch)] = writes(calls)[..] else {
        panic!("expected one save, got {calls:?}");
    };
    patch
}

fn keys_set(patch: &Patch) -> Vec<&str> {
    let mut keys: Vec<&str> = patch.set.iter().map(|(k, _)| k.as_ref()).collect();
    keys.sort_unstable();
    keys
}

/// Creates a session with one item and returns its cookie pair.
async fn started(app: &Router) -> String {
    let response = send(app, request("POST", "/add", None, "apple")).await;
    assert_eq!(response.status(), StatusCode::OK);
    cookie_pair(&response)
}

/// A new recording store and key holding one started session, and its cookie pair.
async fn started_in_a_new_store() -> (Store, Key, String) {
    let (store, key) = (store(), Key::generate());
    let cookie = started(&app(&store, &key)).await;
    (store, key, cookie)
}

#[tokio::test]
async fn a_handler_without_a_session_costs_no_store_call() {
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    store.take_calls();
    let response = send(&app, request("GET", "/plain", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "plain");
    assert!(store.take_calls().is_empty());
}

#[tokio::test]
async fn a_new_session_that_stays_empty_is_not_stored_and_gets_no_cookie() {
    let store = store();
    let app = app(&store, &Key::generate());
    let response = send(&app, request("GET", "/show", None, "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookies(&response).is_empty());
    assert!(
        store.take_calls().is_empty(),
        "no cookie, so not even a load"
    );
    assert!(store.inner().is_empty());
}

#[tokio::test]
async fn taking_a_field_that_is_not_stored_writes_nothing() {
    let store = store();
    let app = app(&store, &Key::generate());
    // A visitor without a session: nothing to remove, so no session and no cookie.
    let response = send(&app, request("GET", "/flash", None, "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        set_cookies(&response).is_empty(),
        "no cookie for an empty session"
    );
    assert!(writes(&store.take_calls()).is_empty(), "nothing created");
    assert!(store.inner().is_empty());

    // A session without that field: the page is a read, not a write.
    let cookie = started(&app).await;
    store.take_calls();
    let response = send(&app, request("GET", "/flash", Some(&cookie), "")).await;
    assert!(
        set_cookies(&response).is_empty(),
        "{:?}",
        set_cookies(&response)
    );
    assert!(writes(&store.take_calls()).is_empty());

    // Once it is stored, taking it removes it, once.
    let response = send(&app, request("POST", "/both", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    store.take_calls();
    let response = send(&app, request("GET", "/flash", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "dark");
    assert_eq!(the_one_save(&store.take_calls()).remove, vec!["th"]);
    let response = send(&app, request("GET", "/flash", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "");
    assert!(
        writes(&store.take_calls()).is_empty(),
        "already gone: no write"
    );

    // Fields set and then taken in the same request leave nothing to store either.
    let response = send(&app, request("POST", "/set-then-take", None, "")).await;
    assert_eq!(text(response).await, "7");
    assert!(writes(&store.take_calls()).is_empty());
    let response = send(&app, request("POST", "/set-then-take", Some(&cookie), "")).await;
    assert!(set_cookies(&response).is_empty());
    assert!(writes(&store.take_calls()).is_empty());
}

#[tokio::test]
async fn clearing_an_expiry_override_that_is_not_stored_writes_nothing() {
    let store = store();
    let app = app(&store, &Key::generate());
    let response = send(&app, request("POST", "/forget-me", None, "")).await;
    assert!(
        set_cookies(&response).is_empty(),
        "no session for a visitor without one"
    );
    assert!(writes(&store.take_calls()).is_empty());
    let cookie = started(&app).await;
    store.take_calls();
    let response = send(&app, request("POST", "/forget-me", Some(&cookie), "")).await;
    assert!(set_cookies(&response).is_empty());
    assert!(
        writes(&store.take_calls()).is_empty(),
        "no override: nothing to clear"
    );
    // A stored override is cleared with one write.
    let response = send(&app, request("POST", "/remember", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    store.take_calls();
    send(&app, request("POST", "/forget-me", Some(&cookie), "")).await;
    assert_eq!(the_one_save(&store.take_calls()).remove, vec!["__ttl"]);
}

#[tokio::test]
async fn the_first_write_creates_the_session_with_a_secure_signed_cookie() {
    let store = store();
    let app = app(&store, &Key::generate());
    let response = send(&app, request("POST", "/add", None, "apple")).await;
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 1);
    let cookie = &cookies[0];
    assert!(cookie.starts_with("id="));
    assert_eq!(attribute(cookie, "Path"), Some("/"));
    assert!(attribute(cookie, "HttpOnly").is_some());
    assert!(attribute(cookie, "Secure").is_some());
    assert_eq!(attribute(cookie, "SameSite"), Some("Lax"));
    let max_age: u64 = attribute(cookie, "Max-Age").unwrap().parse().unwrap();
    assert!((86_390..=86_400).contains(&max_age), "{max_age}");

    let calls = store.take_calls();
    let [Call::Create(patch)] = writes(&calls)[..] else {
        panic!("expected one create, got {calls:?}");
    };
    assert_eq!(keys_set(patch), ["__created", "__v.Cart", "items"]);

    let id = id_of(&cookie_pair(&response));
    assert_eq!(id.as_str().len(), 22, "128-bit random ID");
    let record = store
        .inner()
        .load(&id, LoadKeys::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&record.fields["items"][..], br#"["apple"]"#);
}

#[tokio::test]
async fn a_read_costs_one_load_and_writes_nothing() {
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    store.take_calls();
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(text(response).await, r#"["apple"]|"#);
    let calls = store.take_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let Call::Load(Some(keys)) = &calls[0] else {
        panic!("{calls:?}")
    };
    // Only this schema's keys and the metadata are asked for.
    let mut keys = keys.clone();
    keys.sort();
    assert_eq!(
        keys,
        ["__created", "__ttl", "__v.Cart", "items", "th", "user_id"]
    );
}

fn vary(response: &axum::response::Response) -> Vec<&str> {
    response
        .headers()
        .get_all(header::VARY)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

/// A response built from the session depends on the `Cookie` header: an HTTP cache must
/// not hand it to another visitor.
#[tokio::test]
async fn responses_that_used_the_session_vary_on_cookie() {
    let app = app(&store(), &Key::generate());
    let cookie = started(&app).await;
    let read = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(vary(&read), ["Cookie"]);
    let created = send(&app, request("POST", "/add", None, "x")).await;
    assert_eq!(set_cookies(&created).len(), 1);
    assert_eq!(vary(&created), ["Cookie"]);
    let plain = send(&app, request("GET", "/plain", Some(&cookie), "")).await;
    assert!(vary(&plain).is_empty(), "no session used, no Vary");

    // A handler's own `Vary` is kept; `Cookie` is added once, unless already covered.
    let with_vary = |value: &'static str| {
        move |cart: TypedSession<Cart>| async move {
            ([(header::VARY, value)], format!("{:?}", cart.items()))
        }
    };
    let app = Router::new()
        .route("/encoding", get(with_vary("Accept-Encoding")))
        .route("/cookie", get(with_vary("accept-language, cookie")))
        .route("/any", get(with_vary("*")))
        .layer(SessionLayer::new(store(), Key::generate()));
    let cases: [(&str, &[&str]); 3] = [
        ("/encoding", &["Accept-Encoding", "Cookie"]),
        ("/cookie", &["accept-language, cookie"]),
        ("/any", &["*"]),
    ];
    for (path, expected) in cases {
        let response = send(&app, request("GET", path, None, "")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(vary(&response), expected, "{path}");
    }
}

#[tokio::test]
async fn an_update_writes_exactly_the_changed_fields_in_one_call() {
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    store.take_calls();
    let response = send(&app, request("POST", "/add", Some(&cookie), "pear")).await;
    assert_eq!(text(response).await, "2");
    let calls = store.take_calls();
    let patch = the_one_save(&calls);
    assert_eq!(keys_set(patch), ["items"]);
    assert!(patch.remove.is_empty());
}

#[tokio::test]
async fn extractors_of_different_schemas_share_one_session_and_one_write() {
    let store = store();
    let app = app(&store, &Key::generate());
    let response = send(&app, request("POST", "/both", None, "")).await;
    assert_eq!(set_cookies(&response).len(), 1);
    let cookie = cookie_pair(&response);
    assert_eq!(text(response).await, "dark|fr");
    let calls = store.take_calls();
    let [Call::Create(patch)] = writes(&calls)[..] else {
        panic!("expected one create, got {calls:?}");
    };
    assert_eq!(
        keys_set(patch),
        ["__created", "__v.Cart", "__v.prefs", "prefs.lang", "th"]
    );
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|dark");
}

#[tokio::test]
async fn a_tampered_cookie_starts_a_fresh_session_under_a_new_id() {
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    let id = id_of(&cookie);
    let (value, tag) = cookie.split_once('=').unwrap().1.rsplit_once('.').unwrap();
    let mut forged_id = value.to_owned();
    forged_id.replace_range(0..1, if value.starts_with('A') { "B" } else { "A" });
    for bad in [
        format!("id={forged_id}.{tag}"),
        format!("id={value}.{}", &tag[1..]),
        format!("id={value}"),
        format!("id={}", "A".repeat(10_000)),
        "id=".to_owned(),
        "id=..;;==".to_owned(),
        "id=\"quoted.value\"".to_owned(),
        format!("id=client-chosen.{tag}"),
    ] {
        let response = send(&app, request("POST", "/add", Some(&bad), "x")).await;
        assert_eq!(response.status(), StatusCode::OK, "{bad}");
        let new = id_of(&cookie_pair(&response));
        assert_ne!(new, id);
        assert_ne!(new.as_str(), forged_id);
        assert_eq!(text(response).await, "1", "a fresh session: {bad}");
    }
    // The original session is untouched.
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, r#"["apple"]|"#);
}

#[tokio::test]
async fn non_utf8_cookie_headers_do_not_panic() {
    let store = store();
    let app = app(&store, &Key::generate());
    let req = Request::builder()
        .method("POST")
        .uri("/add")
        .header(
            header::COOKIE,
            axum::http::HeaderValue::from_bytes(b"id=\xff\xfe").unwrap(),
        )
        .body(Body::from("x"))
        .unwrap();
    let response = send(&app, req).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "1");
}

#[tokio::test]
async fn the_session_cookie_is_read_beside_other_cookies_with_non_ascii_bytes() {
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    // Browsers send other sites' cookies as they were set, UTF-8 included; such a header is
    // not valid `HeaderValue` text, and the session cookie in it must still count.
    for header in [
        format!("pref=caf\u{e9}; {cookie}"),
        format!("{cookie}; pref=caf\u{e9}"),
        format!("a=1;b=\u{2603};\t{cookie} ; c"),
    ] {
        let req = Request::builder()
            .uri("/show")
            .header(
                header::COOKIE,
                axum::http::HeaderValue::from_bytes(header.as_bytes()).unwrap(),
            )
            .body(Body::empty())
            .unwrap();
        let response = send(&app, req).await;
        assert_eq!(response.status(), StatusCode::OK, "{header}");
        assert_eq!(
            text(response).await,
            r#"["apple"]|"#,
            "the existing session was found in {header:?}"
        );
    }
}

/// HTTP/2 clients send each cookie in its own `Cookie` header; and a browser may hold two
/// cookies of the same name (another path, an old deploy), of which only one verifies.
#[tokio::test]
async fn the_session_cookie_is_found_across_cookie_headers_and_beside_a_stale_namesake() {
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    let stale = started(&self::app(&store, &Key::generate())).await;
    for headers in [
        vec!["a=1".to_owned(), cookie.clone(), "b=2".to_owned()],
        vec![stale.clone(), cookie.clone()],
        vec![format!("{stale}; {cookie}")],
        vec![format!("{cookie}; {stale}")],
    ] {
        let mut req = Request::builder().uri("/show");
        for value in &headers {
            req = req.header(header::COOKIE, value);
        }
        let response = send(&app, req.body(Body::empty()).unwrap()).await;
        assert!(set_cookies(&response).is_empty(), "{headers:?}");
        assert_eq!(text(response).await, r#"["apple"]|"#, "{headers:?}");
    }
}

#[tokio::test]
async fn a_signed_id_unknown_to_the_store_is_not_adopted() {
    let store = store();
    let key = Key::generate();
    let app = app(&store, &key);
    let cookie = started(&app).await;
    let id = id_of(&cookie);
    store.inner().delete(&id).await.unwrap();
    let response = send(&app, request("POST", "/add", Some(&cookie), "x")).await;
    let new = id_of(&cookie_pair(&response));
    assert_ne!(new, id, "the old (signed) ID is not reused");
    assert!(store
        .inner()
        .load(&id, LoadKeys::All)
        .await
        .unwrap()
        .is_none());
    assert_eq!(text(response).await, "1");
}

#[tokio::test]
async fn a_cookie_signed_by_a_previous_key_is_accepted_and_re_signed() {
    let store = store();
    let old = Key::generate();
    let cookie = started(&app(&store, &old)).await;
    let id = id_of(&cookie);

    let new = Key::generate();
    let rotated = app_with(SessionLayer::new(store.clone(), new.clone()).with_previous_keys([old]));
    store.take_calls();
    let response = send(&rotated, request("GET", "/show", Some(&cookie), "")).await;
    let resigned = cookie_pair(&response);
    assert_eq!(text(response).await, r#"["apple"]|"#);
    assert_eq!(id_of(&resigned), id, "same session");
    assert_ne!(resigned, cookie, "new signature");
    assert!(
        writes(&store.take_calls()).is_empty(),
        "re-signing writes nothing"
    );

    // The re-signed cookie verifies under the new key alone.
    let only_new = app_with(SessionLayer::new(store.clone(), new));
    let response = send(&only_new, request("GET", "/show", Some(&resigned), "")).await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(text(response).await, r#"["apple"]|"#);
    // And the old cookie does not.
    let response = send(&only_new, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|");
}

#[tokio::test]
async fn regenerate_moves_the_data_to_a_new_id_and_kills_the_old_one() {
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    store.take_calls();
    let response = send(&app, request("POST", "/login", Some(&cookie), "")).await;
    let new_cookie = cookie_pair(&response);
    assert_ne!(id_of(&new_cookie), id_of(&cookie));
    let calls = store.take_calls();
    let [Call::Regenerate(patch)] = writes(&calls)[..] else {
        panic!("expected one regenerate, got {calls:?}");
    };
    assert_eq!(
        keys_set(patch),
        ["user_id"],
        "the move does not rewrite other fields"
    );

    let response = send(&app, request("GET", "/show", Some(&new_cookie), "")).await;
    assert_eq!(text(response).await, r#"["apple"]|"#);
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|", "the old ID is dead");
    assert!(store
        .inner()
        .load(&id_of(&cookie), LoadKeys::All)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn destroy_deletes_the_record_and_removes_the_cookie() {
    let store = store();
    let layer = SessionLayer::new(store.clone(), Key::generate())
        .with_cookie_path("/app")
        .unwrap()
        .with_cookie_domain("example.com")
        .unwrap();
    let app = app_with(layer);
    let response = send(&app, request("POST", "/add", None, "apple")).await;
    let cookie = cookie_pair(&response);
    let response = send(&app, request("POST", "/logout", Some(&cookie), "")).await;
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 1);
    let removal = &cookies[0];
    assert!(removal.starts_with("id=;"), "{removal}");
    assert_eq!(attribute(removal, "Max-Age"), Some("0"));
    assert_eq!(attribute(removal, "Path"), Some("/app"));
    assert_eq!(attribute(removal, "Domain"), Some("example.com"));
    assert!(store.inner().is_empty());
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|");
}

#[tokio::test]
async fn the_session_id_is_readable_and_matches_the_cookie() {
    let store = store();
    let app = app(&store, &Key::generate());
    let response = send(&app, request("GET", "/whoami", None, "")).await;
    assert_eq!(text(response).await, "None");
    let cookie = started(&app).await;
    let response = send(&app, request("GET", "/whoami", Some(&cookie), "")).await;
    assert_eq!(
        text(response).await,
        format!("Some({:?})", id_of(&cookie).as_str())
    );
}

#[tokio::test]
async fn a_per_session_expiry_override_is_stored_and_makes_the_cookie_persistent() {
    let store = store();
    let app =
        app_with(SessionLayer::new(store.clone(), Key::generate()).with_session_only_cookie());
    let cookie = started(&app).await;
    let response = send(&app, request("POST", "/add", Some(&cookie), "b")).await;
    let cookies = set_cookies(&response);
    assert!(
        cookies.is_empty(),
        "session-only cookies are not re-sent on writes: {cookies:?}"
    );

    let response = send(&app, request("POST", "/remember", Some(&cookie), "")).await;
    let remembered = set_cookies(&response);
    let max_age: u64 = attribute(&remembered[0], "Max-Age")
        .unwrap()
        .parse()
        .unwrap();
    assert!((2_591_990..=2_592_000).contains(&max_age), "{max_age}");
    let id = id_of(&cookie);
    let record = store
        .inner()
        .load(&id, LoadKeys::All)
        .await
        .unwrap()
        .unwrap();
    let ttl = record
        .expires_at
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(ttl > Duration::from_secs(29 * 24 * 3600));

    // A later write keeps the override.
    let response = send(&app, request("POST", "/add", Some(&cookie), "c")).await;
    let max_age: u64 = attribute(&set_cookies(&response)[0], "Max-Age")
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age > 2_591_000);
}

#[tokio::test]
async fn a_zero_expiry_override_ends_the_session_with_the_request() {
    let store = store();
    let app = routes()
        .route(
            "/expire",
            post(|mut cart: TypedSession<Cart>| async move {
                cart.set_expiry(Some(Duration::ZERO));
            }),
        )
        .layer(SessionLayer::new(store.clone(), Key::generate()));
    let cookie = started(&app).await;
    let response = send(&app, request("POST", "/expire", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    // The browser drops the cookie at once, and the record expires with the request.
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert_eq!(attribute(&cookies[0], "Max-Age"), Some("0"), "{cookies:?}");
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|", "the session ended");
}

#[tokio::test]
async fn session_only_cookies_have_no_max_age() {
    let store = store();
    let app =
        app_with(SessionLayer::new(store.clone(), Key::generate()).with_session_only_cookie());
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = &set_cookies(&response)[0];
    assert!(attribute(cookie, "Max-Age").is_none() && attribute(cookie, "Expires").is_none());
    // The server still expires it.
    let id = id_of(&cookie_pair(&response));
    let record = store
        .inner()
        .load(&id, LoadKeys::All)
        .await
        .unwrap()
        .unwrap();
    assert!(record.expires_at.is_some());
}

#[tokio::test]
async fn cookie_max_age_and_store_ttl_agree() {
    let store = store();
    let app = app_with(
        SessionLayer::new(store.clone(), Key::generate())
            .with_idle_timeout(Duration::from_secs(600)),
    );
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let max_age: u64 = attribute(&set_cookies(&response)[0], "Max-Age")
        .unwrap()
        .parse()
        .unwrap();
    let id = id_of(&cookie_pair(&response));
    let record = store
        .inner()
        .load(&id, LoadKeys::All)
        .await
        .unwrap()
        .unwrap();
    let ttl = record
        .expires_at
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(max_age.abs_diff(ttl.as_secs()) <= 1, "{max_age} vs {ttl:?}");
}

#[tokio::test]
async fn idle_sessions_expire() {
    let store = store();
    let app = app_with(
        SessionLayer::new(store.clone(), Key::generate())
            .with_idle_timeout(Duration::from_millis(300)),
    );
    let cookie = started(&app).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    // A write slides the expiry.
    send(&app, request("POST", "/add", Some(&cookie), "b")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(
        text(response).await,
        r#"["apple", "b"]|"#,
        "still alive: slid"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|", "expired after idling");
}

#[tokio::test]
async fn the_absolute_timeout_ends_even_an_active_session() {
    let store = store();
    let app = app_with(
        SessionLayer::new(store.clone(), Key::generate())
            .with_idle_timeout(Duration::from_secs(60))
            .with_absolute_timeout(Duration::from_millis(400)),
    );
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let max_age: u64 = attribute(&set_cookies(&response)[0], "Max-Age")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(max_age, 0, "the cookie is capped at the absolute deadline");
    let cookie = cookie_pair(&response);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        send(&app, request("POST", "/add", Some(&cookie), "b")).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|");
}

#[tokio::test]
async fn the_absolute_deadline_survives_a_new_layer_instance() {
    // The creation time is stored with the session, not kept in the process.
    let store = store();
    let key = Key::generate();
    let make = || {
        app_with(
            SessionLayer::new(store.clone(), key.clone())
                .with_absolute_timeout(Duration::from_millis(300)),
        )
    };
    let cookie = started(&make()).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let response = send(&make(), request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|");
    assert!(store
        .inner()
        .load(&id_of(&cookie), LoadKeys::All)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn reads_refresh_the_expiry_at_most_once_per_interval() {
    let store = store();
    let app = app_with(
        SessionLayer::new(store.clone(), Key::generate())
            .with_ttl_refresh_interval(Duration::from_millis(200)),
    );
    let cookie = started(&app).await;
    store.take_calls();
    for _ in 0..5 {
        let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
        assert!(set_cookies(&response).is_empty());
    }
    assert!(writes(&store.take_calls()).is_empty());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    let refreshed = set_cookies(&response);
    assert_eq!(refreshed.len(), 1, "the sliding Max-Age is re-sent");
    assert_eq!(writes(&store.take_calls()), [&Call::Touch]);
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert!(set_cookies(&response).is_empty());
    assert!(writes(&store.take_calls()).is_empty());
}

/// Regression: with an idle timeout shorter than the refresh interval (60 s by default),
/// reads never refreshed the expiry, so a session that was only read ended while in use.
#[tokio::test]
async fn steady_reads_keep_a_session_with_a_short_idle_timeout_alive() {
    let store = store();
    let app = app_with(
        SessionLayer::new(store.clone(), Key::generate()).with_idle_timeout(Duration::from_secs(1)),
    );
    let cookie = started(&app).await;
    store.take_calls();
    // Reads 100 ms apart for one and a half times the idle timeout.
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
        assert_eq!(text(response).await, r#"["apple"]|"#, "still alive");
    }
    // Throttled all the same (to a quarter of the idle timeout): not every read refreshed.
    let touches = writes(&store.take_calls()).len();
    assert!(
        (2..15).contains(&touches),
        "{touches} refreshes for 15 reads"
    );
}

#[tokio::test]
async fn cookie_settings_are_applied() {
    let store = store();
    let app = app_with(
        SessionLayer::new(store.clone(), Key::generate())
            .with_cookie_name("sid")
            .unwrap()
            .with_insecure_cookie_over_http()
            .with_cookie_readable_by_scripts()
            .with_same_site(SameSite::Strict),
    );
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = &set_cookies(&response)[0];
    assert!(cookie.starts_with("sid="));
    assert!(attribute(cookie, "Secure").is_none());
    assert!(attribute(cookie, "HttpOnly").is_none());
    assert_eq!(attribute(cookie, "SameSite"), Some("Strict"));
    let pair = cookie_pair(&response);
    // Only the configured name is read.
    let response = send(&app, request("GET", "/show", Some(&pair), "")).await;
    assert_eq!(text(response).await, r#"["a"]|"#);
    let other = pair.replacen("sid=", "id=", 1);
    let response = send(&app, request("GET", "/show", Some(&other), "")).await;
    assert_eq!(text(response).await, "[]|");
}

/// An embedded app's cookie: `SameSite=None; Partitioned` on every cookie the layer sends,
/// the removal cookie included (a partitioned cookie is only removed by a partitioned one).
#[tokio::test]
async fn a_partitioned_cookie_carries_the_attribute_on_every_set_cookie() {
    let store = store();
    let embedded = app_with(
        SessionLayer::new(store.clone(), Key::generate())
            .with_same_site(SameSite::None)
            .with_partitioned_cookie(),
    );
    let response = send(&embedded, request("POST", "/add", None, "a")).await;
    let created = set_cookies(&response);
    let pair = cookie_pair(&response);
    let response = send(&embedded, request("POST", "/login", Some(&pair), "")).await;
    let regenerated = set_cookies(&response);
    let pair = cookie_pair(&response);
    let response = send(&embedded, request("POST", "/logout", Some(&pair), "")).await;
    let removed = set_cookies(&response);
    assert_eq!(attribute(&removed[0], "Max-Age"), Some("0"), "{removed:?}");
    for cookie in [&created[0], &regenerated[0], &removed[0]] {
        assert_eq!(attribute(cookie, "Partitioned"), Some(""), "{cookie}");
        assert_eq!(attribute(cookie, "SameSite"), Some("None"), "{cookie}");
        assert!(attribute(cookie, "Secure").is_some(), "{cookie}");
    }
    // Without the setting, no attribute.
    let plain = app(&store, &Key::generate());
    let response = send(&plain, request("POST", "/add", None, "a")).await;
    assert!(attribute(&set_cookies(&response)[0], "Partitioned").is_none());
}

#[test]
fn invalid_cookie_settings_are_errors() {
    let layer = || SessionLayer::new(MemoryStore::new(), Key::generate());
    assert!(layer().with_cookie_name("").is_err());
    assert!(layer().with_cookie_name("a;b").is_err());
    assert!(layer().with_cookie_name("a b").is_err());
    let err = layer().with_cookie_path("no-slash").unwrap_err();
    assert!(err.to_string().contains("must start with `/`"));
    assert!(layer().with_cookie_path("/a;b").is_err());
    assert!(layer().with_cookie_domain("").is_err());
    assert!(layer().with_cookie_domain("a b").is_err());
}

/// Cookies that browsers refuse would make every request start a new session, silently:
/// the layer refuses them when it is applied, naming the setting to change.
#[test]
fn cookie_settings_browsers_refuse_are_refused_when_the_layer_is_applied() {
    let layer = || SessionLayer::new(MemoryStore::new(), Key::generate());
    let refusal = |layer: SessionLayer<MemoryStore>| {
        let applied =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || routes().layer(layer)));
        let payload = applied.err()?;
        Some(
            payload
                .downcast_ref::<String>()
                .cloned()
                .expect("a message"),
        )
    };
    let refused = [
        (
            layer()
                .with_same_site(SameSite::None)
                .with_insecure_cookie_over_http(),
            "`SameSite=None` must be `Secure`",
        ),
        (
            layer()
                .with_cookie_name("__Host-id")
                .unwrap()
                .with_insecure_cookie_over_http(),
            "`__Host-` prefix",
        ),
        (
            layer()
                .with_cookie_name("__Host-id")
                .unwrap()
                .with_cookie_path("/app")
                .unwrap(),
            "on path `/`",
        ),
        (
            layer()
                .with_cookie_name("__host-id")
                .unwrap()
                .with_cookie_domain("example.com")
                .unwrap(),
            "without a domain",
        ),
        (
            layer()
                .with_cookie_name("__Secure-id")
                .unwrap()
                .with_insecure_cookie_over_http(),
            "`__Secure-` prefix",
        ),
        (
            layer()
                .with_partitioned_cookie()
                .with_insecure_cookie_over_http(),
            "`Partitioned` cookie must be `Secure`",
        ),
    ];
    for (layer, expected) in refused {
        let message = refusal(layer).expect("refused");
        assert!(message.contains(expected), "{message}");
    }
    let accepted = [
        layer().with_same_site(SameSite::None),
        layer().with_cookie_name("__Host-id").unwrap(),
        layer()
            .with_cookie_name("__Secure-id")
            .unwrap()
            .with_cookie_domain("example.com")
            .unwrap(),
        layer()
            .with_cookie_name("Host-id")
            .unwrap()
            .with_insecure_cookie_over_http(),
    ];
    for layer in accepted {
        assert_eq!(refusal(layer), None);
    }
}

#[test]
fn keys_are_redacted_in_debug() {
    let key = Key::from_bytes(b"0123456789abcdef0123456789abcdef-secret").unwrap();
    let layer = SessionLayer::new(MemoryStore::new(), key.clone()).with_previous_keys([key]);
    let debug = format!("{layer:?}");
    assert!(
        !debug.contains("secret") && !debug.contains("0123"),
        "{debug}"
    );
    assert!(debug.contains("REDACTED"));
}

#[derive(SessionData, Debug)]
#[session(version = 2, migrate = migrate_account)]
struct Account {
    display_name: String,
}

fn migrate_account(from: u32, fields: &mut RawFields) -> Result<(), MigrationError> {
    if from < 2 {
        fields.rename("name", "display_name");
    }
    Ok(())
}

async fn account(account: TypedSession<Account>) -> String {
    account.display_name().clone()
}

#[tokio::test]
async fn migrations_run_at_load_and_the_next_save_persists_them() {
    let store = store();
    let key = Key::generate();
    let app = Router::new()
        .route("/account", get(account))
        .layer(SessionLayer::new(store.clone(), key.clone()));
    // A record written by version 1 of the schema (plus another schema's field), behind a
    // cookie the layer issued.
    let (id, signed) = issued_session(&store, &key).await;
    let now = SystemTime::now();
    let patch = session_runtime::store::Patch {
        set: vec![
            ("__v.Account".into(), b"1".to_vec().into()),
            ("name".into(), br#""Ada""#.to_vec().into()),
            ("prefs.lang".into(), br#""fr""#.to_vec().into()),
        ],
        remove: vec![],
        expires_at: now + Duration::from_secs(60),
    };
    store.inner().create(&id, &patch).await.unwrap();
    store.take_calls();

    let response = send(&app, request("GET", "/account", Some(&signed), "")).await;
    assert_eq!(text(response).await, "Ada");
    let calls = store.take_calls();
    // The memory store returns whole records, so the migration needs no second load.
    assert_eq!(
        calls.iter().filter(|c| matches!(c, Call::Load(_))).count(),
        1,
        "{calls:?}"
    );
    let patch = the_one_save(&calls);
    assert_eq!(keys_set(patch), ["__v.Account", "display_name"]);
    assert_eq!(patch.remove, ["name"]);
    let record = store
        .inner()
        .load(&id, LoadKeys::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&record.fields["display_name"][..], br#""Ada""#);
    assert_eq!(&record.fields["prefs.lang"][..], br#""fr""#);
    assert!(!record.fields.contains_key("name"));

    // Migrated once: the next read writes nothing.
    let response = send(&app, request("GET", "/account", Some(&signed), "")).await;
    assert_eq!(text(response).await, "Ada");
    assert!(writes(&store.take_calls()).is_empty());
}

/// A session the layer issued a cookie for, with its record emptied out of the store so
/// the test can write the record it needs under the same ID.
async fn issued_session(store: &Store, key: &Key) -> (SessionId, String) {
    let cookie = started(&app(store, key)).await;
    let id = id_of(&cookie);
    store.inner().delete(&id).await.unwrap();
    (id, cookie)
}

#[tokio::test]
async fn strict_decoding_rejects_garbage_with_a_500_and_lenient_survives_it() {
    let store = store();
    let key = Key::generate();
    let (id, cookie) = issued_session(&store, &key).await;
    let patch = session_runtime::store::Patch {
        set: vec![
            ("items".into(), b"{not json".to_vec().into()),
            ("th".into(), br#""dark""#.to_vec().into()),
        ],
        remove: vec![],
        expires_at: SystemTime::now() + Duration::from_secs(60),
    };
    store.inner().create(&id, &patch).await.unwrap();

    let lenient = app(&store, &key);
    let response = send(&lenient, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|dark");

    let strict =
        app_with(SessionLayer::new(store.clone(), key).with_decode_policy(DecodePolicy::Strict));
    let response = send(&strict, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // Garbage in the store is never overwritten by a read.
    let record = store
        .inner()
        .load(&id, LoadKeys::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&record.fields["items"][..], b"{not json");
}

#[tokio::test]
async fn a_rejected_record_is_logged_with_the_decoders_reason() {
    let (_guard, logs) = session_suite::logs::capture();
    let store = store();
    let key = Key::generate();
    let (id, cookie) = issued_session(&store, &key).await;
    let patch = session_runtime::store::Patch {
        set: vec![("items".into(), b"{not json".to_vec().into())],
        remove: vec![],
        expires_at: SystemTime::now() + Duration::from_secs(60),
    };
    store.inner().create(&id, &patch).await.unwrap();
    let strict =
        app_with(SessionLayer::new(store.clone(), key).with_decode_policy(DecodePolicy::Strict));
    let response = send(&strict, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let logged = logs.text();
    let line = logged
        .lines()
        .find(|line| line.contains("ERROR"))
        .unwrap_or_else(|| panic!("an error is logged: {logged}"));
    assert!(line.contains("`Cart.items`"), "which field: {line}");
    // serde_json's own message: the reason, not only the field.
    assert!(line.contains("expected a sequence"), "why: {line}");
}

#[tokio::test]
async fn unreadable_stored_data_starts_a_new_session_or_under_strict_fails() {
    let (_guard, logs) = session_suite::logs::capture();
    let store = store();
    let key = Key::generate();
    let lenient = app(&store, &key);
    let cookie = started(&lenient).await;
    store.set_unreadable(true);

    // Like a record that fails to decode: a warning and a new session, under a new ID.
    let response = send(&lenient, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "[]|");
    let logged = logs.text();
    assert!(
        logged.contains("WARN")
            && logged.contains("unreadable")
            && logged.contains("record damaged by the test"),
        "{logged}"
    );
    let response = send(&lenient, request("POST", "/add", Some(&cookie), "pear")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_ne!(id_of(&cookie_pair(&response)), id_of(&cookie));

    // Under the strict policy: a 500, not a 503, since trying again will not help.
    let strict =
        app_with(SessionLayer::new(store.clone(), key).with_decode_policy(DecodePolicy::Strict));
    let response = send(&strict, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);

    // Nothing was written over it.
    store.set_unreadable(false);
    let response = send(&lenient, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, r#"["apple"]|"#);
}

#[tokio::test]
async fn a_store_failure_on_load_is_a_503_and_on_save_too() {
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    store.set_failing(true);
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    // A new session fails at its first save.
    let response = send(&app, request("POST", "/add", None, "x")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(set_cookies(&response).is_empty());
    assert!(store.failures() >= 2);
    store.set_failing(false);
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, r#"["apple"]|"#, "nothing was lost");
}

/// A page that can do without the session takes `Result<TypedSession<_>, SessionError>`
/// (axum's extractor for a fallible one) and still answers while the store is down.
#[tokio::test]
async fn a_handler_that_can_do_without_the_session_answers_while_the_store_is_down() {
    async fn home(cart: Result<TypedSession<Cart>, SessionError>) -> String {
        match cart {
            Ok(cart) => format!("{} items", cart.items().len()),
            Err(err) => format!("cart unavailable ({})", err.status().as_u16()),
        }
    }
    let store = store();
    let app = routes()
        .route("/home", get(home))
        .layer(SessionLayer::new(store.clone(), Key::generate()));
    let cookie = started(&app).await;
    let response = send(&app, request("GET", "/home", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "1 items");

    store.set_failing(true);
    let response = send(&app, request("GET", "/home", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        set_cookies(&response).is_empty(),
        "nothing to save, no cookie"
    );
    assert_eq!(text(response).await, "cart unavailable (503)");
    // Pages that need the session still say the store is down.
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    store.set_failing(false);
    let response = send(&app, request("GET", "/home", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "1 items", "nothing was lost");
}

/// A route whose handler first deletes the session `id` from the store (another request
/// logging out while this one runs), then goes on with `then`.
fn after_a_concurrent_logout(
    store: &Store,
    id: &SessionId,
    then: fn(TypedSession<Cart>) -> String,
) -> axum::routing::MethodRouter {
    let (store, id) = (store.clone(), id.clone());
    axum::routing::any(move |cart: TypedSession<Cart>| {
        let (store, id) = (store.clone(), id.clone());
        async move {
            store.inner().delete(&id).await.unwrap();
            then(cart)
        }
    })
}

async fn is_gone(store: &Store, id: &SessionId) -> bool {
    store
        .inner()
        .load(id, LoadKeys::All)
        .await
        .unwrap()
        .is_none()
}

#[tokio::test]
async fn a_session_deleted_during_the_request_is_not_resurrected() {
    let (store, key, cookie) = started_in_a_new_store().await;
    let id = id_of(&cookie);
    let racing = Router::new()
        .route(
            "/race",
            after_a_concurrent_logout(&store, &id, |mut cart| {
                cart.items_mut().push("late".into());
                "done".into()
            }),
        )
        .layer(SessionLayer::new(store.clone(), key));
    let response = send(&racing, request("POST", "/race", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(is_gone(&store, &id).await);
}

/// A read-only request that is due to refresh the expiry, while another request (a logout
/// in another tab) deletes the session: it changed nothing, so it answers normally, brings
/// nothing back and sends no cookie (a removal cookie could arrive after, and so remove,
/// the cookie of a session the other tab started since).
#[tokio::test]
async fn a_read_whose_session_is_deleted_meanwhile_still_answers_and_resurrects_nothing() {
    let (store, key, cookie) = started_in_a_new_store().await;
    let id = id_of(&cookie);
    let racing = Router::new()
        .route(
            "/peek",
            after_a_concurrent_logout(&store, &id, |cart| format!("{:?}", cart.items())),
        )
        .layer(SessionLayer::new(store.clone(), key).with_ttl_refresh_interval(Duration::ZERO));
    store.take_calls();
    let response = send(&racing, request("GET", "/peek", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookies(&response).is_empty());
    assert_eq!(text(response).await, r#"["apple"]"#);
    assert_eq!(
        writes(&store.take_calls()),
        [&Call::Touch],
        "the refresh was due"
    );
    assert!(is_gone(&store, &id).await);
}

/// A session handed out of its handler (as to a spawned task) and changed after the
/// response: the layer has saved it already, so the change is lost, and that must be loud.
/// An explicit `save` still works then.
#[tokio::test]
async fn changes_made_after_the_response_are_logged_as_lost_unless_saved() {
    let (_guard, logs) = session_suite::logs::capture();
    let (store, key, cookie) = started_in_a_new_store().await;
    let (route, mut held) = handing_out::<Cart>();
    let app = Router::new()
        .route("/hand-out", route)
        .layer(SessionLayer::new(store.clone(), key.clone()));
    let show = |store: &Store| {
        let app = self::app(store, &key);
        let cookie = cookie.clone();
        async move { text(send(&app, request("GET", "/show", Some(&cookie), "")).await).await }
    };
    let lost = "changes made after the response was sent are lost";

    let response = send(&app, request("POST", "/hand-out", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "later");
    let mut cart = held.recv().await.unwrap();
    cart.items_mut().push("late".into());
    drop(cart);
    assert_eq!(logs.text().matches(lost).count(), 1, "{}", logs.text());
    assert_eq!(show(&store).await, r#"["apple"]|"#);

    let response = send(&app, request("POST", "/hand-out", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut cart = held.recv().await.unwrap();
    cart.destroy();
    drop(cart);
    assert_eq!(logs.text().matches(lost).count(), 2, "{}", logs.text());
    assert_eq!(show(&store).await, r#"["apple"]|"#, "not destroyed");

    let response = send(&app, request("POST", "/hand-out", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut cart = held.recv().await.unwrap();
    cart.items_mut().push("saved".into());
    cart.save().await.unwrap();
    drop(cart);
    assert_eq!(logs.text().matches(lost).count(), 2, "{}", logs.text());
    assert_eq!(show(&store).await, r#"["apple", "saved"]|"#);

    // What needs a new cookie cannot be saved any more: the browser would never learn it.
    let response = send(&app, request("POST", "/hand-out", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut cart = held.recv().await.unwrap();
    cart.regenerate();
    let err = cart.save().await.unwrap_err();
    assert!(matches!(err, SessionError::ResponseSent), "{err}");
    drop(cart);
    assert_eq!(
        show(&store).await,
        r#"["apple", "saved"]|"#,
        "same ID, still alive"
    );

    let response = send(&app, request("POST", "/hand-out", None, "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut cart = held.recv().await.unwrap();
    cart.items_mut().push("orphan".into());
    let err = cart.save().await.unwrap_err();
    assert!(matches!(err, SessionError::ResponseSent), "{err}");
    drop(cart);
    assert_eq!(store.inner().len(), 1, "no session nobody can reach");

    // A logout still happens; the new session after it cannot start.
    let response = send(&app, request("POST", "/hand-out", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut cart = held.recv().await.unwrap();
    cart.destroy();
    cart.items_mut().push("after logout".into());
    let err = cart.save().await.unwrap_err();
    assert!(matches!(err, SessionError::ResponseSent), "{err}");
    drop(cart);
    assert!(store.inner().is_empty());
    assert_eq!(show(&store).await, "[]|");
}

#[derive(SessionData, Debug)]
struct Unencodable {
    pairs: HashMap<(u8, u8), u8>,
}

#[tokio::test]
async fn a_field_that_cannot_be_encoded_is_a_500_not_a_silent_loss() {
    let store = store();
    let app = Router::new()
        .route(
            "/bad",
            post(|mut s: TypedSession<Unencodable>| async move {
                s.pairs_mut().insert((1, 2), 3);
                "handler ran"
            }),
        )
        .layer(SessionLayer::new(store.clone(), Key::generate()));
    let response = send(&app, request("POST", "/bad", None, "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookies(&response).is_empty());
    assert!(store.inner().is_empty(), "no partial record");
}

#[tokio::test]
async fn using_the_extractor_without_the_layer_is_a_500() {
    let app = Router::new().route("/show", get(show));
    let response = send(&app, request("GET", "/show", None, "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn an_early_save_that_needs_a_new_cookie_sends_it_even_with_nothing_after() {
    let store = store();
    let app = Router::new()
        .route(
            "/create-early",
            post(|mut cart: TypedSession<Cart>| async move {
                cart.set_theme("early".into());
                cart.save().await.unwrap();
            }),
        )
        .route(
            "/regenerate-early",
            post(|mut cart: TypedSession<Cart>| async move {
                cart.regenerate();
                cart.save().await.unwrap();
            }),
        )
        .route("/show", get(show))
        .layer(SessionLayer::new(store.clone(), Key::generate()));

    // A session created by the early save: without its cookie it would be lost.
    let response = send(&app, request("POST", "/create-early", None, "")).await;
    let cookie = cookie_pair(&response);
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|early");

    // An ID regenerated by the early save: without the new cookie the browser would keep
    // the old, dead one, and the session would be lost.
    let response = send(
        &app,
        request("POST", "/regenerate-early", Some(&cookie), ""),
    )
    .await;
    let moved = cookie_pair(&response);
    assert_ne!(id_of(&moved), id_of(&cookie));
    let response = send(&app, request("GET", "/show", Some(&moved), "")).await;
    assert_eq!(text(response).await, "[]|early");
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|", "the old ID is dead");
}

#[tokio::test]
async fn an_early_save_persists_before_the_handler_returns() {
    let store = store();
    let key = Key::generate();
    let observer = store.clone();
    let app = Router::new()
        .route(
            "/early",
            post(move |mut cart: TypedSession<Cart>| {
                let observer = observer.clone();
                async move {
                    cart.set_theme("saved-early".into());
                    cart.save().await.unwrap();
                    let id = cart.id().expect("a saved session has an ID");
                    let record = observer
                        .inner()
                        .load(&id, LoadKeys::All)
                        .await
                        .unwrap()
                        .unwrap();
                    cart.items_mut().push("after".into());
                    String::from_utf8(record.fields["th"].to_vec()).unwrap()
                }
            }),
        )
        .route("/show", get(show))
        .layer(SessionLayer::new(store.clone(), key));
    let response = send(&app, request("POST", "/early", None, "")).await;
    let cookie = cookie_pair(&response);
    assert_eq!(text(response).await, r#""saved-early""#);
    let calls = store.take_calls();
    let kinds: Vec<_> = writes(&calls)
        .iter()
        .map(|c| match c {
            Call::Create(p) => format!("create {:?}", keys_set(p)),
            Call::Save(p) => format!("save {:?}", keys_set(p)),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            r#"create ["__created", "__v.Cart", "th"]"#,
            r#"save ["items"]"#
        ]
    );
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, r#"["after"]|saved-early"#);
}

#[tokio::test]
async fn an_early_save_surfaces_a_store_failure_to_the_handler() {
    let store = store();
    let failing = store.clone();
    let app = Router::new()
        .route(
            "/early",
            post(move |mut cart: TypedSession<Cart>| {
                let failing = failing.clone();
                async move {
                    cart.set_theme("x".into());
                    failing.set_failing(true);
                    let result = cart.save().await;
                    failing.set_failing(false);
                    format!("{}", result.is_err())
                }
            }),
        )
        .layer(SessionLayer::new(store.clone(), Key::generate()));
    let response = send(&app, request("POST", "/early", None, "")).await;
    assert_eq!(text(response).await, "true");
}

#[tokio::test]
async fn changes_of_a_dropped_extractor_are_saved() {
    let store = store();
    let app = app(&store, &Key::generate());
    let response = send(&app, request("POST", "/twice", None, "")).await;
    let cookie = cookie_pair(&response);
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, r#"["a"]|"#);
}

#[tokio::test]
async fn login_regenerates_even_a_new_session() {
    let store = store();
    let app = app(&store, &Key::generate());
    let response = send(&app, request("POST", "/login", None, "")).await;
    let cookie = cookie_pair(&response);
    let response = send(&app, request("GET", "/whoami", Some(&cookie), "")).await;
    assert!(text(response).await.starts_with("Some("));
}

#[tokio::test]
async fn a_bad_cookie_logs_a_warning_without_its_value() {
    let (_guard, logs) = session_suite::logs::capture();
    let store = store();
    // Well-formed, but signed by another key.
    let forged = started(&app(&store, &Key::generate())).await;
    let app = app(&store, &Key::generate());
    send(&app, request("GET", "/show", Some(&forged), "")).await;
    let logged = logs.text();
    assert!(logged.contains("WARN"), "{logged}");
    assert!(
        logged.contains("failed verification") && logged.contains("bad signature"),
        "{logged}"
    );
    let (id, tag) = forged.split_once('=').unwrap().1.rsplit_once('.').unwrap();
    assert!(
        !logged.contains(id) && !logged.contains(tag),
        "the cookie is not logged: {logged}"
    );
}

#[tokio::test]
async fn a_store_failure_is_logged_with_its_cause() {
    let (_guard, logs) = session_suite::logs::capture();
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    store.set_failing(true);
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let logged = logs.text();
    assert!(logged.contains("ERROR"), "{logged}");
    assert!(
        logged.contains("store switched off by the test"),
        "{logged}"
    );
}

#[tokio::test]
async fn a_write_re_sends_the_same_signed_cookie_with_a_fresh_max_age() {
    let store = store();
    let key = Key::generate();
    let app = app(&store, &key);
    let cookie = started(&app).await;
    let response = send(&app, request("POST", "/add", Some(&cookie), "pear")).await;
    let again = set_cookies(&response);
    assert_eq!(again.len(), 1);
    assert_eq!(cookie_pair(&response), cookie, "same ID, same tag");
    assert!(attribute(&again[0], "Max-Age").is_some());
    // And it still verifies on its own.
    let response = send(
        &app,
        request("GET", "/show", Some(&cookie_pair(&response)), ""),
    )
    .await;
    assert_eq!(text(response).await, r#"["apple", "pear"]|"#);
}

async fn read_both(cart: TypedSession<Cart>, prefs: TypedSession<Prefs>) -> String {
    format!("{}|{}", cart.theme(), prefs.lang())
}

#[tokio::test]
async fn several_schemas_in_one_request_cost_one_load() {
    let store = store();
    let app = routes()
        .route("/read-both", get(read_both))
        .layer(SessionLayer::new(store.clone(), Key::generate()));
    let response = send(&app, request("POST", "/both", None, "")).await;
    let cookie = cookie_pair(&response);
    store.take_calls();
    let response = send(&app, request("GET", "/read-both", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "dark|fr");
    let calls = store.take_calls();
    assert_eq!(calls.len(), 1, "one load for both schemas: {calls:?}");
}

#[tokio::test]
async fn a_store_that_loads_only_asked_keys_gets_one_load_per_schema_and_a_full_one_to_migrate() {
    let recording = Recording::new(session_suite::OnlyAskedKeys(MemoryStore::new()));
    let key = Key::generate();
    let app = routes()
        .route("/read-both", get(read_both))
        .route("/account", get(account))
        .layer(SessionLayer::new(recording.clone(), key.clone()));

    // Two schemas: the second one's keys are loaded when it is extracted.
    let response = send(&app, request("POST", "/both", None, "")).await;
    let cookie = cookie_pair(&response);
    recording.take_calls();
    let response = send(&app, request("GET", "/read-both", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "dark|fr");
    let loads: Vec<_> = recording
        .take_calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Load(keys) => Some(keys),
            _ => None,
        })
        .collect();
    assert_eq!(loads.len(), 2, "{loads:?}");
    assert!(loads[0].as_ref().unwrap().contains(&"th".to_owned()));
    assert!(loads[1]
        .as_ref()
        .unwrap()
        .contains(&"prefs.lang".to_owned()));

    // A v1 record: the migration needs the whole namespace, so the whole record is loaded.
    let id = id_of(&cookie);
    recording
        .inner()
        .0
        .save(
            &id,
            &session_runtime::store::Patch {
                set: vec![
                    ("__v.Account".into(), b"1".to_vec().into()),
                    ("name".into(), br#""Ada""#.to_vec().into()),
                ],
                remove: vec![],
                expires_at: SystemTime::now() + Duration::from_secs(60),
            },
        )
        .await
        .unwrap();
    recording.take_calls();
    let response = send(&app, request("GET", "/account", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "Ada");
    let calls = recording.take_calls();
    assert!(calls.contains(&Call::Load(None)), "a full load: {calls:?}");
}

#[tokio::test]
async fn the_layer_wrapped_around_the_whole_router_behaves_the_same() {
    use tower::Layer;
    let store = store();
    let app = SessionLayer::new(store.clone(), Key::generate()).layer(routes());

    // Lazy: a handler without a session, or a path no route answers, costs nothing.
    let response = send(&app, request("GET", "/plain", None, "")).await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(text(response).await, "plain");
    let response = send(&app, request("GET", "/missing", None, "")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(set_cookies(&response).is_empty());
    assert!(store.take_calls().is_empty());

    // Create, then update exactly the changed field.
    let response = send(&app, request("POST", "/add", None, "apple")).await;
    let cookie = cookie_pair(&response);
    assert!(matches!(writes(&store.take_calls())[..], [Call::Create(_)]));
    let response = send(&app, request("POST", "/add", Some(&cookie), "pear")).await;
    assert_eq!(text(response).await, "2");
    let calls = store.take_calls();
    let patch = the_one_save(&calls);
    assert_eq!(keys_set(patch), ["items"]);

    // A read loads once and writes nothing; with the cookie, a 404 still loads nothing.
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(text(response).await, r#"["apple", "pear"]|"#);
    assert!(matches!(store.take_calls()[..], [Call::Load(_)]));
    let response = send(&app, request("GET", "/missing", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(store.take_calls().is_empty());

    // Regenerate and destroy.
    let response = send(&app, request("POST", "/login", Some(&cookie), "")).await;
    let new_cookie = cookie_pair(&response);
    assert_ne!(id_of(&new_cookie), id_of(&cookie));
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|", "the old ID is dead");
    let response = send(&app, request("POST", "/logout", Some(&new_cookie), "")).await;
    assert!(set_cookies(&response)[0].starts_with("id=;"));
    assert!(store.inner().is_empty());
}

/// 400 days in seconds: the longest a session outlives its last write.
const LONGEST_SECS: u64 = 400 * 24 * 60 * 60;

#[tokio::test]
async fn timeouts_too_long_to_represent_are_capped_at_400_days_never_a_panic() {
    async fn forever(mut cart: TypedSession<Cart>) -> &'static str {
        cart.set_user_id(Some(1));
        cart.set_expiry(Some(Duration::MAX));
        "ok"
    }
    let store = store();
    let layer = || SessionLayer::new(store.clone(), Key::generate());
    let forever_app: Router = routes().route("/forever", post(forever)).layer(layer());
    let cases = [
        (
            "set_expiry(Duration::MAX)",
            forever_app,
            "/forever",
            LONGEST_SECS,
        ),
        (
            "with_idle_timeout(Duration::MAX)",
            app_with(layer().with_idle_timeout(Duration::MAX)),
            "/add",
            LONGEST_SECS,
        ),
        (
            "with_absolute_timeout(Duration::MAX)",
            app_with(layer().with_absolute_timeout(Duration::MAX)),
            "/add",
            24 * 60 * 60,
        ),
    ];
    for (case, app, path, max_age) in cases {
        let before = SystemTime::now();
        let response = send(&app, request("POST", path, None, "x")).await;
        assert_eq!(response.status(), StatusCode::OK, "{case}");
        let cookies = set_cookies(&response);
        assert_eq!(
            attribute(&cookies[0], "Max-Age"),
            Some(max_age.to_string().as_str()),
            "{case}"
        );
        // The store keeps the session exactly as long as the cookie lives.
        let cookie = cookie_pair(&response);
        let record = store
            .inner()
            .load(&id_of(&cookie), LoadKeys::All)
            .await
            .unwrap()
            .expect("stored");
        let lifetime = record
            .expires_at
            .unwrap()
            .duration_since(before)
            .unwrap()
            .as_secs();
        assert!(
            (max_age..=max_age + 2).contains(&lifetime),
            "{case}: {lifetime}"
        );
        // And the next request, which reads the stored timeout back, works too.
        let response = send(&app, request("POST", path, Some(&cookie), "y")).await;
        assert_eq!(response.status(), StatusCode::OK, "{case}, again");
    }
}

#[tokio::test]
async fn stored_times_out_of_range_neither_panic_nor_outlive_400_days() {
    let store = store();
    let app = app_with(
        SessionLayer::new(store.clone(), Key::generate())
            .with_absolute_timeout(Duration::from_secs(3600))
            .with_ttl_refresh_interval(Duration::ZERO),
    );
    let cookie = started(&app).await;
    let id = id_of(&cookie);
    // Garbage another writer could leave: the largest numbers the metadata can hold.
    let patch = Patch {
        set: vec![
            ("__created".into(), Bytes::from(u64::MAX.to_string())),
            ("__ttl".into(), Bytes::from(u64::MAX.to_string())),
        ],
        remove: Vec::new(),
        expires_at: SystemTime::now() + Duration::from_secs(60),
    };
    store.inner().save(&id, &patch).await.unwrap();
    for (method, path) in [("GET", "/show"), ("POST", "/add")] {
        let response = send(&app, request(method, path, Some(&cookie), "z")).await;
        assert_eq!(response.status(), StatusCode::OK, "{method} {path}");
        for set in set_cookies(&response) {
            let max_age: u64 = attribute(&set, "Max-Age").unwrap().parse().unwrap();
            assert!(max_age <= LONGEST_SECS, "{set}");
        }
    }
}

/// A destroy ends the changes made before it on every extractor of the request; changes
/// made after it, on any extractor, start a new session.
#[tokio::test]
async fn a_destroy_drops_earlier_changes_of_every_extractor_and_keeps_later_ones() {
    let store = store();
    let app = Router::new()
        .route(
            "/set-then-logout",
            post(
                |mut cart: TypedSession<Cart>, mut prefs: TypedSession<Prefs>| async move {
                    prefs.set_lang("fr".into());
                    cart.destroy();
                    // Still shows what it holds; only later changes are saved.
                    prefs.lang().clone()
                },
            ),
        )
        .route(
            "/logout-then-set",
            post(
                |mut cart: TypedSession<Cart>, mut prefs: TypedSession<Prefs>| async move {
                    prefs.set_lang("fr".into());
                    cart.destroy();
                    prefs.set_lang("de".into());
                },
            ),
        )
        .route(
            "/lang",
            get(|prefs: TypedSession<Prefs>| async move { prefs.lang().clone() }),
        )
        .route("/add", post(add))
        .route("/show", get(show))
        .layer(SessionLayer::new(store.clone(), Key::generate()));

    let cookie = started(&app).await;
    let response = send(&app, request("POST", "/set-then-logout", Some(&cookie), "")).await;
    let cookies = set_cookies(&response);
    assert_eq!(text(response).await, "fr");
    assert_eq!(cookies.len(), 1);
    assert_eq!(attribute(&cookies[0], "Max-Age"), Some("0"), "{cookies:?}");
    assert!(store.inner().is_empty(), "nothing outlives the logout");

    let cookie = started(&app).await;
    let response = send(&app, request("POST", "/logout-then-set", Some(&cookie), "")).await;
    let fresh = cookie_pair(&response);
    assert_ne!(id_of(&fresh), id_of(&cookie));
    let response = send(&app, request("GET", "/lang", Some(&fresh), "")).await;
    assert_eq!(text(response).await, "de", "the change after the destroy");
    let response = send(&app, request("GET", "/show", Some(&fresh), "")).await;
    assert_eq!(text(response).await, "[]|", "nothing of the old session");
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|", "the old session is gone");
    assert_eq!(store.inner().len(), 1);
}
