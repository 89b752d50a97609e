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
    ["redis-server", "redis-cli"].iter().all(|bin| {
        Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
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
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server without persistence.
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
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
        let dir = temp_dir(&format!("redis-{port}"));
        let mut server = Self {
            port,
            dir,
            args: extra.iter().map(ToString::to_string).collect(),
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
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

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
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

fn wait_for(url: &str, limit: Duration) {
    let start = Instant::now();
    while !ping(url) {
        assert!(start.elapsed() < limit, "redis at {url} did not start");
        std::thread::sleep(Duration::from_millis(50));
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
            .map(|_| {
                RedisServer::start_with(&[
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
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
