//! `TypedSession` is `Clone`: a clone is a new handle on the request's session (no second
//! load), kept in request extensions by a middleware for its handlers, seeing what the
//! request's handles handed over.

use axum::{
    extract::Request,
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
    Extension, Router,
};
use session_runtime::{Key, MemoryStore, SessionData, SessionLayer, TypedSession};
use session_suite::{http::Browser, Call, Recording};

#[derive(SessionData)]
#[session(namespace = "cloned")]
struct Visits {
    count: u64,
    note: String,
}

/// Counts the visit, then hands its handle to the handlers through the extensions.
async fn counting(mut visits: TypedSession<Visits>, mut request: Request, next: Next) -> Response {
    *visits.count_mut() += 1;
    // Handed over first, so the clone (and every handle taken later) sees the new count.
    visits.save().await.expect("saved");
    request.extensions_mut().insert(visits.clone());
    drop(visits);
    next.run(request).await
}

async fn noted(Extension(mut visits): Extension<TypedSession<Visits>>) -> String {
    let note = format!("seen at {}", visits.count());
    visits.set_note(note);
    format!("{} {}", visits.count(), visits.note())
}

async fn show(visits: TypedSession<Visits>) -> String {
    format!("{} {}", visits.count(), visits.note())
}

/// A clone starts from what was handed over, not from its original's unsaved changes.
async fn clones(mut visits: TypedSession<Visits>) -> String {
    visits.set_note("original".into());
    let before = visits.clone();
    let mut other = visits.clone();
    other.set_count(41);
    drop(other);
    let after = visits.clone();
    format!(
        "{}/{} {}/{} {}",
        before.count(),
        before.note(),
        after.count(),
        after.note(),
        visits.note()
    )
}

#[tokio::test]
async fn a_clone_in_the_extensions_shares_the_requests_session() {
    let store = Recording::new(MemoryStore::new());
    let app = Router::new()
        .route("/noted", post(noted))
        .route_layer(middleware::from_fn(counting))
        .route("/show", get(show))
        .route("/clones", post(clones))
        .layer(SessionLayer::new(store.clone(), Key::generate()));
    let mut browser = Browser::default();
    assert_eq!(browser.ok(&app, "POST", "/noted").await, "1 seen at 1");
    store.take_calls();
    assert_eq!(browser.ok(&app, "POST", "/noted").await, "2 seen at 2");
    let loads = store
        .take_calls()
        .into_iter()
        .filter(|call| matches!(call, Call::Load(_)))
        .count();
    assert_eq!(
        loads, 1,
        "the middleware, its clone and the handler share one load"
    );
    assert_eq!(browser.ok(&app, "GET", "/show").await, "2 seen at 2");

    assert_eq!(
        browser.ok(&app, "POST", "/clones").await,
        "2/seen at 2 41/seen at 2 original"
    );
    // Both handles' changes were handed over: the clone's count, the original's note.
    assert_eq!(browser.ok(&app, "GET", "/show").await, "41 original");
}
