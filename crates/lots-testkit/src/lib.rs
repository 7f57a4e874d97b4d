//! Test support: real NATS and real PostgreSQL for Lotsen's tests, never mocks.
//!
//! - NATS: `LOTS_TEST_NATS_URL`, else a `nats-server -js` (2.10 or newer) of the test's own on
//!   a free port.
//! - Postgres: `LOTS_TEST_DATABASE_URL`, else 127.0.0.1:5432 as `postgres`, else a throwaway
//!   cluster (`initdb` + `postgres`) in a temporary folder. Each test gets a fresh database.
//!
//! - OpenID: `tools/oidc` (the npm package `oidc-provider`) as a process, one issuer per tenant
//!   ([`TestOidc`]); tests get real tokens from it.
//!
//! Every test also gets a unique subject prefix, so tests can share one NATS server.

pub mod oidc;

pub use oidc::{TestOidc, Who};

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::{Connection, PgConnection};

/// Installs a silent tracing subscriber once; `TEST_LOG=1` (or a filter) shows logs.
pub fn init_tracing() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let filter = if filter == "1" { "info".to_owned() } else { filter };
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// A unique subject prefix for one test.
pub fn subject_prefix() -> String {
    format!("t{}", uuid::Uuid::now_v7().simple())
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

fn wait_for_port(port: u16, what: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("{what} did not start listening on port {port} within {timeout:?}")
}

fn find_binary(name: &str, extra_dirs: &[&str], install: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(extra_dirs.iter().map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("`{name}` is not installed; Lotsen's tests need a real server. Install it with: {install}")
}

/// The first `nats-server` in PATH, then /usr/sbin, that is new enough for Lotsen; looked up once.
fn nats_server_binary() -> anyhow::Result<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let (mut seen, mut too_old) = (Vec::new(), Vec::new());
        for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]) {
            let candidate = dir.join("nats-server");
            let real = candidate.canonicalize().unwrap_or_else(|_| candidate.clone());
            if !candidate.is_file() || seen.contains(&real) {
                continue;
            }
            seen.push(real);
            let version = lots_platform::nats::binary_version(&candidate);
            if lots_platform::nats::server_version_supported(&version) {
                return Ok(candidate);
            }
            too_old.push(format!("{} ({version})", candidate.display()));
        }
        let (major, minor) = lots_platform::nats::MIN_SERVER_VERSION;
        let found = if too_old.is_empty() { "none found".to_owned() } else { format!("found {}", too_old.join(", ")) };
        Err(format!(
            "Lotsen's tests need nats-server {major}.{minor} or newer ({found}; Debian's 2.9 is too old). \
             Install the official binary with: {}",
            lots_platform::nats::install_hint()
        ))
    });
    found.clone().map_err(|why| anyhow::anyhow!(why))
}

/// The role the services connect as in tests.
const SERVICE_ROLE: &str = "lots_service";

/// A NATS server with JetStream for one test, with a user per service (lots-events `access`)
/// and the test's own user, who may do anything.
pub struct TestNats {
    url: String,
    server: Option<OwnedNats>,
}

struct OwnedNats {
    child: Child,
    port: u16,
    store: tempfile::TempDir,
    /// The password of every user on this server.
    password: String,
}

impl TestNats {
    /// `LOTS_TEST_NATS_URL` if set, else a fresh `nats-server -js`.
    pub fn start() -> anyhow::Result<TestNats> {
        if let Ok(url) = std::env::var("LOTS_TEST_NATS_URL") {
            return Ok(TestNats { url, server: None });
        }
        Self::start_owned()
    }

    /// Always a server of this test's own, which it may stop and restart.
    pub fn start_owned() -> anyhow::Result<TestNats> {
        let store = tempfile::tempdir().context("temporary JetStream store")?;
        let password = uuid::Uuid::now_v7().simple().to_string();
        write_users(store.path(), &password)?;
        // Another test may take the free port first: then this server exits at once while the
        // port answers (the other's). Only a server still running after its port opened is ours.
        let mut attempt = 0;
        let (child, port) = loop {
            attempt += 1;
            let port = free_port();
            let mut child = spawn_nats(port, store.path())?;
            std::thread::sleep(Duration::from_millis(150));
            match child.try_wait() {
                Ok(None) => break (child, port),
                _ if attempt < 5 => continue,
                _ => bail!("nats-server exited right after starting on port {port}"),
            }
        };
        let url = format!("nats://127.0.0.1:{port}");
        Ok(TestNats { url, server: Some(OwnedNats { child, port, store, password }) })
    }

    /// The client URL; a client without credentials is the test's own user, who may do anything.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client as `service`'s user ("intake", "routing", "sla", "insight"), allowed only its subjects (a
    /// shared server without users takes everyone).
    pub async fn connect_as(&self, service: &str) -> anyhow::Result<async_nats::Client> {
        let options = match &self.server {
            Some(s) => async_nats::ConnectOptions::with_user_and_password(service.into(), s.password.clone())
                .custom_inbox_prefix(lots_events::access::inbox_prefix(service)),
            None => async_nats::ConnectOptions::new(),
        };
        options.name(service).connect(&self.url).await.with_context(|| format!("connect to nats as {service}"))
    }

    /// Kills the server (like a crash), keeping its store.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(s) = self.server.as_mut() else { bail!("cannot stop a shared NATS server") };
        s.child.kill().context("kill nats-server")?;
        s.child.wait().context("reap nats-server")?;
        Ok(())
    }

    /// Starts the server again on the same port and store.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let Some(s) = self.server.as_mut() else { bail!("cannot restart a shared NATS server") };
        let _ = s.child.kill();
        let _ = s.child.wait();
        s.child = spawn_nats(s.port, s.store.path())?;
        Ok(())
    }
}

/// Writes the server's users (see [`nats_users`]) to `<store>/users.conf`.
fn write_users(store: &Path, password: &str) -> anyhow::Result<()> {
    std::fs::write(store.join("users.conf"), nats_users(password)).context("write the NATS users")
}

/// A nats-server configuration with a user per service, each allowed only what lots-events
/// `access` grants (with or without a one-token subject prefix), all with `password`; a client
/// without credentials is `test`, who may do anything. Tests and `lots dev` use it.
pub fn nats_users(password: &str) -> String {
    let list = |subjects: &[String]| subjects.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    let mut users = vec![format!("{{ user: test, password: {password:?} }}")];
    // A client without credentials is `test`.
    for (service, _) in lots_events::access::EMITS {
        let Some(p) = lots_events::access::permissions(service, "*") else { continue };
        // Production subjects have no prefix; tests' have one token.
        let unprefixed = lots_events::access::permissions(service, "").unwrap_or(p.clone());
        let publish = [p.publish, unprefixed.publish].concat();
        let subscribe = [p.subscribe, unprefixed.subscribe].concat();
        users.push(format!(
            "{{ user: {service}, password: {password:?}, permissions: {{ publish: {{ allow: [{}], deny: [{}] }}, \
             subscribe: {{ allow: [{}] }} }} }}",
            list(&publish),
            list(&p.publish_deny),
            list(&subscribe)
        ));
    }
    format!("no_auth_user: test\nauthorization {{\n  users = [\n    {}\n  ]\n}}\n", users.join("\n    "))
}

fn spawn_nats(port: u16, store: &Path) -> anyhow::Result<Child> {
    let bin = nats_server_binary()?;
    let child = Command::new(bin)
        .arg("-c")
        .arg(store.join("users.conf"))
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "--store_dir"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start nats-server")?;
    wait_for_port(port, "nats-server", Duration::from_secs(10))?;
    Ok(child)
}

impl Drop for TestNats {
    fn drop(&mut self) {
        if let Some(s) = self.server.as_mut() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}

/// A fresh database for one test, dropped afterwards.
pub struct TestDb {
    server_url: String,
    name: String,
}

impl TestDb {
    /// Creates `lots_test_<uuid>` on the test Postgres server.
    pub async fn create() -> anyhow::Result<TestDb> {
        let server_url = postgres_server_url().await?;
        let name = format!("lots_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(&format!("{server_url}/postgres"))
            .await
            .with_context(|| format!("connect to test postgres at {server_url}"))?;
        // The services connect as a role without superuser or BYPASSRLS, as in production, so
        // row-level security applies to them; the test's own connections (`url`) see everything.
        let role = format!(
            "DO $$ BEGIN CREATE ROLE {SERVICE_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        );
        sqlx::query(sqlx::AssertSqlSafe(role)).execute(&mut conn).await.context("create the service role")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name} OWNER {SERVICE_ROLE}")))
            .execute(&mut conn)
            .await
            .context("create test database")?;
        conn.close().await?;
        let mut db =
            PgConnection::connect(&format!("{server_url}/{name}")).await.context("connect to the test database")?;
        for schema in ["intake", "routing", "sla", "insight"] {
            let create = format!("CREATE SCHEMA {schema} AUTHORIZATION {SERVICE_ROLE}");
            sqlx::query(sqlx::AssertSqlSafe(create)).execute(&mut db).await.context("create a service schema")?;
        }
        db.close().await?;
        Ok(TestDb { server_url, name })
    }

    /// The database's URL, as the test's own (super)user.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server_url, self.name)
    }

    /// The database's URL as the services' role, which row-level security applies to.
    pub fn service_url(&self) -> String {
        // Replace whoever the server URL names with the service role (trust auth, as in CI).
        let (scheme, rest) = self.server_url.split_once("://").unwrap_or(("postgres", &self.server_url));
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        format!("{scheme}://{SERVICE_ROLE}@{host}/{}", self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, name) = (format!("{}/postgres", self.server_url), self.name.clone());
        // Drop runs inside the test's runtime; do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&url).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

/// The Postgres server tests use: `LOTS_TEST_DATABASE_URL`, 127.0.0.1:5432, or a throwaway one.
async fn postgres_server_url() -> anyhow::Result<String> {
    if let Ok(url) = std::env::var("LOTS_TEST_DATABASE_URL") {
        return Ok(url.trim_end_matches('/').to_owned());
    }
    let local = "postgres://postgres@127.0.0.1:5432";
    if PgConnection::connect(&format!("{local}/postgres")).await.is_ok() {
        return Ok(local.to_owned());
    }
    static THROWAWAY: OnceLock<Mutex<Option<String>>> = OnceLock::new();
    let slot = THROWAWAY.get_or_init(|| Mutex::new(None));
    let mut guard = slot.lock().map_err(|_| anyhow::anyhow!("throwaway postgres lock poisoned"))?;
    if let Some(url) = guard.as_ref() {
        return Ok(url.clone());
    }
    let url = tokio::task::block_in_place(start_throwaway_postgres)?;
    *guard = Some(url.clone());
    Ok(url)
}

/// Starts `initdb` + `postgres` in a temporary folder; it lives as long as the test process
/// (the server shuts itself down when its data folder disappears is not guaranteed, so it is
/// started with the process group and killed on exit by the OS when the test binary ends).
fn start_throwaway_postgres() -> anyhow::Result<String> {
    let install = "sudo apt-get install -y postgresql (or set LOTS_TEST_DATABASE_URL)";
    let pg_dirs = ["/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"];
    let initdb = find_binary("initdb", &pg_dirs, install)?;
    let postgres = find_binary("postgres", &pg_dirs, install)?;
    let dir = tempfile::Builder::new().prefix("lots-pg-").tempdir()?.keep();
    let data = dir.join("data");
    let as_root = std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    // initdb refuses to run as root; run the cluster as the `postgres` user then.
    let run_as = |bin: &Path| {
        if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        }
    };
    if as_root {
        Command::new("chown").args(["-R", "postgres"]).arg(&dir).status()?;
    }
    let status = run_as(&initdb)
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("run initdb")?;
    if !status.success() {
        bail!("initdb failed for the throwaway test cluster");
    }
    let port = free_port();
    run_as(&postgres)
        .args(["-D"])
        .arg(&data)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-k"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start postgres")?;
    wait_for_port(port, "postgres", Duration::from_secs(20))?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}"))
}

/// Company keys for tests and benchmarks, from a fixed secret.
pub fn company_keys() -> lots_domain::CompanyKeys {
    lots_domain::CompanyKeys::new(b"lots test company-key secret, not for production use")
        .unwrap_or_else(|e| panic!("{e}"))
}
