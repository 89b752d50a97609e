//! What only some of the servers can show: PostgreSQL's row versions (regenerate and
//! touch rewrite no field row), and prefixes that name a schema or a database.

use std::time::Duration;

use axum::http::StatusCode;
use session_runtime::{Key, PostgresStore};
use session_suite::{
    http::{cookie_pair, request, send, text},
    sql_harness::skip_without,
};

use super::cart_app;

/// Regenerate and touch change the session's row only: no field row gets a new version
/// (PostgreSQL's `xmin` of each field row stays as it was).
#[tokio::test]
async fn on_postgres_regenerate_and_touch_rewrite_no_field_row() {
    use session_runtime::{store::Patch, SessionId, SessionStore};
    use std::time::SystemTime;
    let Some((store, made)) = session_suite::sql_harness::postgres("xmin").await else {
        return;
    };
    let in_an_hour = || SystemTime::now() + Duration::from_secs(3600);
    let id = SessionId::generate();
    let fields: Vec<_> = (0..5)
        .map(|n| (format!("f{n}").into(), format!("{n}").into_bytes().into()))
        .collect();
    let create = Patch {
        set: fields,
        remove: vec![],
        expires_at: in_an_hour(),
    };
    store.create(&id, &create).await.unwrap();
    let sql = format!(
        "SELECT name, xmin::text FROM {}session_fields ORDER BY name",
        made.prefix()
    );
    let versions = || {
        sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql.as_str()))
            .fetch_all(store.pool())
    };
    let before = versions().await.unwrap();
    assert_eq!(before.len(), 5);
    let new = SessionId::generate();
    store
        .regenerate(&id, &new, &Patch::expiry_only(in_an_hour()))
        .await
        .unwrap();
    store.touch(&new, in_an_hour()).await.unwrap();
    assert_eq!(versions().await.unwrap(), before, "no field row rewritten");
    assert!(store
        .load(&new, session_runtime::store::LoadKeys::All)
        .await
        .unwrap()
        .is_some_and(|r| r.fields.len() == 5));
    drop(made);
}

/// A prefix naming a schema (PostgreSQL) or a database (MySQL): `migrate()` creates it, and
/// the store works in it. The test drops what it made.
#[tokio::test]
async fn a_schema_qualified_prefix_makes_and_uses_its_schema() {
    use session_runtime::{store::LoadKeys, MySqlStore, SessionId, SessionStore};
    use session_suite::sql_harness::{mysql_url, postgres_url, unique_name};
    let schema = unique_name().trim_end_matches('_').to_owned();
    let prefix = format!("{schema}.web_");
    let app_key = Key::generate();
    if let Ok(store) = PostgresStore::connect(postgres_url()).await {
        let store = store.with_table_prefix(&prefix);
        store.migrate().await.unwrap();
        store.verify().await.unwrap();
        let app = cart_app(store.clone(), &app_key);
        let response = send(&app, request("POST", "/add/tea", None, "")).await;
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = cookie_pair(&response);
        let shown = text(send(&app, request("GET", "/show", Some(&cookie), "")).await).await;
        assert!(shown.contains("\"tea\""), "{shown}");
        let in_schema: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
        )
        .bind(&schema)
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(in_schema, 2, "both tables in the schema");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA \"{schema}\" CASCADE"
        )))
        .execute(store.pool())
        .await
        .unwrap();
    } else {
        skip_without("schema prefix", "PostgreSQL", "it does not answer");
    }
    if let Ok(store) = MySqlStore::connect(mysql_url()).await {
        let store = store.with_table_prefix(&prefix);
        store.migrate().await.unwrap();
        store.verify().await.unwrap();
        let id = SessionId::generate();
        let patch = session_runtime::store::Patch {
            set: vec![("a".into(), b"1".to_vec().into())],
            remove: vec![],
            expires_at: std::time::SystemTime::now() + Duration::from_secs(60),
        };
        store.create(&id, &patch).await.unwrap();
        assert!(store.load(&id, LoadKeys::All).await.unwrap().is_some());
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE `{schema}`")))
            .execute(store.pool())
            .await
            .unwrap();
    } else {
        skip_without("schema prefix", "MariaDB", "it does not answer");
    }
}
