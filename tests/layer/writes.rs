//! Laziness and per-field writes: what each kind of request costs the store.

use super::*;

async fn read_both(cart: TypedSession<Cart>, prefs: TypedSession<Prefs>) -> String {
    format!("{}|{}", cart.theme(), prefs.lang())
}

fn vary(response: &axum::response::Response) -> Vec<&str> {
    response
        .headers()
        .get_all(header::VARY)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_handler_without_a_session_costs_no_store_call() {
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    store.take_calls();
    let response = send(&app, request("GET", "/plain", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "plain");
    assert!(store.take_calls().is_empty());
}

#[tokio::test]
async fn a_new_session_that_stays_empty_is_not_stored_and_gets_no_cookie() {
    let store = store();
    let app = app(&store, &Key::generate());
    let response = send(&app, request("GET", "/show", None, "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookies(&response).is_empty());
    assert!(
        store.take_calls().is_empty(),
        "no cookie, so not even a load"
    );
    assert!(store.inner().is_empty());
}

#[tokio::test]
async fn taking_a_field_that_is_not_stored_writes_nothing() {
    let store = store();
    let app = app(&store, &Key::generate());
    // A visitor without a session: nothing to remove, so no session and no cookie.
    let response = send(&app, request("GET", "/flash", None, "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        set_cookies(&response).is_empty(),
        "no cookie for an empty session"
    );
    assert!(writes(&store.take_calls()).is_empty(), "nothing created");
    assert!(store.inner().is_empty());

    // A session without that field: the page is a read, not a write.
    let cookie = started(&app).await;
    store.take_calls();
    let response = send(&app, request("GET", "/flash", Some(&cookie), "")).await;
    assert!(
        set_cookies(&response).is_empty(),
        "{:?}",
        set_cookies(&response)
    );
    assert!(writes(&store.take_calls()).is_empty());

    // Once it is stored, taking it removes it, once.
    let response = send(&app, request("POST", "/both", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    store.take_calls();
    let response = send(&app, request("GET", "/flash", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "dark");
    assert_eq!(the_one_save(&store.take_calls()).remove, vec!["th"]);
    let response = send(&app, request("GET", "/flash", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "");
    assert!(
        writes(&store.take_calls()).is_empty(),
        "already gone: no write"
    );

    // Fields set and then taken in the same request leave nothing to store either.
    let response = send(&app, request("POST", "/set-then-take", None, "")).await;
    assert_eq!(text(response).await, "7");
    assert!(writes(&store.take_calls()).is_empty());
    let response = send(&app, request("POST", "/set-then-take", Some(&cookie), "")).await;
    assert!(set_cookies(&response).is_empty());
    assert!(writes(&store.take_calls()).is_empty());
}

#[tokio::test]
async fn clearing_an_expiry_override_that_is_not_stored_writes_nothing() {
    let store = store();
    let app = app(&store, &Key::generate());
    let response = send(&app, request("POST", "/forget-me", None, "")).await;
    assert!(
        set_cookies(&response).is_empty(),
        "no session for a visitor without one"
    );
    assert!(writes(&store.take_calls()).is_empty());
    let cookie = started(&app).await;
    store.take_calls();
    let response = send(&app, request("POST", "/forget-me", Some(&cookie), "")).await;
    assert!(set_cookies(&response).is_empty());
    assert!(
        writes(&store.take_calls()).is_empty(),
        "no override: nothing to clear"
    );
    // A stored override is cleared with one write.
    let response = send(&app, request("POST", "/remember", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    store.take_calls();
    send(&app, request("POST", "/forget-me", Some(&cookie), "")).await;
    assert_eq!(the_one_save(&store.take_calls()).remove, vec!["__ttl"]);
}

#[tokio::test]
async fn the_first_write_creates_the_session_with_a_secure_signed_cookie() {
    let store = store();
    let app = app(&store, &Key::generate());
    let response = send(&app, request("POST", "/add", None, "apple")).await;
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 1);
    let cookie = &cookies[0];
    assert!(cookie.starts_with("id="));
    assert_eq!(attribute(cookie, "Path"), Some("/"));
    assert!(attribute(cookie, "HttpOnly").is_some());
    assert!(attribute(cookie, "Secure").is_some());
    assert_eq!(attribute(cookie, "SameSite"), Some("Lax"));
    let max_age: u64 = attribute(cookie, "Max-Age").unwrap().parse().unwrap();
    assert!((86_390..=86_400).contains(&max_age), "{max_age}");

    let calls = store.take_calls();
    let [Call::Create(patch)] = writes(&calls)[..] else {
        panic!("expected one create, got {calls:?}");
    };
    assert_eq!(keys_set(patch), ["__created", "__v.Cart", "items"]);

    let id = id_of(&cookie_pair(&response));
    assert_eq!(id.as_str().len(), 22, "128-bit random ID");
    let record = stored(&store, &id).await.unwrap();
    assert_eq!(&record.fields["items"][..], br#"["apple"]"#);
}

#[tokio::test]
async fn a_read_costs_one_load_and_writes_nothing() {
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    store.take_calls();
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(text(response).await, r#"["apple"]|"#);
    let calls = store.take_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let Call::Load(Some(keys)) = &calls[0] else {
        panic!("{calls:?}")
    };
    // Only this schema's keys and the metadata are asked for.
    let mut keys = keys.clone();
    keys.sort();
    assert_eq!(
        keys,
        [
            "__created",
            "__dk",
            "__ttl",
            "__v.Cart",
            "items",
            "th",
            "user_id"
        ]
    );
}

/// A response built from the session depends on the `Cookie` header: an HTTP cache must
/// not hand it to another visitor.
#[tokio::test]
async fn responses_that_used_the_session_vary_on_cookie() {
    let app = app(&store(), &Key::generate());
    let cookie = started(&app).await;
    let read = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(vary(&read), ["Cookie"]);
    let created = send(&app, request("POST", "/add", None, "x")).await;
    assert_eq!(set_cookies(&created).len(), 1);
    assert_eq!(vary(&created), ["Cookie"]);
    let plain = send(&app, request("GET", "/plain", Some(&cookie), "")).await;
    assert!(vary(&plain).is_empty(), "no session used, no Vary");

    // A handler's own `Vary` is kept; `Cookie` is added once, unless already covered.
    let with_vary = |value: &'static str| {
        move |cart: TypedSession<Cart>| async move {
            ([(header::VARY, value)], format!("{:?}", cart.items()))
        }
    };
    let app = Router::new()
        .route("/encoding", get(with_vary("Accept-Encoding")))
        .route("/cookie", get(with_vary("accept-language, cookie")))
        .route("/any", get(with_vary("*")))
        .layer(SessionLayer::new(store(), Key::generate()));
    let cases: [(&str, &[&str]); 3] = [
        ("/encoding", &["Accept-Encoding", "Cookie"]),
        ("/cookie", &["accept-language, cookie"]),
        ("/any", &["*"]),
    ];
    for (path, expected) in cases {
        let response = send(&app, request("GET", path, None, "")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(vary(&response), expected, "{path}");
    }
}

#[tokio::test]
async fn an_update_writes_exactly_the_changed_fields_in_one_call() {
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    store.take_calls();
    let response = send(&app, request("POST", "/add", Some(&cookie), "pear")).await;
    assert_eq!(text(response).await, "2");
    let calls = store.take_calls();
    let patch = the_one_save(&calls);
    assert_eq!(keys_set(patch), ["items"]);
    assert!(patch.remove.is_empty());
}

#[tokio::test]
async fn extractors_of_different_schemas_share_one_session_and_one_write() {
    let store = store();
    let app = app(&store, &Key::generate());
    let response = send(&app, request("POST", "/both", None, "")).await;
    assert_eq!(set_cookies(&response).len(), 1);
    let cookie = cookie_pair(&response);
    assert_eq!(text(response).await, "dark|fr");
    let calls = store.take_calls();
    let [Call::Create(patch)] = writes(&calls)[..] else {
        panic!("expected one create, got {calls:?}");
    };
    assert_eq!(
        keys_set(patch),
        ["__created", "__v.Cart", "__v.prefs", "prefs.lang", "th"]
    );
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|dark");
}

#[tokio::test]
async fn changes_of_a_dropped_extractor_are_saved() {
    let store = store();
    let app = app(&store, &Key::generate());
    let response = send(&app, request("POST", "/twice", None, "")).await;
    let cookie = cookie_pair(&response);
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, r#"["a"]|"#);
}

#[tokio::test]
async fn several_schemas_in_one_request_cost_one_load() {
    let store = store();
    let app = routes()
        .route("/read-both", get(read_both))
        .layer(SessionLayer::new(store.clone(), Key::generate()));
    let response = send(&app, request("POST", "/both", None, "")).await;
    let cookie = cookie_pair(&response);
    store.take_calls();
    let response = send(&app, request("GET", "/read-both", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "dark|fr");
    let calls = store.take_calls();
    assert_eq!(calls.len(), 1, "one load for both schemas: {calls:?}");
}

#[tokio::test]
async fn a_store_that_loads_only_asked_keys_gets_one_load_per_schema_and_a_full_one_to_migrate() {
    let recording = Recording::new(session_suite::OnlyAskedKeys(MemoryStore::new()));
    let key = Key::generate();
    let app = routes()
        .route("/read-both", get(read_both))
        .route("/account", get(account))
        .layer(SessionLayer::new(recording.clone(), key.clone()));

    // Two schemas: the second one's keys are loaded when it is extracted.
    let response = send(&app, request("POST", "/both", None, "")).await;
    let cookie = cookie_pair(&response);
    recording.take_calls();
    let response = send(&app, request("GET", "/read-both", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "dark|fr");
    let loads: Vec<_> = recording
        .take_calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Load(keys) => Some(keys),
            _ => None,
        })
        .collect();
    assert_eq!(loads.len(), 2, "{loads:?}");
    assert!(loads[0].as_ref().unwrap().contains(&"th".to_owned()));
    assert!(loads[1]
        .as_ref()
        .unwrap()
        .contains(&"prefs.lang".to_owned()));

    // A v1 record: the migration needs the whole namespace, so the whole record is loaded.
    let id = id_of(&cookie);
    recording
        .inner()
        .0
        .save(
            &id,
            &session_runtime::store::Patch {
                set: vec![
                    ("__v.Account".into(), b"1".to_vec().into()),
                    ("name".into(), br#""Ada""#.to_vec().into()),
                ],
                remove: vec![],
                expires_at: SystemTime::now() + Duration::from_secs(60),
            },
        )
        .await
        .unwrap();
    recording.take_calls();
    let response = send(&app, request("GET", "/account", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "Ada");
    let calls = recording.take_calls();
    assert!(calls.contains(&Call::Load(None)), "a full load: {calls:?}");
}

#[tokio::test]
async fn the_layer_wrapped_around_the_whole_router_behaves_the_same() {
    use tower::Layer;
    let store = store();
    let app = SessionLayer::new(store.clone(), Key::generate()).layer(routes());

    // Lazy: a handler without a session, or a path no route answers, costs nothing.
    let response = send(&app, request("GET", "/plain", None, "")).await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(text(response).await, "plain");
    let response = send(&app, request("GET", "/missing", None, "")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(set_cookies(&response).is_empty());
    assert!(store.take_calls().is_empty());

    // Create, then update exactly the changed field.
    let response = send(&app, request("POST", "/add", None, "apple")).await;
    let cookie = cookie_pair(&response);
    assert!(matches!(writes(&store.take_calls())[..], [Call::Create(_)]));
    let response = send(&app, request("POST", "/add", Some(&cookie), "pear")).await;
    assert_eq!(text(response).await, "2");
    let calls = store.take_calls();
    let patch = the_one_save(&calls);
    assert_eq!(keys_set(patch), ["items"]);

    // A read loads once and writes nothing; with the cookie, a 404 still loads nothing.
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(text(response).await, r#"["apple", "pear"]|"#);
    assert!(matches!(store.take_calls()[..], [Call::Load(_)]));
    let response = send(&app, request("GET", "/missing", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(store.take_calls().is_empty());

    // Regenerate and destroy.
    let response = send(&app, request("POST", "/login", Some(&cookie), "")).await;
    let new_cookie = cookie_pair(&response);
    assert_ne!(id_of(&new_cookie), id_of(&cookie));
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|", "the old ID is dead");
    let response = send(&app, request("POST", "/logout", Some(&new_cookie), "")).await;
    assert!(set_cookies(&response)[0].starts_with("id=;"));
    assert!(store.inner().is_empty());
}

/// The store can be chosen at run time (from configuration): every `SessionLayer` has one
/// type whatever its store, and an `Arc` of a store is a store, shared with other code.
#[tokio::test]
async fn a_store_chosen_at_run_time_and_a_shared_one_work_alike() {
    use std::sync::Arc;

    let shared = Arc::new(MemoryStore::new());
    let layer_for = |setting: &str| -> SessionLayer {
        match setting {
            "shared" => SessionLayer::new(Arc::clone(&shared), Key::generate()),
            _ => SessionLayer::new(MemoryStore::new(), Key::generate()),
        }
    };
    for setting in ["memory", "shared"] {
        let app = app_with(layer_for(setting));
        let cookie = started(&app).await;
        let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
        assert_eq!(text(response).await, r#"["apple"]|"#, "{setting}");
    }
    assert_eq!(shared.len(), 1, "the shared store holds the session");
}

/// A test prepares a session in the layer's store with the state it needs, and gets the
/// cookie that names it: the handler then sees that state; `cookie_for` names a session
/// prepared in the store directly.
#[tokio::test]
async fn a_test_prepares_a_session_and_its_cookie() {
    let store = store();
    let layer = SessionLayer::new(store.clone(), Key::generate());
    let (id, cookie) = layer
        .prepare_session::<Cart>(|cart| {
            cart.set_items(vec!["prepared".into()]);
            cart.set_theme("dark".into());
        })
        .await
        .unwrap();
    assert_eq!(cookie, layer.cookie_for(&id));
    let app = app_with(layer.clone());
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, r#"["prepared"]|dark"#);
    // A session written to the store by other means, named by `cookie_for`.
    let other = SessionId::generate();
    let mut patch = Patch::expiry_only(SystemTime::now() + Duration::from_secs(60));
    patch
        .set
        .push(("items".into(), Bytes::from_static(br#"["direct"]"#)));
    store.inner().create(&other, &patch).await.unwrap();
    let response = send(
        &app,
        request("GET", "/show", Some(&layer.cookie_for(&other)), ""),
    )
    .await;
    assert_eq!(text(response).await, r#"["direct"]|"#);
    // Another layer's key does not read it.
    let stranger = SessionLayer::new(store.clone(), Key::generate()).cookie_for(&other);
    let response = send(&app, request("GET", "/show", Some(&stranger), "")).await;
    assert_eq!(text(response).await, "[]|");
}

/// Each request's session work is a `debug` event (loaded or not, what was written, whether a
/// cookie went out), with names and counts only: never a value, an ID or a cookie.
#[tokio::test]
async fn session_work_is_logged_at_debug_without_secrets() {
    let (_guard, logs) = session_suite::logs::capture();
    let store = store();
    let app = app(&store, &Key::generate());
    let response = send(&app, request("POST", "/add", None, "s3cret-item")).await;
    let cookie = cookie_pair(&response);
    send(&app, request("GET", "/show", Some(&cookie), "")).await;
    send(&app, request("POST", "/logout", Some(&cookie), "")).await;
    let logged = logs.text();
    assert!(logged.contains("session created"), "{logged}");
    assert!(
        logged.contains("written=3"),
        "the item, the version and the creation time: {logged}"
    );
    assert!(logged.contains("cookie_sent=true"), "{logged}");
    assert!(
        logged.contains("session loaded") && logged.contains("found=true"),
        "{logged}"
    );
    assert!(logged.contains("session destroyed"), "{logged}");
    let (_, value) = cookie.split_once('=').unwrap();
    let (id, _) = value.rsplit_once('.').unwrap();
    assert!(!logged.contains("s3cret"), "no value: {logged}");
    assert!(!logged.contains(id), "no ID: {logged}");
}
