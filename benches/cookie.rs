//! The session cookie's two per-request jobs, each done with the `cookie` crate and by
//! hand, side by side: finding the session cookie in a `Cookie` header, and rendering the
//! `Set-Cookie` header for a signed ID. Tells whether the crate costs a measurable share of a
//! request (a bare axum request costs about 600 ns on this machine class; see BENCHMARKS.md).
//!
//! ```text
//! cargo bench --bench cookie
//! ```
//!
//! The layer reads with the crate (`Cookie::parse` per pair) and renders by hand around
//! attributes the crate rendered once, when the layer was configured.

use std::{hint::black_box, time::Duration};

use criterion::Criterion;

/// A browser's header: an analytics cookie, a preference, and the session cookie.
const HEADER: &[u8] = b"_ga=GA1.1.1234567890.1700000000; theme=dark; \
    id=a-GTjoBmpjdSx0yT3W38wK.ydx_rkKYks6PsWuXaunvyUB0XO_HDUPzmHM9FYwCIiU; lang=en";
const NAME: &str = "id";
const SIGNED: &str = "a-GTjoBmpjdSx0yT3W38wK.ydx_rkKYks6PsWuXaunvyUB0XO_HDUPzmHM9FYwCIiU";

/// With the crate, as the layer does: pairs split as bytes, each parsed by `Cookie::parse`.
fn parse_with_crate<'a>(header: &'a [u8], name: &'a str) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = std::str::from_utf8(pair).ok()?;
        let cookie = cookie::Cookie::parse(pair).ok()?;
        if cookie.name() != name {
            return None;
        }
        let value = cookie.value_raw()?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Some(value.as_bytes())
    })
}

/// By hand: the same reading (RFC 6265 white space, one pair of quotes) on bytes.
fn parse_by_hand<'a>(header: &'a [u8], name: &'a [u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let at = pair.iter().position(|&b| b == b'=')?;
        if pair[..at].trim_ascii() != name {
            return None;
        }
        let value = pair[at + 1..].trim_ascii();
        Some(
            value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value),
        )
    })
}

/// With the crate, per request: the whole cookie built and rendered.
fn render_with_crate(max_age: u64) -> String {
    cookie::Cookie::build((NAME, SIGNED))
        .max_age(cookie::time::Duration::seconds(max_age as i64))
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(cookie::SameSite::Lax)
        .build()
        .to_string()
}

/// As the layer does: the signed ID and `Max-Age` before attributes rendered once.
fn render_by_hand(max_age: u64, attributes: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(NAME.len() + 1 + SIGNED.len() + 30 + attributes.len());
    out.push_str(NAME);
    out.push('=');
    out.push_str(SIGNED);
    let _ = write!(out, "; Max-Age={max_age}");
    out.push_str(attributes);
    out
}

fn main() {
    assert_eq!(parse_with_crate(HEADER, NAME), Some(SIGNED.as_bytes()));
    assert_eq!(
        parse_by_hand(HEADER, NAME.as_bytes()),
        Some(SIGNED.as_bytes())
    );
    let attributes = "; HttpOnly; SameSite=Lax; Secure; Path=/";
    assert_eq!(
        render_by_hand(86_400, attributes),
        format!("id={SIGNED}; Max-Age=86400{attributes}")
    );
    assert!(render_with_crate(86_400).contains("Max-Age=86400"));

    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(if quick { 100 } else { 1000 }))
        .measurement_time(Duration::from_millis(if quick { 300 } else { 3000 }))
        .sample_size(if quick { 10 } else { 50 })
        .configure_from_args();
    let mut group = c.benchmark_group("cookie");
    group.bench_function("parse/crate", |b| {
        b.iter(|| parse_with_crate(black_box(HEADER), black_box(NAME)))
    });
    group.bench_function("parse/by_hand", |b| {
        b.iter(|| parse_by_hand(black_box(HEADER), black_box(NAME.as_bytes())))
    });
    group.bench_function("render/crate", |b| {
        b.iter(|| render_with_crate(black_box(86_400)))
    });
    group.bench_function("render/by_hand", |b| {
        b.iter(|| render_by_hand(black_box(86_400), black_box(attributes)))
    });
    group.finish();
    c.final_summary();
}
