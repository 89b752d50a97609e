//! Redis under load: N concurrent clients, each updating one field (a counter) of its own
//! session, against `RedisStore` in both layouts and tower-sessions' Redis store, in the
//! same run, rounds interleaved.
//!
//! ```text
//! cargo run --release -p session-bench --example redis_load -- [rounds] [seconds]
//! ```
//!
//! (default 3 rounds of 2 s per subject, client count and field count.) The example starts
//! a private `redis-server` pinned to CPU 1 and pins itself (app and clients, on one
//! current-thread runtime; `REDIS_LOAD_RUNTIME=multi`: the multi-thread scheduler with one
//! worker, as `#[tokio::main]` builds it) to CPU 0. Per run it reads from `INFO`: the server's CPU time
//! (`used_cpu_user` + `used_cpu_sys`), the bytes it received and sent, and the commands it
//! executed (`total_commands_processed`: those a script runs included), and the time spent
//! executing the commands clients sent (`INFO commandstats`, `usec`: the rest of Redis's CPU
//! is networking and its event loop); and its own CPU
//! time from `/proc/self/stat`. After each run every client reads its session back: the
//! counter must equal the updates that were answered `200` (no lost update). Client
//! commands per update (round trips: scripts' own commands left out) come from `MONITOR`
//! over 100 sequential updates. Each figure is the median of the rounds.
//! `REDIS_LOAD_ONLY=ours/log,21,32` runs one case (subject, fields, clients) only, e.g. to
//! watch the server meanwhile (`perf record -p <redis pid>`).

mod measure;
#[allow(dead_code)] // shared with the other benches
mod routes;
mod schemas;

use measure::{median, pin_process};
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{http::StatusCode, Router};
use http_body_util::BodyExt;
use routes::{filled, ours_router, request, ts_router};
use session_runtime::{RedisLayout, RedisStore};
use session_suite::redis_harness::RedisServer;
use tower::ServiceExt;
use tower_sessions_redis_store::{fred::prelude::*, RedisStore as TsRedisStore};

const SUBJECTS: [&str; 3] = ["ours/hash", "ours/log", "tower-sessions"];

async fn app(subject: &str, url: &str, fields: usize) -> Router {
    match subject {
        "ours/hash" | "ours/log" => {
            let layout = if subject == "ours/log" {
                RedisLayout::Log
            } else {
                RedisLayout::Hash
            };
            let store = RedisStore::connect(url).await.unwrap().with_layout(layout);
            ours_router(fields, store)
        }
        _ => {
            let pool =
                Pool::new(Config::from_url(url).unwrap(), None, None, None, ts_pool()).unwrap();
            let _connection = pool.connect();
            pool.wait_for_connect().await.unwrap();
            ts_router(fields, TsRedisStore::new(pool))
        }
    }
}

/// Sends one request; its status and body.
async fn call(app: &Router, method: &str, uri: &str, cookie: &str) -> (StatusCode, Vec<u8>) {
    let response = app
        .clone()
        .oneshot(request(method, uri, Some(cookie)))
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body.to_vec())
}

fn counter(body: &[u8]) -> u64 {
    std::str::from_utf8(body).unwrap().trim().parse().unwrap()
}

/// The numbers of one `INFO` reply this bench reads.
#[derive(Clone, Copy, Default)]
struct Info {
    cpu: f64,
    input: u64,
    output: u64,
    commands: u64,
    /// Microseconds spent executing the commands clients send (`INFO commandstats`).
    command_us: u64,
}

/// The commands the subjects send; a script's own commands are inside its `evalsha` time.
const CLIENT_COMMANDS: [&str; 6] = ["get", "set", "hgetall", "evalsha", "eval", "ping"];

fn info(conn: &mut redis::Connection) -> Info {
    let text: String = redis::cmd("INFO").arg("everything").query(conn).unwrap();
    let field = |name: &str| -> &str {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("INFO has no {name}"))
            .trim()
    };
    Info {
        cpu: field("used_cpu_user").parse::<f64>().unwrap()
            + field("used_cpu_sys").parse::<f64>().unwrap(),
        input: field("total_net_input_bytes").parse().unwrap(),
        output: field("total_net_output_bytes").parse().unwrap(),
        commands: field("total_commands_processed").parse().unwrap(),
        command_us: CLIENT_COMMANDS
            .iter()
            .filter_map(|command| {
                let stats = text
                    .lines()
                    .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:")))?;
                stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("usec="))
                    .and_then(|usec| usec.parse::<u64>().ok())
            })
            .sum(),
    }
}

/// This process's CPU time (user + system), from `/proc/self/stat`, in seconds.
fn own_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// One run's figures, per answered update.
#[derive(Clone, Copy)]
struct Run {
    per_second: f64,
    redis_us: f64,
    app_us: f64,
    bytes_in: f64,
    bytes_out: f64,
    commands: f64,
    command_us: f64,
}

async fn run(app: &Router, url: &str, clients: usize, seconds: f64) -> Run {
    let mut cookies = Vec::with_capacity(clients);
    for _ in 0..clients {
        cookies.push(filled(app).await);
    }
    let mut admin = redis::Client::open(url).unwrap().get_connection().unwrap();
    let before = info(&mut admin);
    let cpu_before = own_cpu();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = cookies
        .iter()
        .map(|cookie| {
            let (app, cookie) = (app.clone(), Arc::<str>::from(cookie.as_str()));
            tokio::spawn(async move {
                let mut answered = 0u64;
                while Instant::now() < deadline {
                    let (status, _) = call(&app, "POST", "/update", &cookie).await;
                    assert_eq!(status, StatusCode::OK);
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let mut answered = Vec::with_capacity(clients);
    for task in tasks {
        answered.push(task.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_after = own_cpu();
    let after = info(&mut admin);
    for (cookie, acks) in cookies.iter().zip(&answered) {
        let (status, body) = call(app, "GET", "/read", cookie).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(counter(&body), 1 + acks, "an answered update was lost");
    }
    let total: u64 = answered.iter().sum();
    let per = |x: f64| x / total as f64;
    Run {
        per_second: total as f64 / elapsed,
        redis_us: per((after.cpu - before.cpu) * 1e6),
        app_us: per((cpu_after - cpu_before) * 1e6),
        bytes_in: per((after.input - before.input) as f64),
        bytes_out: per((after.output - before.output) as f64),
        commands: per((after.commands - before.commands) as f64),
        command_us: per((after.command_us - before.command_us) as f64),
    }
}

/// Client commands per update (round trips), from `MONITOR` over 100 sequential updates:
/// lines of commands a script ran (`[0 lua]`) left out.
async fn round_trips(app: &Router, port: u16) -> f64 {
    let cookie = filled(app).await;
    let mut monitor = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "monitor"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    let mut lines = BufReader::new(monitor.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "OK");
    for _ in 0..100 {
        assert_eq!(
            call(app, "POST", "/update", &cookie).await.0,
            StatusCode::OK
        );
    }
    // A marker, to know where the updates' commands end.
    let mut admin = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("ECHO")
        .arg("bench-end")
        .query::<String>(&mut admin)
        .unwrap();
    let mut commands = 0;
    for line in lines {
        let line = line.unwrap();
        if line.contains("\"bench-end\"") {
            break;
        }
        if !line.contains(" lua]") {
            commands += 1;
        }
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    commands as f64 / 100.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let server = RedisServer::start();
    let url = server.url();
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let server_info: String = redis::cmd("INFO").arg("server").query(&mut admin).unwrap();
    let redis_pid: u32 = server_info
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    pin_process(redis_pid, 1);
    pin_process(std::process::id(), 0);
    // `REDIS_LOAD_RUNTIME=multi`: Tokio's multi-thread scheduler with one worker (still on
    // CPU 0), as `#[tokio::main]` builds it, instead of the current-thread one.
    let multi = std::env::var("REDIS_LOAD_RUNTIME").is_ok_and(|r| r == "multi");
    let rt = if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    println!(
        "{rounds} interleaved rounds of {seconds} s; updates of one field, each client its own \
         session; Redis on CPU 1, the app and its clients on CPU 0 ({} scheduler); medians of \
         the rounds",
        if multi {
            "multi-thread"
        } else {
            "current-thread"
        }
    );
    println!(
        "| fields | clients | subject | updates/s | / tower-sessions | Redis CPU µs/update | of which in commands | app CPU µs/update | bytes to Redis | bytes from Redis | Redis commands run | client commands |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    // `REDIS_LOAD_ONLY=<subject>,<fields>,<clients>`: one case only, nothing printed (to
    // watch Redis meanwhile, with `strace` or `perf`).
    let only = std::env::var("REDIS_LOAD_ONLY").ok();
    let only: Option<Vec<String>> = only.map(|o| o.split(',').map(str::to_owned).collect());
    for fields in [21, 200] {
        if only.as_ref().is_some_and(|o| o[1] != fields.to_string()) {
            continue;
        }
        let subjects: Vec<&str> = SUBJECTS
            .into_iter()
            .filter(|s| only.as_ref().is_none_or(|o| o[0] == *s))
            .collect();
        let apps: Vec<Router> = subjects
            .iter()
            .map(|subject| rt.block_on(app(subject, &url, fields)))
            .collect();
        let trips: Vec<f64> = apps
            .iter()
            .map(|app| rt.block_on(round_trips(app, server.port())))
            .collect();
        for clients in [8, 32, 64] {
            if only.as_ref().is_some_and(|o| o[2] != clients.to_string()) {
                continue;
            }
            let mut runs: Vec<Vec<Run>> = vec![Vec::new(); subjects.len()];
            for _ in 0..rounds {
                for (i, app) in apps.iter().enumerate() {
                    runs[i].push(rt.block_on(run(app, &url, clients, seconds)));
                }
            }
            let med = |i: usize, f: fn(&Run) -> f64| median(runs[i].iter().map(f).collect());
            let theirs = subjects
                .iter()
                .position(|s| *s == "tower-sessions")
                .map_or(f64::NAN, |i| med(i, |r| r.per_second));
            for (i, subject) in subjects.iter().enumerate() {
                let rate = med(i, |r| r.per_second);
                println!(
                    "| {fields} | {clients} | {subject} | {rate:.0} | {:.2} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.1} | {:.1} |",
                    rate / theirs,
                    med(i, |r| r.redis_us),
                    med(i, |r| r.command_us),
                    med(i, |r| r.app_us),
                    med(i, |r| r.bytes_in),
                    med(i, |r| r.bytes_out),
                    med(i, |r| r.commands),
                    trips[i],
                );
            }
        }
        // Between field counts: the sessions of the last size go.
        redis::cmd("FLUSHALL").query::<()>(&mut admin).unwrap();
    }
}

/// tower-sessions' pool size: 2 connections (`REDIS_LOAD_TS_POOL` to change it).
fn ts_pool() -> usize {
    std::env::var("REDIS_LOAD_TS_POOL")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2)
}
