//! Idle and absolute timeouts, per-session overrides, refreshes and the cookie's `Max-Age`.

use super::*;

/// 400 days in seconds: the longest a session outlives its last write.
const LONGEST_SECS: u64 = 400 * 24 * 60 * 60;

#[tokio::test]
async fn a_per_session_expiry_override_is_stored_and_makes_the_cookie_persistent() {
    let store = store();
    let app =
        app_with(SessionLayer::new(store.clone(), Key::generate()).with_session_only_cookie());
    let cookie = started(&app).await;
    let response = send(&app, request("POST", "/add", Some(&cookie), "b")).await;
    let cookies = set_cookies(&response);
    assert!(
        cookies.is_empty(),
        "session-only cookies are not re-sent on writes: {cookies:?}"
    );

    let response = send(&app, request("POST", "/remember", Some(&cookie), "")).await;
    let remembered = set_cookies(&response);
    let max_age: u64 = attribute(&remembered[0], "Max-Age")
        .unwrap()
        .parse()
        .unwrap();
    assert!((2_591_990..=2_592_000).contains(&max_age), "{max_age}");
    let id = id_of(&cookie);
    let record = stored(&store, &id).await.unwrap();
    let ttl = remaining(&record);
    assert!(ttl > Duration::from_secs(29 * 24 * 3600));

    // A later write keeps the override.
    let response = send(&app, request("POST", "/add", Some(&cookie), "c")).await;
    let max_age: u64 = attribute(&set_cookies(&response)[0], "Max-Age")
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age > 2_591_000);
}

#[tokio::test]
async fn a_zero_expiry_override_ends_the_session_with_the_request() {
    let store = store();
    let app = routes()
        .route(
            "/expire",
            post(|mut cart: TypedSession<Cart>| async move {
                cart.set_idle_timeout(Some(Duration::ZERO));
            }),
        )
        .layer(SessionLayer::new(store.clone(), Key::generate()));
    let cookie = started(&app).await;
    let response = send(&app, request("POST", "/expire", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    // The browser drops the cookie at once, and the record expires with the request.
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert_eq!(attribute(&cookies[0], "Max-Age"), Some("0"), "{cookies:?}");
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|", "the session ended");
}

#[tokio::test]
async fn session_only_cookies_have_no_max_age() {
    let store = store();
    let app =
        app_with(SessionLayer::new(store.clone(), Key::generate()).with_session_only_cookie());
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let cookie = &set_cookies(&response)[0];
    assert!(attribute(cookie, "Max-Age").is_none() && attribute(cookie, "Expires").is_none());
    // The server still expires it.
    let id = id_of(&cookie_pair(&response));
    let record = stored(&store, &id).await.unwrap();
    assert!(record.expires_at.is_some());
}

#[tokio::test]
async fn cookie_max_age_and_store_ttl_agree() {
    let store = store();
    let app = app_with(
        SessionLayer::new(store.clone(), Key::generate())
            .with_idle_timeout(Duration::from_secs(600)),
    );
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let max_age: u64 = attribute(&set_cookies(&response)[0], "Max-Age")
        .unwrap()
        .parse()
        .unwrap();
    let id = id_of(&cookie_pair(&response));
    let record = stored(&store, &id).await.unwrap();
    let ttl = remaining(&record);
    assert!(max_age.abs_diff(ttl.as_secs()) <= 1, "{max_age} vs {ttl:?}");
}

#[tokio::test]
async fn idle_sessions_expire() {
    let store = store();
    let app = app_with(
        SessionLayer::new(store.clone(), Key::generate())
            .with_idle_timeout(Duration::from_millis(300)),
    );
    let cookie = started(&app).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    // A write slides the expiry.
    send(&app, request("POST", "/add", Some(&cookie), "b")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(
        text(response).await,
        r#"["apple", "b"]|"#,
        "still alive: slid"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|", "expired after idling");
}

#[tokio::test]
async fn the_absolute_timeout_ends_even_an_active_session() {
    let store = store();
    let app = app_with(
        SessionLayer::new(store.clone(), Key::generate())
            .with_idle_timeout(Duration::from_secs(60))
            .with_absolute_timeout(Duration::from_millis(400)),
    );
    let response = send(&app, request("POST", "/add", None, "a")).await;
    let max_age: u64 = attribute(&set_cookies(&response)[0], "Max-Age")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(max_age, 0, "the cookie is capped at the absolute deadline");
    let cookie = cookie_pair(&response);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        send(&app, request("POST", "/add", Some(&cookie), "b")).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|");
}

#[tokio::test]
async fn the_absolute_deadline_survives_a_new_layer_instance() {
    // The creation time is stored with the session, not kept in the process.
    let store = store();
    let key = Key::generate();
    let make = || {
        app_with(
            SessionLayer::new(store.clone(), key.clone())
                .with_absolute_timeout(Duration::from_millis(300)),
        )
    };
    let cookie = started(&make()).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let response = send(&make(), request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|");
    assert!(is_gone(&store, &id_of(&cookie)).await);
}

#[tokio::test]
async fn reads_refresh_the_expiry_at_most_once_per_interval() {
    let store = store();
    let app = app_with(
        SessionLayer::new(store.clone(), Key::generate())
            .with_expiry_refresh_interval(Duration::from_millis(200)),
    );
    let cookie = started(&app).await;
    store.take_calls();
    for _ in 0..5 {
        let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
        assert!(set_cookies(&response).is_empty());
    }
    assert!(writes(&store.take_calls()).is_empty());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    let refreshed = set_cookies(&response);
    assert_eq!(refreshed.len(), 1, "the sliding Max-Age is re-sent");
    assert_eq!(writes(&store.take_calls()), [&Call::Touch]);
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert!(set_cookies(&response).is_empty());
    assert!(writes(&store.take_calls()).is_empty());
}

#[tokio::test]
async fn writes_push_the_expiry_out_on_the_same_schedule_as_reads() {
    let store = store();
    let app = app_with(
        SessionLayer::new(store.clone(), Key::generate())
            .with_expiry_refresh_interval(Duration::from_millis(300)),
    );
    let cookie = started(&app).await;
    let id = id_of(&cookie);
    let expiry = |record: Option<Record>| record.unwrap().expires_at.unwrap();
    let first = expiry(stored(&store, &id).await);

    // Within the interval a write keeps the stored expiry, and the cookie it sends agrees.
    let response = send(&app, request("POST", "/add", Some(&cookie), "b")).await;
    assert_eq!(expiry(stored(&store, &id).await), first, "the expiry stays");
    let max_age: u64 = attribute(&set_cookies(&response)[0], "Max-Age")
        .unwrap()
        .parse()
        .unwrap();
    let ttl = remaining(&stored(&store, &id).await.unwrap());
    assert!(max_age.abs_diff(ttl.as_secs()) <= 1, "{max_age} vs {ttl:?}");
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(
        text(response).await,
        r#"["apple", "b"]|"#,
        "the write landed"
    );

    // Once it has passed, a write moves the expiry out.
    tokio::time::sleep(Duration::from_millis(350)).await;
    send(&app, request("POST", "/add", Some(&cookie), "c")).await;
    let moved = expiry(stored(&store, &id).await);
    assert!(
        moved >= first + Duration::from_millis(300),
        "{moved:?} vs {first:?}"
    );

    // A write that changes the session's own idle timeout sets the expiry it asks for,
    // within the interval all the same.
    send(&app, request("POST", "/remember", Some(&cookie), "")).await;
    let ttl = remaining(&stored(&store, &id).await.unwrap());
    assert!(ttl > Duration::from_secs(29 * 24 * 3600), "{ttl:?}");
}

#[tokio::test]
async fn with_a_zero_refresh_interval_every_write_pushes_the_expiry_out() {
    let store = store();
    let app = app_with(
        SessionLayer::new(store.clone(), Key::generate())
            .with_expiry_refresh_interval(Duration::ZERO),
    );
    let cookie = started(&app).await;
    let id = id_of(&cookie);
    let expiry = |record: Option<Record>| record.unwrap().expires_at.unwrap();
    let first = expiry(stored(&store, &id).await);
    tokio::time::sleep(Duration::from_millis(20)).await;
    send(&app, request("POST", "/add", Some(&cookie), "b")).await;
    let moved = expiry(stored(&store, &id).await);
    assert!(
        moved >= first + Duration::from_millis(20),
        "{moved:?} vs {first:?}"
    );
}

/// Regression: with an idle timeout shorter than the refresh interval (60 s by default),
/// reads never refreshed the expiry, so a session that was only read ended while in use.
#[tokio::test]
async fn steady_reads_keep_a_session_with_a_short_idle_timeout_alive() {
    let store = store();
    let app = app_with(
        SessionLayer::new(store.clone(), Key::generate()).with_idle_timeout(Duration::from_secs(1)),
    );
    let cookie = started(&app).await;
    store.take_calls();
    // Reads 100 ms apart for one and a half times the idle timeout.
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
        assert_eq!(text(response).await, r#"["apple"]|"#, "still alive");
    }
    // Throttled all the same (to a quarter of the idle timeout): not every read refreshed.
    let touches = writes(&store.take_calls()).len();
    assert!(
        (2..15).contains(&touches),
        "{touches} refreshes for 15 reads"
    );
}

#[tokio::test]
async fn timeouts_too_long_to_represent_are_capped_at_400_days_never_a_panic() {
    async fn forever(mut cart: TypedSession<Cart>) -> &'static str {
        cart.set_user_id(Some(1));
        cart.set_idle_timeout(Some(Duration::MAX));
        "ok"
    }
    let store = store();
    let layer = || SessionLayer::new(store.clone(), Key::generate());
    let forever_app: Router = routes().route("/forever", post(forever)).layer(layer());
    let cases = [
        (
            "set_idle_timeout(Duration::MAX)",
            forever_app,
            "/forever",
            LONGEST_SECS,
        ),
        (
            "with_idle_timeout(Duration::MAX)",
            app_with(layer().with_idle_timeout(Duration::MAX)),
            "/add",
            LONGEST_SECS,
        ),
        (
            "with_absolute_timeout(Duration::MAX)",
            app_with(layer().with_absolute_timeout(Duration::MAX)),
            "/add",
            24 * 60 * 60,
        ),
    ];
    for (case, app, path, max_age) in cases {
        let before = SystemTime::now();
        let response = send(&app, request("POST", path, None, "x")).await;
        assert_eq!(response.status(), StatusCode::OK, "{case}");
        let cookies = set_cookies(&response);
        assert_eq!(
            attribute(&cookies[0], "Max-Age"),
            Some(max_age.to_string().as_str()),
            "{case}"
        );
        // The store keeps the session exactly as long as the cookie lives.
        let cookie = cookie_pair(&response);
        let record = stored(&store, &id_of(&cookie)).await.expect("stored");
        let lifetime = record
            .expires_at
            .unwrap()
            .duration_since(before)
            .unwrap()
            .as_secs();
        assert!(
            (max_age..=max_age + 2).contains(&lifetime),
            "{case}: {lifetime}"
        );
        // And the next request, which reads the stored timeout back, works too.
        let response = send(&app, request("POST", path, Some(&cookie), "y")).await;
        assert_eq!(response.status(), StatusCode::OK, "{case}, again");
    }
}

#[tokio::test]
async fn stored_times_out_of_range_neither_panic_nor_outlive_400_days() {
    let store = store();
    let app = app_with(
        SessionLayer::new(store.clone(), Key::generate())
            .with_absolute_timeout(Duration::from_secs(3600))
            .with_expiry_refresh_interval(Duration::ZERO),
    );
    let cookie = started(&app).await;
    let id = id_of(&cookie);
    // Garbage another writer could leave: the largest numbers the metadata can hold.
    let patch = Patch {
        set: vec![
            ("__created".into(), Bytes::from(u64::MAX.to_string())),
            ("__ttl".into(), Bytes::from(u64::MAX.to_string())),
        ],
        remove: Vec::new(),
        expires_at: SystemTime::now() + Duration::from_secs(60),
    };
    store.inner().save(&id, &patch).await.unwrap();
    for (method, path) in [("GET", "/show"), ("POST", "/add")] {
        let response = send(&app, request(method, path, Some(&cookie), "z")).await;
        assert_eq!(response.status(), StatusCode::OK, "{method} {path}");
        for set in set_cookies(&response) {
            let max_age: u64 = attribute(&set, "Max-Age").unwrap().parse().unwrap();
            assert!(max_age <= LONGEST_SECS, "{set}");
        }
    }
}

/// One session's cookie can be session-only (no `Max-Age`) while the layer's are
/// persistent: the choice is stored, so later cookies of that session stay session-only,
/// and `set_session_only_cookie(false)` goes back to the layer's. `metadata()` reports it,
/// with the creation time, the expiry and the last refresh.
#[tokio::test]
async fn a_session_can_have_a_session_only_cookie_and_reports_its_metadata() {
    let store = store();
    let app = Router::new()
        .route(
            "/login",
            post(|mut cart: TypedSession<Cart>| async move {
                cart.set_user_id(Some(1));
                cart.set_session_only_cookie(true);
            }),
        )
        .route(
            "/add",
            post(|mut cart: TypedSession<Cart>, item: String| async move {
                cart.items_mut().push(item);
            }),
        )
        .route(
            "/persistent",
            post(|mut cart: TypedSession<Cart>| async move {
                cart.set_session_only_cookie(false);
            }),
        )
        .route(
            "/meta",
            get(|cart: TypedSession<Cart>| async move { format!("{:?}", cart.metadata()) }),
        )
        .route(
            "/recent",
            get(|cart: TypedSession<Cart>| async move {
                let meta = cart.metadata();
                let recent = |at: Option<SystemTime>| {
                    at.and_then(|at| at.elapsed().ok())
                        .is_some_and(|ago| ago < Duration::from_secs(5))
                };
                // The layer's idle timeout is 24 hours: the expiry is a day after the refresh.
                let day = meta
                    .expires_at
                    .zip(meta.last_refresh)
                    .and_then(|(end, at)| end.duration_since(at).ok());
                format!(
                    "{} {} {:?}",
                    recent(meta.created),
                    recent(meta.last_refresh),
                    day
                )
            }),
        )
        .layer(SessionLayer::new(store.clone(), Key::generate()));

    let response = send(&app, request("GET", "/meta", None, "")).await;
    let fresh = text(response).await;
    assert!(
        fresh.contains("created: None") && fresh.contains("session_only: false"),
        "{fresh}"
    );

    let response = send(&app, request("POST", "/login", None, "")).await;
    let cookie = cookie_pair(&response);
    assert_eq!(attribute(&set_cookies(&response)[0], "Max-Age"), None);
    let response = send(&app, request("POST", "/add", Some(&cookie), "a")).await;
    let resent = set_cookies(&response);
    assert!(
        resent.iter().all(|c| attribute(c, "Max-Age").is_none()),
        "still session-only: {resent:?}"
    );
    let response = send(&app, request("GET", "/meta", Some(&cookie), "")).await;
    let meta = text(response).await;
    assert!(meta.contains("session_only: true"), "{meta}");
    assert!(meta.contains("created: Some"), "{meta}");
    assert!(meta.contains("expires_at: Some"), "{meta}");
    assert!(meta.contains("last_refresh: Some"), "{meta}");
    let response = send(&app, request("GET", "/recent", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "true true Some(86400s)");

    let response = send(&app, request("POST", "/persistent", Some(&cookie), "")).await;
    let cookies = set_cookies(&response);
    assert!(attribute(&cookies[0], "Max-Age").is_some(), "{cookies:?}");
    let record = stored(&store, &id_of(&cookie)).await.unwrap();
    assert!(
        !record.fields.contains_key("__ttl"),
        "back to the layer's setting"
    );
}
