//! Servers `lots dev` starts as child processes, and the guard that stops them.
//!
//! Children run in a process group of their own, so a Ctrl-C in the terminal reaches only
//! `lots`, which drains the services first and then stops the servers in reverse order.
//! [`Children`] stops whatever is left when dropped, also while unwinding from a panic.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use lots_testkit::local::{log_tail, read_pid_file, signal};

/// How long a server gets to stop after its stop signal before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// One server process `lots dev` started.
#[derive(Debug)]
pub struct Owned {
    name: &'static str,
    child: std::process::Child,
    /// The signal that stops it cleanly: INT for postgres (fast shutdown), TERM for nats-server.
    stop_signal: &'static str,
    /// Postgres writes its own pid here; with `runuser` in between it differs from the child's.
    pid_file: Option<PathBuf>,
    log: PathBuf,
}

impl Owned {
    /// Starts `command` with output to `log`, in a process group of its own.
    pub fn spawn(
        name: &'static str,
        mut command: Command,
        log: &Path,
        stop_signal: &'static str,
        pid_file: Option<PathBuf>,
    ) -> anyhow::Result<Owned> {
        let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone().context("share the log file")?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("start {name}"))?;
        Ok(Owned { name, child, stop_signal, pid_file, log: log.to_owned() })
    }

    /// The server's name, e.g. "postgres".
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The pid to signal: the server's own when it wrote one, else the child's.
    pub fn pid(&self) -> u32 {
        self.pid_file.as_deref().and_then(read_pid_file).unwrap_or_else(|| self.child.id())
    }

    /// Waits until the server accepts TCP connections on `port`, failing early (with the end
    /// of its log) if it exits.
    pub async fn wait_ready(&mut self, port: u16, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        loop {
            if let Some(status) = self.child.try_wait().context("check the child")? {
                bail!(
                    "{} exited ({status}) before it listened on port {port}; the end of {}:\n{}",
                    self.name,
                    self.log.display(),
                    log_tail(&self.log)
                );
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} did not listen on port {port} within {timeout:?}; see {}", self.name, self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server: its stop signal, then SIGKILL after [`STOP_GRACE`]. Blocks.
    pub fn stop(mut self) -> StopReport {
        if let Ok(Some(_)) = self.child.try_wait() {
            return StopReport::AlreadyGone(self.name);
        }
        let pid = self.pid();
        signal(pid, self.stop_signal);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return StopReport::Stopped(self.name, pid);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal(pid, "KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
        StopReport::Killed(self.name, pid)
    }
}

/// What happened when a server was stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum StopReport {
    Stopped(&'static str, u32),
    Killed(&'static str, u32),
    AlreadyGone(&'static str),
}

impl std::fmt::Display for StopReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReport::Stopped(name, pid) => write!(f, "stopped {name} (pid {pid})"),
            StopReport::Killed(name, pid) => {
                write!(f, "killed {name} (pid {pid}): it did not stop in time")
            }
            StopReport::AlreadyGone(name) => write!(f, "{name} had already exited"),
        }
    }
}

/// The servers `lots dev` started; dropping it stops them in reverse order of start.
#[derive(Debug, Default)]
pub struct Children {
    owned: Vec<Owned>,
}

impl Children {
    /// Takes charge of a started server.
    pub fn push(&mut self, owned: Owned) {
        self.owned.push(owned);
    }

    /// The last server pushed, e.g. to wait for it.
    pub fn last_mut(&mut self) -> Option<&mut Owned> {
        self.owned.last_mut()
    }

    /// Stops every server, newest first. Blocks.
    pub fn stop_all(&mut self) -> Vec<StopReport> {
        let mut reports = Vec::new();
        while let Some(owned) = self.owned.pop() {
            reports.push(owned.stop());
        }
        reports
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for report in self.stop_all() {
            eprintln!("lots dev: {report}");
        }
    }
}

/// Whether a process with this pid exists.
pub fn is_running(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_process_is_stopped_by_the_guard() {
        let dir = std::env::temp_dir().join(format!("lots-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("sleep.log");
        let mut cmd = Command::new("sleep");
        cmd.arg("600");
        let owned = Owned::spawn("sleep", cmd, &log, "TERM", None).unwrap();
        let pid = owned.pid();
        assert!(is_running(pid));
        let mut children = Children::default();
        children.push(owned);
        drop(children);
        // Reaped by the guard, so the pid is gone (not even a zombie).
        assert!(!is_running(pid));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
