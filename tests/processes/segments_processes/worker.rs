//! A worker process (the `scale_out` example, `--role worker`): started, signalled, its
//! output kept for the test's messages.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use super::Scenario;

/// A worker process, its output lines kept.
pub(crate) struct Worker {
    name: String,
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: PathBuf,
}

impl Worker {
    pub(crate) fn start(scenario: &Scenario, name: &str, extra: &[&str]) -> Self {
        // In cargo's temporary directory for tests (under `target/`), not the system's.
        let stderr = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{}-{name}.stderr", scenario.schema));
        let url = with_application_name(&scenario.url, name);
        let mut command = Command::new(&scenario.binary);
        command
            .args([
                "--role",
                "worker",
                "--store",
                &url,
                "--schema",
                &scenario.schema,
            ])
            .args(["--worker-name", name])
            .args(scenario.worker_args.iter().map(String::as_str))
            .args(extra)
            .env_remove("DATABASE_URL")
            .env("OTEL_SDK_DISABLED", "true")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap());
        let mut child = command.spawn().expect("the worker starts");
        let (send, lines) = channel();
        let stdout = child.stdout.take().unwrap();
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
        }
    }

    pub(crate) fn pump(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {}", self.name);
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then its exit within `within`.
    pub(crate) fn terminate(&mut self, within: Duration) {
        self.signal("-TERM");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = self.log();
                assert!(
                    status.success(),
                    "{} exits cleanly: {status}{log}",
                    self.name
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} stops within {within:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its standard output and error so far.
    pub(crate) fn log(&mut self) -> String {
        self.pump();
        let errors = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!(
            "\n--- {} stdout:\n{}\n--- stderr:\n{}",
            self.name,
            self.seen.join("\n"),
            errors
        )
    }

    /// How many lines of its output (either stream) contain `needle`.
    pub(crate) fn said(&mut self, needle: &str) -> usize {
        self.pump();
        let errors = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        self.seen
            .iter()
            .map(String::as_str)
            .chain(errors.lines())
            .filter(|line| line.contains(needle))
            .count()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        self.kill();
    }
}

/// `url` with `application_name` set, so the test can find a worker's sessions.
fn with_application_name(url: &str, name: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={name}")
}
