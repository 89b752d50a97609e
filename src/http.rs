//! Requests through a `Router` in process, and reading the session cookie back: the helpers
//! the integration tests share.

use std::convert::Infallible;

use axum::{
    body::Body,
    http::{header, Request},
    response::Response,
    routing::{post, MethodRouter},
};
use http_body_util::BodyExt;
use session_runtime::{SessionData, SessionId, TypedSession};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tower::{Service, ServiceExt};

/// A `POST` route whose handler hands its session out, as to a spawned task, and answers
/// `later`; each handed-out session arrives on the receiver, to be changed after the
/// response.
pub fn handing_out<T: SessionData>() -> (MethodRouter, UnboundedReceiver<TypedSession<T>>)
where
    T::Fields: Send + Sync,
{
    let (handed_out, held) = unbounded_channel();
    let route = post(move |session: TypedSession<T>| {
        handed_out
            .send(session)
            .expect("the test holds the receiver");
        async { "later" }
    });
    (route, held)
}

/// A request with an optional `Cookie` header.
pub fn request(
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    builder.body(body.into()).expect("a valid test request")
}

/// Sends one request through the router (tower `oneshot`): a `Router`, or any service such
/// as a `Router` wrapped by a layer.
pub async fn send<S>(app: &S, request: Request<Body>) -> Response
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone,
{
    app.clone()
        .oneshot(request)
        .await
        .expect("routers are infallible")
}

/// The response body as text.
pub async fn text(response: Response) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("an in-memory body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("a UTF-8 body")
}

/// Every `Set-Cookie` header of a response.
pub fn set_cookies(response: &Response) -> Vec<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("a text cookie").to_owned())
        .collect()
}

/// `name=value` of the response's only `Set-Cookie`, ready to send back.
pub fn cookie_pair(response: &Response) -> String {
    let cookies = set_cookies(response);
    assert_eq!(cookies.len(), 1, "expected one Set-Cookie, got {cookies:?}");
    cookies[0]
        .split(';')
        .next()
        .expect("split yields at least one part")
        .to_owned()
}

/// An attribute of a `Set-Cookie` value (`Some("")` for a flag such as `HttpOnly`).
pub fn attribute<'a>(set_cookie: &'a str, name: &str) -> Option<&'a str> {
    set_cookie
        .split(';')
        .skip(1)
        .map(str::trim)
        .find_map(|attr| {
            let (key, value) = attr.split_once('=').unwrap_or((attr, ""));
            key.eq_ignore_ascii_case(name).then_some(value)
        })
}

/// The session ID inside a `name=id.tag` cookie pair.
pub fn id_of(pair: &str) -> SessionId {
    let value = pair.split_once('=').expect("name=value").1;
    SessionId::from_store(value.rsplit_once('.').expect("id.tag").0)
}

/// A browser: keeps the session cookie as `Set-Cookie` leaves it (removed by `Max-Age=0`).
#[derive(Debug, Default, Clone)]
pub struct Browser {
    /// The `name=value` pair it sends, if any.
    pub cookie: Option<String>,
}

impl Browser {
    /// Sends a request with its cookie and keeps the cookie the response sets: the status
    /// and the body.
    pub async fn call(
        &mut self,
        app: &axum::Router,
        method: &str,
        uri: &str,
    ) -> (axum::http::StatusCode, String) {
        let response = send(app, request(method, uri, self.cookie.as_deref(), "")).await;
        for set in set_cookies(&response) {
            let pair = set.split(';').next().unwrap_or_default().to_owned();
            if set.contains("Max-Age=0") {
                self.cookie = None;
            } else {
                self.cookie = Some(pair);
            }
        }
        let status = response.status();
        (status, text(response).await)
    }

    /// As [`call`](Self::call), asserting a `200 OK`: the body.
    pub async fn ok(&mut self, app: &axum::Router, method: &str, uri: &str) -> String {
        let (status, body) = self.call(app, method, uri).await;
        assert_eq!(status, axum::http::StatusCode::OK, "{method} {uri}: {body}");
        body
    }

    /// The session ID its cookie names.
    pub fn id(&self) -> SessionId {
        id_of(
            self.cookie
                .as_deref()
                .expect("the browser holds a session cookie"),
        )
    }
}

/// The text of `html` between the first `start` and the `end` after it (a page's element,
/// for tests that read the demo's pages).
///
/// # Panics
///
/// When `start`, or `end` after it, is not in `html`.
pub fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {html}"))
        + start.len();
    let to = html[from..].find(end).expect("the end") + from;
    &html[from..to]
}
