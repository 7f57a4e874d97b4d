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

pub mod local;
pub mod oidc;

pub use oidc::{TestOidc, Who};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use local::{nats_server_binary, wait_for_port};
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
    local::free_port(None).unwrap_or(0)
}

/// The role the services connect as in tests.
const SERVICE_ROLE: &str = "lots_service";

/// A NATS server (or a three-node cluster) with JetStream for one test, with a user per
/// service (lots-events `access`) and the test's own user, who may do anything.
pub struct TestNats {
    url: String,
    /// The servers this test started: none on a shared server, one, or a cluster's nodes.
    servers: Vec<OwnedNats>,
    /// The password of every user on these servers.
    password: String,
    /// Stores and configuration files; removed when the test ends.
    _dir: Option<tempfile::TempDir>,
}

struct OwnedNats {
    child: Option<Child>,
    port: u16,
    /// The node's configuration file (users, JetStream store, cluster routes).
    conf: PathBuf,
}

impl OwnedNats {
    fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("kill nats-server")?;
            child.wait().context("reap nats-server")?;
        }
        Ok(())
    }
}

/// Starts `nats-server -c conf`; another test may take the free port first: then this server
/// exits at once while the port answers (the other's), so only a server still running after
/// its port opened is ours.
fn spawn_nats(port: u16, conf: &Path) -> anyhow::Result<Child> {
    let bin = nats_server_binary()?;
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start nats-server")?;
    let listening = wait_for_port(port, "nats-server", Duration::from_secs(10));
    if listening.is_ok() {
        std::thread::sleep(Duration::from_millis(150));
    }
    match (listening, child.try_wait().context("check nats-server")?) {
        (Ok(()), None) => Ok(child),
        (listening, exited) => {
            let _ = child.kill();
            let _ = child.wait();
            listening?;
            bail!("nats-server exited right after starting on port {port} ({exited:?})")
        }
    }
}

impl TestNats {
    /// `LOTS_TEST_NATS_URL` if set, else a fresh `nats-server -js`.
    pub fn start() -> anyhow::Result<TestNats> {
        if let Ok(url) = std::env::var("LOTS_TEST_NATS_URL") {
            return Ok(TestNats { url, servers: Vec::new(), password: String::new(), _dir: None });
        }
        Self::start_owned()
    }

    /// Always a server of this test's own, which it may stop and restart.
    pub fn start_owned() -> anyhow::Result<TestNats> {
        Self::start_nodes(1)
    }

    /// A JetStream cluster of `nodes` servers on loopback (the same nats-server as everywhere),
    /// ready when it has elected a meta leader. Its stream can be kept at R3, and any one node
    /// may be killed and restarted ([`TestNats::kill_node`]). Needs a multi-thread runtime
    /// (`#[tokio::test(flavor = "multi_thread")]`): the servers start on a blocking section.
    pub async fn start_cluster(nodes: usize) -> anyhow::Result<TestNats> {
        let nats = tokio::task::block_in_place(|| Self::start_nodes(nodes))?;
        let client = async_nats::connect(nats.url()).await.context("connect to the test cluster")?;
        let js = async_nats::jetstream::new(client);
        // Ready when a stream can be kept on every node: a meta leader alone is not enough,
        // the first service's stream needs all its peers.
        let probe = async_nats::jetstream::stream::Config {
            name: format!("READY_{}", uuid::Uuid::now_v7().simple()),
            subjects: vec![format!("ready.{}", uuid::Uuid::now_v7().simple())],
            num_replicas: nodes,
            ..Default::default()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while js.create_stream(probe.clone()).await.is_err() {
            if Instant::now() > deadline {
                bail!("the {nodes}-node test cluster could not keep a stream on {nodes} nodes within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        js.delete_stream(&probe.name).await.context("delete the readiness probe stream")?;
        Ok(nats)
    }

    fn start_nodes(nodes: usize) -> anyhow::Result<TestNats> {
        let dir = tempfile::tempdir().context("temporary JetStream store")?;
        let password = uuid::Uuid::now_v7().simple().to_string();
        let users = nats_users(&password);
        // Each cluster its own name, so a stray node of another test never joins it.
        let cluster = format!("lots-test-{}", uuid::Uuid::now_v7().simple());
        let mut attempt = 0;
        let servers = loop {
            attempt += 1;
            let ports: Vec<(u16, u16)> = (0..nodes).map(|_| (free_port(), free_port())).collect();
            let mut servers = Vec::new();
            let mut failed = None;
            for (i, (port, cluster_port)) in ports.iter().enumerate() {
                // A fresh store per attempt: a failed attempt's node leaves state behind.
                let store = dir.path().join(format!("a{attempt}-n{i}"));
                let mut conf = format!(
                    "server_name: n{i}\nlisten: \"127.0.0.1:{port}\"\njetstream {{ store_dir: {store:?} }}\n{users}"
                );
                if nodes > 1 {
                    let routes: Vec<String> = ports
                        .iter()
                        .filter(|(_, c)| c != cluster_port)
                        .map(|(_, c)| format!("\"nats-route://127.0.0.1:{c}\""))
                        .collect();
                    conf.push_str(&format!(
                        "cluster {{ name: {cluster:?}, listen: \"127.0.0.1:{cluster_port}\", routes: [{}] }}\n",
                        routes.join(", ")
                    ));
                }
                let path = dir.path().join(format!("n{i}.conf"));
                std::fs::write(&path, conf).context("write the nats-server configuration")?;
                match spawn_nats(*port, &path) {
                    Ok(child) => servers.push(OwnedNats { child: Some(child), port: *port, conf: path }),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                None => break servers,
                Some(_) if attempt < 5 => {
                    for mut s in servers {
                        let _ = s.kill();
                    }
                }
                Some(e) => return Err(e),
            }
        };
        let url = format!("nats://127.0.0.1:{}", servers[0].port);
        Ok(TestNats { url, servers, password, _dir: Some(dir) })
    }

    /// The client URL of the first node; a client without credentials is the test's own user,
    /// who may do anything. A client learns a cluster's other nodes from it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every node's URL, comma-separated (what `LOTS_NATS_URL` takes).
    pub fn urls(&self) -> String {
        if self.servers.is_empty() {
            return self.url.clone();
        }
        self.servers.iter().map(|s| format!("nats://127.0.0.1:{}", s.port)).collect::<Vec<_>>().join(",")
    }

    /// The password of the service users on a server of this test's own.
    pub fn password(&self) -> Option<&str> {
        (!self.servers.is_empty()).then_some(self.password.as_str())
    }

    /// A client as `service`'s user ("intake", "routing", "sla", "insight"), allowed only its
    /// subjects (a shared server without users takes everyone), on any node of a cluster.
    pub async fn connect_as(&self, service: &str) -> anyhow::Result<async_nats::Client> {
        let options = if self.servers.is_empty() {
            async_nats::ConnectOptions::new()
        } else {
            async_nats::ConnectOptions::with_user_and_password(service.into(), self.password.clone())
                .custom_inbox_prefix(lots_events::access::inbox_prefix(service))
        };
        let urls = self.urls();
        options
            .name(service)
            .connect(lots_platform::nats::servers(&urls))
            .await
            .with_context(|| format!("connect to nats as {service}"))
    }

    /// Kills the server (like a crash), keeping its store.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.kill_node(0)
    }

    /// Starts the server again on the same port and store.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.restart_node(0)
    }

    /// SIGKILLs node `i`, keeping its store.
    pub fn kill_node(&mut self, i: usize) -> anyhow::Result<()> {
        let Some(s) = self.servers.get_mut(i) else { bail!("cannot stop a NATS server this test did not start") };
        s.kill()
    }

    /// Starts node `i` again on its port and store; it rejoins its cluster.
    pub fn restart_node(&mut self, i: usize) -> anyhow::Result<()> {
        let Some(s) = self.servers.get_mut(i) else { bail!("cannot restart a NATS server this test did not start") };
        s.kill()?;
        s.child = Some(spawn_nats(s.port, &s.conf)?);
        Ok(())
    }
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

impl Drop for TestNats {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
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
        Self::create_at(&postgres_server_url().await?).await
    }

    /// Creates `lots_test_<uuid>` on the server at `server_url` (e.g. a [`TestPostgres`]).
    pub async fn create_at(server_url: &str) -> anyhow::Result<TestDb> {
        let server_url = server_url.trim_end_matches('/').to_owned();
        let name = format!("lots_test_{}", uuid::Uuid::now_v7().simple());
        // A server just started listens before it accepts sessions ("starting up").
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut conn = loop {
            match PgConnection::connect(&format!("{server_url}/postgres")).await {
                Ok(conn) => break conn,
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => return Err(e).with_context(|| format!("connect to test postgres at {server_url}")),
            }
        };
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
    // One per test process, stopped and removed by its watchdog when the process ends.
    static THROWAWAY: OnceLock<Mutex<Option<TestPostgres>>> = OnceLock::new();
    let slot = THROWAWAY.get_or_init(|| Mutex::new(None));
    let mut guard = slot.lock().map_err(|_| anyhow::anyhow!("throwaway postgres lock poisoned"))?;
    if let Some(pg) = guard.as_ref() {
        return Ok(pg.url());
    }
    let pg = tokio::task::block_in_place(TestPostgres::start)?;
    let url = pg.url();
    *guard = Some(pg);
    Ok(url)
}

/// A PostgreSQL server of this test's own (`initdb` + `postgres` in a temporary folder, as the
/// `postgres` user when we are root), which the test may crash and restart. A watchdog stops it
/// and removes the folder when the test process ends, even if it is killed; dropping it does
/// the same at once.
pub struct TestPostgres {
    pg: local::PgBinaries,
    dir: PathBuf,
    port: u16,
    child: Mutex<Option<Child>>,
}

impl TestPostgres {
    /// A new cluster, started and accepting sessions.
    pub fn start() -> anyhow::Result<TestPostgres> {
        let pg = local::pg_binaries()?;
        let dir = tempfile::Builder::new().prefix("lots-pg-").tempdir()?.keep();
        // Armed first, so the folder goes even if the steps below fail.
        local::clean_up_after_exit(&dir.join("data/postmaster.pid"), "INT", &dir)?;
        local::give_to_postgres(&dir)?;
        local::init_cluster(&pg, &dir.join("data"), &dir.join("initdb.log"))?;
        let mut server = TestPostgres { pg, dir, port: free_port(), child: Mutex::new(None) };
        // Another test may take the free port first; then try another.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match server.restart() {
                Ok(()) => return Ok(server),
                Err(_) if attempt < 5 => server.port = free_port(),
                Err(e) => return Err(e),
            }
        }
    }

    /// The server's URL, as the superuser `postgres` (trust auth), without a database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    fn postmaster(&self) -> Option<u32> {
        local::read_pid_file(&self.dir.join("data/postmaster.pid"))
    }

    /// Crashes the server: an immediate shutdown (SIGQUIT), which writes no checkpoint, so
    /// the next start recovers from the WAL as after a power cut.
    pub fn crash(&self) -> anyhow::Result<()> {
        let pid = self.postmaster().context("the test postgres is not running")?;
        let signalled = local::signal(pid, "QUIT");
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut c) = child.take() {
            if !signalled {
                let _ = c.kill();
            }
            c.wait().context("reap postgres")?;
        }
        Ok(())
    }

    /// Starts the server (again) on its port and folder, and waits until it listens.
    pub fn restart(&self) -> anyhow::Result<()> {
        // A pid file left by a server that is gone would read as ready below.
        let pid_file = self.dir.join("data/postmaster.pid");
        if self.postmaster().is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = std::fs::remove_file(&pid_file);
        }
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .context("open postgres.log")?;
        let child = local::as_postgres_user(&self.pg.postgres)
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=300", "-k"])
            .arg(&self.dir)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start postgres")?;
        let mut slot = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut old) = slot.replace(child) {
            let _ = old.kill();
            let _ = old.wait();
        }
        // Ready when our postmaster says so in its pid file (line 4 its port, line 8 its
        // status): a port that merely answers may be another test's server.
        let log = self.dir.join("postgres.log");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&pid_file).unwrap_or_default();
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            if lines.get(3) == Some(&self.port.to_string().as_str()) && lines.get(7) == Some(&"ready") {
                return Ok(());
            }
            let exited = slot.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let why = if exited.is_some() { "exited" } else { "was not ready within 30 s" };
                bail!("postgres on port {} {why}; see {}:\n{}", self.port, log.display(), local::log_tail(&log));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let signalled = self.postmaster().is_some_and(|pid| local::signal(pid, "INT"));
        if let Some(mut c) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if !signalled {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The fixed secret of [`company_keys`], for a service run as a process (`LOTS_COMPANY_KEY_FILE`).
pub const COMPANY_KEY_SECRET: &[u8] = b"lots test company-key secret, not for production use";

/// Company keys for tests and benchmarks, from a fixed secret.
pub fn company_keys() -> lots_domain::CompanyKeys {
    lots_domain::CompanyKeys::new(COMPANY_KEY_SECRET).unwrap_or_else(|e| panic!("{e}"))
}
