//! End to end over real TCP: an axum server on a loopback port and an HTTP client that keeps
//! cookies like a browser.

use std::time::Duration;

use axum::{
    routing::{get, post},
    Router,
};
use session_runtime::{Key, MemoryStore, SessionData, SessionLayer, TypedSession};

#[derive(SessionData)]
struct Visit {
    count: u64,
    user: Option<String>,
}

async fn count(mut visit: TypedSession<Visit>) -> String {
    *visit.count_mut() += 1;
    format!(
        "{}:{}",
        visit.count(),
        visit.user().as_deref().unwrap_or("-")
    )
}

async fn login(mut visit: TypedSession<Visit>) -> &'static str {
    visit.set_user(Some("ada".into()));
    visit.regenerate();
    "ok"
}

async fn logout(mut visit: TypedSession<Visit>) -> &'static str {
    visit.destroy();
    "bye"
}

/// How the layer is installed.
#[derive(Clone, Copy)]
enum Install {
    /// `Router::layer`, around each route.
    PerRoute,
    /// Around the whole `Router`, served as a service.
    WholeRouter,
}

async fn serve(install: Install) -> String {
    let routes = Router::new()
        .route("/", get(count))
        .route("/login", post(login))
        .route("/logout", post(logout));
    // Plain HTTP on loopback: the client would not send a `Secure` cookie back.
    let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
        .with_insecure_cookie_over_http()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    match install {
        Install::PerRoute => {
            let app = routes.layer(layer);
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        }
        Install::WholeRouter => {
            let app = tower::Layer::layer(&layer, routes);
            let service = axum::ServiceExt::<axum::extract::Request>::into_make_service(app);
            tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
        }
    }
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get_text(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.unwrap();
    assert!(response.status().is_success());
    response.text().await.unwrap()
}

#[tokio::test]
async fn a_browser_like_client_keeps_its_session_across_requests() {
    browse(Install::PerRoute).await;
}

#[tokio::test]
async fn the_same_holds_with_the_layer_around_the_whole_router() {
    browse(Install::WholeRouter).await;
}

async fn browse(install: Install) {
    let base = serve(install).await;
    let alice = client();
    let bob = client();
    assert_eq!(get_text(&alice, &format!("{base}/")).await, "1:-");
    assert_eq!(get_text(&alice, &format!("{base}/")).await, "2:-");
    assert_eq!(
        get_text(&bob, &format!("{base}/")).await,
        "1:-",
        "sessions are separate"
    );
    assert_eq!(get_text(&alice, &format!("{base}/")).await, "3:-");

    let response = alice.post(format!("{base}/login")).send().await.unwrap();
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    assert_eq!(
        get_text(&alice, &format!("{base}/")).await,
        "4:ada",
        "data kept across regenerate"
    );

    alice.post(format!("{base}/logout")).send().await.unwrap();
    assert_eq!(
        get_text(&alice, &format!("{base}/")).await,
        "1:-",
        "a new session after logout"
    );
}
