//! A session cookie is bound to the cookie name and the purpose it was issued for: layers
//! that share a key (and even a store) refuse each other's cookies, on server-side stores and
//! on the cookie store alike. Cookies signed as 0.1 signed them still work during the
//! migration window, and are re-signed.

use std::time::Duration;

use axum::{routing::post, Router};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, Mac};
use session_runtime::{CookieStore, Key, MemoryStore, SessionData, SessionLayer, TypedSession};
use session_suite::http::{cookie_pair, request, send, set_cookies, text};

#[derive(SessionData)]
#[session(namespace = "bind")]
struct Login {
    user: Option<String>,
}

async fn login(mut login: TypedSession<Login>, user: String) -> String {
    login.set_user(Some(user));
    "ok".to_owned()
}

async fn whoami(login: TypedSession<Login>) -> String {
    login.user().clone().unwrap_or_default()
}

fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/whoami", post(whoami))
        .layer(layer)
}

/// `name=value` renamed to `other=value`.
fn renamed(pair: &str, name: &str) -> String {
    let (_, value) = pair.split_once('=').expect("name=value");
    format!("{name}={value}")
}

#[tokio::test]
async fn a_cookie_replayed_under_another_name_purpose_or_app_is_refused() {
    let key = Key::generate();
    let store = MemoryStore::new();
    let demo = app(SessionLayer::new(store.clone(), key.clone()));
    let response = send(&demo, request("POST", "/login", None, "root")).await;
    let pair = cookie_pair(&response);
    let response = send(&demo, request("POST", "/whoami", Some(&pair), "")).await;
    assert_eq!(text(response).await, "root", "the issuing layer reads it");

    // Another app on the same key and the same store, its cookie named `__Host-admin`.
    let admin = app(SessionLayer::new(store.clone(), key.clone())
        .with_cookie_name("__Host-admin")
        .unwrap());
    let replayed = renamed(&pair, "__Host-admin");
    let response = send(&admin, request("POST", "/whoami", Some(&replayed), "")).await;
    assert_eq!(text(response).await, "", "refused under another name");

    // Same name, another purpose.
    let shop = app(SessionLayer::new(store.clone(), key.clone()).with_purpose("shop"));
    let response = send(&shop, request("POST", "/whoami", Some(&pair), "")).await;
    assert_eq!(text(response).await, "", "refused for another purpose");

    // And a cookie issued for a purpose is read back for that purpose only.
    let response = send(&shop, request("POST", "/login", None, "ada")).await;
    let shop_pair = cookie_pair(&response);
    let response = send(&shop, request("POST", "/whoami", Some(&shop_pair), "")).await;
    assert_eq!(text(response).await, "ada");
    let response = send(&demo, request("POST", "/whoami", Some(&shop_pair), "")).await;
    assert_eq!(text(response).await, "");
}

#[tokio::test]
async fn a_cookie_store_cookie_replayed_to_another_app_with_the_key_is_refused() {
    // The README's pattern: one key for the store and the layer, in two apps.
    let key = Key::generate();
    let demo = app(SessionLayer::new(CookieStore::new(&key), key.clone()));
    let admin = app(SessionLayer::new(CookieStore::new(&key), key.clone())
        .with_cookie_name("__Host-admin")
        .unwrap());
    let shop = app(SessionLayer::new(CookieStore::new(&key), key.clone()).with_purpose("shop"));
    let response = send(&demo, request("POST", "/login", None, "root")).await;
    let pair = cookie_pair(&response);
    let response = send(&demo, request("POST", "/whoami", Some(&pair), "")).await;
    assert_eq!(text(response).await, "root");
    let response = send(
        &admin,
        request("POST", "/whoami", Some(&renamed(&pair, "__Host-admin")), ""),
    )
    .await;
    assert_eq!(text(response).await, "");
    let response = send(&shop, request("POST", "/whoami", Some(&pair), "")).await;
    assert_eq!(text(response).await, "");
}

/// `value.tag` as 0.1 signed it: `HMAC-SHA256(secret, value)`.
fn signed_as_0_1(secret: &[u8], value: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(value.as_bytes());
    format!(
        "{value}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

#[tokio::test]
async fn cookies_signed_as_0_1_work_within_the_window_and_are_re_signed() {
    let secret = [42u8; 32];
    let store = MemoryStore::new();
    let layer = || SessionLayer::new(store.clone(), Key::from_bytes(&secret).unwrap());
    let current = app(layer());
    let response = send(&current, request("POST", "/login", None, "ada")).await;
    let pair = cookie_pair(&response);
    let (_, value) = pair.split_once('=').unwrap();
    let (id, _) = value.rsplit_once('.').unwrap();
    let old_cookie = format!("id={}", signed_as_0_1(&secret, id));
    assert_ne!(old_cookie, pair);

    // Within the window: read, and re-signed in the current format.
    let response = send(&current, request("POST", "/whoami", Some(&old_cookie), "")).await;
    let resigned = set_cookies(&response);
    assert_eq!(resigned.len(), 1, "re-signed on this request");
    assert!(resigned[0].starts_with(&pair), "{resigned:?} vs {pair}");
    assert_eq!(text(response).await, "ada");

    // After the window (or with none): refused.
    let closed = app(layer().with_legacy_cookie_window(Duration::ZERO));
    let response = send(&closed, request("POST", "/whoami", Some(&old_cookie), "")).await;
    assert_eq!(text(response).await, "");
    let response = send(&closed, request("POST", "/whoami", Some(&pair), "")).await;
    assert_eq!(
        text(response).await,
        "ada",
        "current cookies are unaffected"
    );
}
