//! The request layer against a model of its documented lifecycle. A few browsers send
//! random scripts of sets, takes, regenerates, destroys, early saves and expiry overrides
//! over two schemas sharing the session (several per request, in any order); after every
//! request the handler's view, the cookie the browser gets and what a later read finds are
//! checked against the model, and old cookies (regenerated away or destroyed) must find
//! nothing. Fixed seeds, so a failure replays; on the memory store (also across key
//! rotations), on Redis when a server answers, and on the cookie store (whose old cookies
//! stay valid).

use std::{collections::HashMap, time::Duration};

use axum::{
    routing::{get, post},
    Router,
};
use session_runtime::{
    CookieStore, Key, MemoryStore, RedisLayout, RedisStore, SessionData, SessionLayer, TypedSession,
};
use session_suite::{
    http::{attribute, id_of, request, send, set_cookies, text},
    redis_harness::{shared_redis_url, skip_without_redis, unique_prefix},
    Rng,
};

#[derive(SessionData)]
struct Notes {
    a: Option<String>,
    b: Option<String>,
}

/// A second schema in the same session, changed through its own extractor.
#[derive(SessionData)]
#[session(namespace = "p")]
struct Prefs {
    c: Option<String>,
}

/// `a` and `b` of `Notes`, `c` of `Prefs`.
type Fields = (Option<String>, Option<String>, Option<String>);

fn show((a, b, c): &Fields) -> String {
    format!("{a:?}|{b:?}|{c:?}")
}

/// Runs a script: `a=v` / `b=v` / `c=v` set, `-a` / `-b` / `-c` take, `R` regenerate, `D`
/// destroy, `S` save early, `E0` / `E+` / `E-` an expiry override of zero (ends the session)
/// / 30 days / none. All but `c` go through `notes`; `c` through `prefs`, whose changes are
/// saved when it is dropped, at the end (those made before a destroy are not).
async fn run(
    mut notes: TypedSession<Notes>,
    mut prefs: TypedSession<Prefs>,
    script: String,
) -> String {
    for action in script.split(' ') {
        match action {
            "S" => notes.save().await.expect("an early save"),
            "R" => notes.regenerate(),
            "D" => notes.destroy(),
            "E0" => notes.set_idle_timeout(Some(Duration::ZERO)),
            "E+" => notes.set_idle_timeout(Some(Duration::from_secs(30 * 24 * 3600))),
            "E-" => notes.set_idle_timeout(None),
            "-a" => drop(notes.take_a()),
            "-b" => drop(notes.take_b()),
            "-c" => drop(prefs.take_c()),
            set => match set.split_once('=') {
                Some(("a", value)) => notes.set_a(Some(value.to_owned())),
                Some(("b", value)) => notes.set_b(Some(value.to_owned())),
                Some(("c", value)) => prefs.set_c(Some(value.to_owned())),
                _ => panic!("not an action: {set:?}"),
            },
        }
    }
    let shown = show(&(notes.a().clone(), notes.b().clone(), prefs.c().clone()));
    drop(prefs);
    shown
}

async fn peek(notes: TypedSession<Notes>, prefs: TypedSession<Prefs>) -> String {
    show(&(notes.a().clone(), notes.b().clone(), prefs.c().clone()))
}

fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route("/run", post(run))
        .route("/peek", get(peek))
        .layer(layer)
}

/// Where the session a request ends with came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Origin {
    /// The session the browser's cookie named.
    Start,
    /// A session an early save created during the request.
    Created,
}

/// What a browser sees after a response: the `name=value` pair it keeps, if any.
enum CookieOut {
    /// No `Set-Cookie`, or one that re-sends the same ID.
    Kept,
    /// A session under this ID.
    New(String),
    /// The cookie was removed.
    Removed,
}

fn cookie_out(response: &axum::response::Response) -> CookieOut {
    let cookies = set_cookies(response);
    assert!(cookies.len() <= 1, "one Set-Cookie at most: {cookies:?}");
    match cookies.first() {
        None => CookieOut::Kept,
        Some(cookie) if attribute(cookie, "Max-Age") == Some("0") => CookieOut::Removed,
        Some(cookie) => CookieOut::New(cookie.split(';').next().expect("name=value").to_owned()),
    }
}

fn random_script(rng: &mut Rng, step: usize) -> String {
    let mut actions: Vec<String> = (0..=rng.below(3))
        .map(|i| match rng.below(29) {
            0..=5 => format!("a=v{step}.{i}"),
            6..=10 => format!("b=w{step}.{i}"),
            11..=13 => "-a".to_owned(),
            14..=16 => "-b".to_owned(),
            17 | 18 => "R".to_owned(),
            19 => "D".to_owned(),
            20 | 21 => "S".to_owned(),
            22 => "E0".to_owned(),
            23 => "E+".to_owned(),
            24 => "E-".to_owned(),
            25 | 26 => format!("c=x{step}.{i}"),
            _ => "-c".to_owned(),
        })
        .collect();
    // A session ended by a zero expiry and saved early is gone for the rest of the request
    // (its later changes fail, as for any session that vanished): not scripted together.
    if actions.iter().any(|a| a == "E0") {
        actions.retain(|a| a != "S");
    }
    if actions.is_empty() {
        actions.push("E0".to_owned());
    }
    actions.join(" ")
}

async fn check_against_the_model(app: &Router, seed: u64, steps: usize) {
    check(std::slice::from_ref(app), seed, steps, false).await;
}

/// Runs the model through `apps` in turn, an equal share of the steps each: apps over one
/// store whose keys rotate (each signs with a new key and still verifies the earlier ones),
/// so a cookie from before a rotation must be signed again when next used.
///
/// `client_side`: the store keeps the session in the cookie, whose value changes on every
/// write and which cannot be revoked (an old cookie still opens its old session).
async fn check(apps: &[Router], seed: u64, steps: usize, client_side: bool) {
    let mut rng = Rng(seed);
    // The browsers' cookies, the live sessions by ID, and cookies that must find nothing.
    let mut jars: [Option<String>; 3] = Default::default();
    // Which of `apps` signed each browser's cookie.
    let mut signed_by = [0; 3];
    let mut live: HashMap<String, Fields> = HashMap::new();
    let mut dead: Vec<String> = Vec::new();
    let mut created = 0;

    for step in 0..steps {
        let current = step * apps.len() / steps;
        let app = &apps[current];
        if step > 0 && current != (step - 1) * apps.len() / steps {
            // The key rotated: a read with a cookie signed by the earlier key signs it again.
            for (jar, signer) in jars.iter_mut().zip(&mut signed_by) {
                let Some(pair) = jar.clone() else { continue };
                let response = send(app, request("GET", "/peek", Some(&pair), "")).await;
                let at = format!("seed {seed:#x}, step {step}, rotation, cookie {pair}");
                let old = id_of(&pair).as_str().to_owned();
                let Some(record) = live.get(&old).cloned() else {
                    assert!(set_cookies(&response).is_empty(), "{at}");
                    continue;
                };
                let CookieOut::New(signed) = cookie_out(&response) else {
                    panic!("{at}: a cookie signed by an earlier key must be signed again");
                };
                assert_eq!(text(response).await, show(&record), "{at}");
                let new = id_of(&signed).as_str().to_owned();
                if client_side {
                    live.insert(new, record);
                } else {
                    assert_eq!(new, old, "{at}: signing again keeps the ID");
                }
                *jar = Some(signed);
                *signer = current;
            }
        }
        let browser = rng.below(jars.len());
        let script = random_script(&mut rng, step);
        let at = format!("seed {seed:#x}, step {step}, browser {browser}, script {script:?}");

        // The model: the session this request starts from, then the script.
        let start = jars[browser]
            .as_deref()
            .map(|pair| id_of(pair).as_str().to_owned())
            .filter(|id| live.contains_key(id));
        // What the request is attached to: the session it started from, or one an early
        // save created (its ID is learnt from the response).
        let mut attached = start.as_ref().map(|_| Origin::Start);
        let stored_start: Fields = start
            .as_ref()
            .map(|id| live[id].clone())
            .unwrap_or_default();
        // What `notes` shows (reset by a destroy), what `prefs` shows (not reset: it keeps
        // what it holds), and the last change to `c` since the last destroy, written when
        // `prefs` is dropped.
        let mut view = (stored_start.0.clone(), stored_start.1.clone());
        let mut shown_c = stored_start.2.clone();
        let mut last_c: Option<Option<String>> = None;
        let mut regenerate = false;
        // The last expiry override of this request: `Some(zero?)`, or cleared / untouched.
        let mut expiry: Option<bool> = None;
        // The start session was destroyed, or moved to a new ID by an early save; any
        // session was destroyed (a removal cookie is due unless a new one follows).
        let (mut start_destroyed, mut start_moved, mut destroyed) = (false, false, false);
        for action in script.split(' ') {
            match action {
                "R" => regenerate = true,
                "D" => {
                    start_destroyed |= attached == Some(Origin::Start);
                    destroyed |= attached.is_some();
                    attached = None;
                    regenerate = false;
                    expiry = None;
                    view = (None, None);
                    // `prefs`' earlier changes end with the session; it keeps showing them.
                    last_c = None;
                }
                "E0" => expiry = Some(true),
                "E+" => expiry = Some(false),
                "E-" => expiry = None,
                "S" => {
                    match attached {
                        Some(Origin::Start) => start_moved |= regenerate,
                        Some(Origin::Created) => {}
                        None if view.0.is_some() || view.1.is_some() || expiry.is_some() => {
                            attached = Some(Origin::Created);
                        }
                        None => {}
                    }
                    regenerate = false;
                }
                "-a" => view.0 = None,
                "-b" => view.1 = None,
                "-c" => {
                    shown_c = None;
                    last_c = Some(None);
                }
                set => {
                    let (key, value) = set.split_once('=').expect("a set");
                    let value = Some(value.to_owned());
                    match key {
                        "a" => view.0 = value,
                        "b" => view.1 = value,
                        _ => {
                            shown_c = value.clone();
                            last_c = Some(value);
                        }
                    }
                }
            }
        }

        let response = send(
            app,
            request("POST", "/run", jars[browser].as_deref(), script.clone()),
        )
        .await;
        assert_eq!(response.status(), 200, "{at}");
        let out = cookie_out(&response);
        assert_eq!(
            text(response).await,
            show(&(view.0.clone(), view.1.clone(), shown_c)),
            "{at}: the view"
        );

        let new_id = start_moved || regenerate;
        // A zero override ends the session with this request (a cookie with `Max-Age=0`).
        let ended = expiry == Some(true);
        if start_destroyed || (attached == Some(Origin::Start) && (new_id || ended)) || start_moved
        {
            live.remove(start.as_deref().expect("a start session"));
            dead.push(jars[browser].clone().expect("it had a cookie"));
        }
        // `c` as stored: its last change, else what the session it started from had.
        let c = match last_c {
            Some(change) => change,
            None if attached == Some(Origin::Start) => stored_start.2.clone(),
            None => None,
        };
        let stored = view.0.is_some() || view.1.is_some() || c.is_some();
        let view: Fields = (view.0, view.1, c);
        // A new session is created for fields to keep or for an expiry override.
        let creates = stored || expiry.is_some();
        match (attached, out) {
            (Some(Origin::Start), CookieOut::Removed) => {
                assert!(ended, "{at}: a live session's cookie was removed");
                jars[browser] = None;
            }
            (Some(Origin::Start), _) if ended => panic!("{at}: a zero expiry must end the session"),
            // The session it started from, under the same ID or, regenerated, a new one.
            (Some(Origin::Start), CookieOut::Kept) => {
                assert!(!new_id, "{at}: a regenerate must send a new ID");
                assert_eq!(
                    signed_by[browser], current,
                    "{at}: a cookie signed by an earlier key must be signed again"
                );
                live.insert(start.clone().expect("attached"), view);
            }
            (Some(Origin::Start), CookieOut::New(pair)) => {
                let new = id_of(&pair).as_str().to_owned();
                if !client_side {
                    assert_eq!(
                        Some(&new) != start.as_ref(),
                        new_id,
                        "{at}: a new ID exactly on regenerate"
                    );
                }
                live.insert(new, view);
                jars[browser] = Some(pair);
                signed_by[browser] = current;
            }
            (Some(Origin::Created), CookieOut::Removed) => {
                panic!("{at}: a live session's cookie was removed")
            }
            (Some(Origin::Created), CookieOut::Kept) => {
                panic!("{at}: a session created without a cookie")
            }
            // A session an early save created (even if emptied since), or one created at
            // the end, only when something is left to store.
            (origin @ (Some(Origin::Created) | None), CookieOut::New(pair)) => {
                assert!(
                    origin.is_some() || (creates && !ended),
                    "{at}: a session created with nothing in it"
                );
                let id = id_of(&pair).as_str().to_owned();
                assert!(
                    !live.contains_key(&id),
                    "{at}: a new session reused a live ID"
                );
                live.insert(id, view);
                jars[browser] = Some(pair);
                signed_by[browser] = current;
                created += 1;
            }
            (None, CookieOut::Removed) => {
                assert!(
                    (destroyed && !creates) || (creates && ended),
                    "{at}: an unexpected removal cookie"
                );
                jars[browser] = None;
            }
            (None, CookieOut::Kept) => {
                assert!(!creates, "{at}: changes stored without a cookie");
                assert!(
                    !destroyed,
                    "{at}: a destroyed session's cookie was not removed"
                );
            }
        }

        // What a later read finds, for this browser and for an old cookie.
        let expected = show(
            &jars[browser]
                .as_deref()
                .and_then(|pair| live.get(id_of(pair).as_str()).cloned())
                .unwrap_or_default(),
        );
        let response = send(app, request("GET", "/peek", jars[browser].as_deref(), "")).await;
        // (Its cookie is signed with the current key: the request above re-signed it.)
        assert!(
            set_cookies(&response).is_empty(),
            "{at}: a read sets no cookie"
        );
        assert_eq!(text(response).await, expected, "{at}: what a read finds");
        if !client_side && !dead.is_empty() && rng.below(4) == 0 {
            let old = dead[rng.below(dead.len())].clone();
            let response = send(app, request("GET", "/peek", Some(&old), "")).await;
            assert!(set_cookies(&response).is_empty(), "{at}");
            assert_eq!(
                text(response).await,
                show(&Fields::default()),
                "{at}: an old cookie ({old}) finds nothing"
            );
        }
    }
    assert!(
        created > steps / 20 && dead.len() > steps / 20,
        "the scripts created ({created}) and ended ({}) sessions",
        dead.len()
    );
}

#[tokio::test]
async fn the_lifecycle_matches_its_model_on_the_memory_store() {
    let app = app(SessionLayer::new(MemoryStore::new(), Key::generate()));
    for seed in [0x5EED_0101, 0x5EED_0102, 0x5EED_0103] {
        check_against_the_model(&app, seed, 400).await;
    }
}

#[tokio::test]
async fn the_lifecycle_matches_its_model_on_redis() {
    let Some(url) = shared_redis_url() else {
        skip_without_redis("lifecycle model", "no Redis answers on the shared URL");
        return;
    };
    let store = RedisStore::connect(url.as_str())
        .await
        .expect("connect to the shared Redis")
        .with_key_prefix(unique_prefix("lifecycle-model"));
    // Short-lived: these sessions live on a shared server.
    let app =
        app(SessionLayer::new(store, Key::generate()).with_idle_timeout(Duration::from_secs(300)));
    check_against_the_model(&app, 0x5EED_0201, 400).await;
}

#[tokio::test]
async fn the_lifecycle_matches_its_model_on_redis_in_the_log_layout() {
    let Some(url) = shared_redis_url() else {
        skip_without_redis(
            "lifecycle model, log layout",
            "no Redis answers on the shared URL",
        );
        return;
    };
    let store = RedisStore::connect(url.as_str())
        .await
        .expect("connect to the shared Redis")
        .with_key_prefix(unique_prefix("lifecycle-model-log"))
        .with_layout(RedisLayout::Log);
    let app =
        app(SessionLayer::new(store, Key::generate()).with_idle_timeout(Duration::from_secs(300)));
    check_against_the_model(&app, 0x5EED_0202, 400).await;
}

/// The same, while the signing key rotates twice: each new layer signs with a new key and
/// still verifies the earlier ones.
#[tokio::test]
async fn the_lifecycle_matches_its_model_across_key_rotations() {
    let keys = [Key::generate(), Key::generate(), Key::generate()];
    let store = MemoryStore::new();
    let rotated = |n: usize| {
        let earlier = keys[..n].iter().rev().cloned();
        app(SessionLayer::new(store.clone(), keys[n].clone()).with_previous_keys(earlier))
    };
    check(
        &[rotated(0), rotated(1), rotated(2)],
        0x5EED_0104,
        600,
        false,
    )
    .await;
}

#[tokio::test]
async fn the_lifecycle_matches_its_model_on_the_cookie_store() {
    let keys = [Key::generate(), Key::generate()];
    let app_with = |key: &Key, earlier: &[Key]| {
        let store = CookieStore::new(key).with_previous_keys(earlier);
        app(SessionLayer::new(store, key.clone()).with_previous_keys(earlier.iter().cloned()))
    };
    let plain = app_with(&keys[0], &[]);
    check(std::slice::from_ref(&plain), 0x5EED_0301, 400, true).await;
    // Sealed and signed with a new key, the old one still opening earlier cookies.
    let rotated = app_with(&keys[1], &keys[..1]);
    check(&[plain, rotated], 0x5EED_0302, 400, true).await;
}
