//! `examples/auth.rs`, the minimal authentication layer built on the public API, driven as
//! a browser would: the `401` of `CurrentUser`, the `login_required` redirect, login with a
//! new session ID, and logout. Also: the record is loaded once per request however many
//! extractors (the middleware's and the handler's) read the session.

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../examples/auth.rs"]
mod example;

use axum::http::{header, StatusCode};
use session_runtime::{Key, MemoryStore, SessionLayer};
use session_suite::{
    http::{id_of, request, send, set_cookies, text},
    Call, Recording,
};

fn form(
    uri: &str,
    cookie: Option<&str>,
    body: &'static str,
) -> axum::http::Request<axum::body::Body> {
    let mut request = request("POST", uri, cookie, body);
    request.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    request
}

#[tokio::test]
async fn the_auth_example_logs_in_guards_and_logs_out() {
    let store = Recording::new(MemoryStore::new());
    let app = example::routes().layer(SessionLayer::new(store.clone(), Key::generate()));

    let me = send(&app, request("GET", "/me", None, "")).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    let private = send(&app, request("GET", "/private", None, "")).await;
    assert!(private.status().is_redirection());
    assert_eq!(private.headers()[header::LOCATION], "/login?next=/private");

    let login = send(&app, form("/login", None, "user=7")).await;
    assert!(login.status().is_redirection());
    let cookie = set_cookies(&login)[0].split(';').next().unwrap().to_owned();
    let me = send(&app, request("GET", "/me", Some(&cookie), "")).await;
    assert_eq!(text(me).await, "user 7");

    // The middleware and the handler both read the session: one load.
    store.take_calls();
    let private = send(&app, request("GET", "/private", Some(&cookie), "")).await;
    assert!(text(private).await.contains("you are user 7"));
    let loads = store
        .take_calls()
        .into_iter()
        .filter(|call| matches!(call, Call::Load(_)))
        .count();
    assert_eq!(loads, 1);

    // Logging in again (another user) gives the session a new ID.
    let again = send(&app, form("/login", Some(&cookie), "user=8")).await;
    let new_cookie = set_cookies(&again)[0].split(';').next().unwrap().to_owned();
    assert_ne!(id_of(&new_cookie), id_of(&cookie));
    let old = send(&app, request("GET", "/me", Some(&cookie), "")).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED, "the old ID is dead");
    let me = send(&app, request("GET", "/me", Some(&new_cookie), "")).await;
    assert_eq!(text(me).await, "user 8");

    let logout = send(&app, form("/logout", Some(&new_cookie), "")).await;
    assert!(set_cookies(&logout)[0].contains("Max-Age=0"));
    let me = send(&app, request("GET", "/me", Some(&new_cookie), "")).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

/// The login crate's part of the example stays about as small as the issue asked.
#[test]
fn the_auth_layer_is_small() {
    let source = include_str!("../examples/auth.rs");
    let start = source.find("pub mod auth {").expect("the auth module");
    let end = source.find("use auth::{").expect("the app part");
    let lines = source[start..end]
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    assert!(lines <= 150, "{lines} lines");
}
