//! The demo in a real browser: headless Chromium driven through WebDriver (Debian's
//! `chromium` and `chromium-driver`), as a person would use it: the counter, login (a new
//! session ID), the cart, the race button (50 concurrent requests from the page), logout
//! (the session gone from the store), and a second browser profile that sees nothing of
//! the first. Skips with a message when Chromium is missing, unless
//! `SESSION_TEST_REQUIRE_BROWSER` is set (CI), where it fails.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use session_runtime::{store::LoadKeys, Key, MemoryStore, SessionLayer, SessionStore};
use session_suite::http::between;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The WebDriver name of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = client.get(format!("{}/status", driver.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless browser with a profile of its own.
    async fn browser(&self) -> Browser {
        let profile = std::env::temp_dir().join(format!("session-browser-{}", rand_suffix()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", format!("--user-data-dir={}", profile.display())],
            }
        }}});
        let client = reqwest::Client::new();
        let reply = call(
            &client,
            "POST",
            &format!("{}/session", self.url),
            Some(caps),
        )
        .await;
        let id = reply["sessionId"]
            .as_str()
            .expect("a WebDriver session")
            .to_owned();
        Browser {
            client,
            base: format!("{}/session/{id}", self.url),
        }
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ u64::from(std::process::id())
}

/// One WebDriver call: its `value`.
async fn call(client: &reqwest::Client, method: &str, url: &str, body: Option<Value>) -> Value {
    let request = match method {
        "POST" => client
            .post(url)
            .header("content-type", "application/json")
            .body(body.unwrap_or_else(|| json!({})).to_string()),
        "DELETE" => client.delete(url),
        _ => client.get(url),
    };
    let text = request
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("chromedriver answers")
        .text()
        .await
        .unwrap();
    let reply: Value = serde_json::from_str(&text).expect("a JSON reply");
    if let Some(error) = reply["value"].get("error") {
        panic!(
            "WebDriver {method} {url}: {error} {}",
            reply["value"]["message"]
        );
    }
    if reply.get("sessionId").is_some() {
        return reply;
    }
    reply["value"].clone()
}

struct Browser {
    client: reqwest::Client,
    base: String,
}

impl Browser {
    async fn go(&self, url: &str) {
        call(
            &self.client,
            "POST",
            &format!("{}/url", self.base),
            Some(json!({"url": url})),
        )
        .await;
    }

    async fn source(&self) -> String {
        call(&self.client, "GET", &format!("{}/source", self.base), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn find(&self, css: &str) -> String {
        let found = call(
            &self.client,
            "POST",
            &format!("{}/element", self.base),
            Some(json!({"using": "css selector", "value": css})),
        )
        .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        call(
            &self.client,
            "GET",
            &format!("{}/element/{element}/text", self.base),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        call(
            &self.client,
            "POST",
            &format!("{}/element/{element}/click", self.base),
            None,
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        call(
            &self.client,
            "POST",
            &format!("{}/element/{element}/value", self.base),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// The page's source once it contains `needle` (polled for up to 20 s).
    async fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let source = self.source().await;
            if source.contains(needle) {
                return source;
            }
            assert!(
                Instant::now() < deadline,
                "`{needle}` never appeared in {source}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's source once it contains one of `needles` (polled for up to 20 s).
    async fn wait_for_any(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let source = self.source().await;
            if needles.iter().any(|needle| source.contains(needle)) {
                return source;
            }
            assert!(
                Instant::now() < deadline,
                "none of {needles:?} appeared in {source}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The browser's session cookie, as WebDriver reports it.
    async fn session_cookie(&self) -> Option<Value> {
        let cookies = call(&self.client, "GET", &format!("{}/cookie", self.base), None).await;
        cookies
            .as_array()?
            .iter()
            .find(|cookie| cookie["name"] == "id")
            .cloned()
    }

    async fn quit(self) {
        call(&self.client, "DELETE", &self.base, None).await;
    }
}

async fn serve_demo(store: MemoryStore) -> String {
    let app = session_suite::demo::routes()
        .layer(axum::Extension(session_suite::demo::StoreName(
            "memory".into(),
        )))
        .layer(
            SessionLayer::new(session_suite::demo::Watched(store), Key::generate())
                .with_insecure_cookie_over_http()
                .unwrap()
                .with_error_response(session_suite::demo::error_page),
        )
        .layer(axum::middleware::from_fn(session_suite::demo::numbered));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_in_headless_chromium() {
    let present =
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var_os("SESSION_TEST_REQUIRE_BROWSER").is_none(),
            "{CHROMIUM} and {CHROMEDRIVER} are required here (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "skipped: no {CHROMIUM} or {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
        );
        return;
    }
    let store = MemoryStore::new();
    let base = serve_demo(store.clone()).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;

    // The counter counts.
    browser.go(&format!("{base}/")).await;
    assert!(browser.text("#visits").await.contains("1 time in"));
    browser.go(&format!("{base}/")).await;
    assert!(browser.text("#visits").await.contains("2 times"));
    let before = between(
        &browser.source().await,
        "<li id=\"session-id\">ID <code>",
        "</code>",
    )
    .to_owned();

    // Login gives the session a new ID; without "remember me" the cookie ends with the browser.
    browser.type_into("input[name=user]", "ada").await;
    browser.click("form[action='/login'] button").await;
    let html = browser.wait_for("Logged in as <b>ada</b>").await;
    assert_eq!(
        between(&html, "<code id=\"previous-id\">", "</code>"),
        before
    );
    assert_ne!(
        between(&html, "<li id=\"session-id\">ID <code>", "</code>"),
        before
    );
    assert!(
        html.contains("3 times"),
        "the visits survive the new ID: {html}"
    );
    let cookie = browser.session_cookie().await.expect("a session cookie");
    assert!(
        cookie.get("expiry").is_none(),
        "a session-only cookie: {cookie}"
    );

    // The cart, with feedback; the cart request leaves the login alone.
    browser.type_into("input[name=name]", "figs").await;
    browser.click("form[action='/cart/add'] button").await;
    let html = browser.wait_for("Added 1 × figs.").await;
    assert!(html.contains("<li>1 × figs</li>"), "{html}");
    let writes = between(&html, "<li id=\"writes\">", "</li>");
    assert!(
        writes.contains("cart.items#figs") && !writes.contains("auth."),
        "{writes}"
    );

    // The race button: 50 concurrent requests from the page, all 50 items kept.
    browser.click("#race").await;
    let html = browser.wait_for("id=\"race-kept\"").await;
    assert!(html.contains("50 of 50 items are in the cart"), "{html}");

    // A second browser profile sees none of it.
    let other = driver.browser().await;
    other.go(&format!("{base}/")).await;
    let html = other.source().await;
    assert!(
        html.contains("1 time in") && !html.contains("ada") && !html.contains("figs"),
        "{html}"
    );
    other.quit().await;

    // Logout: the session is gone from the store, and the page starts afresh.
    let cookie = browser.session_cookie().await.expect("a session cookie");
    let id = session_suite::http::id_of(&format!("id={}", cookie["value"].as_str().unwrap()));
    let stored = |id| {
        let store = store.clone();
        async move { store.load(&id, LoadKeys::All).await.unwrap().is_some() }
    };
    assert!(
        stored(id.clone()).await,
        "the logged-in session is in the store"
    );
    browser.click("form[action='/logout'] button").await;
    let html = browser.wait_for("Logged out").await;
    assert!(
        !html.contains("figs") && html.contains("name=\"user\""),
        "{html}"
    );
    assert!(
        !stored(id).await,
        "the logged-out session is gone from the store"
    );
    browser.quit().await;
}

/// The cookie-store demo in Chromium: a cart too large for a cookie is a message, and the
/// page keeps loading, with the cart as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_store_demo_survives_a_too_large_cart_in_chromium() {
    let present =
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var_os("SESSION_TEST_REQUIRE_BROWSER").is_none(),
            "{CHROMIUM} and {CHROMEDRIVER} are required here"
        );
        eprintln!("skipped: no {CHROMIUM} or {CHROMEDRIVER}");
        return;
    }
    let key = Key::generate();
    let app = session_suite::demo::routes_without_index()
        .layer(
            SessionLayer::new(session_runtime::CookieStore::new(&key), key)
                .with_insecure_cookie_over_http()
                .unwrap()
                .with_error_response(session_suite::demo::error_page),
        )
        .layer(axum::middleware::from_fn(session_suite::demo::numbered));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    browser.go(&format!("{base}/")).await;
    let mut refused = None;
    for n in 0..100 {
        let name = format!("{n:02}-{}", "y".repeat(60));
        browser.type_into("input[name=name]", &name).await;
        browser.click("form[action='/cart/add'] button").await;
        // The next page, not the one the click left: it names this item, or refuses it.
        let added = format!("Added 1 × {name}.");
        let html = browser
            .wait_for_any(&[added.as_str(), "is too large for this store"])
            .await;
        if !html.contains(&added) {
            refused = Some(n);
            break;
        }
    }
    let refused = refused.expect("a cookie cannot hold 100 such lines");
    for _ in 0..2 {
        browser.go(&format!("{base}/")).await;
        let html = browser.source().await;
        assert!(
            html.contains("Typed sessions demo"),
            "the page loads: {html}"
        );
        assert_eq!(html.matches("<li>1 × ").count(), refused, "{html}");
    }
    browser.click("form[action='/cart/clear'] button").await;
    browser.wait_for("The cart is empty.").await;
    browser.quit().await;
}
