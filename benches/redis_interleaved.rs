//! This framework's two Redis layouts against tower-sessions' Redis store, interleaved: each
//! round times a batch of requests on every subject in turn, and the figure per subject is
//! the median of its rounds. Slow phases of a shared host then hit every subject alike,
//! which criterion's one-subject-after-another runs cannot promise.
//!
//! ```text
//! cargo run --release -p session-bench --example redis_interleaved -- [rounds] [batch]
//! ```
//!
//! (default 15 rounds of 200 requests.) It starts a private `redis-server` on a free port
//! and runs the `read` and `read_update` cases at 1, 21 and 200 fields, with the sessions
//! and routes of `cargo bench --bench sessions`.

mod measure;
#[allow(dead_code)] // shared with the other benches
mod routes;
mod schemas;

use measure::median;
use std::time::{Duration, Instant};

use axum::Router;
use routes::{filled, ours_router, request, send, ts_router};
use session_runtime::{RedisLayout, RedisStore};
use session_suite::redis_harness::RedisServer;
use tokio::runtime::Runtime;
use tower_sessions_redis_store::{fred::prelude::*, RedisStore as TsRedisStore};

const SUBJECTS: [&str; 3] = [
    "session-runtime/redis",
    "session-runtime/redis-log",
    "tower-sessions/redis",
];

async fn apps(url: &str, fields: usize) -> Vec<Router> {
    let ours = |layout| async move {
        let store = RedisStore::connect(url).await.unwrap().with_layout(layout);
        ours_router(fields, store)
    };
    let pool = Pool::new(Config::from_url(url).unwrap(), None, None, None, 2).unwrap();
    let _connection = pool.connect();
    pool.wait_for_connect().await.unwrap();
    vec![
        ours(RedisLayout::Hash).await,
        ours(RedisLayout::Log).await,
        ts_router(fields, TsRedisStore::new(pool)),
    ]
}

fn batch(rt: &Runtime, app: &Router, method: &str, uri: &str, cookie: &str, n: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(rt.block_on(send(app, request(method, uri, Some(cookie)))));
    }
    start.elapsed() / n
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
    let n: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    let url = server.url();
    println!("{rounds} interleaved rounds of {n} requests; median of the rounds' means");
    println!(
        "| case | fields | {} | log / tower-sessions |",
        SUBJECTS.join(" | ")
    );
    println!("|---|---:|{}---:|", "---:|".repeat(SUBJECTS.len()));
    for (case, method, uri) in [("read", "GET", "/read"), ("read_update", "POST", "/update")] {
        for fields in [1, 21, 200] {
            let apps = rt.block_on(apps(&url, fields));
            let cookies: Vec<String> = apps.iter().map(|app| rt.block_on(filled(app))).collect();
            let mut times = vec![Vec::new(); apps.len()];
            // One warm-up batch each, then the rounds.
            for (app, cookie) in apps.iter().zip(&cookies) {
                batch(&rt, app, method, uri, cookie, n);
            }
            for _ in 0..rounds {
                for ((app, cookie), times) in apps.iter().zip(&cookies).zip(&mut times) {
                    times.push(batch(&rt, app, method, uri, cookie, n));
                }
            }
            let medians: Vec<Duration> = times.into_iter().map(median).collect();
            let cells: Vec<String> = medians
                .iter()
                .map(|d| format!("{:.1} µs", d.as_secs_f64() * 1e6))
                .collect();
            println!(
                "| {case} | {fields} | {} | {:.2} |",
                cells.join(" | "),
                medians[1].as_secs_f64() / medians[2].as_secs_f64()
            );
        }
    }
}
