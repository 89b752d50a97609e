//! The session index, as users meet it: "your devices" in a handler (list, revoke one,
//! revoke the others), an admin revoking a user's sessions without a request, and the
//! races: a revoked session's in-flight request, logins while "revoke all" runs, 100
//! concurrent logins of one user. Every test runs on each store that keeps the index.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Router,
};
use session_runtime::{
    index::{IndexedSession, SessionHandle, Sessions},
    Key, SessionData, SessionError, SessionLayer, SessionStore, TypedSession,
};
use session_runtime::{RedisLayout, RedisStore};
use session_suite::{
    http::{id_of, request, send, Browser},
    redis_harness::{can_start_servers, shared_store, unique_prefix, RedisCluster, SentinelSetup},
};
use tokio::sync::Notify;

/// (In a namespace: the README's `Auth` below has the struct's name to itself.)
#[derive(SessionData)]
#[session(namespace = "auth")]
struct Auth {
    #[session(index)]
    user_id: Option<u64>,
    device: String,
    visits: u64,
}

/// A second indexed schema in the same sessions, with a `String` index.
#[derive(SessionData)]
#[session(namespace = "team")]
struct Team {
    #[session(index)]
    name: String,
}

#[derive(Clone)]
struct App {
    /// Handlers wait on it where a test needs a request in flight.
    gate: Arc<Notify>,
    /// Told when a gated request has loaded its session.
    inside: Arc<Notify>,
}

async fn login(
    mut auth: TypedSession<Auth>,
    Path((user, device)): Path<(u64, String)>,
) -> &'static str {
    auth.set_user_id(Some(user));
    auth.set_device(device);
    auth.regenerate();
    "in"
}

async fn whoami(auth: TypedSession<Auth>) -> String {
    auth.user_id().map_or("-".to_owned(), |u| u.to_string())
}

fn describe(sessions: &[IndexedSession]) -> String {
    sessions
        .iter()
        .map(|s| {
            format!(
                "{} {} {}",
                s.handle(),
                if s.is_current() { "current" } else { "other" },
                s.data::<Auth>().device
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn devices(auth: TypedSession<Auth>) -> Result<String, SessionError> {
    let sessions = auth.sessions(Auth::by_user_id()).await?;
    let now = SystemTime::now();
    for s in &sessions {
        let created = s.created().expect("a stored session has a creation time");
        let expires = s.expires_at().expect("the store tells the expiry");
        let seen = s
            .last_seen()
            .expect("no absolute timeout: last seen is known");
        assert!(created <= now && seen <= now + Duration::from_secs(1));
        assert!(expires > now && seen + Duration::from_secs(5) > now);
    }
    Ok(describe(&sessions))
}

async fn revoke(
    auth: TypedSession<Auth>,
    Path(handle): Path<String>,
) -> Result<String, SessionError> {
    let Ok(handle) = handle.parse::<SessionHandle>() else {
        return Ok("bad handle".to_owned());
    };
    Ok(auth.revoke(Auth::by_user_id(), &handle).await?.to_string())
}

async fn revoke_others(auth: TypedSession<Auth>) -> Result<String, SessionError> {
    Ok(auth.revoke_others(Auth::by_user_id()).await?.to_string())
}

async fn logout(mut auth: TypedSession<Auth>) -> &'static str {
    auth.destroy();
    "out"
}

async fn switch(mut auth: TypedSession<Auth>, Path(user): Path<u64>) -> &'static str {
    auth.set_user_id(Some(user));
    "switched"
}

async fn forget(mut auth: TypedSession<Auth>) -> &'static str {
    let _ = auth.take_user_id();
    "forgotten"
}

async fn join(mut team: TypedSession<Team>, Path(name): Path<String>) -> &'static str {
    team.set_name(name);
    "joined"
}

/// Loads the session, says so, waits for the gate, then changes a field.
async fn slow_visit(State(app): State<App>, mut auth: TypedSession<Auth>) -> &'static str {
    let _ = auth.user_id();
    app.inside.notify_one();
    app.gate.notified().await;
    *auth.visits_mut() += 1;
    "visited"
}

fn app<S: SessionStore>(store: S) -> (Router, Sessions, App) {
    let layer = SessionLayer::new(store, Key::generate());
    let sessions = layer.sessions();
    let state = App {
        gate: Arc::new(Notify::new()),
        inside: Arc::new(Notify::new()),
    };
    let router = Router::new()
        .route("/login/{user}/{device}", post(login))
        .route("/whoami", get(whoami))
        .route("/devices", get(devices))
        .route("/revoke/{handle}", post(revoke))
        .route("/revoke-others", post(revoke_others))
        .route("/logout", post(logout))
        .route("/switch/{user}", post(switch))
        .route("/forget", post(forget))
        .route("/join/{name}", post(join))
        .route("/slow", post(slow_visit))
        .with_state(state.clone())
        .layer(layer);
    (router, sessions, state)
}

/// A browser that logged in as `user` from `device`.
async fn logged_in(app: &Router, user: u64, device: &str) -> Browser {
    let mut browser = Browser::default();
    browser
        .ok(app, "POST", &format!("/login/{user}/{device}"))
        .await;
    browser
}

/// The listing's lines, as (handle, current?, device).
fn lines(listing: &str) -> Vec<(String, bool, String)> {
    listing
        .lines()
        .map(|line| {
            let mut parts = line.split(' ');
            let handle = parts.next().unwrap().to_owned();
            let current = parts.next().unwrap() == "current";
            (handle, current, parts.next().unwrap().to_owned())
        })
        .collect()
}

fn devices_of(listing: &str) -> BTreeSet<String> {
    lines(listing).into_iter().map(|(_, _, d)| d).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A user ID no other test run uses (the SQL and Redis stores are shared).
fn fresh_user() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0u8) >> 1 | 1
}

async fn your_devices_lists_each_browser_with_handles_that_are_not_ids<S: SessionStore>(store: S) {
    let (app, _, _) = app(store);
    let (ada, bob) = (fresh_user(), fresh_user());
    let mut laptop = logged_in(&app, ada, "laptop").await;
    let _phone = logged_in(&app, ada, "phone").await;
    let _tablet = logged_in(&app, ada, "tablet").await;
    let _bobs = logged_in(&app, bob, "bobs").await;
    let mut anonymous = Browser::default();

    let listing = laptop.ok(&app, "GET", "/devices").await;
    let listed = lines(&listing);
    assert_eq!(devices_of(&listing), set(&["laptop", "phone", "tablet"]));
    let current: Vec<_> = listed.iter().filter(|(_, c, _)| *c).collect();
    assert_eq!(current.len(), 1, "{listing}");
    assert_eq!(current[0].2, "laptop");
    let handles: BTreeSet<_> = listed.iter().map(|(h, _, _)| h.clone()).collect();
    assert_eq!(handles.len(), 3, "each session has its own handle");
    let cookie = laptop.cookie.clone().unwrap();
    let id = id_of(&cookie);
    for handle in &handles {
        assert!(
            !cookie.contains(handle.as_str()) && !handle.contains(id.as_str()),
            "a handle is neither the ID nor in the cookie"
        );
        assert!(handle.parse::<SessionHandle>().is_ok());
    }
    // Listing again gives the same handles; nobody logged in sees nothing.
    assert_eq!(lines(&laptop.ok(&app, "GET", "/devices").await).len(), 3);
    assert_eq!(anonymous.ok(&app, "GET", "/devices").await, "");
}

async fn revoke_one_then_all_others<S: SessionStore>(store: S) {
    let (app, _, _) = app(store);
    let (ada, bob) = (fresh_user(), fresh_user());
    let mut laptop = logged_in(&app, ada, "laptop").await;
    let mut phone = logged_in(&app, ada, "phone").await;
    let mut tablet = logged_in(&app, ada, "tablet").await;
    let mut bobs = logged_in(&app, bob, "bobs").await;

    let listing = lines(&laptop.ok(&app, "GET", "/devices").await);
    let phone_handle = listing
        .iter()
        .find(|(_, _, d)| d == "phone")
        .unwrap()
        .0
        .clone();
    let own_handle = listing.iter().find(|(_, c, _)| *c).unwrap().0.clone();
    let bobs_handle = lines(&bobs.ok(&app, "GET", "/devices").await)[0].0.clone();

    // Another user's handle and one's own revoke nothing; a garbage handle is refused.
    assert_eq!(
        laptop
            .ok(&app, "POST", &format!("/revoke/{bobs_handle}"))
            .await,
        "false"
    );
    assert_eq!(
        laptop
            .ok(&app, "POST", &format!("/revoke/{own_handle}"))
            .await,
        "false"
    );
    assert_eq!(
        laptop.ok(&app, "POST", "/revoke/nonsense").await,
        "bad handle"
    );
    assert_eq!(bobs.ok(&app, "GET", "/whoami").await, bob.to_string());

    assert_eq!(
        laptop
            .ok(&app, "POST", &format!("/revoke/{phone_handle}"))
            .await,
        "true"
    );
    assert_eq!(
        phone.ok(&app, "GET", "/whoami").await,
        "-",
        "the phone is signed out"
    );
    assert_eq!(tablet.ok(&app, "GET", "/whoami").await, ada.to_string());
    assert_eq!(
        devices_of(&laptop.ok(&app, "GET", "/devices").await),
        set(&["laptop", "tablet"])
    );
    assert_eq!(
        laptop
            .ok(&app, "POST", &format!("/revoke/{phone_handle}"))
            .await,
        "false"
    );

    let _phone_again = logged_in(&app, ada, "phone2").await;
    assert_eq!(laptop.ok(&app, "POST", "/revoke-others").await, "2");
    assert_eq!(tablet.ok(&app, "GET", "/whoami").await, "-");
    assert_eq!(laptop.ok(&app, "GET", "/whoami").await, ada.to_string());
    assert_eq!(
        devices_of(&laptop.ok(&app, "GET", "/devices").await),
        set(&["laptop"])
    );
    assert_eq!(
        bobs.ok(&app, "GET", "/whoami").await,
        bob.to_string(),
        "bob keeps his"
    );
}

async fn the_index_follows_logout_switch_forget_and_regenerate<S: SessionStore>(store: S) {
    let (app, sessions, _) = app(store);
    let (ada, eve) = (fresh_user(), fresh_user());
    let mut one = logged_in(&app, ada, "one").await;
    let mut two = logged_in(&app, ada, "two").await;
    let mut three = logged_in(&app, ada, "three").await;
    let listed = |user| {
        let sessions = sessions.clone();
        async move {
            let found = sessions.list(Auth::by_user_id(), &user).await.unwrap();
            found
                .iter()
                .map(|s| s.data::<Auth>().device)
                .collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(listed(ada).await, set(&["one", "two", "three"]));

    one.ok(&app, "POST", "/logout").await;
    two.ok(&app, "POST", &format!("/switch/{eve}")).await;
    assert_eq!(listed(ada).await, set(&["three"]));
    assert_eq!(listed(eve).await, set(&["two"]));
    three.ok(&app, "POST", "/forget").await;
    assert!(
        listed(ada).await.is_empty(),
        "a cleared field indexes nothing"
    );

    // Logging in again regenerates the ID: the listing follows, and still names one session.
    let before = sessions.list(Auth::by_user_id(), &eve).await.unwrap();
    two.ok(&app, "POST", &format!("/login/{eve}/two")).await;
    let after = sessions.list(Auth::by_user_id(), &eve).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_ne!(
        before[0].handle(),
        after[0].handle(),
        "a new ID, a new handle"
    );
    assert!(!sessions
        .revoke(Auth::by_user_id(), &eve, before[0].handle())
        .await
        .unwrap());
    assert_eq!(two.ok(&app, "GET", "/whoami").await, eve.to_string());
}

async fn an_admin_revokes_without_a_request<S: SessionStore>(store: S) {
    let (app, sessions, _) = app(store);
    let (ada, bob) = (fresh_user(), fresh_user());
    let mut browsers = Vec::new();
    for device in ["a", "b", "c"] {
        browsers.push(logged_in(&app, ada, device).await);
    }
    let mut bobs = logged_in(&app, bob, "bobs").await;
    let mut team = logged_in(&app, ada, "team").await;
    let team_name = format!("team-{}", fresh_user());
    team.ok(&app, "POST", &format!("/join/{team_name}")).await;

    let listed = sessions.list(Auth::by_user_id(), &ada).await.unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().all(|s| !s.is_current()));
    let teams = sessions
        .list(Team::by_name(), team_name.as_str())
        .await
        .unwrap();
    assert_eq!(teams.len(), 1, "a second schema's index is its own");
    assert_eq!(teams[0].data::<Auth>().device, "team");

    let a = listed
        .iter()
        .find(|s| s.data::<Auth>().device == "a")
        .unwrap();
    assert!(sessions
        .revoke(Auth::by_user_id(), &ada, a.handle())
        .await
        .unwrap());
    assert!(
        !sessions
            .revoke(Auth::by_user_id(), &bob, listed[1].handle())
            .await
            .unwrap(),
        "a handle revokes only under its own user"
    );
    assert_eq!(browsers[0].ok(&app, "GET", "/whoami").await, "-");
    assert_eq!(
        sessions.revoke_all(Auth::by_user_id(), &ada).await.unwrap(),
        3
    );
    for browser in &mut browsers {
        assert_eq!(browser.ok(&app, "GET", "/whoami").await, "-");
    }
    assert_eq!(team.ok(&app, "GET", "/whoami").await, "-");
    assert!(sessions
        .list(Auth::by_user_id(), &ada)
        .await
        .unwrap()
        .is_empty());
    assert!(
        sessions
            .list(Team::by_name(), team_name.as_str())
            .await
            .unwrap()
            .is_empty(),
        "a revoked session leaves every index"
    );
    assert_eq!(bobs.ok(&app, "GET", "/whoami").await, bob.to_string());
    assert_eq!(
        sessions.revoke_all(Auth::by_user_id(), &ada).await.unwrap(),
        0
    );
}

async fn a_revoked_sessions_request_in_flight_cannot_bring_it_back<S: SessionStore>(store: S) {
    let (app, sessions, state) = app(store);
    let ada = fresh_user();
    let browser = logged_in(&app, ada, "laptop").await;
    let request_app = app.clone();
    let mut in_flight = browser.clone();
    let inside = state.inside.notified();
    let slow = tokio::spawn(async move { in_flight.call(&request_app, "POST", "/slow").await });
    inside.await;
    assert_eq!(
        sessions.revoke_all(Auth::by_user_id(), &ada).await.unwrap(),
        1
    );
    state.gate.notify_one();
    let (status, _) = slow.await.unwrap();
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the late save finds the session gone"
    );
    assert!(
        sessions
            .list(Auth::by_user_id(), &ada)
            .await
            .unwrap()
            .is_empty(),
        "and neither the session nor its index entry came back"
    );
    let mut browser = browser;
    assert_eq!(browser.ok(&app, "GET", "/whoami").await, "-");
}

async fn a_hundred_concurrent_logins_are_all_listed<S: SessionStore>(store: S) {
    let (app, sessions, _) = app(store);
    let ada = fresh_user();
    let logins: Vec<_> = (0..100)
        .map(|n| {
            let app = app.clone();
            tokio::spawn(async move { logged_in(&app, ada, &format!("d{n}")).await })
        })
        .collect();
    for login in logins {
        login.await.unwrap();
    }
    let listed = sessions.list(Auth::by_user_id(), &ada).await.unwrap();
    let devices: BTreeSet<String> = listed.iter().map(|s| s.data::<Auth>().device).collect();
    assert_eq!(devices.len(), 100, "every login is listed once");
    assert_eq!(listed.len(), 100);
    assert_eq!(
        sessions.revoke_all(Auth::by_user_id(), &ada).await.unwrap(),
        100
    );
}

/// Logins race a "revoke all": each ends revoked, or logged in and listed; never logged in
/// and missing from the index.
async fn logins_during_revoke_all_end_revoked_or_indexed<S: SessionStore>(store: S) {
    let (app, sessions, _) = app(store);
    let ada = fresh_user();
    let logins: Vec<_> = (0..40)
        .map(|n| {
            let app = app.clone();
            tokio::spawn(async move { logged_in(&app, ada, &format!("d{n}")).await })
        })
        .collect();
    let mut revoked = 0;
    for _ in 0..5 {
        revoked += sessions.revoke_all(Auth::by_user_id(), &ada).await.unwrap();
        tokio::task::yield_now().await;
    }
    let mut browsers = Vec::new();
    for login in logins {
        browsers.push(login.await.unwrap());
    }
    let listed: BTreeSet<String> = sessions
        .list(Auth::by_user_id(), &ada)
        .await
        .unwrap()
        .iter()
        .map(|s| s.data::<Auth>().device)
        .collect();
    let mut logged_in = 0;
    for (n, browser) in browsers.iter_mut().enumerate() {
        let who = browser.ok(&app, "GET", "/whoami").await;
        if who == ada.to_string() {
            logged_in += 1;
            assert!(listed.contains(&format!("d{n}")), "a live login is listed");
        } else {
            assert_eq!(who, "-");
            assert!(!listed.contains(&format!("d{n}")), "a revoked login is not");
        }
    }
    assert_eq!(
        logged_in + revoked,
        40,
        "each login ended one way: {revoked} revoked"
    );
}

macro_rules! on_store {
    ($module:ident, $make:expr) => {
        mod $module {
            on_store!(@tests $make;
                your_devices_lists_each_browser_with_handles_that_are_not_ids,
                revoke_one_then_all_others,
                the_index_follows_logout_switch_forget_and_regenerate,
                an_admin_revokes_without_a_request,
                a_revoked_sessions_request_in_flight_cannot_bring_it_back,
                a_hundred_concurrent_logins_are_all_listed,
                logins_during_revoke_all_end_revoked_or_indexed,
            );
        }
    };
    (@tests $make:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let make = $make;
                let Some((store, _made)) = make(stringify!($test)).await else {
                    return;
                };
                super::$test(store).await;
            }
        )*
    };
}

async fn memory(_test: &str) -> Option<(session_runtime::MemoryStore, ())> {
    Some((session_runtime::MemoryStore::new(), ()))
}

async fn redis_hash(test: &str) -> Option<(RedisStore, ())> {
    let store = shared_store(test, RedisLayout::Hash).await?;
    Some((store, ()))
}

async fn redis_log(test: &str) -> Option<(RedisStore, ())> {
    let store = shared_store(test, RedisLayout::Log).await?;
    Some((store, ()))
}

/// Every flow above, one after another, on `store`.
async fn every_flow<S: SessionStore + Clone>(store: S) {
    your_devices_lists_each_browser_with_handles_that_are_not_ids(store.clone()).await;
    revoke_one_then_all_others(store.clone()).await;
    the_index_follows_logout_switch_forget_and_regenerate(store.clone()).await;
    an_admin_revokes_without_a_request(store.clone()).await;
    a_revoked_sessions_request_in_flight_cannot_bring_it_back(store.clone()).await;
    a_hundred_concurrent_logins_are_all_listed(store.clone()).await;
    logins_during_revoke_all_end_revoked_or_indexed(store).await;
}

/// 10 000 sessions of one user that expire leave nothing of the index in Redis: the set
/// (scored by expiry, and expiring with its longest-lived member) and the mirrors go.
async fn ten_thousand_expired_sessions_leave_no_index<C>(store: RedisStore, prefix: &str, conn: C)
where
    C: redis::aio::ConnectionLike + Send,
{
    let index = "__ix.user_id";
    let set = format!("{prefix}ix:{}:{index}:42", index.len());
    let mut conn = ten_thousand_expired_sessions_leave_no_set(store, &set, conn).await;
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left.is_empty(), "keys left: {}", left.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_expired_sessions_leave_no_index_on_redis() {
    let Some(url) = session_suite::redis_harness::shared_redis_url() else {
        session_suite::redis_harness::skip_without_redis("index expiry", "no shared Redis");
        return;
    };
    for layout in [RedisLayout::Hash, RedisLayout::Log] {
        let prefix = unique_prefix("index-expiry");
        let store = RedisStore::connect(url.as_str())
            .await
            .unwrap()
            .with_key_prefix(prefix.clone())
            .with_layout(layout);
        let conn = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        ten_thousand_expired_sessions_leave_no_index(store, &prefix, conn).await;
    }
}

/// A listed ID whose key holds something the store cannot read (another program's data
/// under its prefix) is left out of the listing; the other sessions are listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_indexed_session_is_left_out_of_the_listing() {
    use session_runtime::{store::Patch, SessionId};
    let Some(url) = session_suite::redis_harness::shared_redis_url() else {
        session_suite::redis_harness::skip_without_redis("index unreadable", "no shared Redis");
        return;
    };
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for layout in [RedisLayout::Hash, RedisLayout::Log] {
        let prefix = unique_prefix("index-unreadable");
        let store = RedisStore::connect(url.as_str())
            .await
            .unwrap()
            .with_key_prefix(prefix.clone())
            .with_layout(layout);
        let (good, bad) = (SessionId::generate(), SessionId::generate());
        for id in [&good, &bad] {
            let mut patch = Patch::expiry_only(SystemTime::now() + Duration::from_secs(60));
            patch.set.push(("__ix.user_id".into(), "42".into()));
            store.create(id, &patch).await.unwrap();
        }
        // Another program's value under the session's key: a list, which neither layout reads.
        let key = store.key(&bad);
        let _: () = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = redis::cmd("RPUSH")
            .arg(&key)
            .arg("x")
            .query_async(&mut conn)
            .await
            .unwrap();
        let found = store.find_indexed("__ix.user_id", b"42").await.unwrap();
        let ids: Vec<&str> = found.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, [good.as_str()], "{layout:?}");
        let _: () = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        store.delete(&good).await.unwrap();
    }
}

/// On a cluster a session and its index live in different slots: every flow, both layouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_on_a_redis_cluster() {
    if !can_start_servers("index on a cluster") {
        return;
    }
    let cluster = RedisCluster::start(3);
    for layout in [RedisLayout::Hash, RedisLayout::Log] {
        let store = RedisStore::connect_cluster(cluster.urls())
            .await
            .expect("connect to the cluster")
            .with_layout(layout);
        every_flow(store).await;
    }
    the_cluster_superset_is_never_seen(&cluster).await;
    // The set is on another node than most of its sessions: it still expires with them.
    let prefix = unique_prefix("index-expiry");
    let store = RedisStore::connect_cluster(cluster.urls())
        .await
        .unwrap()
        .with_key_prefix(prefix.clone());
    let conn = redis::cluster::ClusterClient::new(cluster.urls())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    // `KEYS` on a cluster reaches one node: check the set only.
    let index = "__ix.user_id";
    let set = format!("{prefix}ix:{}:{index}:42", index.len());
    ten_thousand_expired_sessions_leave_no_set(store, &set, conn).await;
}

/// On a cluster the sets may hold more than the live sessions that carry each term (an old
/// term's entry is left to expire with its score): a listing never shows it.
async fn the_cluster_superset_is_never_seen(cluster: &RedisCluster) {
    use session_runtime::{store::Patch, SessionId};
    let prefix = unique_prefix("index-superset");
    let store = RedisStore::connect_cluster(cluster.urls())
        .await
        .unwrap()
        .with_key_prefix(prefix.clone());
    let mut conn = redis::cluster::ClusterClient::new(cluster.urls())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let index = "__ix.user_id";
    let set = |term: &str| format!("{prefix}ix:{}:{index}:{term}", index.len());
    let soon = || SystemTime::now() + Duration::from_secs(60);
    let id = SessionId::generate();
    let mut login = Patch::expiry_only(soon());
    login.set.push((index.into(), "a".into()));
    store.create(&id, &login).await.unwrap();
    let mut switch = Patch::expiry_only(soon());
    switch.set.push((index.into(), "b".into()));
    store.save(&id, &switch).await.unwrap();
    let stale: Option<f64> = redis::cmd("ZSCORE")
        .arg(set("a"))
        .arg(id.as_str())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(stale.is_some(), "the old term's entry is still in its set");
    assert!(
        store.find_indexed(index, b"a").await.unwrap().is_empty(),
        "but a listing never returns a session that no longer carries the value"
    );
    assert!(!store.delete_indexed(&id, index, b"a").await.unwrap());
    assert_eq!(store.find_indexed(index, b"b").await.unwrap().len(), 1);
    store.delete(&id).await.unwrap();
    let gone: Option<f64> = redis::cmd("ZSCORE")
        .arg(set("b"))
        .arg(id.as_str())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(gone.is_none(), "a deleted session leaves its sets");
    assert!(store.find_indexed(index, b"b").await.unwrap().is_empty());
}

/// 10 000 sessions of one user, expiring within seconds, then none listed and no set left.
async fn ten_thousand_expired_sessions_leave_no_set<C>(
    store: RedisStore,
    set: &str,
    mut conn: C,
) -> C
where
    C: redis::aio::ConnectionLike + Send,
{
    use session_runtime::{store::Patch, SessionId};
    // One expiry for all, far enough out for every create to land before it.
    let deadline = SystemTime::now() + Duration::from_secs(4);
    let writers: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..500 {
                    let mut patch = Patch::expiry_only(deadline);
                    patch.set.push(("__ix.user_id".into(), "42".into()));
                    store.create(&SessionId::generate(), &patch).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let members: usize = redis::cmd("ZCARD")
        .arg(set)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(members, 10_000, "every session is in the set");
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(300)).await;
    assert!(store
        .find_indexed("__ix.user_id", b"42")
        .await
        .unwrap()
        .is_empty());
    let exists: bool = redis::cmd("EXISTS")
        .arg(set)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!exists, "the set expired with its sessions");
    conn
}

/// Through Sentinel: every flow, both layouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_through_sentinel() {
    if !can_start_servers("index through sentinel") {
        return;
    }
    let setup = SentinelSetup::start();
    for layout in [RedisLayout::Hash, RedisLayout::Log] {
        let store = RedisStore::connect_sentinel([setup.sentinel_url()], SentinelSetup::MASTER)
            .await
            .expect("connect through the Sentinel")
            .with_key_prefix(unique_prefix("index-sentinel"))
            .with_layout(layout);
        every_flow(store).await;
    }
}

on_store!(memory_store, super::memory);
on_store!(redis_hash, super::redis_hash);
on_store!(redis_log, super::redis_log);
on_store!(postgres, session_suite::sql_harness::postgres);
on_store!(mysql, session_suite::sql_harness::mysql);
on_store!(sqlite, session_suite::sql_harness::sqlite);

mod not_indexing {
    use super::*;

    /// An indexed schema on a store that cannot index is one clear error: the extractor
    /// answers 500 (and logs why), and the admin calls fail with `Unsupported`.
    #[tokio::test]
    async fn a_store_that_cannot_index_refuses_indexed_schemas() {
        let store = session_runtime::CookieStore::new(&Key::generate());
        let (app, sessions, _) = app(store);
        let mut browser = Browser::default();
        let (status, _) = browser.call(&app, "POST", "/login/1/laptop").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(browser.cookie.is_none(), "nothing was stored");
        let err = sessions.list(Auth::by_user_id(), &1).await.unwrap_err();
        assert!(
            matches!(
                err,
                SessionError::Store(session_runtime::StoreError::Unsupported(_))
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("session index")
                || format!("{err:?}").contains("session index")
        );
        session_runtime::conformance::no_index_is_an_error(&session_runtime::CookieStore::new(
            &Key::generate(),
        ))
        .await;
    }

    #[derive(SessionData)]
    struct Named {
        #[session(index)]
        name: String,
    }

    /// A value too long to be an index term fails the save, with the field named.
    #[tokio::test]
    async fn a_term_over_the_limit_is_an_encode_error() {
        let store = session_runtime::MemoryStore::new();
        let layer = SessionLayer::new(store.clone(), Key::generate());
        let sessions = layer.sessions();
        let app = Router::new()
            .route(
                "/{len}",
                post(
                    |mut named: TypedSession<Named>, Path(len): Path<usize>| async move {
                        named.set_name("x".repeat(len));
                        "set"
                    },
                ),
            )
            .layer(layer);
        let ok = send(&app, request("POST", "/255", None, "")).await;
        assert_eq!(ok.status(), StatusCode::OK);
        let long = send(&app, request("POST", "/256", None, "")).await;
        assert_eq!(long.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(store.len(), 1, "the long one stored nothing");
        let err = sessions
            .list(Named::by_name(), "y".repeat(300).as_str())
            .await
            .unwrap_err();
        assert!(matches!(err, SessionError::Encode(_)), "{err:?}");
        assert_eq!(
            sessions
                .list(Named::by_name(), "x".repeat(255).as_str())
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

/// A session stored before its field was `#[session(index)]` (its term missing) is indexed
/// on its next request, even a read-only one.
#[tokio::test]
async fn a_session_stored_before_the_index_is_indexed_on_its_next_request() {
    use session_runtime::store::Patch;
    let store = session_runtime::MemoryStore::new();
    let (app, sessions, _) = app(store.clone());
    let user = fresh_user();
    let mut browser = logged_in(&app, user, "old").await;
    let id = id_of(browser.cookie.as_deref().unwrap());
    let mut strip = Patch::expiry_only(SystemTime::now() + Duration::from_secs(600));
    strip.remove.push("__ix.auth.user_id".into());
    store.save(&id, &strip).await.unwrap();
    assert!(sessions
        .list(Auth::by_user_id(), &user)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(browser.ok(&app, "GET", "/whoami").await, user.to_string());
    let listed = sessions.list(Auth::by_user_id(), &user).await.unwrap();
    assert_eq!(listed.len(), 1, "indexed by its first request since");
    assert_eq!(listed[0].data::<Auth>().device, "old");
    // A term that no longer matches its field is put right too.
    let mut wrong = Patch::expiry_only(SystemTime::now() + Duration::from_secs(600));
    wrong.set.push(("__ix.auth.user_id".into(), "12345".into()));
    store.save(&id, &wrong).await.unwrap();
    browser.ok(&app, "GET", "/whoami").await;
    assert!(sessions
        .list(Auth::by_user_id(), &12345)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        sessions
            .list(Auth::by_user_id(), &user)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// The README's handlers, as printed there, routed and called.
mod readme {
    use axum::{
        extract::Path,
        response::Html,
        routing::{get, post},
        Router,
    };
    use session_runtime::{
        index::SessionHandle, Key, MemoryStore, SessionData, SessionError, SessionLayer,
        TypedSession,
    };
    use session_suite::http::{cookie_pair, request, send, text};

    #[derive(SessionData)]
    struct Auth {
        #[session(index)]
        user_id: Option<u64>, // None indexes nothing
        device: String, // set at login, shown on the list
    }

    async fn devices(auth: TypedSession<Auth>) -> Result<Html<String>, SessionError> {
        let mut page = String::from("<ul>");
        for s in auth.sessions(Auth::by_user_id()).await? {
            let this = if s.is_current() {
                " (this browser)"
            } else {
                ""
            };
            page += &format!(
                "<li>{}{this}, last seen {:?} <form method=post action=/devices/{}/revoke><button>Sign out</button></form></li>",
                s.data::<Auth>().device, s.last_seen(), s.handle(),
            );
        }
        Ok(Html(page + "</ul>"))
    }

    async fn sign_out_one(
        auth: TypedSession<Auth>,
        Path(handle): Path<String>,
    ) -> Result<&'static str, SessionError> {
        let Ok(handle) = handle.parse::<SessionHandle>() else {
            return Ok("no such session");
        };
        auth.revoke(Auth::by_user_id(), &handle).await?; // only among this user's sessions
        Ok("signed out")
    }

    async fn sign_out_others(auth: TypedSession<Auth>) -> Result<String, SessionError> {
        Ok(format!(
            "{} other sessions signed out",
            auth.revoke_others(Auth::by_user_id()).await?
        ))
    }

    async fn login(mut auth: TypedSession<Auth>, Path(device): Path<String>) {
        auth.set_user_id(Some(7));
        auth.set_device(device);
        auth.regenerate();
    }

    #[tokio::test]
    async fn the_readme_handlers_list_and_sign_out() {
        let layer = SessionLayer::new(MemoryStore::new(), Key::generate());
        let sessions = layer.sessions();
        let app = Router::new()
            .route("/login/{device}", post(login))
            .route("/devices", get(devices))
            .route("/devices/{handle}/revoke", post(sign_out_one))
            .route("/devices/others", post(sign_out_others))
            .layer(layer);
        let laptop = cookie_pair(&send(&app, request("POST", "/login/laptop", None, "")).await);
        let _phone = cookie_pair(&send(&app, request("POST", "/login/phone", None, "")).await);
        let _tablet = cookie_pair(&send(&app, request("POST", "/login/tablet", None, "")).await);
        let page = text(send(&app, request("GET", "/devices", Some(&laptop), "")).await).await;
        assert!(
            page.contains("laptop (this browser)") && page.contains("phone"),
            "{page}"
        );
        let phone = sessions.list(Auth::by_user_id(), &7).await.unwrap();
        let phone = phone
            .iter()
            .find(|s| s.data::<Auth>().device == "phone")
            .unwrap();
        let uri = format!("/devices/{}/revoke", phone.handle());
        let done = text(send(&app, request("POST", &uri, Some(&laptop), "")).await).await;
        assert_eq!(done, "signed out");
        let others =
            text(send(&app, request("POST", "/devices/others", Some(&laptop), "")).await).await;
        assert_eq!(others, "1 other sessions signed out");
        // The README's admin lines.
        let user_id = 7u64;
        let list = sessions.list(Auth::by_user_id(), &user_id).await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(
            sessions
                .revoke_all(Auth::by_user_id(), &user_id)
                .await
                .unwrap(),
            1
        );
    }
}
