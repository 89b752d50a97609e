//! Regenerate, destroy and the session ID.

use super::*;

#[tokio::test]
async fn regenerate_moves_the_data_to_a_new_id_and_kills_the_old_one() {
    let store = store();
    let app = app(&store, &Key::generate());
    let cookie = started(&app).await;
    store.take_calls();
    let response = send(&app, request("POST", "/login", Some(&cookie), "")).await;
    let new_cookie = cookie_pair(&response);
    assert_ne!(id_of(&new_cookie), id_of(&cookie));
    let calls = store.take_calls();
    let [Call::Regenerate(patch)] = writes(&calls)[..] else {
        panic!("expected one regenerate, got {calls:?}");
    };
    assert_eq!(
        keys_set(patch),
        ["user_id"],
        "the move does not rewrite other fields"
    );

    let response = send(&app, request("GET", "/show", Some(&new_cookie), "")).await;
    assert_eq!(text(response).await, r#"["apple"]|"#);
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|", "the old ID is dead");
    assert!(is_gone(&store, &id_of(&cookie)).await);
}

#[tokio::test]
async fn destroy_deletes_the_record_and_removes_the_cookie() {
    let store = store();
    let layer = SessionLayer::new(store.clone(), Key::generate())
        .with_cookie_path("/app")
        .unwrap()
        .with_cookie_domain("example.com")
        .unwrap();
    let app = app_with(layer);
    let response = send(&app, request("POST", "/add", None, "apple")).await;
    let cookie = cookie_pair(&response);
    let response = send(&app, request("POST", "/logout", Some(&cookie), "")).await;
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 1);
    let removal = &cookies[0];
    assert!(removal.starts_with("id=;"), "{removal}");
    assert_eq!(attribute(removal, "Max-Age"), Some("0"));
    assert_eq!(attribute(removal, "Path"), Some("/app"));
    assert_eq!(attribute(removal, "Domain"), Some("example.com"));
    assert!(store.inner().is_empty());
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|");
}

#[tokio::test]
async fn the_session_id_is_readable_and_matches_the_cookie() {
    let store = store();
    let app = app(&store, &Key::generate());
    let response = send(&app, request("GET", "/whoami", None, "")).await;
    assert_eq!(text(response).await, "None");
    let cookie = started(&app).await;
    let response = send(&app, request("GET", "/whoami", Some(&cookie), "")).await;
    assert_eq!(
        text(response).await,
        format!("Some({:?})", id_of(&cookie).as_str())
    );
}

#[tokio::test]
async fn login_regenerates_even_a_new_session() {
    let store = store();
    let app = app(&store, &Key::generate());
    let response = send(&app, request("POST", "/login", None, "")).await;
    let cookie = cookie_pair(&response);
    let response = send(&app, request("GET", "/whoami", Some(&cookie), "")).await;
    assert!(text(response).await.starts_with("Some("));
}

/// A destroy ends the changes made before it on every extractor of the request; changes
/// made after it, on any extractor, start a new session.
#[tokio::test]
async fn a_destroy_drops_earlier_changes_of_every_extractor_and_keeps_later_ones() {
    let store = store();
    let app = Router::new()
        .route(
            "/set-then-logout",
            post(
                |mut cart: TypedSession<Cart>, mut prefs: TypedSession<Prefs>| async move {
                    prefs.set_lang("fr".into());
                    cart.destroy();
                    // Still shows what it holds; only later changes are saved.
                    prefs.lang().clone()
                },
            ),
        )
        .route(
            "/logout-then-set",
            post(
                |mut cart: TypedSession<Cart>, mut prefs: TypedSession<Prefs>| async move {
                    prefs.set_lang("fr".into());
                    cart.destroy();
                    prefs.set_lang("de".into());
                },
            ),
        )
        .route(
            "/lang",
            get(|prefs: TypedSession<Prefs>| async move { prefs.lang().clone() }),
        )
        .route("/add", post(add))
        .route("/show", get(show))
        .layer(SessionLayer::new(store.clone(), Key::generate()));

    let cookie = started(&app).await;
    let response = send(&app, request("POST", "/set-then-logout", Some(&cookie), "")).await;
    let cookies = set_cookies(&response);
    assert_eq!(text(response).await, "fr");
    assert_eq!(cookies.len(), 1);
    assert_eq!(attribute(&cookies[0], "Max-Age"), Some("0"), "{cookies:?}");
    assert!(store.inner().is_empty(), "nothing outlives the logout");

    let cookie = started(&app).await;
    let response = send(&app, request("POST", "/logout-then-set", Some(&cookie), "")).await;
    let fresh = cookie_pair(&response);
    assert_ne!(id_of(&fresh), id_of(&cookie));
    let response = send(&app, request("GET", "/lang", Some(&fresh), "")).await;
    assert_eq!(text(response).await, "de", "the change after the destroy");
    let response = send(&app, request("GET", "/show", Some(&fresh), "")).await;
    assert_eq!(text(response).await, "[]|", "nothing of the old session");
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|", "the old session is gone");
    assert_eq!(store.inner().len(), 1);
}
