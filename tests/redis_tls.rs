//! `RedisStore` over TLS (`rediss://`, the `redis-tls` feature), against private
//! `redis-server`s that listen for TLS with certificates of a test authority made with
//! `openssl`.
#![cfg(feature = "tls")]

use axum::{
    http::StatusCode,
    routing::{get, post},
    Router,
};
use redis::{cluster::ClusterClient, ClientTlsConfig, TlsCertificates};
use session_runtime::{
    conformance, Key, RedisStore, SessionData, SessionLayer, StoreError, TypedSession,
};
use session_suite::http::{cookie_pair, id_of, request, send, text};
use session_suite::redis_harness::{
    redis_binaries_present, skip_without_redis, unique_prefix, RedisCluster, RedisServer, TestPki,
};

/// Whether this test can start TLS servers: `redis-server` and `openssl` installed.
fn can_start_tls_servers(test: &str) -> bool {
    if !redis_binaries_present() {
        skip_without_redis(test, "redis-server/redis-cli are not installed");
        return false;
    }
    assert!(
        TestPki::available(),
        "{test}: `openssl` is needed to make the test certificates (apt-get install openssl)"
    );
    true
}

/// A client that trusts `pki`'s authority, with its client certificate if `client_cert`.
fn client(server: &RedisServer, pki: &TestPki, client_cert: bool) -> redis::Client {
    let certificates = TlsCertificates {
        client_tls: client_cert.then(|| ClientTlsConfig {
            client_cert: pki.pem("client.crt"),
            client_key: pki.pem("client.key"),
        }),
        root_cert: Some(pki.pem("ca.crt")),
    };
    redis::Client::build_with_tls(server.tls_url(), certificates).expect("a TLS client")
}

/// A store on `client`'s server, under a fresh key prefix.
async fn connected(client: redis::Client) -> RedisStore {
    RedisStore::from_client(client)
        .await
        .expect("connect over TLS")
        .with_key_prefix(unique_prefix("tls"))
}

#[derive(SessionData)]
struct Visits {
    count: u64,
}

async fn visit(mut visits: TypedSession<Visits>) -> String {
    *visits.count_mut() += 1;
    visits.count().to_string()
}

async fn show(visits: TypedSession<Visits>) -> String {
    visits.count().to_string()
}

fn app(store: RedisStore) -> Router {
    Router::new()
        .route("/visit", post(visit))
        .route("/show", get(show))
        .layer(SessionLayer::new(store, Key::generate()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_travel_over_tls_and_the_store_passes_the_conformance_suite() {
    if !can_start_tls_servers("redis tls") {
        return;
    }
    let pki = TestPki::create();
    let server = RedisServer::start_tls(&pki, false);
    let store = connected(client(&server, &pki, false)).await;

    let app = app(store.clone());
    let response = send(&app, request("POST", "/visit", None, "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = cookie_pair(&response);
    send(&app, request("POST", "/visit", Some(&cookie), "")).await;
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "2");

    // The record is on this server, read back over its plain port.
    let mut plain = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Option<String> = redis::cmd("HGET")
        .arg(store.key(&id_of(&cookie)))
        .arg("count")
        .query_async(&mut plain)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some("2"));

    conformance::run(store).await;
}

/// The report of a failed connection: the store error and its causes.
fn failure(result: Result<RedisStore, StoreError>) -> String {
    session_suite::report(&result.expect_err("the connection must be refused"))
}

#[tokio::test]
async fn a_server_certificate_from_an_untrusted_authority_is_refused() {
    if !can_start_tls_servers("redis tls untrusted") {
        return;
    }
    let pki = TestPki::create();
    let server = RedisServer::start_tls(&pki, false);

    // The system's trust store does not know the test authority.
    let message = failure(RedisStore::connect(server.tls_url()).await);
    assert!(
        message.contains("invalid peer certificate: UnknownIssuer"),
        "says why: {message}"
    );
    // Nor does a client that trusts another authority.
    let other = TestPki::create();
    let message = failure(RedisStore::from_client(client(&server, &other, false)).await);
    assert!(
        message.contains("invalid peer certificate"),
        "says why: {message}"
    );
}

#[tokio::test]
async fn a_server_that_asks_for_client_certificates_gets_one() {
    if !can_start_tls_servers("redis tls client certificates") {
        return;
    }
    let pki = TestPki::create();
    let server = RedisServer::start_tls(&pki, true);

    let store = connected(client(&server, &pki, true)).await;
    let app = app(store);
    let response = send(&app, request("POST", "/visit", None, "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = cookie_pair(&response);
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "1");

    // Without one, the server refuses the connection.
    let refused = RedisStore::from_client(client(&server, &pki, false)).await;
    let message = failure(refused);
    assert!(
        message.contains("CertificateRequired"),
        "a client without a certificate is refused: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_tls_passes_the_conformance_suite() {
    if !can_start_tls_servers("redis tls cluster") {
        return;
    }
    let pki = TestPki::create();
    let cluster = RedisCluster::start_tls(3, &pki);
    let client = ClusterClient::builder(cluster.tls_urls())
        .certs(TlsCertificates {
            client_tls: None,
            root_cert: Some(pki.pem("ca.crt")),
        })
        .build()
        .expect("a TLS cluster client");
    let conn = client
        .get_async_connection()
        .await
        .expect("connect to the cluster over TLS");
    let store = RedisStore::from_cluster_connection(conn);
    conformance::run(store.clone()).await;

    let app = app(store);
    let response = send(&app, request("POST", "/visit", None, "")).await;
    let cookie = cookie_pair(&response);
    send(&app, request("POST", "/visit", Some(&cookie), "")).await;
    let response = send(&app, request("GET", "/show", Some(&cookie), "")).await;
    assert_eq!(text(response).await, "2");
}
