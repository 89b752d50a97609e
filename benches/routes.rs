//! The routers and request helpers shared by the benchmark targets: this framework's
//! routes for each schema size, the bare and pass-through baselines.

use std::convert::Infallible;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    response::Response,
    routing::{get, post},
    Router,
};
use session_runtime::{Key, SessionLayer, SessionService, SessionStore, TypedSession};
use tower::{Layer, Service, ServiceExt};
use tower_sessions::{Session, SessionManagerLayer, SessionStore as TsStore};

use crate::schemas::{fill_s1, fill_s200, fill_s21, S1, S200, S21};

pub async fn plain() -> &'static str {
    "ok"
}

/// The paths every framework's routes answer, given its handlers.
macro_rules! case_routes {
    ($new:expr, $fill:expr, $read:expr, $update:expr, $regenerate:expr) => {
        Router::new()
            .route("/plain", get(plain))
            .route("/new", post($new))
            .route("/fill", post($fill))
            .route("/read", get($read))
            .route("/update", post($update))
            .route("/regenerate", post($regenerate))
    };
}

/// Our routes for schema `T`.
macro_rules! ours {
    ($T:ty, $fill:path) => {{
        async fn new(mut s: TypedSession<$T>) -> &'static str {
            s.set_counter(1);
            "ok"
        }
        async fn fill(mut s: TypedSession<$T>) -> &'static str {
            s.set_counter(1);
            $fill(&mut s);
            "ok"
        }
        async fn read(s: TypedSession<$T>) -> String {
            s.counter().to_string()
        }
        async fn update(mut s: TypedSession<$T>) -> String {
            *s.counter_mut() += 1;
            s.counter().to_string()
        }
        async fn regenerate(mut s: TypedSession<$T>) -> &'static str {
            s.regenerate();
            "ok"
        }
        case_routes!(new, fill, read, update, regenerate)
    }};
}

/// What a benchmark sends requests to: a `Router`, or a `Router` wrapped by a layer.
pub trait App:
    Service<Request<Body>, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static
{
}

impl<T> App for T where
    T: Service<Request<Body>, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + 'static
{
}

fn ours_routes(fields: usize) -> Router {
    match fields {
        1 => ours!(S1, fill_s1),
        21 => ours!(S21, fill_s21),
        _ => ours!(S200, fill_s200),
    }
}

/// Our routes, the layer added with `Router::layer` (around each route).
pub fn ours_router<S: SessionStore>(fields: usize, store: S) -> Router {
    // `with_state` builds the routes once, as serving does; without it axum re-applies the
    // layers on every in-process call.
    ours_router_with(fields, SessionLayer::new(store, Key::generate()))
}

/// Our routes under a layer configured by the caller (added with `Router::layer`).
pub fn ours_router_with(fields: usize, layer: SessionLayer) -> Router {
    ours_routes(fields).layer(layer).with_state(())
}

/// Our routes, the layer wrapped around the whole router.
pub fn ours_wrapped<S: SessionStore>(fields: usize, store: S) -> SessionService<Router> {
    SessionLayer::new(store, Key::generate()).layer(ours_routes(fields).with_state(()))
}

/// tower-sessions' routes: the same work with string keys.
fn ts_routes(fields: usize) -> Router {
    async fn new(s: Session) -> &'static str {
        s.insert("counter", 1u64).await.unwrap();
        "ok"
    }
    async fn read(s: Session) -> String {
        s.get::<u64>("counter")
            .await
            .unwrap()
            .unwrap_or(0)
            .to_string()
    }
    async fn update(s: Session) -> String {
        let n = s.get::<u64>("counter").await.unwrap().unwrap_or(0) + 1;
        s.insert("counter", n).await.unwrap();
        n.to_string()
    }
    async fn regenerate(s: Session) -> &'static str {
        s.cycle_id().await.unwrap();
        "ok"
    }
    let fill = move |s: Session| async move {
        s.insert("counter", 1u64).await.unwrap();
        for i in 1..fields {
            s.insert(&format!("s{i:03}"), "x".repeat(100))
                .await
                .unwrap();
        }
        "ok"
    };
    case_routes!(new, fill, read, update, regenerate)
}

/// tower-sessions' routes, its layer added with `Router::layer`.
pub fn ts_router<S: TsStore + Clone>(fields: usize, store: S) -> Router {
    ts_routes(fields)
        .layer(SessionManagerLayer::new(store).with_secure(false))
        .with_state(())
}

/// tower-sessions' routes, its layer wrapped around the whole router.
pub fn ts_wrapped<S: TsStore + Clone>(fields: usize, store: S) -> impl App {
    SessionManagerLayer::new(store)
        .with_secure(false)
        .layer(ts_routes(fields).with_state(()))
}

pub fn bare_router() -> Router {
    Router::new().route("/plain", get(plain)).with_state(())
}

/// The bare router behind a pass-through tower layer: what `Router::layer` costs any
/// middleware before it does any work (axum re-boxes each layered route and its future).
pub fn noop_layer_router() -> Router {
    Router::new()
        .route("/plain", get(plain))
        .layer(tower::util::MapRequestLayer::new(|r: Request<Body>| r))
        .with_state(())
}

pub fn request(method: &str, uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    builder.body(Body::empty()).unwrap()
}

/// Sends a request; returns the `name=value` of a `Set-Cookie`, if any.
pub async fn send<A: App>(app: &A, req: Request<Body>) -> Option<String> {
    let response = app.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
}

/// A session with every field filled; returns its cookie.
pub async fn filled<A: App>(app: &A) -> String {
    send(app, request("POST", "/fill", None))
        .await
        .expect("a new session sets a cookie")
}
