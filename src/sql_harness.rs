//! SQL databases for tests: the shared PostgreSQL and MariaDB/MySQL servers the machine runs,
//! SQLite files, and private PostgreSQL servers a test starts, stops and restarts.
//!
//! Each test gets tables of its own (a unique table prefix, or its own SQLite file), and
//! drops them when it ends; it never touches tables it did not make.
//!
//! When a server is not reachable, tests that need it print how to run them and return
//! early, unless `SESSION_TEST_REQUIRE_SQL=1` (as in CI), where they fail instead.

use std::{
    io::Write as _,
    path::PathBuf,
    process::{Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use session_runtime::{MySqlStore, PostgresStore, SqliteStore};

/// Whether a missing database server must fail the test (CI) rather than skip it.
pub fn sql_required() -> bool {
    std::env::var("SESSION_TEST_REQUIRE_SQL").is_ok_and(|v| v == "1")
}

/// Reports a test that cannot run without `server`: fails in CI, says how to run it elsewhere.
pub fn skip_without(test: &str, server: &str, why: &str) {
    assert!(
        !sql_required(),
        "{test}: {server} is required (SESSION_TEST_REQUIRE_SQL=1) but {why}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {why}. Start {server} (see the README's Set-up; `.ci/run` installs and \
         starts it), then run `cargo test --workspace --all-features`."
    );
}

/// The shared PostgreSQL server's URL (`SESSION_TEST_POSTGRES_URL`).
pub fn postgres_url() -> String {
    std::env::var("SESSION_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned())
}

/// The shared MariaDB/MySQL server's URL (`SESSION_TEST_MYSQL_URL`).
pub fn mysql_url() -> String {
    std::env::var("SESSION_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

/// A table prefix (or file stem) no other test or run uses: `t<pid>_<n>_<nanos>_`.
pub fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "t{}_{}_{nanos}_",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// What a test made, removed when it is dropped (also when the test fails).
pub struct Made {
    what: MadeKind,
}

enum MadeKind {
    Tables { url: String, prefix: String },
    File(PathBuf),
    Nothing,
}

impl Made {
    /// Nothing to remove.
    pub fn nothing() -> Self {
        Self {
            what: MadeKind::Nothing,
        }
    }

    /// The tables `<prefix>session_records` and `<prefix>session_fields` on the server at
    /// `url`, made by the caller.
    pub fn tables(url: &str, prefix: &str) -> Self {
        Self {
            what: MadeKind::Tables {
                url: url.to_owned(),
                prefix: prefix.to_owned(),
            },
        }
    }

    /// A SQLite file at `path` (and its `-wal` and `-shm` companions), made by the caller.
    pub fn file(path: PathBuf) -> Self {
        Self {
            what: MadeKind::File(path),
        }
    }

    /// The prefix of the tables made (empty for a SQLite file, whose tables have none).
    pub fn prefix(&self) -> &str {
        match &self.what {
            MadeKind::Tables { prefix, .. } => prefix,
            _ => "",
        }
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        match &self.what {
            MadeKind::Tables { url, prefix } => {
                let (url, prefix) = (url.clone(), prefix.clone());
                // Drop runs inside the test's runtime, where blocking on another is not
                // allowed: a thread of its own, with a runtime of its own.
                let _ = std::thread::spawn(move || drop_tables(&url, &prefix)).join();
            }
            MadeKind::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut name = path.clone().into_os_string();
                    name.push(suffix);
                    let _ = std::fs::remove_file(name);
                }
            }
            MadeKind::Nothing => {}
        }
    }
}

impl Made {
    /// Every `(name, value)` row of the fields table this test made, as the database holds
    /// it: what a dump of the table shows.
    pub async fn stored_rows(&self) -> Vec<(String, Vec<u8>)> {
        match &self.what {
            MadeKind::Tables { url, prefix } => {
                let sql = format!("SELECT name, value FROM {prefix}session_fields");
                let sql = sqlx::AssertSqlSafe(sql.as_str());
                if url.starts_with("postgres") {
                    let pool = sqlx::PgPool::connect(url).await.expect("connect");
                    let rows = sqlx::query_as(sql).fetch_all(&pool).await.expect("read");
                    pool.close().await;
                    rows
                } else {
                    let pool = sqlx::MySqlPool::connect(url).await.expect("connect");
                    let rows: Vec<(Vec<u8>, Vec<u8>)> =
                        sqlx::query_as(sql).fetch_all(&pool).await.expect("read");
                    pool.close().await;
                    rows.into_iter()
                        .map(|(name, value)| (String::from_utf8_lossy(&name).into_owned(), value))
                        .collect()
                }
            }
            MadeKind::File(path) => {
                let pool = sqlx::SqlitePool::connect(&sqlite_url(path))
                    .await
                    .expect("open");
                let rows = sqlx::query_as("SELECT name, value FROM session_fields")
                    .fetch_all(&pool)
                    .await
                    .expect("read");
                pool.close().await;
                rows
            }
            MadeKind::Nothing => Vec::new(),
        }
    }
}

fn drop_tables(url: &str, prefix: &str) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async {
        let statements = [
            format!("DROP TABLE IF EXISTS {prefix}session_fields"),
            format!("DROP TABLE IF EXISTS {prefix}session_records"),
        ];
        if url.starts_with("postgres") {
            if let Ok(pool) = sqlx::PgPool::connect(url).await {
                for sql in &statements {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                        .execute(&pool)
                        .await;
                }
                pool.close().await;
            }
        } else if let Ok(pool) = sqlx::MySqlPool::connect(url).await {
            for sql in &statements {
                let _ = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .execute(&pool)
                    .await;
            }
            pool.close().await;
        }
    });
}

/// A migrated `PostgresStore` on tables of its own on the shared server, or `None` (after
/// reporting the skip) if the server does not answer.
pub async fn postgres(test: &str) -> Option<(PostgresStore, Made)> {
    let url = postgres_url();
    let store = match PostgresStore::connect(&url).await {
        Ok(store) => store,
        Err(err) => {
            skip_without(
                test,
                "PostgreSQL",
                &format!("{url} does not answer ({})", crate::report(&err)),
            );
            return None;
        }
    };
    let prefix = unique_name();
    let made = Made {
        what: MadeKind::Tables {
            url,
            prefix: prefix.clone(),
        },
    };
    let store = store.with_table_prefix(&prefix);
    store.migrate().await.expect("create the test's tables");
    Some((store, made))
}

/// A second store on the tables `made` holds, through a pool of its own (as a second app
/// instance would have).
pub async fn second_postgres(made: &Made) -> PostgresStore {
    PostgresStore::connect(postgres_url())
        .await
        .expect("a second pool")
        .with_table_prefix(made.prefix())
}

/// A migrated `MySqlStore` on tables of its own on the shared server, or `None`.
pub async fn mysql(test: &str) -> Option<(MySqlStore, Made)> {
    let url = mysql_url();
    let store = match MySqlStore::connect(&url).await {
        Ok(store) => store,
        Err(err) => {
            skip_without(
                test,
                "MariaDB or MySQL",
                &format!("{url} does not answer ({})", crate::report(&err)),
            );
            return None;
        }
    };
    let prefix = unique_name();
    let made = Made {
        what: MadeKind::Tables {
            url,
            prefix: prefix.clone(),
        },
    };
    let store = store.with_table_prefix(&prefix);
    store.migrate().await.expect("create the test's tables");
    Some((store, made))
}

/// A second store on the tables `made` holds, through a pool of its own.
pub async fn second_mysql(made: &Made) -> MySqlStore {
    MySqlStore::connect(mysql_url())
        .await
        .expect("a second pool")
        .with_table_prefix(made.prefix())
}

/// A migrated `SqliteStore` on a database file of its own (always available: SQLite is
/// bundled).
pub async fn sqlite(_test: &str) -> Option<(SqliteStore, Made)> {
    let path = std::env::temp_dir().join(format!("{}sessions.db", unique_name()));
    let made = Made {
        what: MadeKind::File(path.clone()),
    };
    let store = SqliteStore::connect(sqlite_url(&path))
        .await
        .expect("open a SQLite file");
    store.migrate().await.expect("create the tables");
    Some((store, made))
}

/// The URL of the SQLite file at `path`.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

/// The file a `SqliteStore` opened by [`sqlite`] uses, for a second store on it.
pub async fn second_sqlite(made: &Made) -> SqliteStore {
    let MadeKind::File(path) = &made.what else {
        panic!("not a SQLite file");
    };
    SqliteStore::connect(sqlite_url(path))
        .await
        .expect("a second pool")
}

/// A PostgreSQL server of a test's own on a free port, run as the `postgres` user (the
/// server refuses to run as root); stopped and its directory removed when dropped.
pub struct PostgresServer {
    dir: PathBuf,
    port: u16,
}

/// Runs `program args` as the `postgres` user when this process is root.
fn as_postgres(program: &str, args: &[&str]) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]).args(args);
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    }
}

impl PostgresServer {
    /// Whether `initdb` and `pg_ctl` are installed (and, as root, a `postgres` user exists).
    pub fn available() -> bool {
        as_postgres("pg_ctl", &["--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Initializes a cluster in a fresh directory and starts it.
    pub fn start() -> Self {
        let port = crate::redis_harness::free_port();
        let dir = std::env::temp_dir().join(format!("{}pg", unique_name()));
        std::fs::create_dir_all(&dir).expect("create the server's directory");
        let _ = Command::new("chown")
            .args(["postgres:postgres", &dir.display().to_string()])
            .status();
        let data = dir.join("data").display().to_string();
        let status = as_postgres(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        )
        .stdout(Stdio::null())
        .status()
        .expect("run initdb");
        assert!(status.success(), "initdb failed");
        let server = Self { dir, port };
        server.run_pg_ctl_start();
        server
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run_pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        let status = as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        )
        .stdout(Stdio::null())
        .status()
        .expect("run pg_ctl start");
        assert!(status.success(), "pg_ctl start failed (see {log})");
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once (`-m immediate`: as a crash would, with no clean shutdown).
    pub fn stop(&self) {
        let _ = as_postgres(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    }

    /// Starts it again on the same port and data.
    pub fn restart(&self) {
        self.run_pg_ctl_start();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until `ready` answers true, for at most `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, mut ready: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A TCP proxy in front of a database server that counts round trips (each time the server
/// answers something the app sent since the server's last answer) and the bytes the app
/// sends. A pool whose every call is one statement makes one round trip per call; a pool
/// that pings a connection around a statement makes more.
pub struct TripCounter {
    trips: std::sync::Arc<AtomicU64>,
    bytes: std::sync::Arc<AtomicU64>,
    connections: std::sync::Arc<AtomicU64>,
    port: u16,
}

impl TripCounter {
    /// Starts the proxy on a free loopback port, in front of `url`'s host and port.
    pub async fn start(url: &str) -> Self {
        use std::sync::{atomic::AtomicBool, Arc};
        use tokio::{
            io::{AsyncReadExt, AsyncWriteExt},
            net::{TcpListener, TcpStream},
        };
        let target = host_port(url);
        let trips = Arc::new(AtomicU64::new(0));
        let (bytes, connections) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let port = listener.local_addr().expect("its address").port();
        let (counted, sent) = (Arc::clone(&trips), Arc::clone(&bytes));
        let opened = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                opened.fetch_add(1, Ordering::Relaxed);
                let (trips, bytes) = (Arc::clone(&counted), Arc::clone(&sent));
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    // Set when the app has sent something the server has not answered yet.
                    let asked = Arc::new(AtomicBool::new(false));
                    let up_asked = Arc::clone(&asked);
                    let up = tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                            bytes.fetch_add(n as u64, Ordering::Relaxed);
                            up_asked.store(true, Ordering::Release);
                            if server_write.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = server_read.read(&mut buf).await {
                        if asked.swap(false, Ordering::AcqRel) {
                            trips.fetch_add(1, Ordering::Relaxed);
                        }
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    up.abort();
                });
            }
        });
        Self {
            trips,
            bytes,
            connections,
            port,
        }
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
        let (auth, path) = rest.split_once('/').unwrap_or((rest, ""));
        let user = auth
            .rsplit_once('@')
            .map_or(String::new(), |(user, _)| format!("{user}@"));
        format!("{scheme}://{user}127.0.0.1:{}/{path}", self.port)
    }

    /// Round trips so far, over every connection through the proxy.
    pub fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    /// Bytes the app sent so far, over every connection through the proxy.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Connections opened through the proxy so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

/// `url`'s `host:port`.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    host.to_owned()
}
