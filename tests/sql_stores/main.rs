//! `PostgresStore`, `MySqlStore` and `SqliteStore` against real databases: the conformance
//! suite, 100 concurrent different-field writes through one app instance and two, bad rows,
//! missing tables, clean-up, an exhausted pool; `faults` restarts a private PostgreSQL
//! server under load, `specific` checks what only some servers can show.
//!
//! Every test runs on each of the three stores (a module per store below), on tables of its
//! own that it drops at the end.

mod faults;
mod pool;
mod specific;
mod wide;

use std::time::{Duration, Instant, SystemTime};

use axum::{
    extract::Path,
    http::StatusCode,
    routing::{get, post},
    Router,
};
use session_runtime::{
    conformance,
    store::{LoadKeys, Patch},
    Key, MySqlStore, PostgresStore, SessionData, SessionId, SessionLayer, SessionStore,
    SqliteStore, StoreError, TypedSession,
};
use session_suite::{
    http::{cookie_pair, request, send, text},
    report,
    sql_harness::{self, Made},
};

use wide::{fields_set, set_field, Wide};

/// What the tests need of a SQL store beyond the store contract.
trait SqlStore: SessionStore + Clone + Sized {
    /// The store on the tables `made` holds, through a pool of its own.
    async fn second(made: &Made) -> Self;
    /// The store on tables that do not exist.
    async fn without_tables(made: &Made) -> Self;
    /// Overwrites the stored bytes of every field row named `name`.
    async fn overwrite_field(&self, made: &Made, name: &str, value: &[u8]);
    /// How many field rows are named `name`.
    async fn rows_named(&self, made: &Made, name: &str) -> i64;
    /// A store on a pool of one connection that waits `timeout` for it, and that
    /// connection, checked out.
    async fn exhausted(made: &Made, timeout: Duration) -> (Self, Box<dyn Send>);
    async fn delete_expired(&self) -> Result<u64, StoreError>;
    fn spawn_cleanup(&self, every: Duration) -> session_runtime::store::CleanupTask;
    async fn migrate(&self) -> Result<(), StoreError>;
    async fn verify(&self) -> Result<(), StoreError>;
}

/// The `SqlStore` methods each store has under the same name, delegated.
macro_rules! same_named_methods {
    ($store:ty) => {
        async fn delete_expired(&self) -> Result<u64, StoreError> {
            <$store>::delete_expired(self).await
        }
        fn spawn_cleanup(&self, every: Duration) -> session_runtime::store::CleanupTask {
            <$store>::spawn_cleanup(self, every)
        }
        async fn migrate(&self) -> Result<(), StoreError> {
            <$store>::migrate(self).await
        }
        async fn verify(&self) -> Result<(), StoreError> {
            <$store>::verify(self).await
        }
    };
}

/// Runs each listed test (an `async fn(S, Made)`) on every SQL store, as
/// `<store>::<test>`.
macro_rules! on_every_sql_store {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    if let Some((store, made)) =
                        session_suite::sql_harness::postgres(stringify!($test)).await
                    {
                        super::$test(store, made).await;
                    }
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    if let Some((store, made)) =
                        session_suite::sql_harness::mysql(stringify!($test)).await
                    {
                        super::$test(store, made).await;
                    }
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    if let Some((store, made)) =
                        session_suite::sql_harness::sqlite(stringify!($test)).await
                    {
                        super::$test(store, made).await;
                    }
                }
            )*
        }
    };
}

on_every_sql_store!(
    passes_the_conformance_suite,
    hundred_concurrent_writes_to_different_fields_all_survive_through_one_and_two_instances,
    an_undecodable_field_resets_only_that_field,
    missing_tables_are_a_clear_error_from_verify_and_a_503_not_a_panic,
    migrate_is_idempotent_and_keeps_the_data,
    delete_expired_removes_only_expired_sessions_in_batches,
    ten_thousand_expired_sessions_of_one_user_leave_the_index_empty,
    the_cleanup_task_deletes_expired_sessions_until_stopped,
    an_exhausted_pool_answers_503_within_its_acquire_timeout,
    a_same_field_race_keeps_one_of_the_writes_whole,
    large_and_many_field_saves_go_through_whole,
);

#[derive(SessionData)]
struct Cart {
    user: Option<String>,
    items: Vec<String>,
}

fn cart_app<S: SessionStore + Clone>(store: S, key: &Key) -> Router {
    Router::new()
        .route(
            "/add/{item}",
            post(
                |Path(item): Path<String>, mut cart: TypedSession<Cart>| async move {
                    cart.items_mut().push(item);
                    cart.items().len().to_string()
                },
            ),
        )
        .route(
            "/login/{user}",
            post(
                |Path(user): Path<String>, mut cart: TypedSession<Cart>| async move {
                    cart.set_user(Some(user));
                },
            ),
        )
        .route(
            "/show",
            get(|cart: TypedSession<Cart>| async move {
                format!("{:?} {:?}", cart.user(), cart.items())
            }),
        )
        .layer(SessionLayer::new(store, key.clone()))
}

fn wide_app<S: SessionStore + Clone>(store: S, key: &Key) -> Router {
    Router::new()
        .route(
            "/set/{n}",
            post(
                |Path(n): Path<usize>, mut wide: TypedSession<Wide>| async move {
                    // Widen the window between load and save, as a slow handler would.
                    tokio::task::yield_now().await;
                    if set_field(&mut wide, n) {
                        StatusCode::OK
                    } else {
                        StatusCode::NOT_FOUND
                    }
                },
            ),
        )
        .route(
            "/count",
            get(|wide: TypedSession<Wide>| async move { fields_set(&wide).to_string() }),
        )
        .layer(SessionLayer::new(store, key.clone()))
}

fn patch(set: &[(&'static str, &'static str)], expires_at: SystemTime) -> Patch {
    Patch {
        set: set
            .iter()
            .map(|(k, v)| ((*k).into(), v.as_bytes().to_vec().into()))
            .collect(),
        remove: vec![],
        expires_at,
    }
}

fn in_an_hour() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

async fn passes_the_conformance_suite<S: SqlStore>(store: S, _made: Made) {
    conformance::run(store).await;
}

async fn hundred_concurrent_writes_to_different_fields_all_survive_through_one_and_two_instances<
    S: SqlStore,
>(
    store: S,
    made: Made,
) {
    let key = Key::generate();
    let one = wide_app(store, &key);
    let two = wide_app(S::second(&made).await, &key);
    for instances in [vec![one.clone()], vec![one.clone(), two.clone()]] {
        let response = send(&one, request("POST", "/set/0", None, "")).await;
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = cookie_pair(&response);
        let tasks: Vec<_> = (0..100)
            .map(|n| {
                let app = instances[n % instances.len()].clone();
                let cookie = cookie.clone();
                tokio::spawn(async move {
                    send(
                        &app,
                        request("POST", &format!("/set/{n}"), Some(&cookie), ""),
                    )
                    .await
                    .status()
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), StatusCode::OK, "every write answered");
        }
        let response = send(&two, request("GET", "/count", Some(&cookie), "")).await;
        assert_eq!(
            text(response).await,
            "100",
            "through {} instance(s), all 100 writes survive",
            instances.len()
        );
    }
}

async fn an_undecodable_field_resets_only_that_field<S: SqlStore>(store: S, made: Made) {
    let key = Key::generate();
    let app = cart_app(store.clone(), &key);
    let response = send(&app, request("POST", "/login/ada", None, "")).await;
    let cookie = cookie_pair(&response);
    send(&app, request("POST", "/add/tea", Some(&cookie), "")).await;
    store
        .overwrite_field(&made, "items", b"\xff not json")
        .await;
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        text(response).await,
        r#"Some("ada") []"#,
        "the bad field reads as its default, the other survives"
    );
    let response = send(&app, request("POST", "/add/jam", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "1", "and a write replaces it");
}

async fn missing_tables_are_a_clear_error_from_verify_and_a_503_not_a_panic<S: SqlStore>(
    store: S,
    made: Made,
) {
    store.verify().await.expect("the migrated tables verify");
    let missing = S::without_tables(&made).await;
    let err = missing.verify().await.expect_err("no tables");
    let message = report(&err);
    assert!(
        message.contains("missing") && message.contains("migrate()"),
        "{message}"
    );
    let app = cart_app(missing.clone(), &Key::generate());
    let response = send(&app, request("POST", "/add/tea", None, "")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let err = missing
        .load(&SessionId::generate(), LoadKeys::All)
        .await
        .expect_err("no tables");
    assert!(report(&err).contains("migrate()"), "{}", report(&err));
}

async fn migrate_is_idempotent_and_keeps_the_data<S: SqlStore>(store: S, _made: Made) {
    let id = SessionId::generate();
    store
        .create(&id, &patch(&[("a", "1")], in_an_hour()))
        .await
        .unwrap();
    store.migrate().await.expect("a second migrate");
    store.migrate().await.expect("a third migrate");
    store.verify().await.unwrap();
    let record = store.load(&id, LoadKeys::All).await.unwrap().expect("kept");
    assert_eq!(&record.fields["a"][..], b"1");
}

async fn delete_expired_removes_only_expired_sessions_in_batches<S: SqlStore>(
    store: S,
    _made: Made,
) {
    let past = SystemTime::now() - Duration::from_secs(1);
    let expired = 1_100; // more than one batch of 1000
    let writes: Vec<_> = (0..expired)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create(&SessionId::generate(), &patch(&[("a", "1")], past))
                    .await
                    .unwrap();
            })
        })
        .collect();
    for write in writes {
        write.await.unwrap();
    }
    let live = SessionId::generate();
    store
        .create(&live, &patch(&[("a", "1")], in_an_hour()))
        .await
        .unwrap();
    assert_eq!(store.delete_expired().await.unwrap(), expired);
    assert_eq!(store.delete_expired().await.unwrap(), 0, "nothing left");
    assert!(store.load(&live, LoadKeys::All).await.unwrap().is_some());
}

/// The session index does not pile up: 10 000 sessions of one user that expire are never
/// listed, and the clean-up takes their index rows with them.
async fn ten_thousand_expired_sessions_of_one_user_leave_the_index_empty<S: SqlStore>(
    store: S,
    made: Made,
) {
    const INDEX: &str = "__ix.user_id";
    let sessions = 10_000;
    let per_task = sessions / 20;
    let writers: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let soon = SystemTime::now() + Duration::from_millis(1500);
                    store
                        .create(
                            &SessionId::generate(),
                            &patch(&[(INDEX, "42"), ("a", "1")], soon),
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(store.rows_named(&made, INDEX).await, sessions as i64);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let found = store.find_indexed(INDEX, b"42").await.unwrap();
    assert!(found.is_empty(), "{} expired sessions listed", found.len());
    assert_eq!(store.delete_expired().await.unwrap(), sessions as u64);
    assert_eq!(
        store.rows_named(&made, INDEX).await,
        0,
        "the clean-up leaves no index row behind"
    );
}

async fn the_cleanup_task_deletes_expired_sessions_until_stopped<S: SqlStore>(
    store: S,
    _made: Made,
) {
    let soon = SystemTime::now() + Duration::from_millis(200);
    for _ in 0..3 {
        store
            .create(&SessionId::generate(), &patch(&[("a", "1")], soon))
            .await
            .unwrap();
    }
    let task = store.spawn_cleanup(Duration::from_millis(50));
    assert!(task.is_running());
    // The sessions expire, the task deletes them: nothing is left to delete.
    let cleaned = sql_harness::wait_until(Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            SystemTime::now() > soon + Duration::from_millis(200)
                && matches!(store.delete_expired().await, Ok(0))
        }
    })
    .await;
    assert!(cleaned, "the task deleted the expired sessions");
    task.stop();
    // Once stopped, expired sessions stay until something deletes them.
    let past = SystemTime::now() - Duration::from_secs(1);
    store
        .create(&SessionId::generate(), &patch(&[("a", "1")], past))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.delete_expired().await.unwrap(), 1, "the task stopped");
}

async fn an_exhausted_pool_answers_503_within_its_acquire_timeout<S: SqlStore>(
    _store: S,
    made: Made,
) {
    let (store, held) = S::exhausted(&made, Duration::from_millis(300)).await;
    let app = cart_app(store, &Key::generate());
    let started = Instant::now();
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        send(&app, request("POST", "/add/tea", None, "")),
    )
    .await
    .expect("the request must not hang on an exhausted pool");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "it waited for the acquire timeout"
    );
    drop(held);
    let response = send(&app, request("POST", "/add/tea", None, "")).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "and works once one is free"
    );
}

async fn a_same_field_race_keeps_one_of_the_writes_whole<S: SqlStore>(store: S, _made: Made) {
    let id = SessionId::generate();
    store
        .create(&id, &patch(&[("v", "0")], in_an_hour()))
        .await
        .unwrap();
    let values: Vec<String> = (1..=20).map(|n| format!("\"{}\"", "x".repeat(n))).collect();
    let writes: Vec<_> = values
        .iter()
        .map(|value| {
            let (store, id) = (store.clone(), id.clone());
            let value = value.clone();
            tokio::spawn(async move {
                let patch = Patch {
                    set: vec![("v".into(), value.into_bytes().into())],
                    remove: vec![],
                    expires_at: in_an_hour(),
                };
                store.save(&id, &patch).await.unwrap();
            })
        })
        .collect();
    for write in writes {
        write.await.unwrap();
    }
    let record = store.load(&id, LoadKeys::All).await.unwrap().unwrap();
    let kept = String::from_utf8(record.fields["v"].to_vec()).unwrap();
    assert!(
        values.contains(&kept),
        "last writer wins: one whole value, {kept}"
    );
}

/// Saves past the sizes where a store writes differently (MySQL's one-trip save, chunked
/// statements): a 100 KiB value, and 1 500 fields in one patch.
async fn large_and_many_field_saves_go_through_whole<S: SqlStore>(store: S, _made: Made) {
    let id = SessionId::generate();
    store
        .create(&id, &patch(&[("a", "1")], in_an_hour()))
        .await
        .unwrap();
    let large = format!("\"{}\"", "x".repeat(100 * 1024));
    // Bytes SQL text would trip on, in a value and a name, go through as they are.
    let awkward: &[u8] = b"'\\\0\"; DROP TABLE x; --\xff";
    let small = Patch {
        set: vec![("it's \\ \"odd\"".into(), awkward.to_vec().into())],
        remove: vec![],
        expires_at: in_an_hour(),
    };
    store.save(&id, &small).await.unwrap();
    let record = store.load(&id, LoadKeys::All).await.unwrap().unwrap();
    assert_eq!(&record.fields["it's \\ \"odd\""][..], awkward);
    let big = Patch {
        set: vec![("big".into(), large.clone().into_bytes().into())],
        remove: vec!["a".into()],
        expires_at: in_an_hour(),
    };
    store.save(&id, &big).await.unwrap();
    let many = Patch {
        set: (0..1_500)
            .map(|n| (format!("f{n}").into(), format!("{n}").into_bytes().into()))
            .collect(),
        remove: vec![],
        expires_at: in_an_hour(),
    };
    store.save(&id, &many).await.unwrap();
    let record = store.load(&id, LoadKeys::All).await.unwrap().unwrap();
    assert_eq!(record.fields["big"].len(), large.len());
    assert!(!record.fields.contains_key("a"), "removed in the same save");
    assert_eq!(record.fields.len(), 2 + 1_500);
    assert_eq!(&record.fields["f1499"][..], b"1499");
    let gone = SessionId::generate();
    assert!(matches!(
        store.save(&gone, &big).await,
        Err(StoreError::NotFound)
    ));
}

impl SqlStore for PostgresStore {
    async fn second(made: &Made) -> Self {
        sql_harness::second_postgres(made).await
    }
    async fn without_tables(made: &Made) -> Self {
        Self::connect(sql_harness::postgres_url())
            .await
            .unwrap()
            .with_table_prefix(&format!("{}none_", made.prefix()))
    }
    async fn rows_named(&self, made: &Made, name: &str) -> i64 {
        let sql = format!(
            "SELECT COUNT(*) FROM {}session_fields WHERE name = $1",
            made.prefix()
        );
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }
    async fn overwrite_field(&self, made: &Made, name: &str, value: &[u8]) {
        let sql = format!(
            "UPDATE {}session_fields SET value = $1 WHERE name = $2",
            made.prefix()
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(name)
            .execute(self.pool())
            .await
            .unwrap();
        assert!(done.rows_affected() > 0);
    }
    async fn exhausted(made: &Made, timeout: Duration) -> (Self, Box<dyn Send>) {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .connect(&sql_harness::postgres_url())
            .await
            .unwrap();
        let held = pool.acquire().await.unwrap();
        let store = Self::new(pool)
            .with_table_prefix(made.prefix())
            .with_kept_connections(0);
        (store, Box::new(held))
    }
    same_named_methods!(PostgresStore);
}

impl SqlStore for MySqlStore {
    async fn second(made: &Made) -> Self {
        sql_harness::second_mysql(made).await
    }
    async fn without_tables(made: &Made) -> Self {
        Self::connect(sql_harness::mysql_url())
            .await
            .unwrap()
            .with_table_prefix(&format!("{}none_", made.prefix()))
    }
    async fn rows_named(&self, made: &Made, name: &str) -> i64 {
        let sql = format!(
            "SELECT COUNT(*) FROM {}session_fields WHERE name = ?",
            made.prefix()
        );
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(name.as_bytes())
            .fetch_one(self.pool())
            .await
            .unwrap()
    }
    async fn overwrite_field(&self, made: &Made, name: &str, value: &[u8]) {
        let sql = format!(
            "UPDATE {}session_fields SET value = ? WHERE name = ?",
            made.prefix()
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(name)
            .execute(self.pool())
            .await
            .unwrap();
        assert!(done.rows_affected() > 0);
    }
    async fn exhausted(made: &Made, timeout: Duration) -> (Self, Box<dyn Send>) {
        let pool = sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .connect(&sql_harness::mysql_url())
            .await
            .unwrap();
        let held = pool.acquire().await.unwrap();
        let store = Self::new(pool)
            .with_table_prefix(made.prefix())
            .with_kept_connections(0);
        (store, Box::new(held))
    }
    same_named_methods!(MySqlStore);
}

impl SqlStore for SqliteStore {
    async fn second(made: &Made) -> Self {
        sql_harness::second_sqlite(made).await
    }
    async fn without_tables(made: &Made) -> Self {
        sql_harness::second_sqlite(made)
            .await
            .with_table_prefix("none_")
    }
    async fn rows_named(&self, _made: &Made, name: &str) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM session_fields WHERE name = ?1")
            .bind(name)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }
    async fn overwrite_field(&self, _made: &Made, name: &str, value: &[u8]) {
        let done = sqlx::query("UPDATE session_fields SET value = ?1 WHERE name = ?2")
            .bind(value)
            .bind(name)
            .execute(self.pool())
            .await
            .unwrap();
        assert!(done.rows_affected() > 0);
    }
    async fn exhausted(made: &Made, timeout: Duration) -> (Self, Box<dyn Send>) {
        let url = sql_harness::second_sqlite(made)
            .await
            .pool()
            .connect_options();
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .connect_with((*url).clone())
            .await
            .unwrap();
        let held = pool.acquire().await.unwrap();
        (Self::new(pool).with_kept_connections(0), Box::new(held))
    }
    same_named_methods!(SqliteStore);
}

/// A store whose connections it keeps is dropped after the runtime that used it stopped
/// running (a `main` that `block_on`s its server and then returns): no panic, and the
/// connections close. Regression: dropping a kept connection needs a runtime.
#[test]
fn a_store_dropped_outside_a_runtime_closes_its_connections_without_panicking() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (sqlite, made) = runtime.block_on(async {
        let (store, made) = sql_harness::sqlite("drop outside a runtime").await.unwrap();
        let id = SessionId::generate();
        store
            .create(&id, &patch(&[("a", "1")], in_an_hour()))
            .await
            .unwrap();
        assert!(store.load(&id, LoadKeys::All).await.unwrap().is_some());
        (store, made)
    });
    let postgres = runtime.block_on(async {
        let (store, made) = sql_harness::postgres("drop outside a runtime").await?;
        store
            .load(&SessionId::generate(), LoadKeys::All)
            .await
            .unwrap();
        Some((store, made))
    });
    // Outside the runtime now.
    drop(sqlite);
    drop(made);
    if let Some((store, made)) = postgres {
        drop(store);
        drop(made);
    }
}
