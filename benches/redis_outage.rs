//! How long a request waits for its `503` while Redis is down, and how soon the same app
//! serves again once Redis is back, for `RedisStore` on a private server the example starts,
//! kills (a crash: connections refused) and freezes (SIGSTOP: connections open, nothing
//! answered, as a hung server or a network dropping packets).
//!
//! ```text
//! cargo run --release -p session-bench --example redis_outage -- [rounds] [concurrent]
//! ```
//!
//! (default 20 rounds of 50 concurrent reads, 10 ms apart.) For each outage: the latency of
//! every request sent after the first one found Redis down (probes included), as p50, p99
//! and max; then the time from the server answering again to the app's first `200`,
//! polling every millisecond. Run once with the default probe and once with fail-fast off
//! (`with_outage_probe(Duration::ZERO, ..)`, every call tries to reach Redis).

#[allow(dead_code)] // shared with the other benches
mod routes;
mod schemas;

use std::time::{Duration, Instant};

use axum::{http::StatusCode, Router};
use routes::{filled, ours_router, request};
use session_runtime::RedisStore;
use session_suite::redis_harness::RedisServer;
use tower::ServiceExt;

async fn status(app: &Router, cookie: &str) -> StatusCode {
    app.clone()
        .oneshot(request("GET", "/read", Some(cookie)))
        .await
        .unwrap()
        .status()
}

/// Latencies of `rounds` rounds of `concurrent` reads, all expected to be `503`s.
async fn during(app: &Router, cookie: &str, rounds: usize, concurrent: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(rounds * concurrent);
    for _ in 0..rounds {
        let tasks: Vec<_> = (0..concurrent)
            .map(|_| {
                let (app, cookie) = (app.clone(), cookie.to_owned());
                tokio::spawn(async move {
                    let start = Instant::now();
                    let status = status(&app, &cookie).await;
                    (status, start.elapsed())
                })
            })
            .collect();
        for task in tasks {
            let (status, latency) = task.await.unwrap();
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            latencies.push(latency);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    latencies.sort();
    latencies
}

/// Polls every millisecond until the app answers `200`: how long it took.
async fn recovery(app: &Router, cookie: &str) -> Duration {
    let start = Instant::now();
    while status(app, cookie).await != StatusCode::OK {
        assert!(start.elapsed() < Duration::from_secs(30), "no recovery");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn row(outage: &str, probe: &str, latencies: &[Duration], recovered: Duration) {
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "| {outage} | {probe} | {} | {} | {} | {} |",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(*latencies.last().unwrap()),
        ms(recovered)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let concurrent: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    println!("{rounds} rounds of {concurrent} concurrent reads of a 21-field session, 10 ms apart");
    println!("| outage | probe | 503 p50 | 503 p99 | 503 max | back to 200 after Redis answers |");
    println!("|---|---|---:|---:|---:|---:|");
    for (probe, every) in [
        ("default (25 ms, 500 ms)", None),
        ("off", Some(Duration::ZERO)),
    ] {
        let mut server = RedisServer::start();
        let mut store = RedisStore::connect(server.url()).await.unwrap();
        if let Some(every) = every {
            store = store.with_outage_probe(every, Duration::from_millis(500));
        }
        let app = ours_router(21, store);
        let cookie = filled(&app).await;

        server.kill();
        // The request that finds Redis down.
        assert_eq!(status(&app, &cookie).await, StatusCode::SERVICE_UNAVAILABLE);
        let latencies = during(&app, &cookie, rounds, concurrent).await;
        server.restart();
        let recovered = recovery(&app, &cookie).await;
        row("killed (refused)", probe, &latencies, recovered);

        server.pause();
        // The request that finds Redis down waits for its response timeout (2 s).
        assert_eq!(status(&app, &cookie).await, StatusCode::SERVICE_UNAVAILABLE);
        // Fail-fast off, every read would wait 2 s: fewer rounds.
        let frozen_rounds = if every.is_some() { 2 } else { rounds };
        let latencies = during(&app, &cookie, frozen_rounds, concurrent).await;
        server.resume();
        let recovered = recovery(&app, &cookie).await;
        row("frozen (SIGSTOP)", probe, &latencies, recovered);
    }
}
