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

#[allow(dead_code)] // shared with the other benches
mod routes;
mod schemas;

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{ready, Context, Poll},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, HeaderValue, Request},
    response::Response,
    routing::{get, post},
    Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use rand::RngCore;
use routes::{
    bare_router, filled, ours_router, ours_wrapped, plain, request, send, ts_router, App,
};
use rustc_hash::FxBuildHasher;
use session_runtime::MemoryStore;
use sha2::Sha256;
use tokio::runtime::Runtime;
use tower::{Layer, Service};

type HmacSha256 = Hmac<Sha256>;

/// Base64url characters of a 128-bit ID.
const ID_LEN: usize = 22;
/// Base64url characters of an HMAC-SHA256 tag.
const TAG_LEN: usize = 43;
const IDLE_MS: u64 = 24 * 3600 * 1000;
const REFRESH_MS: u64 = 60 * 1000;
const COOKIE_ATTRIBUTES: &str = "; Max-Age=86400; Path=/; HttpOnly; Secure; SameSite=Lax";
/// The floor's store is emptied when it holds this many sessions (`MemoryStore`'s default
/// bound).
const FLOOR_BOUND: usize = 100_000;

type Id = [u8; ID_LEN];

#[derive(Clone)]
struct Record {
    expires_ms: u64,
    /// Kept for an absolute timeout, as the brief asks (the floor sets none).
    #[allow(dead_code)]
    created_ms: u64,
    fields: HashMap<&'static str, Bytes, FxBuildHasher>,
}

struct Shared {
    mac: HmacSha256,
    /// Whether cookies are checked: off only for `floor-unchecked`, which shows what the
    /// HMAC costs (the brief requires it).
    verify: bool,
    records: Mutex<HashMap<Id, Arc<Record>, FxBuildHasher>>,
}

/// The floor's layer.
#[derive(Clone)]
struct FloorLayer(Arc<Shared>);

#[derive(Clone)]
struct FloorService<I> {
    inner: I,
    shared: Arc<Shared>,
}

impl<I> Layer<I> for FloorLayer {
    type Service = FloorService<I>;
    fn layer(&self, inner: I) -> FloorService<I> {
        FloorService {
            inner,
            shared: Arc::clone(&self.0),
        }
    }
}

/// One request's state, shared by the extractor and the response future.
struct RequestState {
    shared: Arc<Shared>,
    write: Mutex<Option<Write>>,
}

/// What the extractor hands the layer to persist after the handler.
struct Write {
    /// The verified ID and its tag; `None` for a new session.
    id: Option<(Id, [u8; 32])>,
    /// The encoded counter; `None` for a refresh of the expiry only.
    counter: Option<Bytes>,
}

#[derive(Clone)]
struct Handle(Arc<RequestState>);

impl<I, B> Service<Request<B>> for FloorService<I>
where
    I: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = I::Error;
    type Future = FloorFuture<I::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), I::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let state = Arc::new(RequestState {
            shared: Arc::clone(&self.shared),
            write: Mutex::new(None),
        });
        request.extensions_mut().insert(Handle(Arc::clone(&state)));
        FloorFuture {
            inner: self.inner.call(request),
            state,
        }
    }
}

pin_project_lite::pin_project! {
    struct FloorFuture<F> {
        #[pin]
        inner: F,
        state: Arc<RequestState>,
    }
}

impl<F, E> Future for FloorFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        let write = this.state.write.lock().unwrap().take();
        if let Some(write) = write {
            let cookie = persist(&this.state.shared, write);
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        Poll::Ready(Ok(response))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

fn tag_of(mac: &HmacSha256, id: &[u8]) -> [u8; 32] {
    let mut mac = mac.clone();
    mac.update(id);
    mac.finalize().into_bytes().into()
}

/// Writes a change and returns the cookie to send.
fn persist(shared: &Shared, write: Write) -> HeaderValue {
    let now = now_ms();
    let (id, tag) = match write.id {
        Some((id, tag)) => {
            let mut records = shared.records.lock().unwrap();
            if let Some(record) = records.get_mut(&id) {
                let record = Arc::make_mut(record);
                if let Some(counter) = write.counter {
                    record.fields.insert("counter", counter);
                }
                record.expires_ms = now + IDLE_MS;
            }
            (id, tag)
        }
        None => {
            let mut random = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut random);
            let mut id = [0u8; ID_LEN];
            URL_SAFE_NO_PAD
                .encode_slice(random, &mut id)
                .expect("22 characters");
            let tag = tag_of(&shared.mac, &id);
            let mut fields = HashMap::default();
            fields.extend(write.counter.map(|counter| ("counter", counter)));
            let record = Arc::new(Record {
                expires_ms: now + IDLE_MS,
                created_ms: now,
                fields,
            });
            let mut records = shared.records.lock().unwrap();
            if records.len() >= FLOOR_BOUND {
                // Keeps the filled sessions the read and update cases use.
                records.retain(|_, record| record.fields.len() > 1);
            }
            records.insert(id, record);
            (id, tag)
        }
    };
    let mut text = String::with_capacity(3 + ID_LEN + 1 + TAG_LEN + COOKIE_ATTRIBUTES.len());
    text.push_str("id=");
    text.push_str(std::str::from_utf8(&id).expect("base64url"));
    text.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut text);
    text.push_str(COOKIE_ATTRIBUTES);
    HeaderValue::try_from(text).expect("a valid header value")
}

/// The floor's extractor: the typed view of the one schema.
struct FloorSession {
    handle: Handle,
    id: Option<(Id, [u8; 32])>,
    record: Option<Arc<Record>>,
    counter: Option<u64>,
    dirty: bool,
    refresh_due: bool,
}

fn find_cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        pair.trim_ascii()
            .strip_prefix(name)
            .and_then(|value| value.strip_prefix(b"="))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for FloorSession {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let handle = parts
            .extensions
            .get::<Handle>()
            .cloned()
            .expect("the floor layer is installed");
        let shared = &handle.0.shared;
        let found = (|| {
            let header = parts.headers.get(header::COOKIE)?.as_bytes();
            let value = find_cookie(header, b"id")?;
            if value.len() != ID_LEN + 1 + TAG_LEN || value[ID_LEN] != b'.' {
                return None;
            }
            let id: Id = value[..ID_LEN].try_into().ok()?;
            let mut tag = [0u8; 32];
            URL_SAFE_NO_PAD
                .decode_slice(&value[ID_LEN + 1..], &mut tag)
                .ok()?;
            if shared.verify {
                let mut mac = shared.mac.clone();
                mac.update(&id);
                mac.verify_slice(&tag).ok()?;
            }
            let record = shared.records.lock().unwrap().get(&id).cloned()?;
            let now = now_ms();
            (record.expires_ms > now).then(|| {
                let due = now + IDLE_MS >= record.expires_ms + REFRESH_MS;
                ((id, tag), record, due)
            })
        })();
        let (id, record, refresh_due) = match found {
            Some((id, record, due)) => (Some(id), Some(record), due),
            None => (None, None, false),
        };
        Ok(Self {
            handle,
            id,
            record,
            counter: None,
            dirty: false,
            refresh_due,
        })
    }
}

impl FloorSession {
    fn counter(&mut self) -> u64 {
        let record = &self.record;
        *self.counter.get_or_insert_with(|| {
            record
                .as_ref()
                .and_then(|record| record.fields.get("counter"))
                .and_then(|value| serde_json::from_slice(value).ok())
                .unwrap_or_default()
        })
    }

    fn counter_mut(&mut self) -> &mut u64 {
        self.counter();
        self.dirty = true;
        self.counter.get_or_insert_default()
    }

    fn set_counter(&mut self, counter: u64) {
        self.counter = Some(counter);
        self.dirty = true;
    }
}

impl Drop for FloorSession {
    fn drop(&mut self) {
        let counter = self.dirty.then(|| {
            let mut text = itoa::Buffer::new();
            Bytes::copy_from_slice(text.format(self.counter.unwrap_or_default()).as_bytes())
        });
        if counter.is_some() || self.refresh_due {
            *self.handle.0.write.lock().unwrap() = Some(Write {
                id: self.id.take(),
                counter,
            });
        }
    }
}

async fn floor_read(mut session: FloorSession) -> String {
    session.counter().to_string()
}

async fn floor_update(mut session: FloorSession) -> String {
    *session.counter_mut() += 1;
    session.counter().to_string()
}

async fn floor_new(mut session: FloorSession) -> &'static str {
    session.set_counter(1);
    "ok"
}

/// The floor's router, wrapped in its layer, and the cookie of a filled 21-field session.
fn floor_app(verify: bool) -> (FloorService<Router>, String) {
    let mut secret = [0u8; 64];
    rand::thread_rng().fill_bytes(&mut secret);
    let shared = Arc::new(Shared {
        mac: HmacSha256::new_from_slice(&secret).expect("any key length"),
        records: Mutex::default(),
        verify,
    });
    let id: Id = [b'A'; ID_LEN];
    let mut fields = HashMap::default();
    fields.insert("counter", Bytes::from_static(b"1"));
    for i in 1..21 {
        let name: &'static str = Box::leak(format!("s{i:03}").into_boxed_str());
        fields.insert(name, Bytes::from(format!("\"{}\"", "x".repeat(100))));
    }
    let now = now_ms();
    shared.records.lock().unwrap().insert(
        id,
        Arc::new(Record {
            expires_ms: now + IDLE_MS,
            created_ms: now,
            fields,
        }),
    );
    let tag = URL_SAFE_NO_PAD.encode(tag_of(&shared.mac, &id));
    let cookie = format!("id={}.{tag}", std::str::from_utf8(&id).expect("ASCII"));
    let router = Router::new()
        .route("/plain", get(plain))
        .route("/read", get(floor_read))
        .route("/update", post(floor_update))
        .route("/new", post(floor_new))
        .with_state(());
    (FloorLayer(shared).layer(router), cookie)
}

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

fn median(mut rounds: Vec<f64>) -> f64 {
    rounds.sort_by(f64::total_cmp);
    rounds[rounds.len() / 2]
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
