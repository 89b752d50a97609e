//! The floor's layer: the least work the design brief leaves any session layer, written out
//! by hand for one schema (see `floor.rs`, which times it, for what it does and leaves out).
//! Shared by the in-process run (`floor.rs`) and the run over sockets (`tcp.rs`).

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{ready, Context, Poll},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::routes::plain;
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
use rustc_hash::FxBuildHasher;
use sha2::Sha256;
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
pub struct FloorService<I> {
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
    pub struct FloorFuture<F> {
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
pub fn floor_app(verify: bool) -> (FloorService<Router>, String) {
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
