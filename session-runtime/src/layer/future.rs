//! The response future of [`SessionService`](super::SessionService): the handler's future,
//! then, only if the handler used the session, saving it and adding its cookie.

use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use axum::response::{IntoResponse, Response};
use http::{
    header::{Entry, SET_COOKIE, VARY},
    HeaderMap, HeaderValue,
};
use pin_project_lite::pin_project;

use crate::session::RequestSession;

type Finishing = Pin<Box<dyn Future<Output = Response> + Send>>;

pin_project! {
    /// The response future of [`SessionService`](super::SessionService): the handler's
    /// future, then, only if the handler used the session, saving it.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Handler {
            #[pin]
            future: F,
            session: Option<RequestSession>,
        },
        Saving {
            future: Finishing,
        },
    }
}

impl<F> ResponseFuture<F> {
    /// The handler's future `future`, then saving `session` if the handler used it.
    pub(super) fn new(future: F, session: RequestSession) -> Self {
        Self {
            state: State::Handler {
                future,
                session: Some(session),
            },
        }
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project().state.project() {
                StateProj::Handler { future, session } => {
                    let mut response = ready!(future.poll(cx))?;
                    let session = session.take().expect("polled after completion");
                    if !session.is_used() {
                        return Poll::Ready(Ok(response));
                    }
                    // The extractor's rejection, or a handler's `?` on a session error, in
                    // the app's format.
                    if let Some(responder) = &session.shared().config.error_response {
                        response = responder.reshape(response);
                    }
                    if !session.shared().config.save_policy.saves(response.status()) {
                        session.abandon();
                    } else {
                        session.warn_of_live_handles();
                    }
                    vary_on_cookie(response.headers_mut());
                    // Only a request that changed something (or needs a refresh) pays for the
                    // save: a read returns here, with no allocation.
                    if session.finish_if_nothing_to_persist() {
                        return Poll::Ready(Ok(response));
                    }
                    let saving = Box::pin(finish(session, response));
                    self.as_mut()
                        .project()
                        .state
                        .set(State::Saving { future: saving });
                }
                StateProj::Saving { future } => return future.as_mut().poll(cx).map(Ok),
            }
        }
    }
}

/// Marks a response the session was used for as depending on the `Cookie` header, so that
/// no HTTP cache hands one visitor's session-dependent page to another. Left alone when the
/// response already varies on `Cookie`, or on everything (`*`).
fn vary_on_cookie(headers: &mut HeaderMap) {
    const COOKIE: HeaderValue = HeaderValue::from_static("Cookie");
    // One lookup: the common response has no `Vary` yet.
    match headers.entry(VARY) {
        Entry::Vacant(entry) => {
            entry.insert(COOKIE);
        }
        Entry::Occupied(mut entry) => {
            let varies = entry.iter().any(|value| {
                value.as_bytes().split(|&b| b == b',').any(|name| {
                    let name = name.trim_ascii();
                    name == b"*" || name.eq_ignore_ascii_case(b"cookie")
                })
            });
            if !varies {
                entry.append(COOKIE);
            }
        }
    }
}

/// Saves the session after the handler and adds the cookie; a failed save replaces the
/// response with an error response.
async fn finish(session: RequestSession, mut response: Response) -> Response {
    let failed = |err: crate::SessionError| {
        let response = err.into_response();
        match &session.shared().config.error_response {
            Some(responder) => responder.reshape(response),
            None => response,
        }
    };
    if let Err(err) = session.persist(false).await {
        return failed(err);
    }
    if let Some(cookie) = session.take_cookie() {
        let shared = session.shared();
        let header = cookie.header(
            &shared.config.cookie.name,
            &shared.cookie_attributes,
            &shared.signer,
        );
        match header {
            Ok(value) => {
                response.headers_mut().append(SET_COOKIE, value);
            }
            Err(err) => return failed(err),
        }
    }
    response
}
