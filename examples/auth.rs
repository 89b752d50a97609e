//! A minimal authentication layer on the public API, as a login crate would build it:
//! login with a new session ID, logout, a `CurrentUser` extractor that answers `401`, and a
//! `login_required` middleware that redirects to the login page. Generic over the user ID
//! type; the app below uses `u64`.
//!
//! `cargo run --example auth`, then open <http://127.0.0.1:3000>.

use axum::{
    extract::Form,
    middleware,
    response::{Html, IntoResponse, Redirect},
    routing::{get, post},
    Router,
};
use serde::Deserialize;
use session_runtime::{Key, MemoryStore, SessionLayer};

/// What would be the login crate.
pub mod auth {
    use axum::{
        extract::{FromRequestParts, Request},
        http::{request::Parts, StatusCode},
        middleware::Next,
        response::{IntoResponse, Redirect, Response},
    };
    use serde::{de::DeserializeOwned, Serialize};
    use session_runtime::{SessionData, SessionError, TypedSession};

    /// The bounds a user ID type needs.
    pub trait UserId: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {}
    impl<T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static> UserId for T {}

    /// What the crate keeps in the session: who is logged in.
    #[derive(SessionData)]
    #[session(namespace = "auth")]
    pub struct Login<Id> {
        user: Option<Id>,
    }

    /// Logs `user` in: a new session ID (so an ID planted before login is worthless).
    pub fn log_in<Id: UserId>(session: &mut TypedSession<Login<Id>>, user: Id) {
        session.set_user(Some(user));
        session.regenerate();
    }

    /// Logs out: the session ends, and the browser drops its cookie.
    pub fn log_out<Id: UserId>(session: &mut TypedSession<Login<Id>>) {
        session.destroy();
    }

    /// The logged-in user, as an extractor: `401 Unauthorized` without one.
    ///
    /// It extracts the request's session again: that is cheap (the record is loaded once
    /// per request, whatever extracts it) and sees the changes other handles handed over.
    pub struct CurrentUser<Id>(pub Id);

    /// Why there is no current user.
    #[derive(Debug)]
    pub enum NoUser {
        /// Nobody is logged in.
        Anonymous,
        /// The session could not be read (its store failed, say).
        Session(SessionError),
    }

    impl IntoResponse for NoUser {
        fn into_response(self) -> Response {
            match self {
                Self::Anonymous => (StatusCode::UNAUTHORIZED, "log in first").into_response(),
                Self::Session(err) => err.into_response(),
            }
        }
    }

    impl<S: Send + Sync, Id: UserId> FromRequestParts<S> for CurrentUser<Id> {
        type Rejection = NoUser;

        async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, NoUser> {
            let session = TypedSession::<Login<Id>>::from_request_parts(parts, state)
                .await
                .map_err(NoUser::Session)?;
            session
                .user()
                .clone()
                .map(CurrentUser)
                .ok_or(NoUser::Anonymous)
        }
    }

    /// Middleware: requests without a logged-in user are sent to `/login?next=<path>`.
    pub async fn login_required<Id: UserId>(request: Request, next: Next) -> Response {
        let (mut parts, body) = request.into_parts();
        match CurrentUser::<Id>::from_request_parts(&mut parts, &()).await {
            Ok(_) => next.run(Request::from_parts(parts, body)).await,
            Err(NoUser::Anonymous) => {
                let path = parts.uri.path();
                let safe = path
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-_".contains(&b));
                let next = if safe { path } else { "/" };
                Redirect::to(&format!("/login?next={next}")).into_response()
            }
            Err(err) => err.into_response(),
        }
    }
}

use auth::{log_in, log_out, login_required, CurrentUser, Login};
use session_runtime::TypedSession;

/// The login form's fields.
#[derive(Deserialize)]
pub struct LoginForm {
    user: u64,
}

async fn login_page() -> Html<&'static str> {
    Html(
        "<form method=\"post\" action=\"/login\">\
         <label>User number <input name=\"user\" type=\"number\" required></label> \
         <button>Log in</button></form>",
    )
}

async fn login(mut session: TypedSession<Login<u64>>, Form(form): Form<LoginForm>) -> Redirect {
    // A real app checks a password or an identity provider here.
    log_in(&mut session, form.user);
    Redirect::to("/private")
}

async fn logout(mut session: TypedSession<Login<u64>>) -> Redirect {
    log_out(&mut session);
    Redirect::to("/")
}

async fn me(CurrentUser(user): CurrentUser<u64>) -> String {
    format!("user {user}")
}

async fn private(CurrentUser(user): CurrentUser<u64>) -> impl IntoResponse {
    Html(format!(
        "<p>Only for logged-in users: you are user {user}.</p>\
         <form method=\"post\" action=\"/logout\"><button>Log out</button></form>"
    ))
}

/// The app's routes, without the session layer.
pub fn routes() -> Router {
    Router::new()
        .route("/private", get(private))
        .route_layer(middleware::from_fn(login_required::<u64>))
        .route(
            "/",
            get(|| async { Html("<a href=\"/private\">private page</a>") }),
        )
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
}

#[allow(dead_code)] // Not called when the tests include this file.
#[tokio::main]
async fn main() {
    let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
        .with_insecure_cookie_over_http()
        .expect("a development layer");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000")
        .await
        .expect("port 3000 is free");
    println!("listening on http://127.0.0.1:3000");
    axum::serve(listener, routes().layer(layer))
        .await
        .expect("the server runs");
}
