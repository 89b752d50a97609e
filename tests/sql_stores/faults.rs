//! A private PostgreSQL server stopped and restarted under load.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::http::StatusCode;
use session_runtime::{Key, PostgresStore};
use session_suite::{
    http::{cookie_pair, request, send, text},
    sql_harness::{skip_without, wait_until, PostgresServer},
};

use super::cart_app;

/// What one client saw: the items the app acknowledged, and how many answers were 503s.
struct Seen {
    cookie: String,
    acknowledged: Vec<String>,
    unavailable: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_gives_503s_then_recovers_without_losing_acknowledged_writes() {
    let test = "a_postgres_restart_gives_503s_then_recovers_without_losing_acknowledged_writes";
    if !PostgresServer::available() {
        skip_without(
            test,
            "PostgreSQL's initdb and pg_ctl",
            "they are not installed",
        );
        return;
    }
    let server = PostgresServer::start();
    let store = PostgresStore::connect(server.url()).await.unwrap();
    store.migrate().await.unwrap();
    let app = cart_app(store, &Key::generate());

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (app, stop) = (app.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let response = send(&app, request("POST", "/add/first", None, "")).await;
                assert_eq!(response.status(), StatusCode::OK);
                let mut seen = Seen {
                    cookie: cookie_pair(&response),
                    acknowledged: vec!["first".to_owned()],
                    unavailable: 0,
                };
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let item = format!("c{client}i{n}");
                    let path = format!("/add/{item}");
                    let response = send(&app, request("POST", &path, Some(&seen.cookie), "")).await;
                    match response.status() {
                        StatusCode::OK => seen.acknowledged.push(item),
                        StatusCode::SERVICE_UNAVAILABLE => {
                            seen.unavailable += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        other => panic!("only 200s and 503s, not {other}"),
                    }
                }
                seen
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    server.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let down = send(&app, request("GET", "/show", None, "")).await;
    assert_eq!(
        down.status(),
        StatusCode::OK,
        "a visitor without a session needs no store"
    );
    server.restart();
    // The same app instance recovers by itself.
    let recovered = wait_until(Duration::from_secs(20), || {
        let app = app.clone();
        async move {
            send(&app, request("POST", "/add/probe", None, ""))
                .await
                .status()
                == StatusCode::OK
        }
    })
    .await;
    assert!(recovered, "the app recovered without a restart");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    for client in clients {
        let seen = client.await.unwrap();
        assert!(seen.unavailable > 0, "503s while the server was down");
        let response = send(&app, request("GET", "/show", Some(&seen.cookie), "")).await;
        assert_eq!(response.status(), StatusCode::OK);
        let shown = text(response).await;
        for item in &seen.acknowledged {
            assert!(
                shown.contains(&format!("\"{item}\"")),
                "acknowledged {item} was lost: {shown}"
            );
        }
        assert!(
            seen.acknowledged.len() > 2,
            "writes were acknowledged before and after: {}",
            seen.acknowledged.len()
        );
    }
}
