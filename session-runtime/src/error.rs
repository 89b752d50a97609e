//! Errors of the request layer and the extractor's rejection.

use std::{error::Error as StdError, fmt, sync::Arc};

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::{chain::Chain, codec::CodecError, migrate::MigrationError, StoreError};

/// A session operation failed. As an extractor rejection or a failed save it becomes a
/// `500 Internal Server Error` (`503 Service Unavailable` when the store is down); the
/// cause is logged, never sent to the client.
///
/// Like every error of this crate, its message says what failed at its own level and leaves
/// the cause to [`source()`](StdError::source), so a report that walks the chain (anyhow's
/// `{:#}`, `tracing` given `&err as &dyn Error`) shows each reason once. The layer's own log
/// lines show the whole chain. To print it yourself:
///
/// ```
/// use std::error::Error;
/// use session_runtime::{SessionError, StoreError};
///
/// let err = SessionError::from(StoreError::backend("connection refused"));
/// assert_eq!(err.to_string(), "the session store failed");
///
/// let mut report = err.to_string();
/// let mut cause = err.source();
/// while let Some(e) = cause {
///     report.push_str(": ");
///     report.push_str(&e.to_string());
///     cause = e.source();
/// }
/// assert_eq!(report, "the session store failed: connection refused");
/// ```
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
    /// The store chose a session ID that cannot travel in a cookie: one with a character
    /// outside RFC 6265's `cookie-octet`s (space, `"`, `,`, `;`, `\\`, control or non-ASCII
    /// bytes), which could end the value and add attributes to `Set-Cookie`.
    InvalidStoreId,
    /// The session cookie would exceed what browsers accept; it was not sent.
    CookieTooLarge {
        /// The `Set-Cookie` value's size in bytes (name, value and attributes).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Two schemas share one version key (the same `namespace`, or two structs of the same
    /// name without one), so they would read and overwrite each other's fields and version.
    /// Reported when the second of them is first used; give one a `namespace`.
    SchemaConflict {
        /// The store key both would keep their version under.
        version_key: &'static str,
        /// The schema that used the key first (its full type name).
        first: &'static str,
        /// The schema used now.
        second: &'static str,
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
            // The wrapped errors speak for themselves: shown as they are (and their
            // sources are this error's), as `#[error(transparent)]` would.
            Self::Store(e) => fmt::Display::fmt(e, f),
            Self::Decode(e) => fmt::Display::fmt(e, f),
            Self::Encode(e) => fmt::Display::fmt(e, f),
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
            Self::SchemaConflict {
                version_key,
                first,
                second,
            } => write!(
                f,
                "session schemas `{first}` and `{second}` share the store keys of one schema \
                 (version key `{version_key}`) and would overwrite each other's fields; give one \
                 of them its own `#[session(namespace = \"..\")]`"
            ),
        }
    }
}

impl StdError for SessionError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Store(e) => e.source(),
            Self::Decode(e) => e.source(),
            Self::Encode(e) => e.source(),
            Self::MissingLayer
            | Self::Vanished
            | Self::ResponseSent
            | Self::IdExhausted
            | Self::InvalidStoreId
            | Self::CookieTooLarge { .. }
            | Self::SchemaConflict { .. } => None,
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
    /// A plain-text `500`/`503`, the cause logged. Behind a layer given
    /// [`SessionLayer::with_error_response`](crate::SessionLayer::with_error_response), the
    /// layer replaces it with the app's own.
    fn into_response(self) -> Response {
        let status = self.status();
        tracing::error!(error = %Chain(&self), "session error");
        let body = if status == StatusCode::SERVICE_UNAVAILABLE {
            "Session storage is unavailable. Please try again shortly."
        } else {
            "Session error."
        };
        let mut response = (status, body).into_response();
        response.extensions_mut().insert(ErrorMark(Arc::new(self)));
        response
    }
}

/// Marks a response built from a [`SessionError`], with the error, so that the layer can
/// answer in the app's format instead.
#[derive(Clone)]
pub(crate) struct ErrorMark(pub(crate) Arc<SessionError>);

/// The app's own error response, [`SessionLayer::with_error_response`](crate::SessionLayer::with_error_response).
#[derive(Clone)]
pub(crate) struct ErrorResponder(pub(crate) Arc<dyn Fn(&SessionError) -> Response + Send + Sync>);

impl fmt::Debug for ErrorResponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ErrorResponder(..)")
    }
}

impl ErrorResponder {
    /// `response` in the app's format, if it was built from a session error.
    pub(crate) fn reshape(&self, response: Response) -> Response {
        match response.extensions().get::<ErrorMark>() {
            Some(ErrorMark(error)) => (self.0)(error),
            None => response,
        }
    }
}

/// A stored record did not fit the schema.
#[derive(Debug)]
#[non_exhaustive]
pub enum DecodeError {
    /// A field's stored value did not decode as the field's type.
    Field {
        /// The schema's name.
        schema: &'static str,
        /// The Rust field name.
        field: &'static str,
        /// The codec's error.
        source: CodecError,
    },
    /// The stored schema version is not a valid version number.
    Version {
        /// The schema's name.
        schema: &'static str,
        /// The codec's error.
        source: CodecError,
    },
    /// The record was written by a newer version of the schema than this code knows.
    NewerVersion {
        /// The schema's name.
        schema: &'static str,
        /// The version in the store.
        stored: u32,
        /// The version the code declares.
        current: u32,
    },
    /// The migration hook failed.
    Migration {
        /// The schema's name.
        schema: &'static str,
        /// The stored version the migration started from.
        from: u32,
        /// The hook's error.
        source: MigrationError,
    },
    /// A stored value does not open under its session's data key (the layer encrypts
    /// values at rest): it was sealed for another session or another field, under a key
    /// the layer no longer has, or written in clear.
    Sealed {
        /// The value's store key.
        key: String,
    },
    /// An entry of a `#[session(entries)]` map field did not decode: its value, or its
    /// stored key (one no key of the map's key type encodes to). The entry is left out of
    /// the map; the others survive.
    Entry {
        /// The schema's name.
        schema: &'static str,
        /// The Rust field name.
        field: &'static str,
        /// The entry's store key.
        key: String,
        /// The codec's error, when the value failed (`None` when the key did).
        source: Option<CodecError>,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Field { schema, field, .. } => {
                write!(f, "session field `{schema}.{field}` could not be decoded")
            }
            Self::Version { schema, .. } => {
                write!(f, "the stored version of session schema `{schema}` is invalid")
            }
            Self::NewerVersion {
                schema,
                stored,
                current,
            } => write!(
                f,
                "session schema `{schema}` was stored by version {stored}, newer than this code's version {current}"
            ),
            Self::Migration { schema, from, .. } => {
                write!(f, "migrating session schema `{schema}` from version {from} failed")
            }
            Self::Entry { schema, field, key, .. } => write!(
                f,
                "entry `{key}` of session map `{schema}.{field}` could not be decoded"
            ),
            Self::Sealed { key } => write!(
                f,
                "the stored value of `{key}` does not open: it was sealed for another session or field, under a key this layer does not have, or written in clear"
            ),
        }
    }
}

impl StdError for DecodeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Field { source, .. } | Self::Version { source, .. } => Some(source),
            Self::Migration { source, .. } => Some(source),
            Self::Entry { source, .. } => source.as_ref().map(|e| e as _),
            Self::NewerVersion { .. } | Self::Sealed { .. } => None,
        }
    }
}

/// A changed field that could not be encoded.
#[derive(Debug)]
pub struct EncodeError {
    /// The schema's name.
    pub schema: &'static str,
    /// The Rust field name.
    pub field: &'static str,
    /// The codec's error.
    pub source: CodecError,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "session field `{}.{}` could not be encoded",
            self.schema, self.field
        )
    }
}

impl StdError for EncodeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CodecError, CodecErrorKind, MigrationError, StoreError};

    fn links(err: &(dyn StdError + 'static)) -> Vec<String> {
        let mut out = vec![err.to_string()];
        let mut cause = err.source();
        while let Some(e) = cause {
            out.push(e.to_string());
            cause = e.source();
        }
        out
    }

    fn errors() -> Vec<Box<dyn StdError + 'static>> {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let garbage = serde_json::from_slice::<Vec<u8>>(b"{x").unwrap_err();
        vec![
            Box::new(SessionError::from(StoreError::backend(refused))),
            Box::new(StoreError::Rejected("record too large".into())),
            Box::new(SessionError::Decode(DecodeError::Field {
                schema: "Cart",
                field: "items",
                source: CodecError::new(CodecErrorKind::Decode, garbage),
            })),
            Box::new(DecodeError::Migration {
                schema: "Cart",
                from: 1,
                source: MigrationError::other("no such theme"),
            }),
        ]
    }

    #[test]
    fn no_message_repeats_its_source() {
        for err in errors() {
            let links = links(&*err);
            assert!(links.len() >= 2, "{links:?}");
            for pair in links.windows(2) {
                assert!(!pair[0].contains(&pair[1]), "{links:?}");
            }
        }
    }

    #[test]
    fn the_log_chain_shows_every_cause_once() {
        let shown: Vec<String> = errors()
            .iter()
            .map(|err| Chain(&**err).to_string())
            .collect();
        assert_eq!(shown[0], "the session store failed: connection refused");
        assert_eq!(
            shown[1],
            "the session store refused the record: record too large"
        );
        assert!(
            shown[2].starts_with(
                "session field `Cart.items` could not be decoded: failed to decode a session field: invalid type: map"
            ),
            "{}",
            shown[2]
        );
        assert_eq!(
            shown[3],
            "migrating session schema `Cart` from version 1 failed: no such theme"
        );
    }
}
