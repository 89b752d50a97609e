//! Side-by-side benchmarks: a bare axum router, this framework (memory and Redis stores) and
//! tower-sessions (memory and Redis stores), on the same workload; on Redis, this framework
//! in both of its layouts (`redis`: a hash per session, `redis-log`: a log string per
//! session). Each framework's layer is added with `Router::layer`; on the memory stores, both
//! are also measured wrapped around the whole router (`-wrapped`), which spares axum's
//! per-route re-boxing.
//!
//! ```text
//! cargo bench --bench sessions
//! ```
//!
//! Every case sends one request through the router in process (tower `oneshot`, no sockets).
//! Sessions hold a counter plus 0, 20 or 199 strings of 100 bytes (1, 21 and 200 fields).
//! Cases: a handler that takes no session, a new session (first write), reading the counter,
//! reading and updating the counter, and regenerating the session ID. The Redis cases run
//! against a private `redis-server` the bench starts on a free port (skipped, with a message,
//! when `redis-server` is not installed). Before the timings, the bench prints the bytes and
//! commands each framework sends to Redis per request, from `INFO stats` deltas.
//!
//! `BENCH_QUICK=1` shortens every measurement (for a smoke run).

mod routes;
mod schemas;

use std::{sync::Arc, time::Duration};

use axum::Router;
use criterion::{BenchmarkId, Criterion};
use routes::{
    bare_router, filled, noop_layer_router, ours_router, ours_wrapped, request, send, ts_router,
    ts_wrapped, App,
};
use session_runtime::{MemoryStore, RedisLayout, RedisStore};
use session_suite::redis_harness::{redis_binaries_present, RedisServer};
use tokio::runtime::Runtime;
use tower_sessions::MemoryStore as TsMemoryStore;
use tower_sessions_redis_store::{fred::prelude::*, RedisStore as TsRedisStore};

// ---------------------------------------------------------------- stores

struct Backends {
    redis: Option<RedisServer>,
    redis_url: Option<String>,
}

impl Backends {
    fn start() -> Self {
        if !redis_binaries_present() {
            eprintln!("redis-server is not installed: skipping the Redis benchmarks");
            return Self {
                redis: None,
                redis_url: None,
            };
        }
        let server = RedisServer::start();
        let url = server.url();
        Self {
            redis: Some(server),
            redis_url: Some(url),
        }
    }
}

async fn ts_redis(url: &str) -> TsRedisStore<Pool> {
    let pool = Pool::new(Config::from_url(url).unwrap(), None, None, None, 2).unwrap();
    let _connection = pool.connect();
    pool.wait_for_connect().await.unwrap();
    TsRedisStore::new(pool)
}

async fn ours_redis(url: &str, layout: RedisLayout) -> RedisStore {
    RedisStore::connect(url).await.unwrap().with_layout(layout)
}

/// A framework/store pair under test, and how its layer is installed: with
/// `Router::layer` (around each route), or wrapped around the whole router.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Subject {
    OursMemory,
    OursMemoryWrapped,
    OursRedis,
    OursRedisLog,
    TsMemory,
    TsMemoryWrapped,
    TsRedis,
}

impl Subject {
    const ALL: [Subject; 7] = [
        Self::OursMemory,
        Self::TsMemory,
        Self::OursMemoryWrapped,
        Self::TsMemoryWrapped,
        Self::OursRedis,
        Self::OursRedisLog,
        Self::TsRedis,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::OursMemory => "session-runtime/memory",
            Self::OursMemoryWrapped => "session-runtime/memory-wrapped",
            Self::OursRedis => "session-runtime/redis",
            Self::OursRedisLog => "session-runtime/redis-log",
            Self::TsMemory => "tower-sessions/memory",
            Self::TsMemoryWrapped => "tower-sessions/memory-wrapped",
            Self::TsRedis => "tower-sessions/redis",
        }
    }
}

/// A Redis subject's router (layer added with `Router::layer`).
async fn redis_router(subject: Subject, fields: usize, url: &str) -> Router {
    match subject {
        Subject::OursRedis => ours_router(fields, ours_redis(url, RedisLayout::Hash).await),
        Subject::OursRedisLog => ours_router(fields, ours_redis(url, RedisLayout::Log).await),
        Subject::TsRedis => ts_router(fields, ts_redis(url).await),
        _ => unreachable!("not a Redis subject"),
    }
}

// ---------------------------------------------------------------- wire measurement

fn net_input_bytes(url: &str) -> u64 {
    session_suite::redis_harness::net_input_bytes(url)
}

/// Counts the commands clients send (not those a Lua script runs) while `work` runs, by
/// watching `MONITOR`: each is one round trip unless pipelined.
fn client_commands<F: FnOnce()>(port: u16, work: F) -> usize {
    use std::io::{BufRead, BufReader};
    let mut monitor = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "monitor"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli monitor");
    let stdout = monitor.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // MONITOR answers OK before streaming.
    std::thread::sleep(Duration::from_millis(200));
    work();
    std::thread::sleep(Duration::from_millis(200));
    let _ = monitor.kill();
    let _ = monitor.wait();
    let _ = reader.join();
    rx.try_iter()
        .filter(|line| line.contains("[0 127.0.0.1:") && !line.contains("\"INFO\""))
        .count()
}

/// Bytes sent to Redis and client commands per read+update request, averaged over 2000
/// (enough for the log layout's compactions to show in its average at every size).
fn wire_cost(rt: &Runtime, subject: Subject, fields: usize, url: &str, port: u16) -> (f64, f64) {
    let app = rt.block_on(redis_router(subject, fields, url));
    let cookie = rt.block_on(filled(&app));
    for _ in 0..3 {
        rt.block_on(send(&app, request("POST", "/update", Some(&cookie))));
    }
    const N: usize = 2000;
    let run = || {
        for _ in 0..N {
            rt.block_on(send(&app, request("POST", "/update", Some(&cookie))));
        }
    };
    // The cost of asking INFO itself, to subtract.
    let info_cost = {
        let a = net_input_bytes(url);
        net_input_bytes(url) - a
    };
    let before = net_input_bytes(url);
    run();
    let bytes = net_input_bytes(url) - before - info_cost;
    let commands = client_commands(port, run);
    (bytes as f64 / N as f64, commands as f64 / N as f64)
}

fn print_wire_costs(rt: &Runtime, url: &str, port: u16) {
    println!("\nSent to Redis per read+update request (mean of 2000 requests):");
    println!("| framework | fields | bytes sent | client commands (round trips) |");
    println!("|---|---:|---:|---:|");
    for subject in [Subject::OursRedis, Subject::OursRedisLog, Subject::TsRedis] {
        for fields in [1, 21, 200] {
            let (bytes, commands) = wire_cost(rt, subject, fields, url, port);
            println!(
                "| {} | {fields} | {bytes:.0} | {commands:.1} |",
                subject.name()
            );
        }
    }
    println!();
}

// ---------------------------------------------------------------- timings

fn bench_case(c: &mut Criterion, rt: &Runtime, backends: &Backends, case: &str, fields: usize) {
    let mut group = c.benchmark_group(format!("{case}/{fields}-fields"));
    if case == "no_session" && fields == 1 {
        // Baselines. Without a cookie: the request of `new_session`. With a session cookie
        // (a real one, which these routers ignore): the request of every other case, so
        // the cookie header's own cost is not counted as the session layer's.
        let bare = bare_router();
        let cookie = rt.block_on(filled(&ours_router(1, MemoryStore::new())));
        group.bench_function("bare-axum", |b| {
            b.iter(|| rt.block_on(send(&bare, request("GET", "/plain", None))));
        });
        group.bench_function("bare-axum+cookie", |b| {
            b.iter(|| rt.block_on(send(&bare, request("GET", "/plain", Some(&cookie)))));
        });
        let noop = noop_layer_router();
        group.bench_function("noop-layer+cookie", |b| {
            b.iter(|| rt.block_on(send(&noop, request("GET", "/plain", Some(&cookie)))));
        });
    }
    for subject in Subject::ALL {
        let id = BenchmarkId::new(subject.name(), fields);
        let url = backends.redis_url.as_deref();
        match subject {
            Subject::OursMemory => {
                let app = ours_router(fields, MemoryStore::new());
                bench_app(&mut group, rt, id, case, app);
            }
            Subject::OursMemoryWrapped => {
                let app = ours_wrapped(fields, MemoryStore::new());
                bench_app(&mut group, rt, id, case, app);
            }
            Subject::TsMemory => {
                let app = ts_router(fields, TsMemoryStore::default());
                bench_app(&mut group, rt, id, case, app);
            }
            Subject::TsMemoryWrapped => {
                let app = ts_wrapped(fields, TsMemoryStore::default());
                bench_app(&mut group, rt, id, case, app);
            }
            Subject::OursRedis | Subject::OursRedisLog | Subject::TsRedis => {
                let Some(url) = url else { continue };
                let app = rt.block_on(redis_router(subject, fields, url));
                bench_app(&mut group, rt, id, case, app);
            }
        }
    }
    group.finish();
}

/// Times one case on one subject's app.
fn bench_app<A: App>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    id: BenchmarkId,
    case: &str,
    app: A,
) {
    match case {
        "no_session" => {
            let cookie = rt.block_on(filled(&app));
            group.bench_function(id, |b| {
                b.iter(|| rt.block_on(send(&app, request("GET", "/plain", Some(&cookie)))));
            });
        }
        "new_session" => {
            group.bench_function(id, |b| {
                b.iter(|| rt.block_on(send(&app, request("POST", "/new", None))));
            });
        }
        "read" => {
            let cookie = rt.block_on(filled(&app));
            group.bench_function(id, |b| {
                b.iter(|| rt.block_on(send(&app, request("GET", "/read", Some(&cookie)))));
            });
        }
        "read_update" => {
            let cookie = rt.block_on(filled(&app));
            group.bench_function(id, |b| {
                b.iter(|| rt.block_on(send(&app, request("POST", "/update", Some(&cookie)))));
            });
        }
        "regenerate" => {
            let cookie = Arc::new(std::sync::Mutex::new(rt.block_on(filled(&app))));
            group.bench_function(id, |b| {
                b.iter(|| {
                    let current = cookie.lock().unwrap().clone();
                    let next = rt
                        .block_on(send(&app, request("POST", "/regenerate", Some(&current))))
                        .expect("regenerate sets a new cookie");
                    *cookie.lock().unwrap() = next;
                });
            });
        }
        _ => unreachable!(),
    }
}

fn main() {
    STARTED.get_or_init(std::time::SystemTime::now);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let backends = Backends::start();
    if let (Some(url), Some(server)) = (&backends.redis_url, &backends.redis) {
        print_wire_costs(&rt, url, server.port());
    }
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(if quick { 100 } else { 1000 }))
        .measurement_time(Duration::from_millis(if quick { 300 } else { 3000 }))
        .sample_size(if quick { 10 } else { 50 })
        .configure_from_args();
    for case in [
        "no_session",
        "new_session",
        "read",
        "read_update",
        "regenerate",
    ] {
        let sizes: &[usize] = match case {
            "no_session" | "new_session" => &[1],
            _ => &[1, 21, 200],
        };
        for &fields in sizes {
            bench_case(&mut c, &rt, &backends, case, fields);
        }
    }
    c.final_summary();
    print_ratio_table();
}

// ---------------------------------------------------------------- summary

/// When this run started: estimates written before it are from an earlier run.
static STARTED: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();

/// Criterion's median estimate for one benchmark, in nanoseconds, if it ran in this run.
fn median_ns(group: &str, function: &str, parameter: Option<usize>) -> Option<f64> {
    let clean = |s: &str| s.replace('/', "_");
    // Criterion writes to `$CRITERION_HOME`, else `criterion/` in the target directory,
    // which holds this executable (`<target>/release/deps/sessions-*`).
    let mut path = match std::env::var_os("CRITERION_HOME") {
        Some(home) => std::path::PathBuf::from(home),
        None => std::env::current_exe()
            .ok()?
            .ancestors()
            .nth(3)?
            .join("criterion"),
    };
    path.push(clean(group));
    path.push(clean(function));
    if let Some(parameter) = parameter {
        path.push(parameter.to_string());
    }
    path.push("new/estimates.json");
    let written = std::fs::metadata(&path).ok()?.modified().ok()?;
    if STARTED.get().is_some_and(|started| written < *started) {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// Prints every case as a ratio to its baseline: `new_session` (no cookie) to the bare
/// handler, the cases that send a session cookie to the bare handler given the same cookie.
fn print_ratio_table() {
    let group = "no_session/1-fields";
    let (Some(bare), Some(bare_cookie)) = (
        median_ns(group, "bare-axum", None),
        median_ns(group, "bare-axum+cookie", None),
    ) else {
        return;
    };
    println!("\nMedians as ratios to the bare handler ({bare:.0} ns without a cookie, {bare_cookie:.0} ns with one):");
    if let Some(noop) = median_ns(group, "noop-layer+cookie", None) {
        println!(
            "pass-through layer: {:.2}x ({noop:.0} ns)",
            noop / bare_cookie
        );
    }
    let subjects = Subject::ALL.map(Subject::name);
    println!("| case | fields | {} |", subjects.join(" | "));
    println!("|---|---:|{}", "---:|".repeat(subjects.len()));
    for (case, sizes) in [
        ("no_session", &[1][..]),
        ("new_session", &[1]),
        ("read", &[1, 21, 200]),
        ("read_update", &[1, 21, 200]),
        ("regenerate", &[1, 21, 200]),
    ] {
        let base = if case == "new_session" {
            bare
        } else {
            bare_cookie
        };
        for &fields in sizes {
            let cells: Vec<String> = subjects
                .iter()
                .map(|subject| {
                    median_ns(&format!("{case}/{fields}-fields"), subject, Some(fields))
                        .map_or_else(
                            || "-".to_owned(),
                            |ns| format!("{:.2}x ({:.2} µs)", ns / base, ns / 1000.0),
                        )
                })
                .collect();
            println!("| {case} | {fields} | {} |", cells.join(" | "));
        }
    }
}
