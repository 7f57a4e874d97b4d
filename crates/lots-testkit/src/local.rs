//! Local servers, one place for the tests and `lots dev`: finding `nats-server` (new enough)
//! and PostgreSQL's binaries, free ports, running `initdb` and `postgres` as the `postgres`
//! user when we are root (initdb refuses root), and a watchdog that stops a server and removes
//! its folder when the process that started it ends, however it ends.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How to install PostgreSQL when it is missing.
pub const POSTGRES_INSTALL: &str = "apt-get install -y postgresql (or point LOTS_TEST_DATABASE_URL at a server)";

/// Finds `name` in PATH, then in `extra` folders.
pub fn find_binary(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain(extra.iter().cloned()).map(|dir| dir.join(name)).find(|c| c.is_file())
}

/// The first `nats-server` in PATH, then /usr/sbin, whose `--version` is new enough for
/// Lotsen; looked up once. The error says what was found and how to install a current one.
pub fn nats_server_binary() -> anyhow::Result<PathBuf> {
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
            "Lotsen needs nats-server {major}.{minor} or newer ({found}; Debian's 2.9 is too old). \
             Install the official binary with: {}",
            lots_platform::nats::install_hint()
        ))
    });
    found.clone().map_err(|why| anyhow::anyhow!(why))
}

/// `initdb` and `postgres` of one PostgreSQL installation.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub initdb: PathBuf,
    pub postgres: PathBuf,
}

/// Debian's PostgreSQL binary folders, `/usr/lib/postgresql/*/bin`, newest version first.
pub fn pg_bin_dirs() -> Vec<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    versions.into_iter().map(|(_, p)| p).collect()
}

/// PostgreSQL's server binaries: PATH first, then the newest `/usr/lib/postgresql/*/bin`;
/// `postgres` is the one beside `initdb`.
pub fn pg_binaries() -> anyhow::Result<PgBinaries> {
    let extra = pg_bin_dirs();
    let initdb = find_binary("initdb", &extra)
        .with_context(|| format!("PostgreSQL is not installed (no initdb); install it with: {POSTGRES_INSTALL}"))?;
    let beside = initdb.canonicalize().unwrap_or_else(|_| initdb.clone()).with_file_name("postgres");
    let postgres = if beside.is_file() {
        beside
    } else {
        find_binary("postgres", &extra).context("no `postgres` binary beside initdb")?
    };
    Ok(PgBinaries { initdb, postgres })
}

/// Whether this process runs as root (initdb refuses to).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A command that runs `bin` as the `postgres` user when we are root, else as ourselves.
pub fn as_postgres_user(bin: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(bin);
        cmd
    } else {
        Command::new(bin)
    }
}

/// Gives `dir` to the `postgres` user when we are root, so a cluster can live in it.
pub fn give_to_postgres(dir: &Path) -> anyhow::Result<()> {
    if !is_root() {
        return Ok(());
    }
    let status =
        Command::new("chown").args(["-R", "postgres:"]).arg(dir).stdout(Stdio::null()).status().context("run chown")?;
    if !status.success() {
        bail!("cannot give {} to the postgres user (is there a `postgres` user?)", dir.display());
    }
    Ok(())
}

/// Runs `initdb` for a new cluster in `data` (trust auth, user `postgres`, UTF-8), with its
/// output in `log`.
pub fn init_cluster(pg: &PgBinaries, data: &Path, log: &Path) -> anyhow::Result<()> {
    let out = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let status = as_postgres_user(&pg.initdb)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync", "-D"])
        .arg(data)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .context("run initdb")?;
    if !status.success() {
        bail!("initdb failed ({status}); the end of {}:\n{}", log.display(), log_tail(log));
    }
    Ok(())
}

/// `preferred` when it is free on 127.0.0.1, else any free port.
pub fn free_port(preferred: Option<u16>) -> anyhow::Result<u16> {
    if let Some(port) = preferred.filter(|p| *p != 0)
        && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
    {
        return Ok(port);
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, what: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("{what} did not start listening on port {port} within {timeout:?}")
}

/// The first line of a postmaster.pid-style file.
pub fn read_pid_file(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.lines().next()?.trim().parse().ok()
}

/// Sends `sig` (e.g. "INT") with kill(1); there is no unsafe code in this workspace.
pub fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts a watchdog that waits for this process to end (exit, panic or SIGKILL alike), then
/// sends `stop_signal` to the process whose pid is in `pid_file`, waits for it to go, and
/// removes `remove`. A static's destructor never runs at exit; this does the cleanup instead.
pub fn clean_up_after_exit(pid_file: &Path, stop_signal: &str, remove: &Path) -> anyhow::Result<()> {
    clean_up_after(std::process::id(), pid_file, stop_signal, remove)
}

/// [`clean_up_after_exit`] for the process `watched` instead of this one.
fn clean_up_after(watched: u32, pid_file: &Path, stop_signal: &str, remove: &Path) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    // $1 the watched pid, $2 the pid file, $3 the signal, $4 the folder to remove.
    // Only a process that runs in the pid file's folder is signalled (a postmaster's working
    // folder is its data folder), so a stale file whose pid now belongs to another process
    // harms nothing; a server that does not stop within 30 s is killed before its folder goes.
    let script = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 1; done
        pid=$(head -n 1 "$2" 2>/dev/null)
        case "$pid" in ''|*[!0-9]*) pid= ;; esac
        if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/cwd")" = "$(cd "$(dirname "$2")" && pwd -P)" ]; then
            kill -"$3" "$pid" 2>/dev/null
            i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
            kill -KILL "$pid" 2>/dev/null
            i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
        fi
        rm -rf "$4"
    "#;
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("lots-watchdog")
        .arg(watched.to_string())
        .arg(pid_file)
        .arg(stop_signal)
        .arg(remove)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C meant for the tests does not end it first.
        .process_group(0)
        .spawn()
        .context("start the clean-up watchdog")?;
    Ok(())
}

/// The last lines of a log file, indented.
pub fn log_tail(path: &Path) -> String {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(2000)));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..].iter().map(|l| format!("    {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_files_are_read_from_their_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("postmaster.pid");
        std::fs::write(&file, "4242\n/data\n1700000000\n5432\n").unwrap();
        assert_eq!(read_pid_file(&file), Some(4242));
        assert_eq!(read_pid_file(&dir.path().join("missing")), None);
    }

    #[test]
    fn a_preferred_port_is_used_when_free() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        assert_ne!(free_port(Some(port)).unwrap(), port);
        drop(taken);
        assert_eq!(free_port(Some(port)).unwrap(), port);
    }

    #[test]
    fn the_watchdog_stops_the_server_and_removes_its_folder_when_its_starter_ends() {
        // A stand-in starter and server (two sleeps) as real processes.
        let dir = tempfile::Builder::new().prefix("lots-watchdog-").tempdir().unwrap().keep();
        // The server runs in the pid file's folder, as a postmaster runs in its data folder.
        let mut server = Command::new("sleep").arg("600").current_dir(&dir).spawn().unwrap();
        // Another process, not in that folder, the watchdog must leave alone.
        let mut stranger = Command::new("sleep").arg("600").spawn().unwrap();
        let mut starter = Command::new("sleep").arg("1").spawn().unwrap();
        let pid_file = dir.join("server.pid");
        std::fs::write(&pid_file, format!("{}\n", server.id())).unwrap();
        clean_up_after(starter.id(), &pid_file, "TERM", &dir).unwrap();
        assert!(dir.exists(), "the watchdog acted before its starter ended");
        starter.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut stopped = false;
        while Instant::now() < deadline {
            // Reap it when it has stopped (a zombie still answers `kill -0`).
            stopped = stopped || server.try_wait().unwrap().is_some();
            if stopped && !dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = server.kill();
        let _ = server.wait();
        assert!(stopped, "the server outlived its starter");
        assert!(!dir.exists(), "the server's folder was left behind");

        // A stale pid file naming a process that runs elsewhere: nothing is signalled.
        let dir = tempfile::Builder::new().prefix("lots-watchdog-").tempdir().unwrap().keep();
        let pid_file = dir.join("server.pid");
        std::fs::write(&pid_file, format!("{}\n", stranger.id())).unwrap();
        let mut starter = Command::new("true").spawn().unwrap();
        clean_up_after(starter.id(), &pid_file, "TERM", &dir).unwrap();
        starter.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while dir.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!dir.exists(), "the folder was left behind");
        assert!(stranger.try_wait().unwrap().is_none(), "the watchdog signalled a process of someone else's");
        let _ = stranger.kill();
        let _ = stranger.wait();
    }
}
