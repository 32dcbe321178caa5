//! A broker process a restart test kills and starts again, and a bus that remembers its
//! failures: what the restart tests (`common/broker_restart.rs`) and the fault tests share.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventsource_runtime::bus::{BusError, EventBus, PublishFailure, PublishReport};
use eventsource_runtime::event::EventEnvelope;

/// A local server process (a broker this test may kill): enough to start it again as it
/// was.
#[derive(Debug, Clone)]
pub struct ServerProcess {
    /// What it is, for messages (`kafka`, `nats-server`).
    name: &'static str,
    /// Where its output goes when started again.
    log: PathBuf,
    pub pid: u32,
    /// The binary (`/proc/PID/exe`), run with `argv[0]` kept.
    exe: PathBuf,
    argv: Vec<String>,
    cwd: PathBuf,
    addr: SocketAddr,
}

pub fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// The argv of process `pid`.
fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (!argv.is_empty()).then_some(argv)
}

/// The socket inodes listening on TCP `port` (`/proc/net/tcp`, `/proc/net/tcp6`).
fn listening_inodes(port: u16) -> BTreeSet<String> {
    let mut inodes = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            // 0A: LISTEN.
            if *state == "0A" && local_port == Some(port) {
                inodes.insert((*inode).to_owned());
            }
        }
    }
    inodes
}

/// Whether process `pid` holds one of `inodes` (false when its descriptors cannot be read).
fn holds_socket(pid: u32, inodes: &BTreeSet<String>) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
                .is_some_and(|inode| inodes.contains(inode))
        })
    })
}

impl ServerProcess {
    /// The process listening on `addr`'s port among those `is_server` recognises by their
    /// argv: the one holding the listening socket, or (when descriptors cannot be read) the
    /// only one naming the port. When started again, its output goes to `log`, or (`None`)
    /// to `{name}.log` in its working directory.
    pub fn find(
        name: &'static str,
        is_server: fn(&[String]) -> bool,
        addr: SocketAddr,
        log: Option<PathBuf>,
    ) -> Result<Self, String> {
        let inodes = listening_inodes(addr.port());
        let port = format!(":{}", addr.port());
        let mut brokers = Vec::new();
        for entry in std::fs::read_dir("/proc")
            .map_err(|e| e.to_string())?
            .flatten()
        {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Some(argv) = cmdline(pid) else { continue };
            if is_server(&argv) {
                brokers.push((pid, argv));
            }
        }
        let chosen = brokers
            .iter()
            .find(|(pid, _)| holds_socket(*pid, &inodes))
            .or_else(|| {
                let naming: Vec<_> = brokers
                    .iter()
                    .filter(|(_, argv)| argv.iter().any(|a| a.contains(&port)))
                    .collect();
                (naming.len() == 1).then(|| naming[0])
            });
        let Some((pid, argv)) = chosen.cloned() else {
            return Err(format!(
                "no local {name} process listens on {addr} ({} {name} process(es) found)",
                brokers.len()
            ));
        };
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map_err(|e| format!("cannot read {name}'s binary (pid {pid}): {e}"))?;
        // A binary replaced since it started reads `... (deleted)`: run argv[0] then.
        let exe = if exe.exists() {
            exe
        } else {
            PathBuf::from(&argv[0])
        };
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
            .map_err(|e| format!("cannot read {name}'s directory (pid {pid}): {e}"))?;
        // A directory removed since the server started (`... (deleted)`): start it again
        // from the temporary directory (its data paths, if relative, would be lost anyway).
        let cwd = if cwd.is_dir() {
            cwd
        } else {
            std::env::temp_dir()
        };
        let log = log.unwrap_or_else(|| cwd.join(format!("{name}.log")));
        Ok(Self {
            name,
            log,
            pid,
            exe,
            argv,
            cwd,
            addr,
        })
    }

    /// `Err` (saying which is which) when the environment variable `variable` names a server
    /// binary and this process runs another one: a test told to kill and start again the
    /// server of one version (`EVENTSOURCE_NATS_SERVER`, set by `.ci/run`'s version matrix)
    /// must not find another version's listening on the port. `Ok` when it is unset.
    #[allow(
        dead_code,
        reason = "only the NATS restart tests name their server's binary"
    )]
    pub fn runs_binary_named_by(&self, variable: &str) -> Result<(), String> {
        let Some(named) = std::env::var_os(variable).filter(|v| !v.is_empty()) else {
            return Ok(());
        };
        let named = PathBuf::from(named);
        let wanted = std::fs::canonicalize(&named)
            .map_err(|e| format!("{variable}={}: {e}", named.display()))?;
        let running = std::fs::canonicalize(&self.exe).unwrap_or_else(|_| self.exe.clone());
        if running == wanted {
            Ok(())
        } else {
            Err(format!(
                "the {} listening on {} (pid {}) runs {}, not the {} that {variable} names",
                self.name,
                self.addr,
                self.pid,
                running.display(),
                wanted.display()
            ))
        }
    }

    /// Whether the process is gone (or a zombie nobody reaped yet).
    fn gone(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        }
    }

    /// SIGSTOP: the process keeps its connections and answers nothing, until killed.
    #[allow(
        dead_code,
        reason = "a restart test that freezes its server first uses it"
    )]
    pub fn pause(&self) -> Result<(), String> {
        let stopped = Command::new("kill")
            .args(["-STOP", &self.pid.to_string()])
            .status()
            .map_err(|e| format!("kill: {e}"))?;
        if stopped.success() {
            Ok(())
        } else {
            Err(format!("kill -STOP {} failed: {stopped}", self.pid))
        }
    }

    /// SIGKILL, then waits until the process is gone and the port closed.
    pub fn kill(&self) -> Result<(), String> {
        let killed = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status()
            .map_err(|e| format!("kill: {e}"))?;
        if !killed.success() {
            return Err(format!("kill -KILL {} failed: {killed}", self.pid));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.gone() || listening(self.addr) {
            if Instant::now() > deadline {
                return Err(format!("{} (pid {}) did not go away", self.name, self.pid));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Starts the same argv in the same directory, in a process group of its own (so that
    /// it outlives the test), output appended to its log; waits for the port.
    pub fn start(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&self.exe)
            .arg0(&self.argv[0])
            .args(&self.argv[1..])
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.exe.display()))?;
        self.pid = child.id();
        // A bound, not a wait: Apache Kafka recovers every partition's log after a SIGKILL
        // before it listens, which took up to 26 s on a loaded machine here.
        let deadline = Instant::now() + Duration::from_secs(90);
        while !listening(self.addr) {
            if Instant::now() > deadline {
                return Err(format!(
                    "{} (pid {}) does not listen on {}",
                    self.name, self.pid, self.addr
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

/// Starts the broker again if the test ends (a panic) while it is down, so that no later
/// test (or developer) finds it gone.
pub struct StartAgainOnDrop(pub ServerProcess);

impl Drop for StartAgainOnDrop {
    fn drop(&mut self) {
        if !listening(self.0.addr)
            && let Err(error) = self.0.start()
        {
            eprintln!("could not start {} again: {error}", self.0.name);
        }
    }
}

// ---- a bus that remembers its failures ----------------------------------------------------

/// The relay's bus: a broker's bus, each failed publish remembered.
pub struct Recording<B> {
    pub bus: B,
    pub failures: Arc<Mutex<Vec<String>>>,
}

impl<B> Recording<B> {
    fn note(&self, error: &BusError) {
        let kind = match error {
            BusError::Unavailable(_) => "Unavailable",
            BusError::Unconfirmed { .. } => "Unconfirmed",
            BusError::Rejected { .. } => "Rejected",
            _ => "other",
        };
        self.failures.lock().unwrap().push(kind.to_owned());
    }
}

#[eventsource_runtime::async_trait]
impl<B: EventBus> EventBus for Recording<B> {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<PublishReport, BusError> {
        let published = self.bus.publish(events).await;
        if let Err(error) = &published {
            self.note(error);
        }
        published
    }

    async fn publish_stored(
        &self,
        events: &[EventEnvelope],
    ) -> Result<PublishReport, PublishFailure> {
        let published = self.bus.publish_stored(events).await;
        if let Err(failure) = &published {
            self.note(&failure.error);
        }
        published
    }
}
