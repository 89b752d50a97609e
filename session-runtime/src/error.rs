//! Errors of the request layer and the extractor's rejection.

use std::{error::Error as StdError, fmt};

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::{decode::DecodeError, decode::EncodeError, StoreError};

/// A session operation failed. As an extractor rejection or a failed save it becomes a
/// `500 Internal Server Error` (`503 Service Unavailable` when the store is down); the
/// cause is logged, never sent to the client.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionError {
    /// `TypedSession` was extracted in a request that did not pass through a `SessionLayer`.
    MissingLayer,
    /// The store failed.
    Store(StoreError),
    /// The stored record did not fit the schema, under `DecodePolicy::Strict`.
    Decode(DecodeError),
    /// A changed field could not be encoded.
    Encode(EncodeError),
    /// The session was deleted or expired in the store while the request ran; its changes
    /// were not saved.
    Vanished,
    /// A save made after the response was sent (from an extractor moved into a spawned
    /// task) needed to give the browser a new cookie: a new session, a regenerated ID, or a
    /// new value from a store that keeps the session in the cookie. The browser can no
    /// longer learn it, so those changes were not kept (a `destroy()` made before them
    /// still ended the old session).
    ResponseSent,
    /// No free session ID was found (the store kept reporting collisions).
    IdExhausted,
    /// The store chose a session ID that cannot travel in a cookie.
    InvalidStoreId,
    /// The session cookie would exceed what browsers accept; it was not sent.
    CookieTooLarge {
        /// The `Set-Cookie` value's size in bytes (name, value and attributes).
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl SessionError {
    /// The status code this error is answered with.
    ///
    /// ```
    /// use axum::http::StatusCode;
    /// use session_runtime::{SessionError, StoreError};
    ///
    /// let down = SessionError::from(StoreError::backend("connection refused"));
    /// assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    /// assert_eq!(SessionError::MissingLayer.status(), StatusCode::INTERNAL_SERVER_ERROR);
    /// ```
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Store(StoreError::Backend(_)) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingLayer => f.write_str(
                "TypedSession was used in a request without SessionLayer; add `.layer(SessionLayer::new(..))` to the router",
            ),
            Self::Store(e) => write!(f, "session store error: {e}"),
            Self::Decode(e) => write!(f, "session record rejected: {e}"),
            Self::Encode(e) => write!(f, "session not saved: {e}"),
            Self::Vanished => f.write_str(
                "the session was deleted or expired while the request ran; its changes were not saved",
            ),
            Self::ResponseSent => f.write_str(
                "the session needed a new cookie after the response was sent, so the change was not kept; \
                 create, regenerate or change a cookie-stored session before the handler returns",
            ),
            Self::IdExhausted => f.write_str("could not find a free session ID"),
            Self::InvalidStoreId => {
                f.write_str("the session store chose an ID that is not valid in a cookie")
            }
            Self::CookieTooLarge { size, limit } => write!(
                f,
                "the session cookie would be {size} bytes, over the {limit}-byte limit browsers accept; \
                 keep less data in a cookie-stored session or use a server-side store"
            ),
        }
    }
}

impl StdError for SessionError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Store(e) => Some(e),
            Self::Decode(e) => Some(e),
            Self::Encode(e) => Some(e),
            Self::MissingLayer
            | Self::Vanished
            | Self::ResponseSent
            | Self::IdExhausted
            | Self::InvalidStoreId
            | Self::CookieTooLarge { .. } => None,
        }
    }
}

impl From<StoreError> for SessionError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::Vanished,
            other => Self::Store(other),
        }
    }
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let status = self.status();
        // The message already ends with its cause's (every variant with a source shows it).
        tracing::error!(error = %self, "session error");
        let body = if status == StatusCode::SERVICE_UNAVAILABLE {
            "Session storage is unavailable. Please try again shortly."
        } else {
            "Session error."
        };
        (status, body).into_response()
    }
}
