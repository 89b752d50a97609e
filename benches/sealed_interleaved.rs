//! What encryption at rest costs: this framework with `Encryption::Off` and `Encryption::On`
//! side by side, on the memory store and on Redis (both layouts), interleaved: each round
//! times a batch of requests on every subject in turn, and the figure per subject is the
//! median of its rounds. Before the timings it prints the bytes sent to Redis per
//! read+update request, with and without encryption.
//!
//! ```text
//! cargo run --release -p session-bench --example sealed_interleaved -- [rounds] [batch]
//! ```
//!
//! (default 15 rounds of 200 requests.) It starts a private `redis-server` on a free port
//! and runs the `new_session`, `read` and `read_update` cases at 1, 21 and 200 fields, with
//! the sessions and routes of `cargo bench --bench sessions`.

mod measure;
#[allow(dead_code)] // shared with the other benches
mod routes;
mod schemas;

use measure::median;
use std::time::{Duration, Instant};

use axum::Router;
use routes::{filled, ours_router_with, request, send};
use session_runtime::{Encryption, Key, MemoryStore, RedisLayout, RedisStore, SessionLayer};
use session_suite::redis_harness::{net_input_bytes, RedisServer};
use tokio::runtime::Runtime;

const SUBJECTS: [&str; 6] = [
    "memory",
    "memory sealed",
    "redis",
    "redis sealed",
    "redis-log",
    "redis-log sealed",
];

async fn apps(url: &str, fields: usize) -> Vec<Router> {
    let layer = |store: Option<RedisStore>, encryption| {
        let layer = match store {
            Some(store) => SessionLayer::new(store, Key::generate()),
            None => SessionLayer::new(MemoryStore::new(), Key::generate()),
        };
        ours_router_with(fields, layer.with_encryption(encryption))
    };
    let redis =
        |layout| async move { Some(RedisStore::connect(url).await.unwrap().with_layout(layout)) };
    vec![
        layer(None, Encryption::Off),
        layer(None, Encryption::On),
        layer(redis(RedisLayout::Hash).await, Encryption::Off),
        layer(redis(RedisLayout::Hash).await, Encryption::On),
        layer(redis(RedisLayout::Log).await, Encryption::Off),
        layer(redis(RedisLayout::Log).await, Encryption::On),
    ]
}

fn batch(
    rt: &Runtime,
    app: &Router,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    n: u32,
) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(rt.block_on(send(app, request(method, uri, cookie))));
    }
    start.elapsed() / n
}

/// Bytes Redis reads per read+update request, over `n` requests.
fn bytes_per_update(rt: &Runtime, url: &str, app: &Router, cookie: &str, n: u64) -> f64 {
    let info_cost = {
        let a = net_input_bytes(url);
        net_input_bytes(url) - a
    };
    let before = net_input_bytes(url);
    for _ in 0..n {
        rt.block_on(send(app, request("POST", "/update", Some(cookie))));
    }
    let bytes = net_input_bytes(url) - before - info_cost;
    bytes as f64 / n as f64
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

    println!("Bytes sent to Redis per read+update request (mean of 2000)");
    println!("| fields | redis | redis sealed | redis-log | redis-log sealed |");
    println!("|---:|---:|---:|---:|---:|");
    for fields in [1, 21, 200] {
        let apps = rt.block_on(apps(&url, fields));
        let cells: Vec<String> = apps[2..]
            .iter()
            .map(|app| {
                let cookie = rt.block_on(filled(app));
                format!("{:.0}", bytes_per_update(&rt, &url, app, &cookie, 2000))
            })
            .collect();
        println!("| {fields} | {} |", cells.join(" | "));
    }
    println!();

    println!("{rounds} interleaved rounds of {n} requests; median of the rounds' means");
    println!("| case | fields | {} |", SUBJECTS.join(" | "));
    println!("|---|---:|{}", "---:|".repeat(SUBJECTS.len()));
    let cases = [
        ("new_session", "POST", "/new", false),
        ("read", "GET", "/read", true),
        ("read_update", "POST", "/update", true),
    ];
    for (case, method, uri, with_cookie) in cases {
        for fields in [1, 21, 200] {
            let apps = rt.block_on(apps(&url, fields));
            let cookies: Vec<Option<String>> = apps
                .iter()
                .map(|app| with_cookie.then(|| rt.block_on(filled(app))))
                .collect();
            let mut times = vec![Vec::new(); apps.len()];
            for (app, cookie) in apps.iter().zip(&cookies) {
                batch(&rt, app, method, uri, cookie.as_deref(), n);
            }
            for _ in 0..rounds {
                for ((app, cookie), times) in apps.iter().zip(&cookies).zip(&mut times) {
                    times.push(batch(&rt, app, method, uri, cookie.as_deref(), n));
                }
            }
            let cells: Vec<String> = times
                .into_iter()
                .map(median)
                .map(|d| format!("{:.1} µs", d.as_secs_f64() * 1e6))
                .collect();
            println!("| {case} | {fields} | {} |", cells.join(" | "));
        }
    }
}
