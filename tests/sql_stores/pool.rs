//! A store busier than its pool (more concurrent calls than connections): a finished call
//! hands its connection straight to a waiting one, so no call pays sqlx's ping on the way
//! back to the pool, and another user of the same pool is still served.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use session_runtime::{
    store::{LoadKeys, Patch},
    MySqlStore, PostgresStore, SessionId, SessionStore,
};
use session_suite::sql_harness::{
    mysql_url, postgres_url, skip_without, unique_name, Made, TripCounter,
};

/// The pool's size: far fewer connections than concurrent calls.
const CONNECTIONS: u32 = 3;
/// Concurrent callers.
const CALLERS: usize = 24;

/// `CALLERS` tasks loading sessions until `stop` is set: how many loads they made.
fn load_until<S: SessionStore + Clone>(
    store: &S,
    ids: &Arc<Vec<SessionId>>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..CALLERS)
        .map(|n| {
            let (store, ids, stop) = (store.clone(), Arc::clone(ids), Arc::clone(stop));
            tokio::spawn(async move {
                let mut loads = 0;
                while !stop.load(Ordering::Relaxed) {
                    let record = store.load(&ids[n % ids.len()], LoadKeys::All).await;
                    assert!(
                        record.expect("a load under load succeeds").is_some(),
                        "the session is there"
                    );
                    loads += 1;
                }
                loads
            })
        })
        .collect()
}

/// Sessions to load, one per caller.
async fn sessions<S: SessionStore>(store: &S) -> Arc<Vec<SessionId>> {
    let mut ids = Vec::new();
    for n in 0..CALLERS {
        let id = SessionId::generate();
        let patch = Patch {
            set: vec![("n".into(), n.to_string().into_bytes().into())],
            remove: vec![],
            expires_at: SystemTime::now() + Duration::from_secs(3600),
        };
        store.create(&id, &patch).await.expect("create");
        ids.push(id);
    }
    Arc::new(ids)
}

/// Under `CALLERS` concurrent loads on `CONNECTIONS` connections, from a pool that opens
/// its connections as calls need them, the round trips the proxy counts are the loads
/// themselves, plus a ping for each connection handed back through the pool (at most one
/// every 10 ms): a ping per call would double them. And the pool opens its connections once.
async fn no_ping_per_call<S: SessionStore + Clone>(store: S, trips: &TripCounter) {
    let ids = sessions(&store).await;
    // Warm up: every connection open and its statements prepared.
    let stop = Arc::new(AtomicBool::new(false));
    let warm = load_until(&store, &ids, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for task in warm {
        task.await.unwrap();
    }
    let before = trips.trips();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load_until(&store, &ids, &stop);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut loads = 0;
    for task in tasks {
        loads += task.await.unwrap();
    }
    let made = trips.trips() - before;
    // Regression: a call that raced a hand-off against the pool while the pool was opening
    // a connection for it dropped that connection half open whenever the hand-off won, and
    // the pool opened another for the next call: hundreds of connections a second.
    assert!(
        trips.connections() <= u64::from(CONNECTIONS),
        "{} connections opened for a pool of {CONNECTIONS}",
        trips.connections()
    );
    assert!(loads > 200, "the load ran: {loads} loads");
    let per_load = made as f64 / loads as f64;
    assert!(
        per_load < 1.1,
        "{made} round trips for {loads} loads ({per_load:.2} per load): the pool's ping is \
         paid on most calls"
    );
}

/// While the store's callers keep every connection busy, another user of the pool still
/// gets a connection within the pool's acquire timeout, again and again.
async fn a_shared_pool_still_serves_its_other_users<S: SessionStore + Clone, DB: sqlx::Database>(
    store: S,
    pool: sqlx::Pool<DB>,
) {
    let ids = sessions(&store).await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load_until(&store, &ids, &stop);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        // Starved, this would fail with `PoolTimedOut` after the pool's 2 s.
        let conn = pool
            .acquire()
            .await
            .expect("the app's own query gets a connection while the store is saturated");
        drop(conn);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut loads = 0;
    for task in tasks {
        loads += task.await.unwrap();
    }
    assert!(loads > 0, "the store was busy meanwhile");
}

/// Calls cancelled while they wait for a connection (a request timeout, a client gone) lose
/// none: afterwards every caller still gets one, within the pool's acquire timeout.
async fn cancelled_waits_lose_no_connection<S: SessionStore + Clone>(store: S) {
    let ids = sessions(&store).await;
    let stop = Arc::new(AtomicBool::new(false));
    let cancelling: Vec<_> = (0..CALLERS)
        .map(|n| {
            let (store, ids, stop) = (store.clone(), Arc::clone(&ids), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut cancelled = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let load = store.load(&ids[n % ids.len()], LoadKeys::All);
                    if tokio::time::timeout(Duration::from_micros(300), load)
                        .await
                        .is_err()
                    {
                        cancelled += 1;
                    }
                }
                cancelled
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    let mut cancelled = 0;
    for task in cancelling {
        cancelled += task.await.unwrap();
    }
    assert!(cancelled > 0, "some calls were cancelled");
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load_until(&store, &ids, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        // Each load unwraps: a lost connection would leave the pool short until a call
        // timed out (`PoolTimedOut`).
        assert!(task.await.unwrap() > 0, "every caller got a connection");
    }
}

/// One caller loading a session again and again for 1.5 s, on a pool whose connections
/// live 300 ms: the store does not keep a connection past that lifetime, so the pool opens
/// new ones as the old ones retire (kept for good, the first would serve every load).
async fn kept_connections_retire<S: SessionStore + Clone>(store: S, trips: &TripCounter) {
    let ids = sessions(&store).await;
    let opened = trips.connections();
    let until = std::time::Instant::now() + Duration::from_millis(1500);
    let mut loads = 0;
    while std::time::Instant::now() < until {
        let record = store.load(&ids[0], LoadKeys::All).await;
        assert!(
            record.expect("a load succeeds").is_some(),
            "the session is there"
        );
        loads += 1;
    }
    assert!(loads > 100, "the caller ran: {loads} loads");
    let new = trips.connections() - opened;
    assert!(
        new >= 2,
        "{new} connections opened in 1.5 s of loads on connections that live 300 ms"
    );
}

macro_rules! on_server {
    ($module:ident, $store:ident, $options:ty, $url:expr, $server:literal) => {
        mod $module {
            use super::*;

            /// A store on tables of its own, through a pool of `CONNECTIONS` to `url` whose
            /// connections live `lifetime` (`None`: for good).
            async fn store(
                test: &str,
                url: &str,
                lifetime: Option<Duration>,
            ) -> Option<($store, sqlx::Pool<<$options as Options>::Db>, Made)> {
                let pool = match <$options>::new()
                    .max_connections(CONNECTIONS)
                    .test_before_acquire(false)
                    .acquire_timeout(Duration::from_secs(2))
                    .max_lifetime(lifetime)
                    .connect(url)
                    .await
                {
                    Ok(pool) => pool,
                    Err(err) => {
                        skip_without(test, $server, &format!("{url} does not answer ({err})"));
                        return None;
                    }
                };
                let prefix = unique_name();
                let made = Made::tables(&$url, &prefix);
                let store = $store::new(pool.clone()).with_table_prefix(&prefix);
                store.migrate().await.expect("create the test's tables");
                Some((store, pool, made))
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_store_busier_than_its_pool_pays_no_ping_per_call() {
                let trips = TripCounter::start(&$url).await;
                let Some((store, _pool, made)) =
                    store("no ping per call", &trips.url(&$url), None).await
                else {
                    return;
                };
                no_ping_per_call(store, &trips).await;
                drop(made);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn kept_connections_retire_at_the_pools_max_lifetime() {
                let trips = TripCounter::start(&$url).await;
                let lifetime = Some(Duration::from_millis(300));
                let Some((store, _pool, made)) =
                    store("lifetime", &trips.url(&$url), lifetime).await
                else {
                    return;
                };
                kept_connections_retire(store, &trips).await;
                drop(made);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn calls_cancelled_while_waiting_lose_no_connection() {
                let Some((store, _pool, made)) = store("cancelled waits", &$url, None).await else {
                    return;
                };
                cancelled_waits_lose_no_connection(store).await;
                drop(made);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_saturated_store_leaves_connections_to_the_pools_other_users() {
                let Some((store, pool, made)) = store("shared pool", &$url, None).await else {
                    return;
                };
                a_shared_pool_still_serves_its_other_users(store, pool).await;
                drop(made);
            }
        }
    };
}

/// The database of a pool options type.
trait Options {
    type Db: sqlx::Database;
}
impl<DB: sqlx::Database> Options for sqlx::pool::PoolOptions<DB> {
    type Db = DB;
}

on_server!(
    on_postgres,
    PostgresStore,
    sqlx::postgres::PgPoolOptions,
    postgres_url(),
    "PostgreSQL"
);
on_server!(
    on_mysql,
    MySqlStore,
    sqlx::mysql::MySqlPoolOptions,
    mysql_url(),
    "MariaDB or MySQL"
);
