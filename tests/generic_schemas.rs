//! Generic schemas: a schema generic over a type (an auth crate's user ID) stores the same
//! keys whatever the parameter, works like any other, and two instances of it in one app
//! share a version key, so the second is refused.

use std::collections::BTreeMap;

use axum::{
    routing::{get, post},
    Router,
};
use serde::{de::DeserializeOwned, Serialize};
use session_runtime::{
    index::IndexKey, Key, MemoryStore, SessionData, SessionError, SessionLayer, TypedSession,
};
use session_suite::http::Browser;

/// What a login crate keeps in the session, for any user ID type.
#[derive(SessionData)]
#[session(namespace = "login")]
struct Login<Id>
where
    Id: Clone + Serialize + DeserializeOwned + IndexKey + Send + Sync,
{
    #[session(index)]
    user: Option<Id>,
    #[session(entries)]
    seen: BTreeMap<String, Id>,
    #[session(skip)]
    scratch: Vec<Id>,
}

async fn login_u64(mut login: TypedSession<Login<u64>>) -> &'static str {
    login.set_user(Some(7));
    login.seen_mut().insert("home", 7).expect("fits");
    login.scratch_mut().push(1);
    login.regenerate();
    "in"
}

async fn whoami(login: TypedSession<Login<u64>>) -> String {
    format!("{:?} {:?}", login.user(), login.seen())
}

async fn listed(login: TypedSession<Login<u64>>) -> Result<String, SessionError> {
    Ok(login
        .sessions(Login::<u64>::by_user())
        .await?
        .len()
        .to_string())
}

async fn as_string(login: Result<TypedSession<Login<String>>, SessionError>) -> String {
    match login {
        Ok(_) => "used".into(),
        Err(err) => err.to_string(),
    }
}

#[tokio::test]
async fn a_generic_schema_works_like_any_other() {
    assert_eq!(
        Login::<u64>::SCHEMA.load_keys(),
        Login::<String>::SCHEMA.load_keys(),
        "the store keys do not depend on the parameter"
    );
    let app = Router::new()
        .route("/login", post(login_u64))
        .route("/whoami", get(whoami))
        .route("/listed", get(listed))
        .route("/as-string", get(as_string))
        .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
    let mut browser = Browser::default();
    browser.ok(&app, "POST", "/login").await;
    assert_eq!(
        browser.ok(&app, "GET", "/whoami").await,
        r#"Some(7) {"home": 7}"#
    );
    assert_eq!(browser.ok(&app, "GET", "/listed").await, "1");
    // Another instance of the schema has the same keys: reading them as `String`s would
    // misread the session, so it is refused.
    let refused = browser.ok(&app, "GET", "/as-string").await;
    assert!(refused.contains("login"), "{refused}");
    assert!(!refused.contains("used"), "{refused}");
}

/// A generic schema needs no bounds of its own: the derive asks of the parameter what its
/// fields need, where the schema is used.
#[derive(SessionData)]
#[session(namespace = "pref")]
struct Pref<T> {
    value: T,
    others: Vec<T>,
}

#[tokio::test]
async fn a_generic_schema_without_bounds() {
    async fn set(mut pref: TypedSession<Pref<u32>>) -> String {
        pref.set_value(3);
        pref.others_mut().push(4);
        let value = *pref.value();
        format!("{value} {:?}", pref.data().others)
    }
    let app = Router::new()
        .route("/set", post(set))
        .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
    let mut browser = Browser::default();
    assert_eq!(browser.ok(&app, "POST", "/set").await, "3 [4]");
}
