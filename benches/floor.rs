//! The floor of the memory-store targets: the least work the design brief leaves any
//! session layer, written out by hand, timed in one interleaved run against the bare
//! handler, session-runtime and tower-sessions.
//!
//! ```text
//! cargo run --release -p session-bench --example floor -- 15 20000
//! ```
//!
//! (15 rounds of 20 000 requests per subject and case; the figure is the median round. A
//! third argument, a case name such as `new_session`, runs that case only.)
//!
//! The floor is one hand-written layer for one schema (a counter plus 20 strings of 100
//! bytes, as `S21`), with nothing general left in it: no schema machinery, no store trait,
//! no dynamic dispatch, no per-field bookkeeping beyond one dirty flag. It does only what the
//! brief requires of every request of these cases:
//!
//! - per request: the per-request state an extractor finds (one `Arc` in the request's
//!   extensions), so that a handler without a session costs no store call;
//! - with a cookie: find it, split the ID from its tag, decode the tag, verify the
//!   HMAC-SHA256 in constant time, look the ID up, check the expiry (one clock read) and
//!   whether a throttled refresh is due, decode the one field the handler reads (JSON);
//! - after a change: encode the field, write it and the sliding expiry into the record, send
//!   the cookie again with its new `Max-Age` (the tag is re-sent, not recomputed);
//! - for a new session: 128 random bits from a CSPRNG, sign them, store the record with its
//!   creation time, send the cookie with the brief's secure attributes.
//!
//! It is generous where it can be: its store is a single map keyed by the ID's bytes (no
//! allocation per key), bounded at `MemoryStore`'s default of 100 000 sessions by emptying
//! it when full rather than by evicting the oldest; it reads and writes no schema version, knows no previous keys, no absolute
//! timeout, no second schema, and sends no `Vary: Cookie`. Whatever the floor costs, an
//! implementation of the whole brief costs at least as much.
//!
//! `floor-unchecked` is the floor with the cookie's HMAC check left out, which the brief
//! does not allow: it shows what that check costs a request on this host.
//!
//! Every subject is measured in every round, one after the other, so a slow phase of the
//! host falls on all of them alike; ratios are of medians within this one run.

mod measure;
#[allow(dead_code)] // shared with the other benches
mod routes;
mod schemas;

use measure::median;
use std::time::Instant;

use routes::{bare_router, filled, ours_router, ours_wrapped, request, send, ts_router, App};
use session_runtime::MemoryStore;
use tokio::runtime::Runtime;

mod floor_layer;

use floor_layer::floor_app;

// ---------------------------------------------------------------- the interleaved run

#[derive(Clone, Copy)]
enum Case {
    NoSession,
    NewSession,
    Read,
    ReadUpdate,
}

impl Case {
    const ALL: [Case; 4] = [
        Self::NoSession,
        Self::NewSession,
        Self::Read,
        Self::ReadUpdate,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::NoSession => "no_session",
            Self::NewSession => "new_session",
            Self::Read => "read",
            Self::ReadUpdate => "read_update",
        }
    }

    fn route(self) -> (&'static str, &'static str) {
        match self {
            Self::NoSession => ("GET", "/plain"),
            Self::NewSession => ("POST", "/new"),
            Self::Read => ("GET", "/read"),
            Self::ReadUpdate => ("POST", "/update"),
        }
    }
}

/// Mean nanoseconds per request over `count` requests of `case`.
fn time<A: App>(rt: &Runtime, app: &A, case: Case, cookie: &str, count: usize) -> f64 {
    let (method, uri) = case.route();
    let cookie = (!matches!(case, Case::NewSession)).then_some(cookie);
    time_route(rt, app, (method, uri), cookie, count)
}

fn time_route<A: App>(
    rt: &Runtime,
    app: &A,
    (method, uri): (&str, &str),
    cookie: Option<&str>,
    count: usize,
) -> f64 {
    let start = Instant::now();
    for _ in 0..count {
        std::hint::black_box(rt.block_on(send(app, request(method, uri, cookie))));
    }
    start.elapsed().as_nanos() as f64 / count as f64
}

/// One subject: a name and a closure that times one case on it.
type Subject<'a> = (&'static str, Box<dyn Fn(Case, usize) -> f64 + 'a>);

fn subject<'a, A: App>(rt: &'a Runtime, name: &'static str, app: A, cookie: String) -> Subject<'a> {
    (
        name,
        Box::new(move |case, count| time(rt, &app, case, &cookie, count)),
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let only = args.next();
    let cases: Vec<Case> = Case::ALL
        .into_iter()
        .filter(|case| only.as_deref().is_none_or(|only| only == case.name()))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");

    let (floor, floor_cookie) = floor_app(true);
    // The floor answers as session-runtime does.
    for (case, body) in [
        (Case::Read, "1"),
        (Case::ReadUpdate, "2"),
        (Case::Read, "2"),
    ] {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let (method, uri) = case.route();
        let text = rt.block_on(async {
            let response = floor
                .clone()
                .oneshot(request(method, uri, Some(&floor_cookie)))
                .await
                .expect("infallible");
            response
                .into_body()
                .collect()
                .await
                .expect("a body")
                .to_bytes()
        });
        assert_eq!(text, body.as_bytes(), "{}", case.name());
    }

    let ours = ours_router(21, MemoryStore::new());
    let ours_cookie = rt.block_on(filled(&ours));
    let wrapped = ours_wrapped(21, MemoryStore::new());
    let wrapped_cookie = rt.block_on(filled(&wrapped));
    let ts = ts_router(21, tower_sessions::MemoryStore::default());
    let ts_cookie = rt.block_on(filled(&ts));
    let bare = bare_router();

    // The baselines: the bare router with no cookie (for new sessions, which send none) and
    // given session-runtime's cookie (for the rest).
    let plain = Case::NoSession.route();
    let (rt, bare) = (&rt, &bare);
    let baselines = [None, Some(ours_cookie.clone())]
        .map(|cookie| move |count| time_route(rt, bare, plain, cookie.as_deref(), count));
    let (unchecked, unchecked_cookie) = floor_app(false);
    let subjects: [Subject<'_>; 5] = [
        subject(rt, "floor", floor, floor_cookie),
        subject(rt, "floor-unchecked", unchecked, unchecked_cookie),
        subject(
            rt,
            "session-runtime/memory-wrapped",
            wrapped,
            wrapped_cookie,
        ),
        subject(rt, "session-runtime/memory", ours, ours_cookie),
        subject(rt, "tower-sessions/memory", ts, ts_cookie),
    ];

    let mut base = [Vec::new(), Vec::new()];
    let mut times = vec![vec![Vec::new(); cases.len()]; subjects.len()];
    for _ in 0..rounds {
        for (rounds, run) in base.iter_mut().zip(&baselines) {
            rounds.push(run(count));
        }
        for (s, (_, run)) in subjects.iter().enumerate() {
            for (c, &case) in cases.iter().enumerate() {
                times[s][c].push(run(case, count));
            }
        }
    }
    let [bare_ns, bare_cookie_ns] = base.map(median);
    println!(
        "Medians of {rounds} interleaved rounds of {count} requests, 21-field session, as \
         ratios to the bare handler ({bare_ns:.0} ns without a cookie, {bare_cookie_ns:.0} ns \
         with one):"
    );
    let names: Vec<&str> = subjects.iter().map(|(name, _)| *name).collect();
    println!("| case | {} |", names.join(" | "));
    println!("|---|{}", "---:|".repeat(names.len()));
    for (c, &case) in cases.iter().enumerate() {
        let baseline = match case {
            Case::NewSession => bare_ns,
            _ => bare_cookie_ns,
        };
        let cells: Vec<String> = times
            .iter()
            .map(|rounds| {
                let ns = median(rounds[c].clone());
                format!("{:.2}x ({ns:.0} ns)", ns / baseline)
            })
            .collect();
        println!("| {} | {} |", case.name(), cells.join(" | "));
    }
}
