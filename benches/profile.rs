//! One benchmark case in a plain loop, for profilers (`valgrind --tool=callgrind`,
//! `perf stat`), which want a steady program rather than criterion's adaptive runs.
//!
//! ```text
//! cargo build --release -p session-bench --example profile
//! valgrind --tool=callgrind target/release/examples/profile read 2000
//! valgrind --tool=callgrind target/release/examples/profile read 4000
//! ```
//!
//! The per-request cost is the difference of the two totals divided by 2000 (set-up
//! cancels out). Cases, on a 21-field schema (a third argument picks 1 or 200 fields) and
//! the memory store: `bare` (no session layer, no cookie), `bare-cookie` (no layer, the
//! session cookie sent), `noop-layer` (a pass-through layer, the cookie sent),
//! `no-session`, `read`, `update` and `new`; the same four with the layer wrapped around
//! the whole router with a `wrapped-` prefix (`wrapped-read`, ...), and on tower-sessions'
//! memory store with a `ts-` or `ts-wrapped-` prefix.

mod routes;
mod schemas;

use routes::{
    bare_router, filled, noop_layer_router, ours_router, ours_wrapped, request, send, ts_router,
    ts_wrapped, App,
};
use session_runtime::MemoryStore;
use tokio::runtime::Runtime;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(case), Some(count)) = (args.next(), args.next().and_then(|n| n.parse().ok())) else {
        eprintln!(
            "usage: profile <bare|bare-cookie|noop-layer|[ts-][wrapped-]<no-session|read|update|new>> <requests> [fields: 1, 21 (default) or 200]"
        );
        std::process::exit(2);
    };
    // The session's field count: 1, 21 (the default) or 200.
    let fields: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(21);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let (framework, request_case) = match case.split_once('-') {
        Some((prefix @ ("ts" | "wrapped"), rest)) => (prefix, rest),
        _ => ("ours", case.as_str()),
    };
    match framework {
        "ts" => match request_case.strip_prefix("wrapped-") {
            Some(rest) => run(
                &rt,
                ts_wrapped(fields, tower_sessions::MemoryStore::default()),
                rest,
                count,
            ),
            None => run(
                &rt,
                ts_router(fields, tower_sessions::MemoryStore::default()),
                request_case,
                count,
            ),
        },
        "wrapped" => run(
            &rt,
            ours_wrapped(fields, MemoryStore::new()),
            request_case,
            count,
        ),
        _ => match request_case {
            "bare" => run(&rt, bare_router(), "no-cookie", count),
            "bare-cookie" => run_with_cookie_of(&rt, bare_router(), count),
            "noop-layer" => run_with_cookie_of(&rt, noop_layer_router(), count),
            _ => run(
                &rt,
                ours_router(fields, MemoryStore::new()),
                request_case,
                count,
            ),
        },
    }
}

/// Sends `count` requests of one case to `app`, which holds a session of the schema it was built for.
fn run<A: App>(rt: &Runtime, app: A, case: &str, count: usize) {
    let (method, uri, with_cookie) = match case {
        "no-cookie" => ("GET", "/plain", false),
        "no-session" => ("GET", "/plain", true),
        "read" => ("GET", "/read", true),
        "update" => ("POST", "/update", true),
        "new" => ("POST", "/new", false),
        other => {
            eprintln!("unknown case {other}");
            std::process::exit(2);
        }
    };
    let cookie = with_cookie.then(|| rt.block_on(filled(&app)));
    let cookie = cookie.as_deref();
    for _ in 0..count {
        std::hint::black_box(rt.block_on(send(&app, request(method, uri, cookie))));
    }
}

/// A baseline router given the request of `no-session`, session cookie included.
fn run_with_cookie_of<A: App>(rt: &Runtime, app: A, count: usize) {
    let cookie = rt.block_on(filled(&ours_router(21, MemoryStore::new())));
    for _ in 0..count {
        std::hint::black_box(rt.block_on(send(&app, request("GET", "/plain", Some(&cookie)))));
    }
}
