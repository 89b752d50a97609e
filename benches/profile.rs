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
//! cancels out). Cases, on a 21-field schema and the memory store: `bare` (no session
//! layer, no cookie), `bare-cookie` (no layer, the session cookie sent), `noop-layer` (a
//! pass-through layer, the cookie sent), `no-session`, `read`, `update` and `new`; the
//! same four on tower-sessions' memory store with a `ts-` prefix (`ts-read`, ...).

mod routes;
mod schemas;

use routes::{bare_router, filled, noop_layer_router, ours_router, request, send, ts_router};
use session_runtime::MemoryStore;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(case), Some(count)) = (args.next(), args.next().and_then(|n| n.parse().ok())) else {
        eprintln!(
            "usage: profile <bare|bare-cookie|noop-layer|[ts-]no-session|[ts-]read|[ts-]update|[ts-]new> <requests>"
        );
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let sessions = ours_router(21, MemoryStore::new());
    let cookie = rt.block_on(filled(&sessions));
    let theirs = ts_router(21, tower_sessions::MemoryStore::default());
    let their_cookie = rt.block_on(filled(&theirs));
    let their_cookie = Some(their_cookie.as_str());
    let bare = bare_router();
    let noop = noop_layer_router();
    let cookie = Some(cookie.as_str());
    let (app, method, uri, cookie) = match case.as_str() {
        "bare" => (&bare, "GET", "/plain", None),
        "bare-cookie" => (&bare, "GET", "/plain", cookie),
        "noop-layer" => (&noop, "GET", "/plain", cookie),
        "no-session" => (&sessions, "GET", "/plain", cookie),
        "read" => (&sessions, "GET", "/read", cookie),
        "update" => (&sessions, "POST", "/update", cookie),
        "new" => (&sessions, "POST", "/new", None),
        "ts-no-session" => (&theirs, "GET", "/plain", their_cookie),
        "ts-read" => (&theirs, "GET", "/read", their_cookie),
        "ts-update" => (&theirs, "POST", "/update", their_cookie),
        "ts-new" => (&theirs, "POST", "/new", None),
        other => {
            eprintln!("unknown case {other}");
            std::process::exit(2);
        }
    };
    for _ in 0..count {
        std::hint::black_box(rt.block_on(send(app, request(method, uri, cookie))));
    }
}
