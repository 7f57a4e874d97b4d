//! NATS and PostgreSQL for `lots dev`: use the ones that answer, else start them locally.
//!
//! A NATS server older than 2.10 is not used: Lotsen's consumers need `filter_subjects`.
//!
//! A started `nats-server -js` keeps its store under `<state>/nats`; a started PostgreSQL
//! keeps its cluster under `<state>/pg/data`, which the next `lots dev` reuses, so data
//! survives restarts. A started server listens on the configured port when that is free on
//! 127.0.0.1, else on any free port.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};

use lots_testkit::local;

use crate::dev::process::{self, Children, Owned};

/// A dependency's URL and whether `lots dev` started it.
#[derive(Debug, Clone)]
pub struct Dependency {
    pub url: String,
    /// Started by this `lots dev`, with data and log under this folder.
    pub started_in: Option<PathBuf>,
    /// For a nats-server `lots dev` started: the password of its service users.
    pub password: Option<String>,
}

/// NATS with JetStream at `url`, or a `nats-server -js` started under `state/nats`.
pub async fn nats(url: &str, state: &Path, children: &mut Children) -> anyhow::Result<Dependency> {
    match probe_nats(url).await {
        Ok(()) => {
            return Ok(Dependency { url: url.to_owned(), started_in: None, password: None });
        }
        Err(why) => println!("nats:     {why} at {url}; starting nats-server under {}", state.join("nats").display()),
    }
    let bin = local::nats_server_binary()?;
    let dir = state.join("nats");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let port = local::free_port(local_port(url))?;
    // Each service connects as its own user, as in production (lots-events `access`).
    let password = uuid::Uuid::now_v7().simple().to_string();
    let users = dir.join("users.conf");
    std::fs::write(&users, lots_testkit::nats_users(&password)).context("write the NATS users")?;
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(&users)
        .args(["-js", "-n", "lots-dev", "-a", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .arg("--store_dir")
        .arg(dir.join("jetstream"));
    let owned = Owned::spawn("nats-server", cmd, &dir.join("nats-server.log"), "TERM", None)?;
    children.push(owned);
    if let Some(server) = children.last_mut() {
        server.wait_ready(port, Duration::from_secs(15)).await?;
    }
    let url = format!("nats://127.0.0.1:{port}");
    probe_nats(&url).await.map_err(|why| anyhow::anyhow!("the nats-server just started: {why}"))?;
    Ok(Dependency { url, started_in: Some(dir), password: Some(password) })
}

/// Whether a NATS server with JetStream answers at `url`; the reason when not.
async fn probe_nats(url: &str) -> Result<(), String> {
    let connect = async_nats::ConnectOptions::new()
        .name("lots-dev-probe")
        .connection_timeout(Duration::from_secs(2))
        .connect(url);
    let client = match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok(client)) => client,
        Ok(Err(_)) | Err(_) => return Err("no NATS server answers".to_owned()),
    };
    let info = client.server_info();
    if !lots_platform::nats::server_version_supported(&info.version) {
        let (major, minor) = lots_platform::nats::MIN_SERVER_VERSION;
        return Err(format!("nats-server {} (too old: Lotsen needs {major}.{minor} or newer)", info.version));
    }
    if info.jetstream { Ok(()) } else { Err("the NATS server runs without JetStream (-js)".to_owned()) }
}

/// What a Postgres URL answered.
enum PgProbe {
    Ready,
    Unreachable,
}

/// PostgreSQL at `url`, or a cluster started under `state/pg` (reused when it exists).
pub async fn postgres(url: &str, state: &Path, children: &mut Children) -> anyhow::Result<Dependency> {
    if let PgProbe::Ready = probe_postgres(url).await? {
        return Ok(Dependency { url: url.to_owned(), started_in: None, password: None });
    }
    let dir = state.join("pg");
    println!("postgres: nothing answers at {}; starting PostgreSQL under {}", redact(url), dir.display());
    let opts: PgConnectOptions = url.parse().context("LOTS_DATABASE_URL")?;
    let database = opts.get_database().unwrap_or("lots").to_owned();
    let pg = local::pg_binaries()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let dir = dir.canonicalize().with_context(|| format!("resolve {}", dir.display()))?;
    let data = dir.join("data");
    local::give_to_postgres(&dir)?;
    if !data.join("PG_VERSION").is_file() {
        init_cluster(&pg, &dir, &data)?;
    }
    let pid_file = data.join("postmaster.pid");
    if let Some(pid) = local::read_pid_file(&pid_file).filter(|p| process::is_running(*p)) {
        bail!(
            "a PostgreSQL is still running on {} (pid {pid}), perhaps from another `lots dev`; \
             stop it with `kill -INT {pid}`, or give this one another --state-dir",
            data.display()
        );
    }
    let port = local::free_port(opts.get_port().into())?;
    let mut cmd = local::as_postgres_user(&pg.postgres);
    cmd.arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "unix_socket_directories="])
        .args(["-c", "max_connections=200"]);
    let owned = Owned::spawn("postgres", cmd, &dir.join("postgres.log"), "INT", Some(pid_file))?;
    children.push(owned);
    if let Some(server) = children.last_mut() {
        server.wait_ready(port, Duration::from_secs(60)).await?;
    }
    let url = format!("postgres://postgres@127.0.0.1:{port}/{database}");
    // It listens before it accepts sessions ("the database system is starting up").
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !matches!(probe_postgres(&url).await, Ok(PgProbe::Ready)) {
        if std::time::Instant::now() > deadline {
            bail!("the PostgreSQL just started does not accept sessions; see {}", dir.join("postgres.log").display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Dependency { url, started_in: Some(state.join("pg")), password: None })
}

async fn probe_postgres(url: &str) -> anyhow::Result<PgProbe> {
    let opts: PgConnectOptions = url.parse().context("LOTS_DATABASE_URL is not a PostgreSQL URL")?;
    let opts = opts.log_statements(tracing::log::LevelFilter::Off);
    match tokio::time::timeout(Duration::from_secs(3), PgConnection::connect_with(&opts)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(PgProbe::Ready)
        }
        // The database does not exist yet: the services create it.
        Ok(Err(sqlx::Error::Database(e))) if e.code().as_deref() == Some("3D000") => Ok(PgProbe::Ready),
        Ok(Err(sqlx::Error::Database(e))) => {
            bail!("PostgreSQL at {} refused the connection: {}", redact(url), e.message())
        }
        Ok(Err(_)) | Err(_) => Ok(PgProbe::Unreachable),
    }
}

fn init_cluster(pg: &local::PgBinaries, dir: &Path, data: &Path) -> anyhow::Result<()> {
    if data.exists() {
        // A cluster without PG_VERSION is an interrupted initdb; start over.
        std::fs::remove_dir_all(data).with_context(|| format!("remove {}", data.display()))?;
    }
    println!("postgres: creating a new cluster in {}", data.display());
    local::init_cluster(pg, data, &dir.join("initdb.log"))
}

/// The port of a URL on this machine, to reuse for a server started in its place.
fn local_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host_port = rest.split(['/', '?']).next()?;
    let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, h)| h);
    let (host, port) = host_port.rsplit_once(':')?;
    matches!(host, "127.0.0.1" | "localhost" | "[::1]").then(|| port.parse().ok()).flatten()
}

/// A URL without its password, for printing.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or("");
            format!("{scheme}://{name}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ports_are_read_from_urls() {
        assert_eq!(local_port("nats://127.0.0.1:4222"), Some(4222));
        assert_eq!(local_port("nats://localhost:14222"), Some(14222));
        assert_eq!(local_port("postgres://postgres@127.0.0.1:5433/lots?sslmode=disable"), Some(5433));
        assert_eq!(local_port("nats://nats.example.se:4222"), None);
        assert_eq!(local_port("nats://127.0.0.1"), None);
    }

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(redact("postgres://lots:hemligt@db:5432/lots"), "postgres://lots:***@db:5432/lots");
        assert_eq!(redact("postgres://postgres@127.0.0.1:5432/lots"), "postgres://postgres@127.0.0.1:5432/lots");
    }
}
