//! A cancelled request saves nothing, whichever side of the session layer the timeout is
//! on; a handle moved out of its handler is warned about when the session is saved without
//! it.

use std::time::Duration;

use axum::{
    http::StatusCode,
    routing::{get, post},
    Router,
};
use session_runtime::{Key, MemoryStore, SavePolicy, SessionData, SessionLayer, TypedSession};
use session_suite::http::Browser;
use tower_http::timeout::TimeoutLayer;

#[derive(SessionData)]
#[session(namespace = "cancel")]
struct Draft {
    text: String,
    saves: u32,
}

async fn start(mut draft: TypedSession<Draft>) -> &'static str {
    draft.set_text("kept".into());
    "started"
}

/// Changes the draft, then takes too long.
async fn slow(mut draft: TypedSession<Draft>) -> &'static str {
    draft.set_text("half-done".into());
    *draft.saves_mut() += 1;
    tokio::time::sleep(Duration::from_secs(5)).await;
    "too late"
}

async fn show(draft: TypedSession<Draft>) -> String {
    format!("{} {}", draft.text(), draft.saves())
}

fn routes() -> Router {
    Router::new()
        .route("/start", post(start))
        .route("/slow", post(slow))
        .route("/show", get(show))
}

#[allow(deprecated)] // `TimeoutLayer::new`: the 408 it answers is the point here.
fn timeout() -> TimeoutLayer {
    TimeoutLayer::new(Duration::from_millis(100))
}

async fn check(app: Router, what: &str) {
    let mut browser = Browser::default();
    browser.ok(&app, "POST", "/start").await;
    let (status, _) = browser.call(&app, "POST", "/slow").await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{what}");
    assert_eq!(browser.ok(&app, "GET", "/show").await, "kept 0", "{what}");
    // A new visitor's cancelled request creates no session.
    let mut stranger = Browser::default();
    let (status, _) = stranger.call(&app, "POST", "/slow").await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{what}");
    assert!(
        stranger.cookie.is_none(),
        "{what}: a cancelled request created a session"
    );
}

#[tokio::test]
async fn a_request_cancelled_by_a_timeout_outside_the_session_layer_saves_nothing() {
    let store = MemoryStore::new();
    let app = routes()
        .layer(SessionLayer::new(store.clone(), Key::generate()))
        .layer(timeout());
    check(app, "timeout outside").await;
    assert_eq!(store.len(), 1, "only the first visitor's session");
}

#[tokio::test]
async fn a_request_cancelled_by_a_timeout_inside_the_session_layer_saves_nothing() {
    for policy in [SavePolicy::NotOnServerError, SavePolicy::NotOnError] {
        let store = MemoryStore::new();
        let app = routes()
            .layer(timeout())
            .layer(SessionLayer::new(store.clone(), Key::generate()).with_save_policy(policy));
        check(app, &format!("timeout inside, {policy:?}")).await;
        assert_eq!(store.len(), 1, "only the first visitor's session");
    }
}

/// A handle moved into a task outlives the handler: the session is saved without its
/// changes, and a warning says so when the response is built.
#[tokio::test]
async fn a_handle_alive_after_the_handler_is_warned_about() {
    let (_guard, logs) = session_suite::logs::capture();
    let (route, mut held) = session_suite::http::handing_out::<Draft>();
    let app = Router::new()
        .route("/start", post(start))
        .route("/hand-out", route)
        .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
    let mut browser = Browser::default();
    browser.ok(&app, "POST", "/start").await;
    let warning = "still alive after the handler returned";
    assert!(!logs.text().contains(warning), "{}", logs.text());
    browser.ok(&app, "POST", "/hand-out").await;
    assert_eq!(logs.text().matches(warning).count(), 1, "{}", logs.text());
    drop(held.recv().await);
}
