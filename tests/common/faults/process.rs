//! A process of the example: its output read as it comes, killed when dropped.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

// ---- a process of the example -----------------------------------------------------------

/// A process of the example: its output read line by line as it comes, its errors in a
/// file. Killed (SIGKILL) when dropped still running: a failed test leaves none behind.
pub struct Process {
    pub name: String,
    pub(super) child: Child,
    pub(super) lines: Receiver<String>,
    pub seen: Vec<String>,
    pub(super) stderr: PathBuf,
    /// Its exit, once known.
    pub(super) status: Option<ExitStatus>,
}

impl Process {
    /// Starts `command`; its standard error goes to `{dir}/{name}.stderr`.
    pub fn spawn(mut command: Command, name: &str, dir: &Path) -> Self {
        let stderr = dir.join(format!("{name}.stderr"));
        let errors = File::create(&stderr).expect("a file for the errors");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(errors)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let (send, lines) = channel();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            name: name.to_owned(),
            child,
            lines,
            seen: Vec::new(),
            stderr,
            status: None,
        }
    }

    /// The lines printed since the last read, waiting up to `wait` for the first.
    pub fn read(&mut self, wait: Duration) -> Vec<String> {
        let mut new = Vec::new();
        match self.lines.recv_timeout(wait) {
            Ok(line) => new.push(line),
            Err(RecvTimeoutError::Timeout) => {}
            // Its output ended: nothing more to wait for, but the caller polls a state.
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
        }
        while let Ok(line) = self.lines.try_recv() {
            new.push(line);
        }
        self.seen.extend(new.iter().cloned());
        new
    }

    /// Whether it still runs (its exit remembered otherwise).
    pub fn running(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("its state");
        }
        self.status.is_none()
    }

    /// SIGKILL, then its exit and the rest of its output; the lines printed since the last
    /// read.
    pub fn kill(&mut self) -> Vec<String> {
        let _ = self.child.kill();
        self.status = Some(self.child.wait().expect("it exits"));
        self.rest()
    }

    /// SIGTERM, then waits up to `within` for its exit (SIGKILL and a failure after that);
    /// the lines printed since the last read.
    pub fn terminate(&mut self, within: Duration) -> Vec<String> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.wait_exit(within);
        assert!(
            status.is_some(),
            "{} did not stop within {within:?} of SIGTERM{}",
            self.name,
            self.errors()
        );
        self.rest()
    }

    /// Waits up to `within` for it to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while self.running() && Instant::now() < deadline {
            self.read(Duration::from_millis(50));
        }
        if self.running() {
            return None;
        }
        self.rest();
        self.status
    }

    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Killed by SIGKILL (rather than exited by itself).
    pub fn was_killed(&self) -> bool {
        self.status.and_then(|s| s.signal()) == Some(9)
    }

    /// The rest of its output once it exited (up to its end, or 10 s).
    pub(super) fn rest(&mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut new = Vec::new();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            new.push(line);
        }
        self.seen.extend(new.iter().cloned());
        new
    }

    /// The last lines of its standard error, for a failure's message.
    pub fn errors(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(15)..];
        if tail.is_empty() {
            String::new()
        } else {
            format!(
                "\n--- {} stderr ({}), last lines:\n{}",
                self.name,
                self.stderr.display(),
                tail.join("\n")
            )
        }
    }

    /// How many lines of its standard error contain `needle`.
    pub fn errors_with(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.stderr)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
