//! Decoding at load: migrations, decode policies and unreadable stored data.

use super::*;

/// A session the layer issued a cookie for, with its record emptied out of the store so
/// the test can write the record it needs under the same ID.
async fn issued_session(store: &Store, key: &Key) -> (SessionId, String) {
    let cookie = started(&app(store, key)).await;
    let id = id_of(&cookie);
    store.inner().delete(&id).await.unwrap();
    (id, cookie)
}

#[tokio::test]
async fn migrations_run_at_load_and_the_next_save_persists_them() {
    let store = store();
    let key = Key::generate();
    let app = Router::new()
        .route("/account", get(account))
        .layer(SessionLayer::new(store.clone(), key.clone()));
    // A record written by version 1 of the schema (plus another schema's field), behind a
    // cookie the layer issued.
    let (id, signed) = issued_session(&store, &key).await;
    let now = SystemTime::now();
    let patch = session_runtime::store::Patch {
        set: vec![
            ("__v.Account".into(), b"1".to_vec().into()),
            ("name".into(), br#""Ada""#.to_vec().into()),
            ("prefs.lang".into(), br#""fr""#.to_vec().into()),
        ],
        remove: vec![],
        expires_at: now + Duration::from_secs(60),
    };
    store.inner().create(&id, &patch).await.unwrap();
    store.take_calls();

    let response = send(&app, request("GET", "/account", Some(&signed), "")).await;
    assert_eq!(text(response).await, "Ada");
    let calls = store.take_calls();
    // The memory store returns whole records, so the migration needs no second load.
    assert_eq!(
        calls.iter().filter(|c| matches!(c, Call::Load(_))).count(),
        1,
        "{calls:?}"
    );
    let patch = the_one_save(&calls);
    assert_eq!(keys_set(patch), ["__v.Account", "display_name"]);
    assert_eq!(patch.remove, ["name"]);
    let record = stored(&store, &id).await.unwrap();
    assert_eq!(&record.fields["display_name"][..], br#""Ada""#);
    assert_eq!(&record.fields["prefs.lang"][..], br#""fr""#);
    assert!(!record.fields.contains_key("name"));

    // Migrated once: the next read writes nothing.
    let response = send(&app, request("GET", "/account", Some(&signed), "")).await;
    assert_eq!(text(response).await, "Ada");
    assert!(writes(&store.take_calls()).is_empty());
}

#[tokio::test]
async fn strict_decoding_rejects_garbage_with_a_500_and_lenient_survives_it() {
    let store = store();
    let key = Key::generate();
    let (id, cookie) = issued_session(&store, &key).await;
    let patch = session_runtime::store::Patch {
        set: vec![
            ("items".into(), b"{not json".to_vec().into()),
            ("th".into(), br#""dark""#.to_vec().into()),
        ],
        remove: vec![],
        expires_at: SystemTime::now() + Duration::from_secs(60),
    };
    store.inner().create(&id, &patch).await.unwrap();

    let lenient = app(&store, &key);
    let response = send(&lenient, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "[]|dark");

    let strict =
        app_with(SessionLayer::new(store.clone(), key).with_decode_policy(DecodePolicy::Strict));
    let response = send(&strict, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // Garbage in the store is never overwritten by a read.
    let record = stored(&store, &id).await.unwrap();
    assert_eq!(&record.fields["items"][..], b"{not json");
}

#[tokio::test]
async fn a_rejected_record_is_logged_with_the_decoders_reason() {
    let (_guard, logs) = session_suite::logs::capture();
    let store = store();
    let key = Key::generate();
    let (id, cookie) = issued_session(&store, &key).await;
    let patch = session_runtime::store::Patch {
        set: vec![("items".into(), b"{not json".to_vec().into())],
        remove: vec![],
        expires_at: SystemTime::now() + Duration::from_secs(60),
    };
    store.inner().create(&id, &patch).await.unwrap();
    let strict =
        app_with(SessionLayer::new(store.clone(), key).with_decode_policy(DecodePolicy::Strict));
    let response = send(&strict, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let logged = logs.text();
    let line = logged
        .lines()
        .find(|line| line.contains("ERROR"))
        .unwrap_or_else(|| panic!("an error is logged: {logged}"));
    assert!(line.contains("`Cart.items`"), "which field: {line}");
    // serde_json's own message: the reason, not only the field.
    assert!(line.contains("expected a sequence"), "why: {line}");
}

#[tokio::test]
async fn unreadable_stored_data_starts_a_new_session_or_under_strict_fails() {
    let (_guard, logs) = session_suite::logs::capture();
    let store = store();
    let key = Key::generate();
    let lenient = app(&store, &key);
    let cookie = started(&lenient).await;
    store.set_unreadable(true);

    // Like a record that fails to decode: a warning and a new session, under a new ID.
    let response = send(&lenient, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "[]|");
    let logged = logs.text();
    assert!(
        logged.contains("WARN")
            && logged.contains("unreadable")
            && logged.contains("record damaged by the test"),
        "{logged}"
    );
    let response = send(&lenient, request("POST", "/add", Some(&cookie), "pear")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_ne!(id_of(&cookie_pair(&response)), id_of(&cookie));

    // Under the strict policy: a 500, not a 503, since trying again will not help.
    let strict =
        app_with(SessionLayer::new(store.clone(), key).with_decode_policy(DecodePolicy::Strict));
    let response = send(&strict, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);

    // Nothing was written over it.
    store.set_unreadable(false);
    let response = send(&lenient, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, r#"["apple"]|"#);
}

/// A schema with an enum field, whose decode error quotes the stored variant name.
#[derive(SessionData)]
#[session(namespace = "forge")]
struct Theme {
    mode: Mode,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
enum Mode {
    #[default]
    Light,
    Dark,
}

/// Stored data ends up in log lines (serde's "unknown variant" quotes the stored string):
/// its newlines are escaped, so it cannot forge a line of its own.
#[tokio::test]
async fn stored_data_in_a_decode_warning_cannot_forge_a_log_line() {
    let (_guard, logs) = session_suite::logs::capture();
    let store = store();
    let key = Key::generate();
    let (id, cookie) = issued_session(&store, &key).await;
    let forged = "Dark\n2026-12-01T00:00:00.000000Z ERROR forged: admin logged in";
    let patch = session_runtime::store::Patch {
        set: vec![(
            "forge.mode".into(),
            serde_json::to_vec(forged).unwrap().into(),
        )],
        remove: vec![],
        expires_at: SystemTime::now() + Duration::from_secs(60),
    };
    store.inner().create(&id, &patch).await.unwrap();
    let app = Router::new()
        .route(
            "/mode",
            get(|theme: TypedSession<Theme>| async move { format!("{:?}", theme.mode()) }),
        )
        .layer(SessionLayer::new(store.clone(), key));
    let response = send(&app, request("GET", "/mode", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "Light", "the default stands in");
    let logged = logs.text();
    assert!(logged.contains("unknown variant"), "{logged}");
    assert!(logged.contains("Dark\\n2026"), "escaped: {logged}");
    assert!(
        !logged
            .lines()
            .any(|line| line.contains("ERROR forged") && !line.contains("unknown variant")),
        "a forged line: {logged}"
    );
}
