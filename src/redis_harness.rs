//! Redis servers for tests: the shared one the machine runs, and private ones a test starts,
//! kills and restarts on free loopback ports.
//!
//! Tests never flush a shared server: each uses its own key prefix ([`unique_prefix`]).
//!
//! When no Redis is reachable, tests that need one print how to run them and return early,
//! unless `SESSION_TEST_REQUIRE_REDIS=1` (as in CI), where they fail instead.

use std::{
    io::Write as _,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Whether missing Redis must fail the test (CI) rather than skip it.
pub fn redis_required() -> bool {
    std::env::var("SESSION_TEST_REQUIRE_REDIS").is_ok_and(|v| v == "1")
}

/// Reports a test that cannot run without Redis: fails in CI, says how to run it elsewhere.
pub fn skip_without_redis(test: &str, why: &str) {
    assert!(
        !redis_required(),
        "{test}: Redis is required (SESSION_TEST_REQUIRE_REDIS=1) but {why}"
    );
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing
    // tests, and a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {why}. Install Redis (`apt-get install redis-server`) and start it on \
         127.0.0.1:6379, or set SESSION_TEST_REDIS_URL, then run `cargo test --workspace --all-features`."
    );
}

/// The shared server's URL, if it answers `PING`.
pub fn shared_redis_url() -> Option<String> {
    let url = std::env::var("SESSION_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    ping(&url).then_some(url)
}

/// A key prefix no other test run uses.
pub fn unique_prefix(test: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "test:{test}:{}-{nanos}-{}:",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn ping(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
        return false;
    };
    redis::cmd("PING").query::<String>(&mut conn).is_ok()
}

/// Whether `redis-server` and `redis-cli` are installed.
pub fn redis_binaries_present() -> bool {
    ["redis-server", "redis-cli"]
        .iter()
        .all(|bin| runs(bin, "--version"))
}

/// Whether `program arg` runs and succeeds.
fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A free loopback port whose cluster bus port (+10000) is free too.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_prefix(label).replace(':', "_"));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// A `redis-server` process owned by a test; killed when dropped.
pub struct RedisServer {
    port: u16,
    tls_port: Option<u16>,
    /// A Sentinel's configuration file (it keeps its state there).
    sentinel_config: Option<PathBuf>,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server without persistence.
    pub fn start() -> Self {
        Self::start_with(NO_PERSISTENCE)
    }

    /// Starts a server that writes every acknowledged write to disk before answering
    /// (`appendfsync always`), so a kill loses nothing acknowledged.
    pub fn start_persistent() -> Self {
        Self::start_with(&[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
    }

    /// Starts a server with extra arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        let port = free_port();
        let args = extra.iter().map(ToString::to_string).collect();
        Self::launch(port, None, None, temp_dir(&format!("redis-{port}")), args)
    }

    /// Starts a server (a Sentinel, with its configuration file) and waits until it answers.
    fn launch(
        port: u16,
        tls_port: Option<u16>,
        sentinel_config: Option<PathBuf>,
        dir: PathBuf,
        args: Vec<String>,
    ) -> Self {
        let mut server = Self {
            port,
            tls_port,
            sentinel_config,
            dir,
            args,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut command = Command::new("redis-server");
        if let Some(config) = &self.sentinel_config {
            command.arg(config).arg("--sentinel");
        }
        let child = command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", self.dir.to_str().expect("utf-8 temp dir")])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        wait_for(&self.url(), Duration::from_secs(10));
    }

    /// Starts a server that also listens for TLS, with the certificate `pki` issued for
    /// 127.0.0.1; with `client_certificates`, it accepts TLS clients only with a certificate
    /// of `pki`'s authority. The plain port stays open for the test's own checks.
    pub fn start_tls(pki: &TestPki, client_certificates: bool) -> Self {
        Self::start_tls_with(pki, client_certificates, NO_PERSISTENCE)
    }

    /// [`RedisServer::start_tls`] with extra arguments.
    pub fn start_tls_with(pki: &TestPki, client_certificates: bool, extra: &[&str]) -> Self {
        let port = free_port();
        let tls_port = loop {
            let candidate = free_port();
            if candidate != port {
                break candidate;
            }
        };
        let file = |name: &str| pki.path(name).to_str().expect("utf-8 path").to_owned();
        let mut args: Vec<String> = [
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &file("server.crt"),
            "--tls-key-file",
            &file("server.key"),
            "--tls-ca-cert-file",
            &file("ca.crt"),
            "--tls-auth-clients",
            if client_certificates { "yes" } else { "no" },
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(extra.iter().map(ToString::to_string));
        let dir = temp_dir(&format!("redis-{port}"));
        Self::launch(port, Some(tls_port), None, dir, args)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `rediss://` URL of a server started with [`RedisServer::start_tls`].
    pub fn tls_url(&self) -> String {
        let port = self.tls_port.expect("a server started with start_tls");
        format!("rediss://127.0.0.1:{port}")
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): its connections stay open and nothing answers, as a
    /// server that hangs or a network that drops every packet.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a server frozen by [`RedisServer::pause`] go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("a running server");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The server's data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `openssl req` arguments for a new P-256 key, unencrypted.
const NEW_KEY: &[&str] = &[
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A test certificate authority and what it signed, as PEM files made with `openssl`: a
/// server certificate for 127.0.0.1 and localhost (`server.crt`, `server.key`) and a client
/// certificate (`client.crt`, `client.key`); the authority's is `ca.crt`.
pub struct TestPki {
    dir: PathBuf,
}

impl TestPki {
    /// Whether `openssl` is installed.
    pub fn available() -> bool {
        runs("openssl", "version")
    }

    /// Creates a new authority and its certificates (P-256 keys, valid for two days).
    pub fn create() -> Self {
        let pki = Self {
            dir: temp_dir("pki"),
        };
        pki.openssl(&[
            &["req", "-x509"],
            NEW_KEY,
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"],
            &["-subj", "/CN=session test CA"],
        ]);
        pki.issue(
            "server",
            "/CN=localhost",
            &[
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                // Cluster nodes present it to each other as clients, too.
                "extendedKeyUsage=serverAuth,clientAuth",
            ],
        );
        pki.issue(
            "client",
            "/CN=session test client",
            &["extendedKeyUsage=clientAuth"],
        );
        pki
    }

    /// `name.key` and `name.crt`, signed by the authority, with the extensions `ext`.
    fn issue(&self, name: &str, subject: &str, ext: &[&str]) {
        let (key, csr, crt, ext_file) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        let ext = format!("basicConstraints=CA:FALSE\n{}\n", ext.join("\n"));
        std::fs::write(self.path(&ext_file), ext).expect("write the extensions file");
        self.openssl(&[
            &["req"],
            NEW_KEY,
            &["-keyout", &key, "-out", &csr, "-subj", subject],
        ]);
        self.openssl(&[
            &["x509", "-req", "-in", &csr, "-out", &crt, "-days", "2"],
            &["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"],
            &["-extfile", &ext_file],
        ]);
    }

    /// Runs `openssl` in the authority's directory with the concatenated `args`.
    fn openssl(&self, args: &[&[&str]]) {
        let args = args.concat();
        let output = Command::new("openssl")
            .args(&args)
            .current_dir(&self.dir)
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The path of one of the PEM files.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The contents of one of the PEM files.
    pub fn pem(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read a PEM file")
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_for(url: &str, limit: Duration) {
    let start = Instant::now();
    while !ping(url) {
        assert!(start.elapsed() < limit, "redis at {url} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const NO_PERSISTENCE: &[&str] = &["--save", "", "--appendonly", "no"];
const CLUSTER_ARGS: &[&str] = &["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"];

/// A master, its replica and a Redis Sentinel watching them (quorum 1, the master deemed
/// down after 1 s), started by a test; stopped when dropped.
pub struct SentinelSetup {
    master: RedisServer,
    replica: RedisServer,
    sentinel: RedisServer,
    password: Option<String>,
}

impl SentinelSetup {
    /// The name the Sentinel knows the master by.
    pub const MASTER: &'static str = "sessions";

    /// Starts the three servers and waits until the Sentinel knows the replica, so that it
    /// can fail over.
    pub fn start() -> Self {
        Self::start_with_password(None)
    }

    /// [`SentinelSetup::start`], with the master and the replica asking clients (and each
    /// other) for `password` if given; the Sentinel knows it, and asks none itself.
    pub fn start_with_password(password: Option<&str>) -> Self {
        let master = RedisServer::start();
        let replica = RedisServer::start_with(
            &[
                NO_PERSISTENCE,
                &["--replicaof", "127.0.0.1", &master.port().to_string()],
            ]
            .concat(),
        );
        wait_until(Duration::from_secs(15), "the replica to sync", || {
            info(&replica.url(), "replication").contains("master_link_status:up")
        });
        let mut auth_pass = String::new();
        if let Some(password) = password {
            for (server, settings) in [
                (&replica, ["masterauth", "requirepass"]),
                (&master, ["masterauth", "requirepass"]),
            ] {
                let mut conn = redis::Client::open(server.url())
                    .and_then(|c| c.get_connection())
                    .expect("connect to set a password");
                for setting in settings {
                    redis::cmd("CONFIG")
                        .arg("SET")
                        .arg(setting)
                        .arg(password)
                        .query::<()>(&mut conn)
                        .expect("CONFIG SET");
                }
            }
            auth_pass = format!("sentinel auth-pass {} {password}\n", Self::MASTER);
        }
        let port = free_port();
        let dir = temp_dir(&format!("sentinel-{port}"));
        let config = dir.join("sentinel.conf");
        let name = Self::MASTER;
        std::fs::write(
            &config,
            format!(
                "sentinel monitor {name} 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 5000\n{auth_pass}",
                master.port()
            ),
        )
        .expect("write the Sentinel's configuration");
        let sentinel = RedisServer::launch(port, None, Some(config), dir, Vec::new());
        let setup = Self {
            master,
            replica,
            sentinel,
            password: password.map(str::to_owned),
        };
        wait_until(
            Duration::from_secs(30),
            "the Sentinel to see the replica",
            || {
                let replica = format!("{}", setup.replica.port());
                redis::Client::open(setup.sentinel.url())
                    .and_then(|c| c.get_connection())
                    .and_then(|mut c| {
                        redis::cmd("SENTINEL")
                            .arg("REPLICAS")
                            .arg(Self::MASTER)
                            .query::<redis::Value>(&mut c)
                    })
                    .is_ok_and(|v| format!("{v:?}").contains(&replica))
            },
        );
        setup
    }

    /// The Sentinel's URL.
    pub fn sentinel_url(&self) -> String {
        self.sentinel.url()
    }

    /// Waits until the replica has every write the master acknowledged (`WAIT 1`), so that
    /// a failover after it loses none of them: replication is asynchronous.
    pub fn wait_for_replication(&self) {
        let url = match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.master.port()),
            None => self.master.url(),
        };
        let replicas: i64 = redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .and_then(|mut c| redis::cmd("WAIT").arg(1).arg(5000).query(&mut c))
            .expect("WAIT on the master");
        assert_eq!(replicas, 1, "the replica acknowledged the master's writes");
    }

    /// The master at the start.
    pub fn master(&mut self) -> &mut RedisServer {
        &mut self.master
    }

    /// The replica at the start (the master after a failover).
    pub fn replica(&self) -> &RedisServer {
        &self.replica
    }
}

/// `INFO section` of the server at `url`, or nothing if it does not answer.
pub fn info(url: &str, section: &str) -> String {
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .and_then(|mut c| redis::cmd("INFO").arg(section).query::<String>(&mut c))
        .unwrap_or_default()
}

/// How many times the server at `url` ran `command`, from `INFO commandstats`.
pub fn command_calls(url: &str, command: &str) -> u64 {
    let stats = info(url, "commandstats");
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map_or(0, |rest| {
            rest.split(',')
                .next()
                .and_then(|calls| calls.parse().ok())
                .unwrap_or(0)
        })
}

/// Waits until `done` holds, failing the test after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Redis Cluster of masters on loopback, started by a test; stopped when dropped.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` cluster-enabled servers and joins them into one cluster.
    pub fn start(masters: usize) -> Self {
        let nodes: Vec<RedisServer> = (0..masters)
            .map(|_| RedisServer::start_with(&[CLUSTER_ARGS, NO_PERSISTENCE].concat()))
            .collect();
        let addresses = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        Self::join(nodes, addresses, &[])
    }

    /// Starts `masters` cluster-enabled servers that talk to clients and to each other over
    /// TLS with `pki`'s certificates, and joins them into one cluster over TLS.
    pub fn start_tls(masters: usize, pki: &TestPki) -> Self {
        let nodes: Vec<RedisServer> = (0..masters)
            .map(|_| {
                RedisServer::start_tls_with(
                    pki,
                    false,
                    &[CLUSTER_ARGS, NO_PERSISTENCE, &["--tls-cluster", "yes"]].concat(),
                )
            })
            .collect();
        let addresses = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.tls_port.expect("a TLS server")))
            .collect();
        let ca = pki.path("ca.crt").to_str().expect("utf-8 path").to_owned();
        Self::join(nodes, addresses, &["--tls", "--cacert", &ca])
    }

    fn join(nodes: Vec<RedisServer>, addresses: Vec<String>, cli_args: &[&str]) -> Self {
        // `--cluster create` waits for the nodes to meet for as long as it takes: bounded
        // here, so a cluster that cannot form fails the test instead of hanging it.
        let output = Command::new("timeout")
            .args(["60", "redis-cli"])
            .args(cli_args)
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_until_ok();
        cluster
    }

    fn wait_until_ok(&self) {
        let start = Instant::now();
        loop {
            let ok = self.nodes.iter().all(|node| {
                redis::Client::open(node.url())
                    .and_then(|c| c.get_connection())
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            });
            if ok {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the cluster did not reach cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes' `rediss://` URLs (a cluster started with [`RedisCluster::start_tls`]).
    pub fn tls_urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::tls_url).collect()
    }
}

/// Total bytes the server has read from clients (`INFO stats` `total_net_input_bytes`).
pub fn net_input_bytes(url: &str) -> u64 {
    let mut conn = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("connect for INFO");
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut conn)
        .expect("INFO stats");
    info.lines()
        .find_map(|l| l.strip_prefix("total_net_input_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_net_input_bytes in INFO stats")
}

/// A store on the shared server in `layout`, under a key prefix of its own for `test`; `None`
/// (the test skipped, or failed under `SESSION_TEST_REQUIRE_REDIS=1`) when no server answers.
pub async fn shared_store(
    test: &str,
    layout: session_runtime::RedisLayout,
) -> Option<session_runtime::RedisStore> {
    let Some(url) = shared_redis_url() else {
        skip_without_redis(test, "no Redis answers on the shared URL");
        return None;
    };
    Some(
        session_runtime::RedisStore::connect(url.as_str())
            .await
            .expect("connect to the shared Redis")
            .with_key_prefix(unique_prefix(test))
            .with_layout(layout),
    )
}

/// Whether `test` can start servers of its own (`redis-server` and `redis-cli` installed);
/// if not, the test is skipped (or fails under `SESSION_TEST_REQUIRE_REDIS=1`).
pub fn can_start_servers(test: &str) -> bool {
    let present = redis_binaries_present();
    if !present {
        skip_without_redis(test, "redis-server/redis-cli are not installed");
    }
    present
}

/// Bytes the server at `url` reads while `app` answers `requests` requests built by
/// `request` (an `INFO stats` delta, the cost of asking `INFO` itself taken off). Every
/// response must be `200`.
pub async fn bytes_sent_for(
    url: &str,
    app: &axum::Router,
    requests: u64,
    request: impl Fn() -> axum::http::Request<axum::body::Body>,
) -> u64 {
    let baseline = {
        let a = net_input_bytes(url);
        let b = net_input_bytes(url);
        b - a
    };
    let before = net_input_bytes(url);
    for _ in 0..requests {
        let response = crate::http::send(app, request()).await;
        assert_eq!(response.status(), axum::http::StatusCode::OK);
    }
    let after = net_input_bytes(url);
    after - before - baseline
}
