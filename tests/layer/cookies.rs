//! The session cookie: signed IDs, rotation, bad and hostile cookies, and cookie settings.

use super::*;

#[tokio::test]
async fn a_tampered_cookie_starts_a_fresh_session_under_a_new_id() {
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    let id = id_of(&cookie);
    let (value, tag) = cookie.split_once('=').unwrap().1.rsplit_once('.').unwrap();
    let mut forged_id = value.to_owned();
    forged_id.replace_range(0..1, if value.starts_with('A') { "B" } else { "A" });
    for bad in [
        format!("id={forged_id}.{tag}"),
        format!("id={value}.{}", &tag[1..]),
        format!("id={value}"),
        format!("id={}", "A".repeat(10_000)),
        "id=".to_owned(),
        "id=..;;==".to_owned(),
        "id=\"quoted.value\"".to_owned(),
        format!("id=client-chosen.{tag}"),
    ] {
        let response = send(&app, request("POST", "/add", Some(&bad), "x")).await;
        assert_eq!(response.status(), StatusCode::OK, "{bad}");
        let new = id_of(&cookie_pair(&response));
        assert_ne!(new, id);
        assert_ne!(new.as_str(), forged_id);
        assert_eq!(text(response).await, "1", "a fresh session: {bad}");
    }
    // The original session is untouched.
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, r#"["apple"]|"#);
}

#[tokio::test]
async fn non_utf8_cookie_headers_do_not_panic() {
    let store = store();
    let app = app(&store, &Key::generate());
    let req = Request::builder()
        .method("POST")
        .uri("/add")
        .header(
            header::COOKIE,
            axum::http::HeaderValue::from_bytes(b"id=\xff\xfe").unwrap(),
        )
        .body(Body::from("x"))
        .unwrap();
    let response = send(&app, req).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "1");
}

#[tokio::test]
async fn the_session_cookie_is_read_beside_other_cookies_with_non_ascii_bytes() {
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    // Browsers send other sites' cookies as they were set, UTF-8 included; such a header is
    // not valid `HeaderValue` text, and the session cookie in it must still count.
    for header in [
        format!("pref=caf\u{e9}; {cookie}"),
        format!("{cookie}; pref=caf\u{e9}"),
        format!("a=1;b=\u{2603};\t{cookie} ; c"),
    ] {
        let req = Request::builder()
            .uri("/show")
            .header(
                header::COOKIE,
                axum::http::HeaderValue::from_bytes(header.as_bytes()).unwrap(),
            )
            .body(Body::empty())
            .unwrap();
        let response = send(&app, req).await;
        assert_eq!(response.status(), StatusCode::OK, "{header}");
        assert_eq!(
            text(response).await,
            r#"["apple"]|"#,
            "the existing session was found in {header:?}"
        );
    }
}

/// HTTP/2 clients send each cookie in its own `Cookie` header; and a browser may hold two
/// cookies of the same name (another path, an old deploy), of which only one verifies.
#[tokio::test]
async fn the_session_cookie_is_found_across_cookie_headers_and_beside_a_stale_namesake() {
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    let stale = started(&self::app(&store, &Key::generate())).await;
    for headers in [
        vec!["a=1".to_owned(), cookie.clone(), "b=2".to_owned()],
        vec![stale.clone(), cookie.clone()],
        vec![format!("{stale}; {cookie}")],
        vec![format!("{cookie}; {stale}")],
    ] {
        let mut req = Request::builder().uri("/show");
        for value in &headers {
            req = req.header(header::COOKIE, value);
        }
        let response = send(&app, req.body(Body::empty()).unwrap()).await;
        assert!(set_cookies(&response).is_empty(), "{headers:?}");
        assert_eq!(text(response).await, r#"["apple"]|"#, "{headers:?}");
    }
}

#[tokio::test]
async fn a_signed_id_unknown_to_the_store_is_not_adopted() {
    let store = store();
    let key = Key::generate();
    let app = app(&store, &key);
    let cookie = started(&app).await;
    let id = id_of(&cookie);
    store.inner().delete(&id).await.unwrap();
    let response = send(&app, request("POST", "/add", Some(&cookie), "x")).await;
    let new = id_of(&cookie_pair(&response));
    assert_ne!(new, id, "the old (signed) ID is not reused");
    assert!(is_gone(&store, &id).await);
    assert_eq!(text(response).await, "1");
}

#[tokio::test]
async fn a_cookie_signed_by_a_previous_key_is_accepted_and_re_signed() {
    let store = store();
    let old = Key::generate();
    let cookie = started(&app(&store, &old)).await;
    let id = id_of(&cookie);

    let new = Key::generate();
    let rotated = app_with(SessionLayer::new(store.clone(), new.clone()).with_previous_keys([old]));
    store.take_calls();
    let response = send(&rotated, request("GET", "/show", Some(&cookie), "")).await;
    let resigned = cookie_pair(&response);
    assert_eq!(text(response).await, r#"["apple"]|"#);
    assert_eq!(id_of(&resigned), id, "same session");
    assert_ne!(resigned, cookie, "new signature");
    assert!(
        writes(&store.take_calls()).is_empty(),
        "re-signing writes nothing"
    );

    // The re-signed cookie verifies under the new key alone.
    let only_new = app_with(SessionLayer::new(store.clone(), new));
    let response = send(&only_new, request("GET", "/show", Some(&resigned), "")).await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(text(response).await, r#"["apple"]|"#);
    // And the old cookie does not.
    let response = send(&only_new, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|");
}

#[tokio::test]
async fn cookie_settings_are_applied() {
    let store = store();
    let app = app_with(
        SessionLayer::new(store.clone(), Key::generate())
            .with_cookie_name("sid")
            .unwrap()
            .with_insecure_cookie_over_http()
            .unwrap()
            .with_cookie_readable_by_scripts()
            .with_same_site(SameSite::Strict)
            .unwrap(),
    );
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = &set_cookies(&response)[0];
    assert!(cookie.starts_with("sid="));
    assert!(attribute(cookie, "Secure").is_none());
    assert!(attribute(cookie, "HttpOnly").is_none());
    assert_eq!(attribute(cookie, "SameSite"), Some("Strict"));
    let pair = cookie_pair(&response);
    // Only the configured name is read.
    let response = send(&app, request("GET", "/show", Some(&pair), "")).await;
    assert_eq!(text(response).await, r#"["a"]|"#);
    let other = pair.replacen("sid=", "id=", 1);
    let response = send(&app, request("GET", "/show", Some(&other), "")).await;
    assert_eq!(text(response).await, "[]|");
}

/// An embedded app's cookie: `SameSite=None; Partitioned` on every cookie the layer sends,
/// the removal cookie included (a partitioned cookie is only removed by a partitioned one).
#[tokio::test]
async fn a_partitioned_cookie_carries_the_attribute_on_every_set_cookie() {
    let store = store();
    let embedded = app_with(
        SessionLayer::new(store.clone(), Key::generate())
            .with_same_site(SameSite::None)
            .unwrap()
            .with_partitioned_cookie()
            .unwrap(),
    );
    let response = send(&embedded, request("POST", "/add", None, "a")).await;
    let created = set_cookies(&response);
    let pair = cookie_pair(&response);
    let response = send(&embedded, request("POST", "/login", Some(&pair), "")).await;
    let regenerated = set_cookies(&response);
    let pair = cookie_pair(&response);
    let response = send(&embedded, request("POST", "/logout", Some(&pair), "")).await;
    let removed = set_cookies(&response);
    assert_eq!(attribute(&removed[0], "Max-Age"), Some("0"), "{removed:?}");
    for cookie in [&created[0], &regenerated[0], &removed[0]] {
        assert_eq!(attribute(cookie, "Partitioned"), Some(""), "{cookie}");
        assert_eq!(attribute(cookie, "SameSite"), Some("None"), "{cookie}");
        assert!(attribute(cookie, "Secure").is_some(), "{cookie}");
    }
    // Without the setting, no attribute.
    let plain = app(&store, &Key::generate());
    let response = send(&plain, request("POST", "/add", None, "a")).await;
    assert!(attribute(&set_cookies(&response)[0], "Partitioned").is_none());
}

#[test]
fn invalid_cookie_settings_are_errors() {
    let layer = || SessionLayer::new(MemoryStore::new(), Key::generate());
    assert!(layer().with_cookie_name("").is_err());
    assert!(layer().with_cookie_name("a;b").is_err());
    assert!(layer().with_cookie_name("a b").is_err());
    let err = layer().with_cookie_path("no-slash").unwrap_err();
    assert!(err.to_string().contains("must start with `/`"));
    assert!(layer().with_cookie_path("/a;b").is_err());
    assert!(layer().with_cookie_domain("").is_err());
    assert!(layer().with_cookie_domain("a b").is_err());
}

/// Cookies that browsers refuse would make every request start a new session, silently:
/// the setting that completes such a combination is an error, whichever comes first, naming
/// the setting to change; the layer keeps its earlier, valid settings.
#[test]
fn cookie_settings_browsers_refuse_are_errors_in_either_order() {
    type Step = fn(SessionLayer) -> Result<SessionLayer, ConfigError>;
    let layer = || SessionLayer::new(MemoryStore::new(), Key::generate());
    let none: Step = |l| l.with_same_site(SameSite::None);
    let insecure: Step = |l| l.with_insecure_cookie_over_http();
    let partitioned: Step = |l| l.with_partitioned_cookie();
    let host: Step = |l| l.with_cookie_name("__Host-id");
    let host_lower: Step = |l| l.with_cookie_name("__host-id");
    let secure_prefix: Step = |l| l.with_cookie_name("__Secure-id");
    let app_path: Step = |l| l.with_cookie_path("/app");
    let domain: Step = |l| l.with_cookie_domain("example.com");
    let refused: [(Step, Step, &str); 6] = [
        (none, insecure, "`SameSite=None` must be `Secure`"),
        (host, insecure, "`__Host-` prefix"),
        (host, app_path, "on path `/`"),
        (host_lower, domain, "without a domain"),
        (secure_prefix, insecure, "`__Secure-` prefix"),
        (
            partitioned,
            insecure,
            "`Partitioned` cookie must be `Secure`",
        ),
    ];
    for (first, second, expected) in refused {
        for (a, b) in [(first, second), (second, first)] {
            let err = b(a(layer()).expect("one setting alone is fine")).unwrap_err();
            assert!(
                matches!(&err, ConfigError::RefusedByBrowsers(why) if why.contains(expected)),
                "{err:?}"
            );
            assert!(err.to_string().contains(expected), "{err}");
        }
    }
    let accepted: [&[Step]; 4] = [
        &[none, partitioned],
        &[host],
        &[secure_prefix, domain],
        &[|l| l.with_cookie_name("Host-id"), insecure],
    ];
    for steps in accepted {
        let layer = steps
            .iter()
            .try_fold(layer(), |layer, step| step(layer))
            .expect("accepted");
        let _ = routes().layer(layer);
    }
    // A refused setting leaves the layer as it was: still valid, still with its cookie.
    let kept = host(layer()).unwrap();
    assert!(insecure(kept.clone()).is_err());
    let debug = format!("{kept:?}");
    assert!(
        debug.contains("__Host-id") && debug.contains("secure: true"),
        "{debug}"
    );
}

#[test]
fn keys_are_redacted_in_debug() {
    let key = Key::from_bytes(b"0123456789abcdef0123456789abcdef-secret").unwrap();
    let layer = SessionLayer::new(MemoryStore::new(), key.clone()).with_previous_keys([key]);
    let debug = format!("{layer:?}");
    assert!(
        !debug.contains("secret") && !debug.contains("0123"),
        "{debug}"
    );
    assert!(debug.contains("REDACTED"));
}

#[tokio::test]
async fn a_bad_cookie_logs_a_warning_without_its_value() {
    let (_guard, logs) = session_suite::logs::capture();
    let store = store();
    // Well-formed, but signed by another key.
    let forged = started(&app(&store, &Key::generate())).await;
    let app = app(&store, &Key::generate());
    send(&app, request("GET", "/show", Some(&forged), "")).await;
    let logged = logs.text();
    assert!(logged.contains("WARN"), "{logged}");
    assert!(
        logged.contains("failed verification") && logged.contains("bad signature"),
        "{logged}"
    );
    let (id, tag) = forged.split_once('=').unwrap().1.rsplit_once('.').unwrap();
    assert!(
        !logged.contains(id) && !logged.contains(tag),
        "the cookie is not logged: {logged}"
    );
}

#[tokio::test]
async fn a_write_re_sends_the_same_signed_cookie_with_a_fresh_max_age() {
    let store = store();
    let key = Key::generate();
    let app = app(&store, &key);
    let cookie = started(&app).await;
    let response = send(&app, request("POST", "/add", Some(&cookie), "pear")).await;
    let again = set_cookies(&response);
    assert_eq!(again.len(), 1);
    assert_eq!(cookie_pair(&response), cookie, "same ID, same tag");
    assert!(attribute(&again[0], "Max-Age").is_some());
    // And it still verifies on its own.
    let response = send(
        &app,
        request("GET", "/show", Some(&cookie_pair(&response)), ""),
    )
    .await;
    assert_eq!(text(response).await, r#"["apple", "pear"]|"#);
}

/// Every cookie with the session's name costs an HMAC per key, so a request has at most four
/// of them checked: a valid cookie among the first four resumes the session; one behind a
/// thousand forged namesakes is never reached (and the header costs four checks, not 1 001).
#[tokio::test]
async fn at_most_four_cookies_with_the_sessions_name_are_checked() {
    let (_guard, logs) = session_suite::logs::capture();
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    let forged = |n: usize| {
        (0..n)
            .map(|i| format!("id=forged{i}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let within = format!("{}; {cookie}", forged(3));
    let response = send(&app, request("GET", "/show", Some(&within), "")).await;
    assert_eq!(text(response).await, r#"["apple"]|"#);
    let beyond = format!("{}; {cookie}", forged(1000));
    let response = send(&app, request("GET", "/show", Some(&beyond), "")).await;
    assert_eq!(text(response).await, "[]|", "a fresh session");
    assert!(logs.text().contains("too many cookies"), "{}", logs.text());
}

/// After a cookie's `Path` or `Domain` changes, the browser holds two cookies of the
/// session's name, both signed by this app, and sends both: the one whose session is gone
/// must not hide the live one, whichever comes first.
#[tokio::test]
async fn of_two_signed_cookies_the_one_naming_a_live_session_is_used_in_either_order() {
    let store = store();
    let key = Key::generate();
    let app = app(&store, &key);
    let dead = started(&app).await;
    store.inner().delete(&id_of(&dead)).await.unwrap();
    let live = started(&app).await;
    for header in [format!("{dead}; {live}"), format!("{live}; {dead}")] {
        let response = send(&app, request("GET", "/show", Some(&header), "")).await;
        assert!(set_cookies(&response).is_empty(), "{header}");
        assert_eq!(text(response).await, r#"["apple"]|"#, "{header}");
    }
    // A write goes to the live session, under its own ID.
    let both = format!("{dead}; {live}");
    let response = send(&app, request("POST", "/add", Some(&both), "pear")).await;
    assert_eq!(text(response).await, "2");
    let response = send(&app, request("GET", "/show", Some(&live), "")).await;
    assert_eq!(text(response).await, r#"["apple", "pear"]|"#);
}

/// A session cookie that fails verification gets a removal cookie, once: the browser stops
/// sending it (and the server stops logging it on every request). A request that starts a
/// session sends the new cookie instead.
#[tokio::test]
async fn a_forged_cookie_is_removed_once() {
    let store = store();
    let app = app(&store, &Key::generate());
    for forged in [
        "id=garbage",
        "id=abc.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let response = send(&app, request("GET", "/show", Some(forged), "")).await;
        let cookies = set_cookies(&response);
        assert_eq!(cookies.len(), 1, "{forged}: {cookies:?}");
        assert!(cookies[0].starts_with("id=;"), "{cookies:?}");
        assert_eq!(attribute(&cookies[0], "Max-Age"), Some("0"));
        assert_eq!(attribute(&cookies[0], "Path"), Some("/"));
        // Starting a session replaces it.
        let response = send(&app, request("POST", "/add", Some(forged), "a")).await;
        let cookies = set_cookies(&response);
        assert_eq!(cookies.len(), 1);
        assert_ne!(attribute(&cookies[0], "Max-Age"), Some("0"), "{cookies:?}");
    }
    // Without a cookie, nothing to remove.
    let response = send(&app, request("GET", "/show", None, "")).await;
    assert!(set_cookies(&response).is_empty());
}
