//! `CookieStore`: the whole session in an encrypted cookie behind the same layer and API.

use std::{
    borrow::Cow,
    time::{Duration, SystemTime},
};

use axum::{
    http::StatusCode,
    routing::{get, post},
    Router,
};
use session_runtime::{
    conformance,
    store::{LoadKeys, Patch},
    CookieStore, Key, SessionData, SessionError, SessionId, SessionLayer, SessionStore,
    TypedSession,
};
use session_suite::http::{cookie_pair, handing_out, request, send, set_cookies, text};

#[derive(SessionData, Debug)]
struct Cart {
    items: Vec<String>,
    note: String,
}

async fn add(mut cart: TypedSession<Cart>, item: String) -> String {
    cart.items_mut().push(item);
    cart.items().len().to_string()
}

async fn show(cart: TypedSession<Cart>) -> String {
    format!("{:?}", cart.items())
}

async fn note(mut cart: TypedSession<Cart>, body: String) -> &'static str {
    cart.set_note(body);
    "noted"
}

async fn login(mut cart: TypedSession<Cart>) -> &'static str {
    cart.regenerate();
    "in"
}

async fn logout(mut cart: TypedSession<Cart>) -> &'static str {
    cart.destroy();
    "out"
}

fn app(store: CookieStore, key: &Key) -> Router {
    app_with(SessionLayer::new(store, key.clone()))
}

fn app_with(layer: SessionLayer) -> Router {
    Router::new()
        .route("/add", post(add))
        .route("/show", get(show))
        .route("/note", post(note))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(layer)
}

/// The sealed record inside a `name=sealed.tag` cookie.
fn sealed(pair: &str) -> SessionId {
    SessionId::from_store(pair.split_once('=').unwrap().1.rsplit_once('.').unwrap().0)
}

fn patch(set: &[(&'static str, &str)], expires_at: SystemTime) -> Patch {
    Patch {
        set: set
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), v.as_bytes().to_vec().into()))
            .collect(),
        remove: vec![],
        expires_at,
    }
}

fn in_a_minute() -> SystemTime {
    SystemTime::now() + Duration::from_secs(60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_store_passes_the_client_side_conformance_checks() {
    conformance::run_client_side(CookieStore::new(&Key::generate())).await;
}

/// Fields of a schema with its own codec (bytes that are not text) survive sealing.
#[tokio::test]
async fn cookie_store_keeps_each_schemas_encoding() {
    session_suite::codec::check_codecs_side_by_side(CookieStore::new(&Key::generate())).await;
}

/// A session kept in the cookie changes its cookie on every save: after the response (an
/// extractor moved into a spawned task), a save has nowhere to go and says so.
#[tokio::test]
async fn a_save_after_the_response_is_refused_as_the_cookie_cannot_follow() {
    let key = Key::generate();
    let store = CookieStore::new(&key);
    let cookie = cookie_pair(
        &send(
            &app(store.clone(), &key),
            request("POST", "/add", None, "a"),
        )
        .await,
    );
    let (route, mut held) = handing_out::<Cart>();
    let app = Router::new()
        .route("/hand-out", route)
        .layer(SessionLayer::new(store, key));
    let response = send(&app, request("POST", "/hand-out", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookies(&response).is_empty());
    let mut cart = held.recv().await.unwrap();
    assert_eq!(cart.items(), &["a"]);
    cart.items_mut().push("late".into());
    let err = cart.save().await.unwrap_err();
    assert!(matches!(err, SessionError::ResponseSent), "{err}");
}

#[tokio::test]
async fn switching_to_the_cookie_store_is_one_line_and_keeps_no_server_state() {
    let key = Key::generate();
    let store_key = Key::generate();
    let app = app(CookieStore::new(&store_key), &key);
    let response = send(&app, request("POST", "/add", None, "secret-apple")).await;
    let cookie = cookie_pair(&response);
    assert!(
        !cookie.contains("secret-apple"),
        "the data is encrypted: {cookie}"
    );
    let response = send(&app, request("POST", "/add", Some(&cookie), "pear")).await;
    let cookie = cookie_pair(&response);

    // A brand-new app instance with the same keys reads the session: no server state.
    let other = app_with(SessionLayer::new(CookieStore::new(&store_key), key));
    let response = send(
        &other,
        request("GET", "/show", Some(&cookie), String::new()),
    )
    .await;
    assert!(set_cookies(&response).is_empty(), "a read sends no cookie");
    assert_eq!(text(response).await, r#"["secret-apple", "pear"]"#);
}

#[tokio::test]
async fn tampered_truncated_reordered_and_wrong_key_values_do_not_open() {
    let store = CookieStore::new(&Key::generate());
    let id = store
        .create(
            &SessionId::generate(),
            &patch(&[("a", "1"), ("b", "2")], in_a_minute()),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(store.load(&id, LoadKeys::All).await.unwrap().is_some());
    let value = id.as_str();

    let mut tampered = value.to_owned().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let truncated = &value[..value.len() - 4];
    let reordered = format!("{}{}", &value[value.len() / 2..], &value[..value.len() / 2]);
    let cases = [
        String::from_utf8(tampered).unwrap(),
        truncated.to_owned(),
        reordered,
        String::new(),
        "not base64 !!".to_owned(),
        "A".repeat(30),
    ];
    for bad in cases {
        let loaded = store
            .load(&SessionId::from_store(bad.clone()), LoadKeys::All)
            .await
            .unwrap();
        assert!(loaded.is_none(), "{bad}");
        let saved = store
            .save(
                &SessionId::from_store(bad.clone()),
                &patch(&[("c", "3")], in_a_minute()),
            )
            .await;
        assert!(saved.is_err(), "{bad}");
    }
    let other_key = CookieStore::new(&Key::generate());
    assert!(
        other_key.load(&id, LoadKeys::All).await.unwrap().is_none(),
        "wrong key"
    );
}

#[tokio::test]
async fn expired_values_do_not_open_even_if_the_browser_sends_them() {
    let store = CookieStore::new(&Key::generate());
    let id = store
        .create(
            &SessionId::generate(),
            &patch(
                &[("a", "1")],
                SystemTime::now() + Duration::from_millis(100),
            ),
        )
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(store.load(&id, LoadKeys::All).await.unwrap().is_none());
}

#[tokio::test]
async fn through_the_layer_an_expired_session_starts_fresh() {
    let key = Key::generate();
    let app = app_with(
        SessionLayer::new(CookieStore::new(&key), key.clone())
            .with_idle_timeout(Duration::from_millis(200)),
    );
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = cookie_pair(&response);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = send(&app, request("GET", "/show", Some(&cookie), String::new())).await;
    assert_eq!(text(response).await, "[]");
}

#[tokio::test]
async fn the_absolute_timeout_is_enforced_from_the_sealed_creation_time() {
    let key = Key::generate();
    let app = app_with(
        SessionLayer::new(CookieStore::new(&key), key.clone())
            .with_absolute_timeout(Duration::from_millis(300)),
    );
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let mut cookie = cookie_pair(&response);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let response = send(&app, request("POST", "/add", Some(&cookie), "b")).await;
    cookie = cookie_pair(&response);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = send(&app, request("GET", "/show", Some(&cookie), String::new())).await;
    assert_eq!(text(response).await, "[]");
}

#[tokio::test]
async fn a_tampered_cookie_starts_a_fresh_session() {
    let key = Key::generate();
    let app = app(CookieStore::new(&key), &key);
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = cookie_pair(&response);
    let tampered = cookie.replacen('=', "=x", 1);
    let response = send(
        &app,
        request("GET", "/show", Some(&tampered), String::new()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "[]");
}

#[tokio::test]
async fn a_cookie_sealed_with_an_old_key_is_read_and_re_encrypted() {
    let signing = Key::generate();
    let old = Key::generate();
    let new = Key::generate();
    let response = send(
        &app(CookieStore::new(&old), &signing),
        request("POST", "/add", None, "kept"),
    )
    .await;
    let old_cookie = cookie_pair(&response);

    let rotated = app(CookieStore::new(&new).with_previous_keys([&old]), &signing);
    let response = send(
        &rotated,
        request("GET", "/show", Some(&old_cookie), String::new()),
    )
    .await;
    let new_cookie = cookie_pair(&response);
    assert_ne!(
        new_cookie, old_cookie,
        "re-encrypted on a read-only request"
    );
    assert_eq!(text(response).await, r#"["kept"]"#);

    let only_new = app(CookieStore::new(&new), &signing);
    let response = send(
        &only_new,
        request("GET", "/show", Some(&new_cookie), String::new()),
    )
    .await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(text(response).await, r#"["kept"]"#);
    let response = send(
        &only_new,
        request("GET", "/show", Some(&old_cookie), String::new()),
    )
    .await;
    assert_eq!(text(response).await, "[]", "the old key alone is gone");
}

#[tokio::test]
async fn the_cookie_is_re_sent_only_on_change_or_refresh() {
    let key = Key::generate();
    let app = app_with(
        SessionLayer::new(CookieStore::new(&key), key.clone())
            .with_expiry_refresh_interval(Duration::from_millis(200)),
    );
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = cookie_pair(&response);
    for _ in 0..3 {
        let response = send(&app, request("GET", "/show", Some(&cookie), String::new())).await;
        assert!(set_cookies(&response).is_empty());
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    let response = send(&app, request("GET", "/show", Some(&cookie), String::new())).await;
    let refreshed = cookie_pair(&response);
    assert_ne!(refreshed, cookie, "a refresh re-seals the expiry");
    let response = send(&app, request("POST", "/add", Some(&refreshed), "b")).await;
    assert_eq!(set_cookies(&response).len(), 1, "a change is sent");
}

#[tokio::test]
async fn regenerate_issues_a_fresh_value_and_destroy_removes_the_cookie() {
    let key = Key::generate();
    let app = app(CookieStore::new(&key), &key);
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = cookie_pair(&response);
    let response = send(
        &app,
        request("POST", "/login", Some(&cookie), String::new()),
    )
    .await;
    let fresh = cookie_pair(&response);
    assert_ne!(sealed(&fresh), sealed(&cookie));
    let response = send(&app, request("GET", "/show", Some(&fresh), String::new())).await;
    assert_eq!(text(response).await, r#"["a"]"#);

    let response = send(
        &app,
        request("POST", "/logout", Some(&fresh), String::new()),
    )
    .await;
    let removal = &set_cookies(&response)[0];
    assert!(
        removal.starts_with("id=;") && removal.contains("Max-Age=0"),
        "{removal}"
    );
}

#[tokio::test]
async fn an_oversized_session_is_a_500_with_a_logged_size_never_a_dropped_cookie() {
    let (_guard, logs) = session_suite::logs::capture();
    let key = Key::generate();
    let app = app(CookieStore::new(&key), &key);
    let response = send(&app, request("POST", "/add", None, "small")).await;
    let cookie = cookie_pair(&response);

    let response = send(
        &app,
        request("POST", "/note", Some(&cookie), "n".repeat(5_000)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookies(&response).is_empty());
    let logged = logs.text();
    assert!(logged.contains("over the 4096-byte limit"), "{logged}");
    let size: usize = logged
        .split("would be ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the size is logged");
    assert!(size > 5_000, "{size}");

    // The browser still has the previous cookie, which still works.
    let response = send(&app, request("GET", "/show", Some(&cookie), String::new())).await;
    assert_eq!(text(response).await, r#"["small"]"#);
}

/// A save that would need a cookie too large for a browser fails in the handler
/// (`SessionError::CookieTooLarge` from `save()`), drops that change, and keeps the session
/// as it was: the handler can answer with a message, and the response carries no cookie.
#[tokio::test]
async fn an_early_save_too_large_for_a_cookie_is_refused_and_keeps_the_session() {
    async fn huge(mut cart: TypedSession<Cart>) -> String {
        cart.items_mut().push("x".repeat(6000));
        match cart.save().await {
            Err(SessionError::CookieTooLarge { size, limit }) => {
                format!("refused {size} > {limit}")
            }
            other => format!("{other:?}"),
        }
    }
    let key = Key::generate();
    let app = Router::new()
        .route("/add", post(add))
        .route("/show", get(show))
        .route("/huge", post(huge))
        .layer(SessionLayer::new(CookieStore::new(&key), key.clone()));
    let response = send(&app, request("POST", "/add", None, "apple")).await;
    let cookie = cookie_pair(&response);
    let response = send(&app, request("POST", "/huge", Some(&cookie), "")).await;
    let status = response.status();
    let cookies = set_cookies(&response);
    let body = text(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(cookies.is_empty(), "no cookie for the refused save");
    assert!(body.starts_with("refused "), "{body}");
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, r#"["apple"]"#);
}
