//! Over real sockets: the bare router, the floor, session-runtime and tower-sessions (memory
//! stores, 21-field session), each served by axum on one loopback port from one
//! current-thread runtime on a thread pinned to CPU 0, loaded by `wrk` pinned to CPU 1.
//!
//! ```text
//! cargo run --release -p session-bench --example tcp -- [rounds] [seconds] [connections]
//! ```
//!
//! (default 3 rounds of 3 s, 32 connections; needs `wrk`, from Debian's packages.) Rounds
//! are interleaved: each round runs every case on every subject in turn. Per run: requests
//! per second, wrk's p50 and p99 latency, and the server thread's CPU time per request
//! (from `/proc/self/task/<tid>/stat`). The bare router answers `GET /plain` given the same
//! cookie, the baseline of both cases; `read` is `GET /read` (the counter), `update` is
//! `POST /update` (the counter incremented). Figures are the medians of the rounds.

#[allow(dead_code)] // shared with the other benches
mod floor_layer;
mod measure;
#[allow(dead_code)] // shared with the other benches
mod routes;
mod schemas;

use measure::{median, pin_thread};
use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
    sync::mpsc,
};

use floor_layer::floor_app;
use routes::{bare_router, ours_router, ts_router};
use session_runtime::MemoryStore;

/// A server on its own pinned thread: its port and thread ID.
struct Served {
    port: u16,
    tid: u32,
}

fn this_thread() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.parse().ok())
        .expect("a thread ID")
}

/// Serves `make` (a make-service, as `axum::serve` takes) on a free port.
fn serve<M, S>(make: M) -> Served
where
    M: for<'a> tower::Service<
            axum::serve::IncomingStream<'a, tokio::net::TcpListener>,
            Error = std::convert::Infallible,
            Response = S,
        > + Send
        + 'static,
    for<'a> <M as tower::Service<axum::serve::IncomingStream<'a, tokio::net::TcpListener>>>::Future:
        Send,
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let tid = this_thread();
        pin_thread(tid, 0);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tx.send(Served { port, tid }).unwrap();
            axum::serve(listener, make).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// One request over a fresh connection; the `name=value` of its `Set-Cookie`.
fn cookie_from(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.trim().split(';').next().unwrap().to_owned())
        })
        .expect("a Set-Cookie")
}

/// This process's thread `tid`'s CPU time (user + system), in seconds.
fn thread_cpu(tid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[derive(Clone, Copy)]
struct Run {
    per_second: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us: f64,
}

/// A wrk duration (`123.45us`, `1.20ms`, `1.00s`) in µs.
fn micros(text: &str) -> f64 {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap();
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().unwrap();
    number
        * match unit {
            "us" => 1.0,
            "ms" => 1e3,
            "s" => 1e6,
            other => panic!("wrk unit {other}"),
        }
}

fn wrk(
    served: &Served,
    method: &str,
    path: &str,
    cookie: &str,
    seconds: u32,
    connections: u32,
) -> Run {
    let script = std::env::temp_dir().join(format!("session-bench-{method}.lua"));
    std::fs::write(&script, format!("wrk.method = \"{method}\"\n")).unwrap();
    let cpu_before = thread_cpu(served.tid);
    let output = Command::new("taskset")
        .args(["-c", "1", "wrk", "-t1", "--latency"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .args(["-H", &format!("Cookie: {cookie}")])
        .arg("-s")
        .arg(&script)
        .arg(format!("http://127.0.0.1:{}{path}", served.port))
        .output()
        .expect("wrk (apt-get install wrk)");
    let cpu_after = thread_cpu(served.tid);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "wrk failed: {text}");
    assert!(
        !text.contains("Non-2xx"),
        "{method} {path} answered errors: {text}"
    );
    let value = |label: &str| -> &str {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label} in {text}"))
            .trim()
    };
    let per_second: f64 = value("Requests/sec:").parse().unwrap();
    let requests: f64 = text
        .lines()
        .find(|line| line.contains("requests in"))
        .and_then(|line| line.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a request count");
    Run {
        per_second,
        p50_us: micros(value("50%")),
        p99_us: micros(value("99%")),
        cpu_us: (cpu_after - cpu_before) * 1e6 / requests,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let seconds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let connections: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);

    let (floor, floor_cookie) = floor_app(true);
    let floor = serve(axum::ServiceExt::<axum::extract::Request>::into_make_service(floor));
    let ours = serve(ours_router(21, MemoryStore::new()).into_make_service());
    let ours_cookie = cookie_from(ours.port, "/fill");
    let ts = serve(ts_router(21, tower_sessions::MemoryStore::default()).into_make_service());
    let ts_cookie = cookie_from(ts.port, "/fill");
    let bare = serve(bare_router().into_make_service());

    // (name, server, cookie, whether it serves the cases' routes or only /plain)
    let subjects = [
        ("bare", &bare, ours_cookie.clone(), false),
        ("floor", &floor, floor_cookie, true),
        ("session-runtime/memory", &ours, ours_cookie, true),
        ("tower-sessions/memory", &ts, ts_cookie, true),
    ];
    let cases = [("read", "GET", "/read"), ("update", "POST", "/update")];
    let mut runs = vec![vec![Vec::new(); subjects.len()]; cases.len()];
    for _ in 0..rounds {
        for (c, (_, method, path)) in cases.iter().enumerate() {
            for (s, (_, served, cookie, routes)) in subjects.iter().enumerate() {
                let (method, path) = if *routes {
                    (*method, *path)
                } else {
                    ("GET", "/plain")
                };
                runs[c][s].push(wrk(served, method, path, cookie, seconds, connections));
            }
        }
    }
    println!(
        "{rounds} interleaved rounds of {seconds} s, wrk -t1 -c{connections} on CPU 1, the \
         server on one current-thread runtime on CPU 0; medians of the rounds"
    );
    println!("| case | subject | requests/s | / bare | p50 | p99 | server CPU per request |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (c, (case, _, _)) in cases.iter().enumerate() {
        let med = |s: usize, f: fn(&Run) -> f64| median(runs[c][s].iter().map(f).collect());
        let bare_rate = med(0, |r| r.per_second);
        for (s, (name, ..)) in subjects.iter().enumerate() {
            let rate = med(s, |r| r.per_second);
            println!(
                "| {case} | {name} | {rate:.0} | {:.2} | {:.0} µs | {:.0} µs | {:.2} µs |",
                rate / bare_rate,
                med(s, |r| r.p50_us),
                med(s, |r| r.p99_us),
                med(s, |r| r.cpu_us),
            );
        }
    }
}
