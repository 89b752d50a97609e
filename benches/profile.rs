//! One benchmark case in a plain loop, for profilers (`valgrind --tool=callgrind`,
//! `perf stat`), which want a steady program rather than criterion's adaptive runs.
//!
//! ```text
//! cargo build --release -p session-bench --example profile
//! valgrind --tool=callgrind target/release/examples/profile read 2000
//! valgrind --tool=callgrind target/release/examples/profile read 4000
//! ```
//!
//! The per-request cost is the difference of the two totals divided by 2000 (set-up
//! cancels out). Cases, on a 21-field schema and the memory store: `bare` (no session
//! layer, no cookie), `bare-cookie` (no layer, the session cookie sent), `noop-layer` (a
//! pass-through layer, the cookie sent), `no-session`, `read`, `update` and `new`.

mod schemas;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    routing::{get, post},
    Router,
};
use schemas::{fill_s21, S21};
use session_runtime::{Key, MemoryStore, SessionLayer, TypedSession};
use tower::ServiceExt;

async fn plain() -> &'static str {
    "ok"
}

async fn new(mut s: TypedSession<S21>) -> &'static str {
    s.set_counter(1);
    "ok"
}

async fn fill(mut s: TypedSession<S21>) -> &'static str {
    s.set_counter(1);
    fill_s21(&mut s);
    "ok"
}

async fn read(s: TypedSession<S21>) -> String {
    s.counter().to_string()
}

async fn update(mut s: TypedSession<S21>) -> String {
    *s.counter_mut() += 1;
    s.counter().to_string()
}

fn request(method: &str, uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    builder.body(Body::empty()).expect("a valid request")
}

async fn send(app: &Router, request: Request<Body>) -> Option<String> {
    let response = app.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(case), Some(count)) = (args.next(), args.next().and_then(|n| n.parse().ok())) else {
        eprintln!(
            "usage: profile <bare|bare-cookie|noop-layer|no-session|read|update|new> <requests>"
        );
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let sessions = Router::new()
        .route("/plain", get(plain))
        .route("/new", post(new))
        .route("/fill", post(fill))
        .route("/read", get(read))
        .route("/update", post(update))
        .layer(SessionLayer::new(MemoryStore::new(), Key::generate()))
        .with_state(());
    let cookie = rt
        .block_on(send(&sessions, request("POST", "/fill", None)))
        .expect("a new session sets a cookie");
    let bare = Router::new().route("/plain", get(plain)).with_state(());
    let noop = Router::new()
        .route("/plain", get(plain))
        .layer(tower::util::MapRequestLayer::new(|r: Request<Body>| r))
        .with_state(());
    let cookie = Some(cookie.as_str());
    let (app, method, uri, cookie) = match case.as_str() {
        "bare" => (&bare, "GET", "/plain", None),
        "bare-cookie" => (&bare, "GET", "/plain", cookie),
        "noop-layer" => (&noop, "GET", "/plain", cookie),
        "no-session" => (&sessions, "GET", "/plain", cookie),
        "read" => (&sessions, "GET", "/read", cookie),
        "update" => (&sessions, "POST", "/update", cookie),
        "new" => (&sessions, "POST", "/new", None),
        other => {
            eprintln!("unknown case {other}");
            std::process::exit(2);
        }
    };
    for _ in 0..count {
        std::hint::black_box(rt.block_on(send(app, request(method, uri, cookie))));
    }
}
