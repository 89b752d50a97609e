//! This framework's SQL stores against tower-sessions-sqlx-store 0.15, on the same servers,
//! in the same run.
//!
//! ```text
//! cargo run --release -p session-bench --example sql_interleaved -- [rounds] [batch] [seconds]
//! ```
//!
//! (default 9 rounds of 100 requests, 5 s of load.) For PostgreSQL (`SESSION_TEST_POSTGRES_URL`,
//! default `postgres://root@127.0.0.1:5432/test`), MariaDB/MySQL (`SESSION_TEST_MYSQL_URL`,
//! default `mysql://root@127.0.0.1:3306/test`) and SQLite (a file in the temp dir), at 1, 21
//! and 200 fields, it prints:
//!
//! 1. bytes the app sends the server and round trips, per read and per update, counted by a
//!    TCP proxy between the pool and the server (a round trip: the app sends, then the
//!    server answers; sqlx's pings count, wherever they happen). Not for SQLite, which is in
//!    process.
//! 2. time per read and per update, one request at a time, interleaved: each round times a
//!    batch on every subject in turn; the figure is the median of the rounds.
//! 3. throughput and latency of updates with 32 concurrent clients (each its own session)
//!    at 21 fields, for `seconds` each.
//!
//! `SQL_BENCH_ONLY=postgresql|mariadb|sqlite` runs one backend, `SQL_BENCH_PHASES=traffic,
//! latency,load` some of the phases, `SQL_BENCH_SUBJECT=ours|tower` one subject of the load,
//! `SQL_BENCH_LOAD=read` a load of reads instead of updates.
//!
//! tower-sessions' stores run with sqlx's default pool settings, as its docs build them;
//! ours with `connect()`'s. Each subject has tables of its own, dropped at the end.

mod measure;
#[allow(dead_code)] // shared with the other benches
mod routes;
mod schemas;

use measure::median;
use std::time::{Duration, Instant};

use axum::Router;
use routes::{filled, ours_router, request, send, ts_router};
use session_runtime::{MySqlStore, PostgresStore, SqliteStore};
use session_suite::sql_harness::TripCounter;
use tokio::runtime::Runtime;
use tower_sessions_sqlx_store as ts;

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Postgres,
    MySql,
    Sqlite,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::MySql => "MariaDB",
            Self::Sqlite => "SQLite",
        }
    }
}

/// Names of what a run made, to drop at the end.
struct Made {
    ours: String,
    theirs: String,
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("b{}_{tag}_{nanos}_", std::process::id())
}

/// Our app and tower-sessions', both on `url` (SQLite: a file path).
/// The subjects, in the order `apps` builds them.
fn names(backend: Backend) -> Vec<&'static str> {
    match backend {
        Backend::MySql => vec!["ours", "tower-sessions", "ours, prepared statements"],
        _ => vec!["ours", "tower-sessions"],
    }
}

async fn apps(backend: Backend, url: &str, fields: usize, made: &mut Vec<Made>) -> Vec<Router> {
    let ours_prefix = unique("ours");
    let theirs_table = unique("ts").trim_end_matches('_').to_owned();
    made.push(Made {
        ours: ours_prefix.clone(),
        theirs: theirs_table.clone(),
    });
    match backend {
        Backend::Postgres => {
            let store = PostgresStore::connect(url)
                .await
                .unwrap()
                .with_table_prefix(&ours_prefix);
            store.migrate().await.unwrap();
            let pool = ts::sqlx::PgPool::connect(url).await.unwrap();
            let theirs = ts::PostgresStore::new(pool)
                .with_schema_name("public")
                .unwrap()
                .with_table_name(&theirs_table)
                .unwrap();
            theirs.migrate().await.unwrap();
            vec![ours_router(fields, store), ts_router(fields, theirs)]
        }
        Backend::MySql => {
            let store = MySqlStore::connect(url)
                .await
                .unwrap()
                .with_table_prefix(&ours_prefix);
            store.migrate().await.unwrap();
            let pool = ts::sqlx::MySqlPool::connect(url).await.unwrap();
            let theirs = ts::MySqlStore::new(pool)
                .with_schema_name("test")
                .unwrap()
                .with_table_name(&theirs_table)
                .unwrap();
            theirs.migrate().await.unwrap();
            let prepared = MySqlStore::connect(url)
                .await
                .unwrap()
                .with_table_prefix(&ours_prefix)
                .with_one_trip_saves(false);
            vec![
                ours_router(fields, store),
                ts_router(fields, theirs),
                ours_router(fields, prepared),
            ]
        }
        Backend::Sqlite => {
            let dir = std::env::temp_dir();
            let ours_file = dir.join(format!("{ours_prefix}.db"));
            let theirs_file = dir.join(format!("{theirs_table}.db"));
            made.last_mut().unwrap().ours = ours_file.display().to_string();
            made.last_mut().unwrap().theirs = theirs_file.display().to_string();
            let store = SqliteStore::connect(format!("sqlite://{}", ours_file.display()))
                .await
                .unwrap();
            store.migrate().await.unwrap();
            let options = ts::sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&theirs_file)
                .create_if_missing(true);
            let pool = ts::sqlx::SqlitePool::connect_with(options).await.unwrap();
            let theirs = ts::SqliteStore::new(pool);
            theirs.migrate().await.unwrap();
            vec![ours_router(fields, store), ts_router(fields, theirs)]
        }
    }
}

async fn drop_made(backend: Backend, url: &str, made: Vec<Made>) {
    match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            for m in made {
                for sql in [
                    format!("DROP TABLE IF EXISTS {}session_fields", m.ours),
                    format!("DROP TABLE IF EXISTS {}session_records", m.ours),
                    format!("DROP TABLE IF EXISTS public.{}", m.theirs),
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&pool)
                        .await
                        .unwrap();
                }
            }
        }
        Backend::MySql => {
            let pool = sqlx::MySqlPool::connect(url).await.unwrap();
            for m in made {
                for sql in [
                    format!("DROP TABLE IF EXISTS {}session_fields", m.ours),
                    format!("DROP TABLE IF EXISTS {}session_records", m.ours),
                    format!("DROP TABLE IF EXISTS test.{}", m.theirs),
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&pool)
                        .await
                        .unwrap();
                }
            }
        }
        Backend::Sqlite => {
            for m in made {
                for file in [m.ours, m.theirs] {
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{file}{suffix}"));
                    }
                }
            }
        }
    }
}

const CASES: [(&str, &str, &str); 2] = [("read", "GET", "/read"), ("update", "POST", "/update")];

/// Bytes and round trips per request, through the proxy.
fn traffic(rt: &Runtime, proxy_rt: &Runtime, backend: Backend, url: &str, made: &mut Vec<Made>) {
    println!(
        "\n### {}: bytes sent and round trips per request\n",
        backend.name()
    );
    let header: Vec<String> = names(backend)
        .iter()
        .map(|n| format!("{n}: bytes | {n}: round trips"))
        .collect();
    println!("| case | fields | {} |", header.join(" | "));
    println!("|---|---:|{}", "---:|---:|".repeat(header.len()));
    let counter = proxy_rt.block_on(TripCounter::start(url));
    let proxied = counter.url(url);
    for (case, method, uri) in CASES {
        for fields in [1, 21, 200] {
            let apps = rt.block_on(apps(backend, &proxied, fields, made));
            let mut cells = Vec::new();
            for app in &apps {
                let cookie = rt.block_on(filled(app));
                for _ in 0..20 {
                    rt.block_on(send(app, request(method, uri, Some(&cookie))));
                }
                // Let the pool's background pings of the warm-up land before counting.
                std::thread::sleep(Duration::from_millis(100));
                let (bytes, trips) = (counter.bytes(), counter.trips());
                let n = 200;
                for _ in 0..n {
                    rt.block_on(send(app, request(method, uri, Some(&cookie))));
                }
                std::thread::sleep(Duration::from_millis(100));
                cells.push(format!(
                    "{:.0} | {:.1}",
                    (counter.bytes() - bytes) as f64 / f64::from(n),
                    (counter.trips() - trips) as f64 / f64::from(n)
                ));
            }
            println!("| {case} | {fields} | {} |", cells.join(" | "));
        }
    }
    // The same under load: 32 clients at once on each subject's pool, so that calls wait
    // for connections (where a pool that pings connections it gets back shows it).
    let apps = rt.block_on(apps(backend, &proxied, 21, made));
    let mut cells = Vec::new();
    for app in &apps {
        rt.block_on(run_clients(app, "POST", "/update", 1));
        std::thread::sleep(Duration::from_millis(100));
        let (bytes, trips) = (counter.bytes(), counter.trips());
        let (_, latencies) = rt.block_on(run_clients(app, "POST", "/update", 2));
        std::thread::sleep(Duration::from_millis(100));
        let n = latencies.len().max(1) as f64;
        cells.push(format!(
            "{:.0} | {:.1}",
            (counter.bytes() - bytes) as f64 / n,
            (counter.trips() - trips) as f64 / n
        ));
    }
    println!(
        "| update, 32 clients at once | 21 | {} |",
        cells.join(" | ")
    );
}

/// Time per request, one at a time, interleaved.
fn latency(rt: &Runtime, backend: Backend, url: &str, rounds: usize, n: u32, made: &mut Vec<Made>) {
    println!(
        "\n### {}: time per request ({rounds} interleaved rounds of {n})\n",
        backend.name()
    );
    println!(
        "| case | fields | {} | ours / theirs |",
        names(backend).join(" | ")
    );
    println!("|---|---:|{}---:|", "---:|".repeat(names(backend).len()));
    for (case, method, uri) in CASES {
        for fields in [1, 21, 200] {
            let apps = rt.block_on(apps(backend, url, fields, made));
            let cookies: Vec<String> = apps.iter().map(|app| rt.block_on(filled(app))).collect();
            let mut times = vec![Vec::new(); apps.len()];
            for round in 0..=rounds {
                for ((app, cookie), times) in apps.iter().zip(&cookies).zip(&mut times) {
                    let start = Instant::now();
                    for _ in 0..n {
                        rt.block_on(send(app, request(method, uri, Some(cookie))));
                    }
                    if round > 0 {
                        times.push(start.elapsed() / n);
                    }
                }
            }
            let m: Vec<Duration> = times.into_iter().map(median).collect();
            let cells: Vec<String> = m
                .iter()
                .map(|d| format!("{:.0} µs", d.as_secs_f64() * 1e6))
                .collect();
            println!(
                "| {case} | {fields} | {} | {:.2} |",
                cells.join(" | "),
                m[0].as_secs_f64() / m[1].as_secs_f64()
            );
        }
    }
}

/// Updates with 32 concurrent clients, each on a session of its own, at 21 fields: the
/// subjects take turns, `seconds` each, for `SQL_BENCH_LOAD_ROUNDS` rounds (default 3), so
/// that the machine's drift falls on all of them alike; the figures are over all rounds.
fn load(backend: Backend, url: &str, seconds: u64, made: &mut Vec<Made>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rounds: usize = std::env::var("SQL_BENCH_LOAD_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    // `SQL_BENCH_LOAD=read` loads with reads instead of updates.
    let reads = std::env::var("SQL_BENCH_LOAD").is_ok_and(|v| v == "read");
    let (doing, unit) = if reads {
        ("reading", "reads/s")
    } else {
        ("updating", "updates/s")
    };
    println!(
        "\n### {}: 32 concurrent clients {doing}, 21 fields, {rounds} interleaved rounds of {seconds} s each\n",
        backend.name()
    );
    println!("| subject | {unit} | p50 | p99 | errors |");
    println!("|---|---:|---:|---:|---:|");
    let apps = rt.block_on(apps(backend, url, 21, made));
    let only = std::env::var("SQL_BENCH_SUBJECT").unwrap_or_default();
    let (method, path) = if reads {
        ("GET", "/read")
    } else {
        ("POST", "/update")
    };
    let subjects: Vec<_> = names(backend)
        .into_iter()
        .zip(apps)
        .filter(|(name, _)| only.is_empty() || name.starts_with(&only))
        .collect();
    let mut totals: Vec<(u64, Vec<Duration>)> = vec![(0, Vec::new()); subjects.len()];
    for _ in 0..rounds {
        for ((_, app), (errors, latencies)) in subjects.iter().zip(&mut totals) {
            let (e, l) = rt.block_on(run_clients(app, method, path, seconds));
            *errors += e;
            latencies.extend(l);
        }
    }
    for ((name, _), (errors, mut latencies)) in subjects.iter().zip(totals) {
        latencies.sort();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "| {name} | {:.0} | {:.1} ms | {:.1} ms | {errors} |",
            latencies.len() as f64 / (seconds as f64 * rounds as f64),
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3
        );
    }
}

/// 32 clients, each on a session of its own, sending `method path` for `seconds`: the
/// errors and every request's latency.
async fn run_clients(app: &Router, method: &str, path: &str, seconds: u64) -> (u64, Vec<Duration>) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let clients: Vec<_> = (0..32)
        .map(|_| {
            let app = app.clone();
            let (method, path) = (method.to_owned(), path.to_owned());
            tokio::spawn(async move {
                let cookie = filled(&app).await;
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                while Instant::now() < deadline {
                    let start = Instant::now();
                    let answer = send(&app, request(&method, &path, Some(&cookie))).await;
                    latencies.push(start.elapsed());
                    // `send` checks the status; an update must also re-send the cookie (a
                    // read needs not).
                    if answer.is_none() && method == "POST" {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for client in clients {
        let (latencies, e) = client.await.unwrap();
        all.extend(latencies);
        errors += e;
    }
    (errors, all)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(9);
    let n: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let only = std::env::var("SQL_BENCH_ONLY").unwrap_or_default();
    let pg = std::env::var("SESSION_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned());
    let my = std::env::var("SESSION_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The proxy forwards on a thread of its own, also between the timed requests.
    let proxy_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for (backend, url) in [
        (Backend::Postgres, pg.as_str()),
        (Backend::MySql, my.as_str()),
        (Backend::Sqlite, ""),
    ] {
        if !only.is_empty() && !backend.name().eq_ignore_ascii_case(&only) {
            continue;
        }
        let mut made = Vec::new();
        let phases = std::env::var("SQL_BENCH_PHASES").unwrap_or_default();
        let phase = |name: &str| phases.is_empty() || phases.contains(name);
        if backend != Backend::Sqlite && phase("traffic") {
            traffic(&rt, &proxy_rt, backend, url, &mut made);
        }
        if phase("latency") {
            latency(&rt, backend, url, rounds, n, &mut made);
        }
        if phase("load") {
            load(backend, url, seconds, &mut made);
        }
        rt.block_on(drop_made(backend, url, made));
    }
}
