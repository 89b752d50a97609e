//! Store failures, sessions that vanish during a request, and misuse.

use super::*;

#[derive(SessionData, Debug)]
struct Unencodable {
    pairs: HashMap<(u8, u8), u8>,
}

/// A route whose handler first deletes the session `id` from the store (another request
/// logging out while this one runs), then goes on with `then`.
fn after_a_concurrent_logout(
    store: &Store,
    id: &SessionId,
    then: fn(TypedSession<Cart>) -> String,
) -> axum::routing::MethodRouter {
    let (store, id) = (store.clone(), id.clone());
    axum::routing::any(move |cart: TypedSession<Cart>| {
        let (store, id) = (store.clone(), id.clone());
        async move {
            store.inner().delete(&id).await.unwrap();
            then(cart)
        }
    })
}

#[tokio::test]
async fn a_store_failure_on_load_is_a_503_and_on_save_too() {
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    store.set_failing(true);
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    // A new session fails at its first save.
    let response = send(&app, request("POST", "/add", None, "x")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(set_cookies(&response).is_empty());
    assert!(store.failures() >= 2);
    store.set_failing(false);
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, r#"["apple"]|"#, "nothing was lost");
}

/// A page that can do without the session takes `Result<TypedSession<_>, SessionError>`
/// (axum's extractor for a fallible one) and still answers while the store is down.
#[tokio::test]
async fn a_handler_that_can_do_without_the_session_answers_while_the_store_is_down() {
    async fn home(cart: Result<TypedSession<Cart>, SessionError>) -> String {
        match cart {
            Ok(cart) => format!("{} items", cart.items().len()),
            Err(err) => format!("cart unavailable ({})", err.status().as_u16()),
        }
    }
    let store = store();
    let app = routes()
        .route("/home", get(home))
        .layer(SessionLayer::new(store.clone(), Key::generate()));
    let cookie = started(&app).await;
    let response = send(&app, request("GET", "/home", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "1 items");

    store.set_failing(true);
    let response = send(&app, request("GET", "/home", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        set_cookies(&response).is_empty(),
        "nothing to save, no cookie"
    );
    assert_eq!(text(response).await, "cart unavailable (503)");
    // Pages that need the session still say the store is down.
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    store.set_failing(false);
    let response = send(&app, request("GET", "/home", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "1 items", "nothing was lost");
}

#[tokio::test]
async fn a_session_deleted_during_the_request_is_not_resurrected() {
    let (store, key, cookie) = started_in_a_new_store().await;
    let id = id_of(&cookie);
    let racing = Router::new()
        .route(
            "/race",
            after_a_concurrent_logout(&store, &id, |mut cart| {
                cart.items_mut().push("late".into());
                "done".into()
            }),
        )
        .layer(SessionLayer::new(store.clone(), key));
    let response = send(&racing, request("POST", "/race", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(is_gone(&store, &id).await);
}

/// A read-only request that is due to refresh the expiry, while another request (a logout
/// in another tab) deletes the session: it changed nothing, so it answers normally, brings
/// nothing back and sends no cookie (a removal cookie could arrive after, and so remove,
/// the cookie of a session the other tab started since).
#[tokio::test]
async fn a_read_whose_session_is_deleted_meanwhile_still_answers_and_resurrects_nothing() {
    let (store, key, cookie) = started_in_a_new_store().await;
    let id = id_of(&cookie);
    let racing = Router::new()
        .route(
            "/peek",
            after_a_concurrent_logout(&store, &id, |cart| format!("{:?}", cart.items())),
        )
        .layer(SessionLayer::new(store.clone(), key).with_expiry_refresh_interval(Duration::ZERO));
    store.take_calls();
    let response = send(&racing, request("GET", "/peek", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookies(&response).is_empty());
    assert_eq!(text(response).await, r#"["apple"]"#);
    assert_eq!(
        writes(&store.take_calls()),
        [&Call::Touch],
        "the refresh was due"
    );
    assert!(is_gone(&store, &id).await);
}

#[tokio::test]
async fn a_field_that_cannot_be_encoded_is_a_500_not_a_silent_loss() {
    let store = store();
    let app = Router::new()
        .route(
            "/bad",
            post(|mut s: TypedSession<Unencodable>| async move {
                s.pairs_mut().insert((1, 2), 3);
                "handler ran"
            }),
        )
        .layer(SessionLayer::new(store.clone(), Key::generate()));
    let response = send(&app, request("POST", "/bad", None, "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookies(&response).is_empty());
    assert!(store.inner().is_empty(), "no partial record");
}

#[tokio::test]
async fn using_the_extractor_without_the_layer_is_a_500() {
    let app = Router::new().route("/show", get(show));
    let response = send(&app, request("GET", "/show", None, "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn a_store_failure_is_logged_with_its_cause() {
    let (_guard, logs) = session_suite::logs::capture();
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    store.set_failing(true);
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let logged = logs.text();
    assert!(logged.contains("ERROR"), "{logged}");
    assert!(
        logged.contains("store switched off by the test"),
        "{logged}"
    );
}

mod first {
    /// One of two schemas that claim the namespace `shared`.
    #[derive(session_runtime::SessionData)]
    #[session(namespace = "shared")]
    pub struct Profile {
        pub name: String,
    }

    /// One of two structs named `Twin`, neither with a namespace.
    #[derive(session_runtime::SessionData)]
    pub struct Twin {
        pub a: u32,
    }
}

mod second {
    /// The other schema in the namespace `shared`.
    #[derive(session_runtime::SessionData)]
    #[session(namespace = "shared")]
    pub struct Settings {
        pub name: String,
    }

    /// The other `Twin`.
    #[derive(session_runtime::SessionData)]
    pub struct Twin {
        pub b: u32,
    }
}

/// Two schemas with one version key would corrupt each other's records: the second one used
/// is refused with a 500 and a log line naming both; the first keeps working.
#[tokio::test]
async fn two_schemas_that_share_store_keys_are_refused_naming_both() {
    let (_guard, logs) = session_suite::logs::capture();
    let app = Router::new()
        .route(
            "/profile",
            post(|mut p: TypedSession<first::Profile>| async move {
                p.set_name("ada".into());
                p.name().clone()
            }),
        )
        .route(
            "/settings",
            post(|s: TypedSession<second::Settings>| async move { s.name().clone() }),
        )
        .route(
            "/twin-a",
            post(|t: TypedSession<first::Twin>| async move { t.a().to_string() }),
        )
        .route(
            "/twin-b",
            post(|t: TypedSession<second::Twin>| async move { t.b().to_string() }),
        )
        .layer(SessionLayer::new(store(), Key::generate()));
    for (used_first, used_second, key, first, second) in [
        (
            "/profile",
            "/settings",
            "__v.shared",
            "first::Profile",
            "second::Settings",
        ),
        (
            "/twin-a",
            "/twin-b",
            "__v.Twin",
            "first::Twin",
            "second::Twin",
        ),
    ] {
        let response = send(&app, request("POST", used_first, None, "")).await;
        assert_eq!(response.status(), StatusCode::OK, "{used_first}");
        let response = send(&app, request("POST", used_second, None, "")).await;
        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{used_second}"
        );
        let response = send(&app, request("POST", used_first, None, "")).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{used_first} still works"
        );
        let logged = logs.text();
        let line = logged
            .lines()
            .find(|line| line.contains(key) && line.contains(second))
            .unwrap_or_else(|| panic!("no log line for {key}: {logged}"));
        assert!(line.contains(first), "{line}");
        assert!(line.contains("namespace"), "{line}");
    }
}

/// A store that names every new session with an ID of its own choosing.
struct ChoosesIds(MemoryStore, &'static str);

impl SessionStore for ChoosesIds {
    async fn load(
        &self,
        id: &SessionId,
        keys: session_runtime::store::LoadKeys<'_>,
    ) -> Result<Option<Record>, session_runtime::StoreError> {
        self.0.load(id, keys).await
    }
    async fn create(&self, _id: &SessionId, patch: &Patch) -> session_runtime::store::WriteResult {
        let chosen = SessionId::from_store(self.1);
        self.0.create(&chosen, patch).await?;
        Ok(Some(chosen))
    }
    async fn save(&self, id: &SessionId, patch: &Patch) -> session_runtime::store::WriteResult {
        self.0.save(id, patch).await
    }
    async fn regenerate(
        &self,
        old: &SessionId,
        new: &SessionId,
        patch: &Patch,
    ) -> session_runtime::store::WriteResult {
        self.0.regenerate(old, new, patch).await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), session_runtime::StoreError> {
        self.0.delete(id).await
    }
    async fn touch(
        &self,
        id: &SessionId,
        expires_at: SystemTime,
    ) -> session_runtime::store::WriteResult {
        self.0.touch(id, expires_at).await
    }
}

/// An ID a store chooses goes into `Set-Cookie` only if it is all cookie octets: one with `;`
/// would add attributes of the store's choosing (a `Domain`, a `Path`).
#[tokio::test]
async fn an_id_a_store_chooses_is_refused_unless_it_fits_in_a_cookie() {
    for bad in [
        "x; Domain=evil.example; Path=/",
        "has space",
        "quote\"d",
        "comma,",
        "back\\slash",
        "tab\t",
    ] {
        let app = routes().layer(SessionLayer::new(
            ChoosesIds(MemoryStore::new(), bad),
            Key::generate(),
        ));
        let response = send(&app, request("POST", "/add", None, "a")).await;
        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{bad:?}"
        );
        assert!(set_cookies(&response).is_empty(), "{bad:?}");
    }
    let app = routes().layer(SessionLayer::new(
        ChoosesIds(MemoryStore::new(), "store-chosen_ID.1~!"),
        Key::generate(),
    ));
    let response = send(&app, request("POST", "/add", None, "a")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookies(&response)[0].starts_with("id=store-chosen_ID.1~!."));
}

/// A JSON API answers the layer's errors in JSON: the extractor's rejection when the store
/// fails on load, and a failed save, through the app's function; the cause is still logged.
#[tokio::test]
async fn the_app_shapes_the_layers_error_responses() {
    let (_guard, logs) = session_suite::logs::capture();
    let (store, key, cookie) = started_in_a_new_store().await;
    let json = app_with(
        SessionLayer::new(store.clone(), key).with_error_response(|err| {
            (
                err.status(),
                [(header::CONTENT_TYPE, "application/json")],
                format!(
                    r#"{{"error":"session","status":{}}}"#,
                    err.status().as_u16()
                ),
            )
                .into_response()
        }),
    );
    store.set_failing(true);
    for (method, uri, cookie) in [
        ("GET", "/show", Some(cookie.as_str())),
        ("POST", "/add", None),
    ] {
        let response = send(&json, request(method, uri, cookie, "a")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/json",
            "{method} {uri}"
        );
        assert_eq!(text(response).await, r#"{"error":"session","status":503}"#);
    }
    store.set_failing(false);
    // The default stays plain text, and the log line gives each reason once.
    let plain = app(&store, &Key::generate());
    store.set_failing(true);
    let response = send(&plain, request("POST", "/add", None, "a")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(text(response)
        .await
        .starts_with("Session storage is unavailable"));
    assert!(
        logs.text().contains("the session store failed"),
        "{}",
        logs.text()
    );
}
