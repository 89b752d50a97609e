//! Hostile input, generated from fixed seeds so a failure replays.
//!
//! - Whatever a client puts in its `Cookie` headers, the layer answers normally: a session is
//!   resumed only from the exact cookie the server signed, anything else starts a fresh
//!   session under a server-chosen ID, and nothing panics or turns into a server error.
//!   Thousands of requests whose headers are random mutations of a valid one (bytes flipped,
//!   cut, inserted, repeated; other cookies, quotes, separators, non-ASCII bytes), on the
//!   memory store and on the cookie store, where the cookie carries the whole encrypted
//!   session.
//! - Whatever bytes a store hands back (fields, versions, timestamps, unknown keys), a read
//!   answers (falling back per field, or `500` under the strict policy), a write saves,
//!   migrations see the garbage without panicking, and the garbage is never rewritten by a
//!   read.

use std::{
    borrow::Cow,
    time::{Duration, SystemTime},
};

use axum::{
    body::Bytes,
    http::{header, HeaderValue, Request, StatusCode},
    routing::{get, post},
    Router,
};
use session_runtime::{
    store::{LoadKeys, Patch},
    CookieStore, DecodePolicy, Key, MemoryStore, MigrationError, RawFields, SessionData,
    SessionLayer, SessionStore, TypedSession,
};
use session_suite::http::{attribute, cookie_pair, id_of, request, send, set_cookies, text};
use session_suite::Rng;

#[derive(SessionData)]
struct Cart {
    items: Vec<String>,
    hits: u64,
}

async fn add(mut cart: TypedSession<Cart>, item: String) -> String {
    cart.items_mut().push(item);
    cart.items().len().to_string()
}

/// A write that leaves `items` alone.
async fn hit(mut cart: TypedSession<Cart>) -> String {
    *cart.hits_mut() += 1;
    cart.hits().to_string()
}

async fn show(cart: TypedSession<Cart>) -> String {
    cart.items().join(",")
}

fn app<S: SessionStore + Clone>(store: S, key: Key) -> Router {
    Router::new()
        .route("/add", post(add))
        .route("/hit", post(hit))
        .route("/show", get(show))
        .layer(SessionLayer::new(store, key))
}

/// A byte a header value may hold: visible ASCII, space, tab, or 0x80..=0xFF.
fn header_byte(rng: &mut Rng) -> u8 {
    const SPECIAL: &[u8] = b";=\". \t,\\%+/-_";
    match rng.below(4) {
        0 => SPECIAL[rng.below(SPECIAL.len())],
        1 => 0x80 + u8::try_from(rng.below(0x80)).expect("fits"),
        _ => 0x21 + u8::try_from(rng.below(0x7F - 0x21)).expect("fits"),
    }
}

/// One random mutation of `valid` (a `name=value` cookie pair) into a header value.
fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut out = valid.to_vec();
    for _ in 0..=rng.below(3) {
        match rng.below(9) {
            // Flip, replace, insert or delete a byte.
            0 if !out.is_empty() => {
                let at = rng.below(out.len());
                out[at] ^= 1 << rng.below(7);
            }
            1 if !out.is_empty() => {
                let at = rng.below(out.len());
                out[at] = header_byte(rng);
            }
            2 => {
                let at = rng.below(out.len() + 1);
                let byte = header_byte(rng);
                out.insert(at, byte);
            }
            3 if !out.is_empty() => {
                out.remove(rng.below(out.len()));
            }
            // Cut it short.
            4 => out.truncate(rng.below(out.len() + 1)),
            // Another cookie before or after it, or the pair repeated.
            5 => out
                .splice(0..0, b"theme=dark; ".iter().copied())
                .for_each(drop),
            6 => out.extend_from_slice(b"; id=\"\"; other=1"),
            7 => {
                let copy = out.clone();
                out.extend_from_slice(b"; ");
                out.extend_from_slice(&copy);
            }
            // Random bytes appended.
            _ => {
                for _ in 0..rng.below(40) {
                    let byte = header_byte(rng);
                    out.push(byte);
                }
            }
        }
    }
    out
}

/// The values of the `id` cookies in a header value, as the layer reads them (RFC 6265):
/// pairs split at `;`, spaces and tabs around name and value trimmed, and one pair of double
/// quotes around the value removed (a value quoted on one side only keeps its quote).
fn id_values(header: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(header)
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| name.trim_matches([' ', '\t']) == "id")
        .map(|(_, value)| {
            let value = value.trim_matches([' ', '\t']);
            value
                .strip_prefix('"')
                .and_then(|inner| inner.strip_suffix('"'))
                .unwrap_or(value)
                .to_owned()
        })
        .collect()
}

/// The session ID inside a signed `id.tag` value.
fn id_part(value: &str) -> &str {
    value.rsplit_once('.').map_or(value, |(id, _)| id)
}

/// Sends thousands of mutated cookies to `app`, whose session behind `valid` holds "kept".
async fn survives_mutated_cookies(app: &Router, valid: &str, seed: u64) {
    let valid_value = valid.split_once('=').expect("name=value").1;
    let mut rng = Rng(seed);
    let (mut sent, mut resumed) = (0, 0);
    for case in 0..3000 {
        let header = mutate(&mut rng, valid.as_bytes());
        let Ok(value) = HeaderValue::from_bytes(&header) else {
            continue; // Not a header a client can send.
        };
        sent += 1;
        let shown = String::from_utf8_lossy(&header).into_owned();
        let with_cookie = |method: &str, uri: &str| {
            let mut req: Request<_> = request(method, uri, None, "");
            req.headers_mut().insert(header::COOKIE, value.clone());
            req
        };
        let named = id_values(&header);
        // The layer checks at most four cookies with the session's name.
        let exact = named.iter().take(4).any(|v| v == valid_value);

        // Resumed exactly when the header holds the signed value; otherwise a fresh session.
        let response = send(app, with_cookie("GET", "/show")).await;
        assert_eq!(response.status(), StatusCode::OK, "case {case}: {shown}");
        let body = text(response).await;
        match body.as_str() {
            "kept" => assert!(
                exact,
                "case {case}: resumed from an unsigned cookie: {shown}"
            ),
            "" => assert!(
                !exact,
                "case {case}: the valid cookie was not recognised: {shown}"
            ),
            other => panic!("case {case}: unexpected session contents {other:?}: {shown}"),
        }
        resumed += usize::from(exact);

        // A write resumes the session, or starts one under a new server-chosen ID.
        let response = send(app, with_cookie("POST", "/hit")).await;
        assert_eq!(response.status(), StatusCode::OK, "case {case}: {shown}");
        if !exact {
            let issued = cookie_pair(&response);
            let issued = id_part(issued.split_once('=').expect("name=value").1);
            assert!(
                named.iter().all(|v| id_part(v) != issued),
                "case {case}: adopted a client-chosen ID from {shown}"
            );
        }
    }
    // Enough cases reach the layer, and enough keep the valid pair to exercise resuming.
    assert!(
        sent > 2000,
        "only {sent} mutated headers were valid header values"
    );
    assert!(resumed > 100, "only {resumed} cases kept the valid cookie");
    assert!(
        sent - resumed > 1000,
        "only {} cases broke the cookie",
        sent - resumed
    );
}

/// Starts a session holding "kept" and returns its cookie pair.
async fn started(app: &Router) -> String {
    let response = send(app, request("POST", "/add", None, "kept")).await;
    assert_eq!(response.status(), StatusCode::OK);
    cookie_pair(&response)
}

#[tokio::test]
async fn mutated_cookies_never_resume_a_session_or_fail_on_the_memory_store() {
    let app = app(MemoryStore::new(), Key::generate());
    let valid = started(&app).await;
    survives_mutated_cookies(&app, &valid, 0x5EED_0001).await;
}

#[tokio::test]
async fn mutated_cookies_never_resume_a_session_or_fail_on_the_cookie_store() {
    let key = Key::generate();
    let app = app(CookieStore::new(&key), key);
    let valid = started(&app).await;
    survives_mutated_cookies(&app, &valid, 0x5EED_0002).await;
}

/// Version 3 of a schema whose older records kept `hits` as text under `count`.
#[derive(SessionData)]
#[session(version = 3, migrate = migrate_counter)]
struct Counter {
    hits: u64,
    label: String,
}

fn migrate_counter(from: u32, fields: &mut RawFields) -> Result<(), MigrationError> {
    if from < 3 {
        fields.rename("count", "hits");
        fields.convert("hits", |text: String| text.parse::<u64>().unwrap_or(0))?;
    }
    Ok(())
}

async fn show_counter(counter: TypedSession<Counter>) -> String {
    format!("{}|{}", counter.hits(), counter.label())
}

async fn bump(mut counter: TypedSession<Counter>) -> String {
    // The stored value may be anything, `u64::MAX` included.
    let hits = counter.hits().saturating_add(1);
    counter.set_hits(hits);
    counter.hits().to_string()
}

fn counter_app(store: &MemoryStore, key: &Key, policy: DecodePolicy) -> Router {
    Router::new()
        .route("/show", get(show_counter))
        .route("/bump", post(bump))
        .layer(SessionLayer::new(store.clone(), key.clone()).with_decode_policy(policy))
}

/// Values a store might hand back: valid and invalid JSON of every shape, numbers out of
/// range, random bytes.
fn garbage(rng: &mut Rng) -> Vec<u8> {
    const SHAPES: &[&[u8]] = &[
        b"0",
        b"1",
        b"2",
        b"3",
        b"4",
        b"-1",
        b"1.5",
        b"1e309",
        b"18446744073709551615",
        b"18446744073709551616",
        b"4294967296",
        b"99999999999999999999999",
        b"\"7\"",
        b"\"text\"",
        b"\"",
        b"null",
        b"true",
        b"[]",
        b"[1,2]",
        b"{}",
        b"{\"a\":1}",
        b"",
        b" 3 ",
        b"3\n",
        b"+3",
        b"0x10",
        b"\xff\xfe",
        b"[[[[[[[[[[[[[[[[[[[[",
    ];
    if rng.below(3) == 0 {
        (0..rng.below(24))
            .map(|_| u8::try_from(rng.below(256)).expect("fits"))
            .collect()
    } else {
        SHAPES[rng.below(SHAPES.len())].to_vec()
    }
}

#[tokio::test]
async fn garbage_from_the_store_never_panics_and_is_never_rewritten_by_a_read() {
    const KEYS: &[&str] = &[
        "hits",
        "label",
        "count",
        "__v.Counter",
        "__created",
        "__ttl",
        "__exp",
        "other",
    ];
    let store = MemoryStore::new();
    let key = Key::generate();
    let lenient = counter_app(&store, &key, DecodePolicy::Lenient);
    let strict = counter_app(&store, &key, DecodePolicy::Strict);
    let response = send(&lenient, request("POST", "/bump", None, "")).await;
    let cookie = cookie_pair(&response);
    let id = id_of(&cookie);

    let mut rng = Rng(0x5EED_0003);
    let (mut fell_back, mut rejected) = (0, 0);
    for case in 0..1500 {
        let mut set: Vec<(Cow<'static, str>, Bytes)> = Vec::new();
        for key in KEYS {
            if rng.below(2) == 0 {
                set.push((Cow::Borrowed(*key), Bytes::from(garbage(&mut rng))));
            }
        }
        let shown = format!("{set:?}");
        let patch = Patch {
            set,
            remove: vec![],
            expires_at: SystemTime::now() + Duration::from_secs(600),
        };
        store.delete(&id).await.unwrap();
        store.create(&id, &patch).await.unwrap();

        let response = send(&lenient, request("GET", "/show", Some(&cookie), "")).await;
        assert_eq!(response.status(), StatusCode::OK, "case {case}: {shown}");
        let response = send(&strict, request("GET", "/show", Some(&cookie), "")).await;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::INTERNAL_SERVER_ERROR => rejected += 1,
            other => panic!("case {case}: strict read answered {other}: {shown}"),
        }
        // Reads never rewrite what they could not decode. (Metadata may be refreshed, and
        // a migration's output is saved by design: only fields it never touches count.)
        let record = store.load(&id, LoadKeys::All).await.unwrap();
        let fields = record.map(|r| r.fields).unwrap_or_default();
        for (key, value) in &patch.set {
            if !["label", "other"].contains(&key.as_ref()) {
                continue;
            }
            assert_eq!(
                fields.get(key.as_ref()),
                Some(value),
                "case {case}: a read rewrote {key}: {shown}"
            );
        }

        // A write goes through: the counter falls back to 0 when its value is unreadable.
        let response = send(&lenient, request("POST", "/bump", Some(&cookie), "")).await;
        assert_eq!(response.status(), StatusCode::OK, "case {case}: {shown}");
        let ends_now = set_cookies(&response)
            .iter()
            .any(|c| attribute(c, "Max-Age") == Some("0"));
        let bumped: u64 = text(response).await.parse().expect("a number");
        fell_back += usize::from(bumped == 1);
        // A stored expiry override under a second ends the session with the write, as
        // `set_idle_timeout` documents; the cookie says so.
        let stored_ttl = patch
            .set
            .iter()
            .find(|(key, _)| key == "__ttl")
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
            .filter(|text| text.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|text| text.parse::<u64>().ok());
        assert_eq!(
            ends_now,
            stored_ttl.is_some_and(|ms| ms < 1000),
            "case {case}: {shown}"
        );
        if ends_now {
            continue;
        }
        let response = send(&lenient, request("GET", "/show", Some(&cookie), "")).await;
        let shown_after = text(response).await;
        assert!(
            shown_after.starts_with(&format!("{bumped}|")),
            "case {case}: the write was not kept ({shown_after}): {shown}"
        );
    }
    assert!(fell_back > 300, "only {fell_back} cases fell back");
    assert!(rejected > 300, "only {rejected} strict reads were rejected");
}
