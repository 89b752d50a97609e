//! The demo app, driven over HTTP like a browser would: visit counter, login (with a new
//! session ID), the cart, and logout.

use std::time::Duration;

use session_runtime::{Key, MemoryStore, SessionLayer};
use session_suite::http::between;

async fn serve() -> String {
    let app = session_suite::demo::routes().layer(
        SessionLayer::new(MemoryStore::new(), Key::generate())
            .with_insecure_cookie_over_http()
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn browser() -> reqwest::Client {
    browser_as("Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0")
}

fn browser_as(agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(agent)
        .cookie_store(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn page(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn post_form(client: &reqwest::Client, url: String, form: &str) -> reqwest::Response {
    client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .unwrap()
}

/// A form posted, and the page it leads to.
async fn post_html(client: &reqwest::Client, url: String, form: &str) -> String {
    post_form(client, url, form).await.text().await.unwrap()
}

/// Serves `app` on a free port: its base URL.
async fn serve_app(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_demo_counts_logs_in_fills_the_cart_and_logs_out() {
    let base = serve().await;
    let browser = browser();

    assert!(page(&browser, &base)
        .await
        .contains("viewed this page 1 time in"));
    assert!(page(&browser, &base)
        .await
        .contains("viewed this page 2 times"));

    let response = post_form(
        &browser,
        format!("{base}/login"),
        "user=%3Cada%3E&remember=yes",
    )
    .await;
    assert!(response.status().is_success(), "redirect followed to /");
    let html = response.text().await.unwrap();
    assert!(
        html.contains("Logged in as <b>&lt;ada&gt;</b>"),
        "escaped: {html}"
    );
    assert!(
        html.contains("viewed this page 3 times"),
        "kept across the new ID"
    );

    post_form(
        &browser,
        format!("{base}/cart/add"),
        "name=apples&quantity=3",
    )
    .await;
    post_form(
        &browser,
        format!("{base}/cart/add"),
        "name=apples&quantity=2",
    )
    .await;
    let html = post_html(&browser, format!("{base}/cart/add"), "name=pears").await;
    assert!(
        html.contains("<li>5 × apples</li>") && html.contains("<li>1 × pears</li>"),
        "{html}"
    );

    let html = post_html(&browser, format!("{base}/cart/clear"), "").await;
    assert!(html.contains("<i>empty</i>"));

    let html = post_html(&browser, format!("{base}/logout"), "").await;
    assert!(html.contains("name=\"user\""), "login form again");
    assert!(html.contains("viewed this page 1 time in"), "a new session");
}

/// The handles of the "Sign out" buttons of a sessions page.
fn handles(html: &str) -> Vec<String> {
    html.split("name=\"handle\" value=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

/// "Your sessions" at `base`: two browsers of one user see each other, one signs the other
/// out, and "sign out everywhere else" ends a third.
async fn your_sessions(base: &str) {
    let user = format!("ada{}", std::process::id());
    let laptop = browser();
    let phone = browser_as("Mozilla/5.0 (Linux; Android 14) Chrome/126.0 Mobile Safari/537.36");
    for browser in [&laptop, &phone] {
        let html = post_html(browser, format!("{base}/login"), &format!("user={user}")).await;
        assert!(html.contains("Your sessions"), "{html}");
    }
    let listing = laptop.get(format!("{base}/sessions")).send().await.unwrap();
    assert_eq!(
        listing.headers()["cache-control"],
        "no-store",
        "a logged-in page"
    );
    let html = listing.text().await.unwrap();
    assert_eq!(html.matches("class=\"session\"").count(), 2, "{html}");
    assert!(
        html.contains("Firefox on Linux") && html.contains("Chrome on Android"),
        "{html}"
    );
    assert!(
        html.contains("<b>this browser</b>") && html.contains("just now"),
        "{html}"
    );
    let others = handles(&html);
    assert_eq!(others.len(), 1, "one other browser to sign out: {html}");
    let html = post_html(
        &laptop,
        format!("{base}/sessions/revoke"),
        &format!("handle={}", others[0]),
    )
    .await;
    assert_eq!(html.matches("class=\"session\"").count(), 1, "{html}");
    assert!(
        page(&phone, base).await.contains("name=\"user\""),
        "the phone is signed out"
    );

    let tablet = browser_as("Mozilla/5.0 (iPad; CPU OS 17_0) Safari/604.1");
    post_form(&tablet, format!("{base}/login"), &format!("user={user}")).await;
    let html = post_html(&laptop, format!("{base}/sessions/revoke-others"), "").await;
    assert_eq!(html.matches("class=\"session\"").count(), 1, "{html}");
    assert!(
        page(&tablet, base).await.contains("name=\"user\""),
        "the tablet is signed out"
    );
    assert!(page(&laptop, base)
        .await
        .contains(&format!("Logged in as <b>{user}</b>")));
}

#[tokio::test]
async fn the_demo_lists_and_signs_out_a_users_sessions() {
    let base = serve().await;
    your_sessions(&base).await;
    // Logged out, the page sends back home.
    let response = browser()
        .get(format!("{base}/sessions"))
        .send()
        .await
        .unwrap();
    let html = response.text().await.unwrap();
    assert!(html.contains("name=\"user\""), "{html}");
}

#[test]
fn the_demo_names_browsers_briefly() {
    use session_suite::demo::device;
    assert_eq!(
        device("Mozilla/5.0 (Windows NT 10.0) Chrome/126.0 Safari/537.36 Edg/126.0"),
        "Edge on Windows"
    );
    assert_eq!(device("curl/8.5.0"), "curl");
    assert_eq!(device(""), "an unknown browser");
    assert_eq!(device(&"x".repeat(100)).len(), 40);
}

#[tokio::test]
async fn the_demo_runs_on_redis_too() {
    use session_runtime::{RedisLayout, RedisStore};
    use session_suite::redis_harness::{shared_redis_url, skip_without_redis, unique_prefix};
    let Some(url) = shared_redis_url() else {
        skip_without_redis("demo on Redis", "no Redis answers on the shared URL");
        return;
    };
    for layout in [RedisLayout::Hash, RedisLayout::Log] {
        let store = RedisStore::connect(url.as_str())
            .await
            .unwrap()
            .with_key_prefix(unique_prefix("demo"))
            .with_layout(layout);
        let app = session_suite::demo::routes().layer(
            SessionLayer::new(store, Key::generate())
                .with_insecure_cookie_over_http()
                .unwrap()
                .with_idle_timeout(Duration::from_secs(300)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let browser = browser();
        page(&browser, &base).await;
        let html = post_html(&browser, format!("{base}/cart/add"), "name=figs&quantity=2").await;
        assert!(html.contains("<li>2 × figs</li>"), "{layout:?}: {html}");
        assert!(html.contains("viewed this page 2 times"), "{layout:?}");
        your_sessions(&base).await;
    }
}

/// `DATABASE_URL=... cargo run --example demo` on each SQL store: the layer the example
/// builds, its tables made, and the cart flow through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_on_postgres_mysql_and_sqlite() {
    use session_suite::sql_harness::{mysql_url, postgres_url, sqlite_url, unique_name, Made};
    let file = std::env::temp_dir().join(format!("{}demo.db", unique_name()));
    for url in [postgres_url(), mysql_url(), sqlite_url(&file)] {
        let prefix = unique_name();
        let made = if url.starts_with("sqlite") {
            Made::file(file.clone())
        } else {
            Made::tables(&url, &prefix)
        };
        let (layer, cleanup, about) =
            match session_suite::demo::database_layer(&url, Key::generate(), &prefix).await {
                Ok(built) => built,
                Err(err) => {
                    session_suite::sql_harness::skip_without(
                        "the demo on a database",
                        &url,
                        &format!("it does not answer ({err})"),
                    );
                    continue;
                }
            };
        assert!(cleanup.is_running());
        let app =
            session_suite::demo::routes().layer(layer.with_insecure_cookie_over_http().unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let browser = browser();
        page(&browser, &base).await;
        let html = post_html(&browser, format!("{base}/cart/add"), "name=figs&quantity=2").await;
        assert!(html.contains("<li>2 × figs</li>"), "{about}: {html}");
        assert!(html.contains("viewed this page 2 times"), "{about}");
        your_sessions(&base).await;
        drop(made);
    }
    assert!(
        session_suite::demo::database_layer("redis://x", Key::generate(), "x_")
            .await
            .is_err(),
        "another scheme is refused"
    );
}

#[tokio::test]
async fn the_demo_runs_on_the_cookie_store_too() {
    let key = Key::generate();
    let app = session_suite::demo::routes_without_index().layer(
        SessionLayer::new(session_runtime::CookieStore::new(&key), key)
            .with_insecure_cookie_over_http()
            .unwrap(),
    );
    let base = serve_app(app).await;
    let browser = browser();
    page(&browser, &base).await;
    let html = post_html(&browser, format!("{base}/login"), "user=bo").await;
    assert!(html.contains("Logged in as <b>bo</b>"), "{html}");
    let html = post_html(&browser, format!("{base}/cart/add"), "name=plums").await;
    assert!(
        html.contains("<li>1 × plums</li>") && html.contains("viewed this page 3 times"),
        "{html}"
    );
    let html = post_html(&browser, format!("{base}/logout"), "").await;
    assert!(html.contains("viewed this page 1 time in"), "{html}");
}

/// `RUST_LOG=session_runtime=trace` shows the library's detail and keeps the demo's own
/// lines (the address it listens on); naming the demo in `RUST_LOG` is obeyed as written.
#[test]
fn the_demos_log_filter_keeps_its_own_lines() {
    use session_suite::demo::demo_filter;

    let filter = demo_filter(Some("session_runtime=trace")).to_string();
    assert!(filter.contains("session_runtime=trace"), "{filter}");
    assert!(filter.contains("session_suite=info"), "{filter}");
    let own = demo_filter(Some("session_suite=warn")).to_string();
    assert!(!own.contains("session_suite=info"), "{own}");
    assert!(demo_filter(None).to_string().contains("info"));
}

/// The race the cart's entries fix: 50 concurrent adds of different items, from one
/// browser's cookie, all end up in the cart (a cart stored as one value keeps one of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_adds_of_different_items_all_reach_the_cart() {
    let base = serve().await;
    let browser = browser();
    post_form(&browser, format!("{base}/cart/add"), "name=first").await;
    let adds: Vec<_> = (0..50)
        .map(|n| {
            let (browser, base) = (browser.clone(), base.clone());
            tokio::spawn(async move {
                post_form(
                    &browser,
                    format!("{base}/cart/add"),
                    &format!("name=item-{n:02}"),
                )
                .await
                .status()
            })
        })
        .collect();
    for add in adds {
        assert!(add.await.unwrap().is_success());
    }
    let html = page(&browser, &base).await;
    for n in 0..50 {
        assert!(
            html.contains(&format!("<li>1 × item-{n:02}</li>")),
            "item-{n:02} lost: {html}"
        );
    }
    assert!(html.contains("<li>1 × first</li>"), "{html}");
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// "Remember me" unchecked gives a cookie that ends with the browser; checked, one for 30
/// days.
#[tokio::test]
async fn remember_me_decides_whether_the_cookie_outlives_the_browser() {
    let base = serve().await;
    let client = no_redirects();
    let set_cookie = |form: &'static str| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let response = post_form(&client, format!("{base}/login"), form).await;
            assert!(response.status().is_redirection());
            response
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .next()
                .expect("a session cookie")
        }
    };
    let forgotten = set_cookie("user=bob").await;
    assert!(
        !forgotten.contains("Max-Age") && !forgotten.contains("Expires"),
        "{forgotten}"
    );
    let remembered = set_cookie("user=bob&remember=yes").await;
    assert!(remembered.contains("Max-Age=2592000"), "{remembered}");
}

/// Every action says what it did on the next page, once; a form the user got wrong is a
/// message on the page, never a raw rejection.
#[tokio::test]
async fn actions_give_feedback_once_and_bad_forms_are_messages() {
    let base = serve().await;
    let browser = browser();
    let html = post_html(&browser, format!("{base}/cart/add"), "name=figs&quantity=3").await;
    assert!(
        html.contains("<p id=\"flash\">Added 3 × figs.</p>"),
        "{html}"
    );
    assert!(
        !page(&browser, &base).await.contains("id=\"flash\""),
        "shown once"
    );

    // A cleared quantity box adds one; a quantity that is not a number is a message.
    let html = post_html(&browser, format!("{base}/cart/add"), "name=figs&quantity=").await;
    assert!(
        html.contains("Added 1 × figs.") && html.contains("<li>4 × figs</li>"),
        "{html}"
    );
    let response = post_form(
        &browser,
        format!("{base}/cart/add"),
        "name=figs&quantity=lots",
    )
    .await;
    assert!(response.status().is_success());
    let html = response.text().await.unwrap();
    assert!(
        html.contains("The quantity is a whole number from 1 to 999."),
        "{html}"
    );
    assert!(html.contains("<li>4 × figs</li>"), "nothing added: {html}");
    let html = post_html(&browser, format!("{base}/login"), "").await;
    assert!(html.contains("A name is 1 to 64 characters."), "{html}");

    let html = post_html(&browser, format!("{base}/logout"), "").await;
    assert!(html.contains("Logged out"), "{html}");
}

/// A session error (the store is down) is a page with a way back, with the layer's status.
#[test]
fn session_errors_are_pages() {
    let err = session_runtime::SessionError::Store(session_runtime::StoreError::backend(
        "connection refused",
    ));
    let response = session_suite::demo::error_page(&err);
    assert_eq!(response.status(), 503);
    let body = futures_body(response);
    assert!(
        body.contains("<a href=\"/\">Back to the demo</a>"),
        "{body}"
    );
    assert!(body.contains("the session store failed"), "{body}");
}

fn futures_body(response: axum::response::Response) -> String {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(session_suite::http::text(response))
}

/// The page shows the library at work: the session's ID (and the one before login), the
/// store, the cookie, what the last request wrote, and the race's result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_session_at_work() {
    let app = session_suite::demo::routes()
        .layer(axum::Extension(session_suite::demo::StoreName(
            "memory".into(),
        )))
        .layer(
            SessionLayer::new(
                session_suite::demo::Watched(MemoryStore::new()),
                Key::generate(),
            )
            .with_insecure_cookie_over_http()
            .unwrap(),
        )
        .layer(axum::middleware::from_fn(session_suite::demo::numbered));
    let base = serve_app(app).await;
    let browser = browser();

    let html = page(&browser, &base).await;
    assert!(html.contains("No session yet"), "{html}");
    let html = page(&browser, &base).await;
    assert!(
        html.contains("<li id=\"store\">Stored in: memory</li>"),
        "{html}"
    );
    assert!(html.contains("<li id=\"cookie\">Cookie: "), "{html}");
    let id_before = between(&html, "<li id=\"session-id\">ID <code>", "</code>");

    let html = post_html(&browser, format!("{base}/cart/add"), "name=figs").await;
    let writes = between(&html, "<li id=\"writes\">", "</li>");
    assert!(writes.contains("<code>cart.items#figs</code>"), "{writes}");
    assert!(writes.contains("<code>flash.message</code>"), "{writes}");
    assert!(
        !writes.contains("auth."),
        "the cart request left the login alone: {writes}"
    );

    let html = post_html(&browser, format!("{base}/login"), "user=ada").await;
    let previous = between(&html, "<code id=\"previous-id\">", "</code>");
    let id_after = between(&html, "<li id=\"session-id\">ID <code>", "</code>");
    assert_eq!(previous, id_before, "{html}");
    assert_ne!(id_after, id_before, "a new ID at login: {html}");
    assert!(html.contains("ends when the browser closes"), "{html}");

    // What the race button does: 50 concurrent adds of different items.
    let adds: Vec<_> = (0..50)
        .map(|n| {
            let (browser, base) = (browser.clone(), base.clone());
            tokio::spawn(async move {
                post_form(
                    &browser,
                    format!("{base}/cart/add"),
                    &format!("name=race-7-{n:02}"),
                )
                .await
                .status()
            })
        })
        .collect();
    for add in adds {
        assert!(add.await.unwrap().is_success());
    }
    let html = browser
        .get(format!("{base}/?race=7"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("50 of 50 items are in the cart"), "{html}");
    assert!(
        html.contains("id=\"race\""),
        "the race button is on the page"
    );
}

/// On the cookie store, a cart too large for a 4 KB cookie is a message, and the demo
/// keeps working: the page loads, the stored cart stays, and emptying it makes room.
#[tokio::test]
async fn the_cookie_store_demo_never_bricks() {
    let key = Key::generate();
    let app = session_suite::demo::routes_without_index().layer(
        SessionLayer::new(session_runtime::CookieStore::new(&key), key)
            .with_insecure_cookie_over_http()
            .unwrap()
            .with_error_response(session_suite::demo::error_page),
    );
    let base = serve_app(app).await;
    let browser = browser();
    page(&browser, &base).await;
    let mut refused = None;
    for n in 0..100 {
        let name = format!("{n:02}-{}", "x".repeat(60));
        let response = post_form(
            &browser,
            format!("{base}/cart/add"),
            &format!("name={name}"),
        )
        .await;
        let status = response.status();
        let url = response.url().to_string();
        let html = response.text().await.unwrap();
        assert!(status.is_success(), "add {n}: {status} at {url}: {html}");
        if html.contains("is too large for this store") {
            assert!(
                !html.contains(&format!("× {name}</li>")),
                "not added: {html}"
            );
            refused = Some(n);
            break;
        }
    }
    let refused = refused.expect("a 4 KB cookie cannot hold 100 such lines");
    // The page still loads, more than once, with the cart as it was.
    for _ in 0..3 {
        let response = browser.get(format!("{base}/")).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let html = response.text().await.unwrap();
        assert_eq!(html.matches("<li>1 × ").count(), refused, "{html}");
    }
    let html = post_html(&browser, format!("{base}/cart/clear"), "").await;
    assert!(
        html.contains("The cart is empty.") && html.contains("<i>empty</i>"),
        "{html}"
    );
    let html = post_html(&browser, format!("{base}/cart/add"), "name=plums").await;
    assert!(html.contains("<li>1 × plums</li>"), "{html}");
}

/// An address the demo does not have is a page with a way back, not an empty 404.
#[tokio::test]
async fn an_unknown_address_is_a_page_with_a_way_back() {
    let base = serve().await;
    let response = browser()
        .get(format!("{base}/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("<a href=\"/\">Back to the demo</a>"),
        "{html}"
    );
}
