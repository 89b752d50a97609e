//! A codec of the tests' own, for schemas that say `#[session(codec = Marked)]`.

use axum::{routing::post, Router};
use serde::{de::DeserializeOwned, Serialize};
use session_runtime::{
    store::LoadKeys, Codec, CodecError, CodecErrorKind, Key, SessionData, SessionLayer,
    SessionStore, TypedSession,
};

use crate::http::{cookie_pair, id_of, request, send, set_cookies, text};

/// The byte every [`Marked`] value starts with: not valid UTF-8, so a store that is not
/// binary-safe would corrupt it.
pub const MARK: u8 = 0xFF;

/// JSON behind the byte [`MARK`]: tests can tell which codec wrote a value, and that the
/// stores keep bytes that are not text.
#[derive(Debug, Clone, Copy)]
pub struct Marked;

impl Codec for Marked {
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
        let mut out = vec![MARK];
        serde_json::to_writer(&mut out, value)
            .map_err(|e| CodecError::new(CodecErrorKind::Encode, e))?;
        Ok(out)
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        let json = bytes.strip_prefix(&[MARK]).ok_or_else(|| {
            CodecError::new(CodecErrorKind::Decode, "no mark: not a Marked value")
        })?;
        serde_json::from_slice(json).map_err(|e| CodecError::new(CodecErrorKind::Decode, e))
    }
}

/// `value` as [`Marked`] writes it.
pub fn marked(value: &impl Serialize) -> Vec<u8> {
    Marked::encode(value).expect("encodable")
}

/// A schema stored with [`Marked`].
#[derive(SessionData, Debug)]
#[session(codec = Marked, namespace = "badge")]
pub struct Badge {
    /// Goes up by one per request.
    pub level: u8,
}

/// A schema stored as JSON, sharing the session with [`Badge`].
#[derive(SessionData, Debug)]
pub struct Visits {
    /// Goes up by one per request.
    pub count: u32,
}

async fn bump(mut badge: TypedSession<Badge>, mut visits: TypedSession<Visits>) -> String {
    *badge.level_mut() += 1;
    *visits.count_mut() += 1;
    format!("{}|{}", badge.level(), visits.count())
}

/// Checks, through the layer, that `store` keeps a [`Marked`] schema and a JSON schema of
/// one session apart: each field is stored in its own schema's encoding, byte for byte,
/// and read back on the next request.
pub async fn check_codecs_side_by_side<S: SessionStore + Clone>(store: S) {
    let app = Router::new()
        .route("/bump", post(bump))
        .layer(SessionLayer::new(store.clone(), Key::generate()));
    let response = send(&app, request("POST", "/bump", None, "")).await;
    let cookie = cookie_pair(&response);
    assert_eq!(text(response).await, "1|1");
    let response = send(&app, request("POST", "/bump", Some(&cookie), "")).await;
    // Stores that carry the session in the cookie send a new one on every change.
    let cookie = if set_cookies(&response).is_empty() {
        cookie
    } else {
        cookie_pair(&response)
    };
    assert_eq!(text(response).await, "2|2");
    let record = store
        .load(&id_of(&cookie), LoadKeys::All)
        .await
        .expect("the store answers")
        .expect("the session is stored");
    assert_eq!(&record.fields["badge.level"][..], marked(&2u8));
    assert_eq!(&record.fields["count"][..], b"2");
}
