//! The service [`SessionLayer`](super::SessionLayer) makes: it gives each request its
//! session and wraps the handler's future in a [`ResponseFuture`].

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use axum::response::Response;
use http::Request;
use tower_service::Service;

use super::future::ResponseFuture;
use crate::session::{RequestSession, Shared};

/// The service made by [`SessionLayer`](super::SessionLayer).
#[derive(Clone)]
pub struct SessionService<I> {
    pub(super) inner: I,
    pub(super) shared: Arc<Shared>,
}

impl<I> fmt::Debug for SessionService<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

impl<I, B> Service<Request<B>> for SessionService<I>
where
    I: Service<Request<B>, Response = Response>,
    I::Future: Send + 'static,
{
    type Response = Response;
    type Error = I::Error;
    type Future = ResponseFuture<I::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let session = RequestSession::new(Arc::clone(&self.shared));
        request.extensions_mut().insert(session.clone());
        ResponseFuture::new(self.inner.call(request), session)
    }
}
