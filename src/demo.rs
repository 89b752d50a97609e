//! The demo app: a visit counter, login and logout, a shopping cart, and a "your sessions"
//! page (each browser the user logged in with; sign out one, or every other), as plain HTML
//! forms.
//!
//! Run it with `cargo run --example demo` and open <http://127.0.0.1:3000>.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    time::{Duration, SystemTime},
};

use axum::{
    extract::{Form, Query},
    http::{header, HeaderMap},
    response::{Html, IntoResponse, Redirect},
    routing::{get, post},
    Router,
};
use serde::Deserialize;
use session_runtime::{
    index::SessionHandle,
    store::{CleanupTask, LoadKeys, Patch, Record, WriteResult},
    Key, MySqlStore, PostgresStore, SessionData, SessionError, SessionId, SessionLayer,
    SessionStore, SqliteStore, StoreError, TypedSession,
};
use tracing_subscriber::EnvFilter;

/// Counts the visitor's page views.
#[derive(SessionData, Debug)]
pub struct Visitor {
    /// Page views in this session.
    pub visits: u64,
}

/// Who is logged in.
#[derive(SessionData, Debug)]
#[session(namespace = "auth")]
pub struct Auth {
    /// The user's name, once logged in.
    pub user: Option<String>,
}

/// What the page shows of the session's own life: the ID it had before login (the ID
/// changes at login), until shown.
#[derive(SessionData, Debug)]
#[session(namespace = "trace")]
pub struct Trace {
    /// A short form of the ID before login.
    pub previous_id: Option<String>,
}

/// The store the demo runs on, for the page to name.
#[derive(Debug, Clone)]
pub struct StoreName(pub String);

/// A store that remembers, per session, which store keys its last write set and removed,
/// so that the page can show what the last request wrote (and what it left alone). Demo
/// only: it keeps the last write of at most 1000 sessions.
#[derive(Clone)]
pub struct Watched<S>(pub S);

/// The store keys a request's writes set, and those they removed.
type Writes = (Vec<String>, Vec<String>);

tokio::task_local! {
    /// The number of the request being served, set by [`numbered`].
    static REQUEST: u64;
}

/// Middleware, outside the session layer: numbers each request, so that the demo tells
/// the writes of one request (an early save and the final one) from the next one's.
pub async fn numbered(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let number = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    REQUEST.scope(number, next.run(request)).await
}

type Watch = std::collections::HashMap<String, (Option<u64>, Writes)>;

fn last_writes() -> &'static std::sync::Mutex<Watch> {
    static LAST: std::sync::OnceLock<std::sync::Mutex<Watch>> = std::sync::OnceLock::new();
    LAST.get_or_init(Default::default)
}

fn watch(id: &SessionId, patch: &Patch) {
    let request = REQUEST.try_with(|n| *n).ok();
    let mut last = last_writes()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if last.len() >= 1000 {
        last.clear();
    }
    let entry = last.entry(id.as_str().to_owned()).or_default();
    // A later write of the same request adds to its writes; another request's replaces them.
    if request.is_none() || entry.0 != request {
        *entry = (request, Writes::default());
    }
    let (set, removed) = &mut entry.1;
    set.extend(patch.set.iter().map(|(k, _)| k.to_string()));
    removed.extend(patch.remove.iter().map(ToString::to_string));
}

/// The keys the last request that wrote session `id` set and removed, if the demo saw it.
pub fn last_write(id: &SessionId) -> Option<Writes> {
    last_writes()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(id.as_str())
        .map(|(_, writes)| writes.clone())
}

impl<S: SessionStore> SessionStore for Watched<S> {
    async fn load(&self, id: &SessionId, keys: LoadKeys<'_>) -> Result<Option<Record>, StoreError> {
        self.0.load(id, keys).await
    }
    async fn create(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        let replaced = self.0.create(id, patch).await?;
        watch(replaced.as_ref().unwrap_or(id), patch);
        Ok(replaced)
    }
    async fn save(&self, id: &SessionId, patch: &Patch) -> WriteResult {
        let replaced = self.0.save(id, patch).await?;
        watch(replaced.as_ref().unwrap_or(id), patch);
        Ok(replaced)
    }
    async fn regenerate(&self, old: &SessionId, new: &SessionId, patch: &Patch) -> WriteResult {
        let replaced = self.0.regenerate(old, new, patch).await?;
        watch(replaced.as_ref().unwrap_or(new), patch);
        Ok(replaced)
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.0.delete(id).await
    }
    async fn touch(&self, id: &SessionId, expires_at: SystemTime) -> WriteResult {
        self.0.touch(id, expires_at).await
    }
    fn supports_index(&self) -> bool {
        self.0.supports_index()
    }
    async fn find_indexed(
        &self,
        index: &str,
        term: &[u8],
    ) -> Result<Vec<(SessionId, Record)>, StoreError> {
        self.0.find_indexed(index, term).await
    }
    async fn delete_indexed(
        &self,
        id: &SessionId,
        index: &str,
        term: &[u8],
    ) -> Result<bool, StoreError> {
        self.0.delete_indexed(id, index, term).await
    }
}

/// A one-time message for the next page ("Added 3 × apples"): set by an action, taken (and
/// so removed) by the page that shows it.
#[derive(SessionData, Debug)]
#[session(namespace = "flash")]
pub struct Flash {
    /// The message, until shown.
    pub message: Option<String>,
}

/// The logged-in user as the session index knows it: the sessions of one user are listed
/// by `user`. A schema of its own, so that the demo also runs on the cookie store, which
/// cannot index (it leaves this schema out: see [`routes_without_index`]).
#[derive(SessionData, Debug)]
#[session(namespace = "account")]
pub struct Account {
    /// The user's name, once logged in.
    #[session(index)]
    pub user: Option<String>,
    /// The browser the user logged in with, from its `User-Agent`.
    pub device: String,
}

/// The shopping cart: item name → quantity, stored entry by entry, so two tabs that add
/// different items at the same moment both keep theirs.
#[derive(SessionData, Debug)]
#[session(namespace = "cart")]
pub struct Cart {
    /// The cart's lines: name → how many.
    #[session(entries(max = 100, max_key_len = 200))]
    pub items: BTreeMap<String, u32>,
}

/// How often the demo deletes expired sessions from a database.
pub const CLEANUP_EVERY: Duration = Duration::from_secs(300);

/// The session layer on the database at `url` (`postgres://`, `mysql://` or `mariadb://`,
/// `sqlite:`), its tables named with `prefix` and created if missing, with a clean-up task
/// (keep it while serving), and what to print about it.
pub async fn database_layer(
    url: &str,
    key: Key,
    prefix: &str,
) -> Result<(SessionLayer, CleanupTask, String), Box<dyn std::error::Error>> {
    if url.starts_with("postgres") {
        let store = PostgresStore::connect(url).await?.with_table_prefix(prefix);
        store.migrate().await?;
        let cleanup = store.spawn_cleanup(CLEANUP_EVERY);
        return Ok((
            SessionLayer::new(Watched(store), key),
            cleanup,
            format!("sessions in PostgreSQL at {url}"),
        ));
    }
    if url.starts_with("mysql") || url.starts_with("mariadb") {
        let store = MySqlStore::connect(url.replacen("mariadb", "mysql", 1))
            .await?
            .with_table_prefix(prefix);
        store.migrate().await?;
        let cleanup = store.spawn_cleanup(CLEANUP_EVERY);
        return Ok((
            SessionLayer::new(Watched(store), key),
            cleanup,
            format!("sessions in MariaDB/MySQL at {url}"),
        ));
    }
    if url.starts_with("sqlite") {
        let store = SqliteStore::connect(url).await?.with_table_prefix(prefix);
        store.migrate().await?;
        let cleanup = store.spawn_cleanup(CLEANUP_EVERY);
        return Ok((
            SessionLayer::new(Watched(store), key),
            cleanup,
            format!("sessions in SQLite at {url}"),
        ));
    }
    Err(format!("DATABASE_URL={url}: use a postgres://, mysql:// or sqlite: URL").into())
}

/// The demo's error page for a session error (the store is down, say): a page with its
/// reason and a way back, with the status the layer would have answered.
pub fn error_page(err: &SessionError) -> axum::response::Response {
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sorry</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}</style></head>\
         <body><h1>Sorry, that did not work</h1><p id=\"error\">{}</p>\
         <p><a href=\"/\">Back to the demo</a></p></body></html>",
        escape(&err.to_string())
    );
    (err.status(), Html(page)).into_response()
}

/// Serves the demo with `layer` on `DEMO_ADDR` (default `127.0.0.1:3000`) until Ctrl-C,
/// logging through `tracing` (`RUST_LOG` sets the level, default `info`).
pub async fn serve(
    layer: SessionLayer,
    store: impl Into<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    serve_routes(routes(), layer, store).await
}

/// [`serve`] with other routes: [`routes_without_index`] for a store that cannot index.
pub async fn serve_routes(
    routes: Router,
    layer: SessionLayer,
    store: impl Into<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(demo_filter(std::env::var("RUST_LOG").ok().as_deref()))
        .try_init();
    // The demo serves plain HTTP on loopback; over HTTPS keep the default `Secure`.
    let app = routes
        .layer(axum::Extension(StoreName(store.into())))
        .layer(
            layer
                .with_insecure_cookie_over_http()?
                .with_error_response(error_page),
        )
        .layer(axum::middleware::from_fn(numbered));
    let addr = std::env::var("DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!("demo listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// The demo's routes, with the "your sessions" page; add a `SessionLayer` on a store that
/// keeps the session index to serve them.
pub fn routes() -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", post(login_indexed))
        .route("/logout", post(logout))
        .route("/cart/add", post(add_item))
        .route("/cart/clear", post(clear_cart))
        .route("/sessions", get(sessions))
        .route("/sessions/revoke", post(revoke))
        .route("/sessions/revoke-others", post(revoke_others))
        .fallback(not_found)
}

/// The demo's routes without the session index, for a store that cannot keep it (the
/// cookie store).
pub fn routes_without_index() -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/cart/add", post(add_item))
        .route("/cart/clear", post(clear_cart))
        .fallback(not_found)
}

/// A page for an address the demo does not have, with a way back.
async fn not_found() -> impl IntoResponse {
    (
        axum::http::StatusCode::NOT_FOUND,
        Html(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Not found</title>\
             <style>body{font-family:sans-serif;max-width:40em;margin:2em auto}</style></head>\
             <body><h1>There is no such page</h1><p><a href=\"/\">Back to the demo</a></p>\
             </body></html>",
        ),
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether a save failed because the session would be too large for its store (a session
/// kept in a 4 KB cookie, say): the change is dropped and the stored session stays.
fn too_large(err: &SessionError) -> bool {
    matches!(
        err,
        SessionError::Store(StoreError::Rejected(_)) | SessionError::CookieTooLarge { .. }
    )
}

/// The first characters of an ID: enough to see it change, not enough to use it.
fn short(id: &SessionId) -> String {
    let mut short: String = id.as_str().chars().take(8).collect();
    short.push('…');
    short
}

/// The session cookie (`id=...`) in a request's `Cookie` header: its size in bytes.
fn cookie_size(headers: &HeaderMap) -> Option<usize> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .find(|pair| pair.starts_with("id="))
        .map(str::len)
}

/// What the page says about the session itself: its ID (and the one before login), the
/// store, the cookie, and what the last request wrote.
fn session_panel(
    auth: &TypedSession<Auth>,
    previous: Option<String>,
    headers: &HeaderMap,
    store: Option<&StoreName>,
    last: Option<Writes>,
) -> String {
    let mut panel = String::from("<section id=\"session\"><h2>This session</h2><ul>");
    match auth.id() {
        Some(id) => {
            let _ = write!(
                panel,
                "<li id=\"session-id\">ID <code>{}</code>",
                escape(&short(&id))
            );
            if let Some(previous) = previous {
                let _ = write!(
                    panel,
                    " (it was <code id=\"previous-id\">{}</code> before you logged in: a new ID at \
                     login makes an ID planted before it worthless)",
                    escape(&previous)
                );
            }
            panel.push_str("</li>");
        }
        None => panel.push_str(
            "<li id=\"session-id\">No session yet: nothing has been written, so nothing is \
             stored and no cookie was sent.</li>",
        ),
    }
    if let Some(store) = store {
        let _ = write!(
            panel,
            "<li id=\"store\">Stored in: {}</li>",
            escape(&store.0)
        );
    }
    let metadata = auth.metadata();
    let expiry = match (metadata.session_only, metadata.expires_at) {
        (true, _) => "ends when the browser closes".to_owned(),
        (false, Some(at)) => {
            let secs = at
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .as_secs();
            format!(
                "expires in {} h {} min unless used",
                secs / 3600,
                secs % 3600 / 60
            )
        }
        (false, None) => "no expiry known".to_owned(),
    };
    if let Some(size) = cookie_size(headers) {
        let _ = write!(
            panel,
            "<li id=\"cookie\">Cookie: {size} bytes, {expiry}</li>"
        );
    }
    if let Some((set, removed)) = last {
        let list = |keys: &[String]| {
            if keys.is_empty() {
                "nothing".to_owned()
            } else {
                keys.iter()
                    .map(|k| format!("<code>{}</code>", escape(k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let _ = write!(
            panel,
            "<li id=\"writes\">The last write stored {} and removed {}. Every other field was \
             left as it was.</li>",
            list(&set),
            list(&removed)
        );
    }
    panel.push_str(
        "</ul><p>What this shows: the session is a typed struct per concern (visits, login, \
         cart, messages), stored field by field, and the cart item by item. A request writes \
         only what it changed, so the race below (50 requests at once, each adding another \
         item) keeps every item, where a store that saves the whole session per request keeps \
         one.</p></section>",
    );
    panel
}

/// The race: 50 requests at once from the browser, each adding another item.
const RACE: &str = "<p><button id=\"race\" type=\"button\">Race: add 50 items at once</button> \
    <span id=\"race-result\"></span></p>\
    <script>\
    document.getElementById('race').onclick = async () => {\
      const round = Date.now() % 100000;\
      const adds = [...Array(50).keys()].map(i => fetch('/cart/add', {method: 'POST',\
        headers: {'content-type': 'application/x-www-form-urlencoded'},\
        body: 'name=race-' + round + '-' + String(i).padStart(2, '0'), redirect: 'manual'}));\
      await Promise.all(adds);\
      location.href = '/?race=' + round;\
    };\
    </script>";

/// The query of the page after a race: its round.
#[derive(Debug, Deserialize)]
pub struct HomeQuery {
    race: Option<u32>,
    /// Set after an add the store refused as too large.
    full: Option<u8>,
}

#[allow(clippy::too_many_arguments)] // one extractor per schema, as the demo shows
async fn home(
    mut visitor: TypedSession<Visitor>,
    auth: TypedSession<Auth>,
    cart: TypedSession<Cart>,
    mut flash: TypedSession<Flash>,
    mut trace: TypedSession<Trace>,
    headers: HeaderMap,
    store: Option<axum::Extension<StoreName>>,
    Query(query): Query<HomeQuery>,
) -> impl IntoResponse {
    // The write before this request's own, which the page reports.
    let last = auth.id().as_ref().and_then(last_write);
    *visitor.visits_mut() += 1;
    // Saved now, so that a session at its store's size limit still gets its page: the
    // count then stays where it is, and nothing else is lost.
    // (A new session is small: it is created after the page, as any other.)
    let full = match visitor.is_new() {
        true => false,
        false => match visitor.save().await {
            Ok(()) => false,
            Err(err) if too_large(&err) => true,
            Err(err) => return error_page(&err),
        },
    };
    let logged_in = auth.user().is_some();
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Typed sessions demo</title>\
         <style>body{font-family:sans-serif;max-width:44em;margin:2em auto;line-height:1.4}\
         form{margin:.5em 0}code{background:#f3f3f3;padding:0 .2em}\
         #flash{background:#eef6ee;border:1px solid #9c9;padding:.4em .8em}\
         #session{border-top:1px solid #ccc;margin-top:2em;font-size:.95em}</style>\
         </head><body><h1>Typed sessions demo</h1>",
    );
    // Shown once: taking it removes it from the store with this request's save.
    if let Some(message) = flash.take_message() {
        let _ = write!(page, "<p id=\"flash\">{}</p>", escape(&message));
    }
    if query.full.is_some() {
        page.push_str(
            "<p id=\"flash\">The cart is too large for this store (a session kept in a cookie \
             holds about 4 KB): the item was not added.</p>",
        );
    }
    if full {
        page.push_str(
            "<p id=\"full\">This session is at its store's size limit, so this visit was not \
             counted: empty the cart to make room.</p>",
        );
    }
    let _ = write!(
        page,
        "<p id=\"visits\">You have viewed this page {} time{} in this session.</p>",
        visitor.visits(),
        if *visitor.visits() == 1 { "" } else { "s" }
    );
    match auth.user() {
        Some(user) => {
            let _ = write!(
                page,
                "<p id=\"user\">Logged in as <b>{}</b>. <a href=\"/sessions\">Your sessions</a></p>\
                 <form method=\"post\" action=\"/logout\"><button>Log out</button></form>",
                escape(user)
            );
        }
        None => page.push_str(
            "<form method=\"post\" action=\"/login\">\
             <label>Name <input name=\"user\" required maxlength=\"64\"></label> \
             <label><input type=\"checkbox\" name=\"remember\" value=\"yes\"> Remember me for 30 days</label> \
             <button>Log in</button></form>",
        ),
    }
    page.push_str("<h2>Cart</h2><ul id=\"cart\">");
    for (name, quantity) in cart.items() {
        let _ = write!(page, "<li>{quantity} × {}</li>", escape(name));
    }
    if cart.items().is_empty() {
        page.push_str("<li><i>empty</i></li>");
    }
    page.push_str(
        "</ul><form method=\"post\" action=\"/cart/add\">\
         <input name=\"name\" required maxlength=\"64\" placeholder=\"apples\"> \
         <input name=\"quantity\" type=\"number\" min=\"1\" max=\"999\" value=\"1\"> \
         <button>Add</button></form>\
         <form method=\"post\" action=\"/cart/clear\"><button>Empty the cart</button></form>",
    );
    page.push_str(RACE);
    if let Some(round) = query.race {
        let prefix = format!("race-{round}-");
        let kept = cart
            .items()
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .count();
        let _ = write!(
            page,
            "<p id=\"race-kept\">The race's 50 concurrent requests: {kept} of 50 items are in the cart.</p>"
        );
    }
    page.push_str(&session_panel(
        &auth,
        trace.take_previous_id(),
        &headers,
        store.as_ref().map(|e| &e.0),
        last,
    ));
    page.push_str("</body></html>");
    private(logged_in, Html(page)).into_response()
}

/// A page with a logged-in user's data is never stored by a cache, the browser's included
/// (its back button after logout shows nothing of it).
fn private(logged_in: bool, page: Html<String>) -> axum::response::Response {
    let mut response = page.into_response();
    if logged_in {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    response
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user: String,
    remember: Option<String>,
}

async fn login(
    mut auth: TypedSession<Auth>,
    mut flash: TypedSession<Flash>,
    mut trace: TypedSession<Trace>,
    Form(form): Form<LoginForm>,
) -> impl IntoResponse {
    let user = form.user.trim();
    if user.is_empty() || user.len() > 64 {
        flash.set_message(Some("A name is 1 to 64 characters.".into()));
        return Redirect::to("/");
    }
    trace.set_previous_id(auth.id().as_ref().map(short));
    auth.set_user(Some(user.to_owned()));
    // A new session ID at login: an ID planted before login is worthless after it.
    auth.regenerate();
    if form.remember.is_some() {
        auth.set_idle_timeout(Some(Duration::from_secs(30 * 24 * 60 * 60)));
        flash.set_message(Some(format!(
            "Logged in as {user}, remembered for 30 days."
        )));
    } else {
        // Without "remember me", the cookie ends with the browser.
        auth.set_session_only_cookie(true);
        flash.set_message(Some(format!(
            "Logged in as {user} until you close the browser."
        )));
    }
    Redirect::to("/")
}

/// Login on a store that indexes: the user's name also goes into the index, with the
/// browser it logged in with.
async fn login_indexed(
    mut account: TypedSession<Account>,
    headers: HeaderMap,
    auth: TypedSession<Auth>,
    flash: TypedSession<Flash>,
    trace: TypedSession<Trace>,
    form: Form<LoginForm>,
) -> impl IntoResponse {
    let user = form.user.trim();
    if !user.is_empty() && user.len() <= 64 {
        account.set_user(Some(user.to_owned()));
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        account.set_device(device(agent));
    }
    // Handed to the index before the login regenerates the ID (both are saved together).
    drop(account);
    login(auth, flash, trace, form).await
}

/// A short name for the browser behind a `User-Agent`.
pub fn device(agent: &str) -> String {
    let browser = [
        ("Edg/", "Edge"),
        ("Firefox/", "Firefox"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(mark, _)| agent.contains(mark))
    .map(|(_, name)| *name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("Windows", "Windows"),
        ("Mac OS", "macOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(mark, _)| agent.contains(mark))
    .map(|(_, name)| *name);
    match (browser, system) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(browser), None) => browser.to_owned(),
        (None, Some(system)) => format!("a browser on {system}"),
        (None, None) if agent.is_empty() => "an unknown browser".to_owned(),
        (None, None) => agent.chars().take(40).collect(),
    }
}

/// How long ago `at` was, in words.
fn ago(at: Option<SystemTime>) -> String {
    let Some(at) = at else {
        return "unknown".to_owned();
    };
    let secs = SystemTime::now()
        .duration_since(at)
        .unwrap_or_default()
        .as_secs();
    match secs {
        0..=59 => "just now".to_owned(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// "Your sessions": every browser the user is logged in with.
async fn sessions(account: TypedSession<Account>) -> Result<impl IntoResponse, SessionError> {
    let Some(user) = account.user().clone() else {
        return Ok(Redirect::to("/").into_response());
    };
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Your sessions</title>\
         <style>body{font-family:sans-serif;max-width:40em;margin:2em auto}td,th{padding:.2em .6em;text-align:left}</style>\
         </head><body>",
    );
    let _ = write!(
        page,
        "<h1>Your sessions, {}</h1><p>Each browser you are logged in with. Signing one out \
         ends its session at once, wherever it is.</p>\
         <table id=\"sessions\"><tr><th>Browser</th><th>Logged in</th><th>Last seen</th><th></th></tr>",
        escape(&user)
    );
    for session in account.sessions(Account::by_user()).await? {
        let device = session.data::<Account>().device;
        let action = if session.is_current() {
            "<b>this browser</b>".to_owned()
        } else {
            format!(
                "<form method=\"post\" action=\"/sessions/revoke\">\
                 <input type=\"hidden\" name=\"handle\" value=\"{}\"><button>Sign out</button></form>",
                session.handle()
            )
        };
        let _ = write!(
            page,
            "<tr class=\"session\"><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
            escape(&device),
            ago(session.created()),
            ago(session.last_seen()),
        );
    }
    page.push_str(
        "</table><form method=\"post\" action=\"/sessions/revoke-others\">\
         <button>Sign out everywhere else</button></form><p><a href=\"/\">Back</a></p></body></html>",
    );
    Ok(private(true, Html(page)))
}

/// The sign-out-one form.
#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    handle: String,
}

async fn revoke(
    account: TypedSession<Account>,
    Form(form): Form<RevokeForm>,
) -> Result<Redirect, SessionError> {
    if let Ok(handle) = form.handle.parse::<SessionHandle>() {
        account.revoke(Account::by_user(), &handle).await?;
    }
    Ok(Redirect::to("/sessions"))
}

async fn revoke_others(account: TypedSession<Account>) -> Result<Redirect, SessionError> {
    account.revoke_others(Account::by_user()).await?;
    Ok(Redirect::to("/sessions"))
}

async fn logout(mut auth: TypedSession<Auth>, mut flash: TypedSession<Flash>) -> Redirect {
    auth.destroy();
    // Set after the destroy: it starts the new, anonymous session.
    flash.set_message(Some(
        "Logged out: that session is gone from the store.".into(),
    ));
    Redirect::to("/")
}

/// The add-to-cart form.
#[derive(Debug, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    name: String,
    /// Text, so that a cleared box is a message, not a rejected form.
    #[serde(default)]
    quantity: String,
}

async fn add_item(
    mut cart: TypedSession<Cart>,
    mut flash: TypedSession<Flash>,
    Form(form): Form<AddForm>,
) -> axum::response::Response {
    let name = form.name.trim();
    let quantity = match form.quantity.trim() {
        "" => Some(1),
        text => text.parse::<u32>().ok().filter(|q| (1..=999).contains(q)),
    };
    let refused = match quantity {
        _ if name.is_empty() || name.len() > 64 => "An item's name is 1 to 64 characters.",
        None => "The quantity is a whole number from 1 to 999.",
        // Only this item's entry is written: a concurrent add of another item keeps its own.
        Some(quantity) => match cart.items_mut().get_or_insert_with(name, || 0) {
            Ok(line) => {
                *line = line.saturating_add(quantity).min(999);
                flash.set_message(Some(format!("Added {quantity} × {name}.")));
                // Handed over, and saved now with the item: a session too large for its
                // store (a 4 KB cookie) is refused here, and the stored one stays as it
                // was; the refusal is said in the address, as the session has no room.
                drop(flash);
                return match cart.save().await {
                    Ok(()) => Redirect::to("/").into_response(),
                    Err(err) if too_large(&err) => Redirect::to("/?full=1").into_response(),
                    Err(err) => error_page(&err),
                };
            }
            Err(_) => "The cart holds at most 100 lines: remove some first.",
        },
    };
    flash.set_message(Some(refused.to_owned()));
    Redirect::to("/").into_response()
}

async fn clear_cart(mut cart: TypedSession<Cart>, mut flash: TypedSession<Flash>) -> Redirect {
    cart.items_mut().clear();
    flash.set_message(Some("The cart is empty.".into()));
    Redirect::to("/")
}

/// The demo's log filter: `RUST_LOG` (default `info`), and the demo's own lines (the
/// address it listens on) at `info` unless `RUST_LOG` names the demo itself, so that
/// `RUST_LOG=session_runtime=trace` shows the library's detail without hiding them.
pub fn demo_filter(rust_log: Option<&str>) -> EnvFilter {
    let spec = rust_log.unwrap_or("info");
    let own = env!("CARGO_CRATE_NAME");
    if spec.contains(own) {
        EnvFilter::new(spec)
    } else {
        EnvFilter::new(format!("{spec},{own}=info"))
    }
}
