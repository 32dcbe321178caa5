//! Network namespaces and nftables, for tests that cut a process off the way production
//! loses hosts and networks: silently. A [`Namespace`] is a network namespace of its own on a
//! veth pair (`10.99.N.2` inside, `10.99.N.1` on the host side); a process started in it
//! ([`Namespace::command`]) reaches the host's servers at [`Namespace::host_ip`], and a
//! [`Fault`] drops (a black hole: neither side's kernel learns anything) or rejects (a
//! reset) its packets, one way or both, until [`Namespace::heal`].
//!
//! Packets are dropped where they arrive (the host's `input` hook for what the process
//! sends, the namespace's for what it receives), so neither sender's stack sees a local
//! error: a black hole as a switch or a security group makes one.
//!
//! Needs root, `ip` (iproute2) and `nft` (Debian's `nftables`): [`unavailable`] says what
//! is missing. Everything made is removed on drop, and what a killed run left behind (its
//! process gone) when the next one starts.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

/// What a fault does to the packets between the process in the namespace and the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every packet, both ways, dropped: a host that vanished, a black hole.
    DropBoth,
    /// What the process sends is dropped; what it is sent arrives.
    DropFromProcess,
    /// What the process is sent is dropped; what it sends arrives.
    DropToProcess,
    /// Every TCP segment, both ways, answered with a reset (and other packets dropped): a
    /// firewall that rejects.
    RejectBoth,
}

impl Fault {
    /// A short name, for histories and messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::DropBoth => "drop both ways",
            Self::DropFromProcess => "drop from the process",
            Self::DropToProcess => "drop to the process",
            Self::RejectBoth => "reject both ways",
        }
    }
}

/// Why partition tests cannot run here, or `None` when they can.
#[must_use]
pub fn unavailable() -> Option<String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    if !root {
        return Some("network namespaces and nftables need root".to_owned());
    }
    for (tool, package) in [("ip", "iproute2"), ("nft", "nftables")] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !found {
            return Some(format!("`{tool}` is missing (Debian's `{package}`)"));
        }
    }
    None
}

/// A network namespace on a veth pair, with a fault table on each side.
#[derive(Debug)]
pub struct Namespace {
    name: String,
    host_link: String,
    inner_link: String,
    host_ip: Ipv4Addr,
    inner_ip: Ipv4Addr,
    table: String,
}

/// What every name this module makes starts with.
const PREFIX: &str = "esp";

impl Namespace {
    /// A namespace numbered `index` (1 to 250, distinct among those alive at once in this
    /// process): `10.99.index.2` inside, `10.99.index.1` on the host side.
    ///
    /// # Panics
    /// When a command fails (it says which, and what it printed).
    #[must_use]
    pub fn create(index: u8) -> Self {
        assert!((1..=250).contains(&index), "namespace index {index}");
        remove_leftovers();
        let pid = std::process::id() % 100_000;
        let namespace = Self {
            name: format!("{PREFIX}{pid}n{index}"),
            host_link: format!("{PREFIX}{pid}h{index}"),
            inner_link: format!("{PREFIX}{pid}i{index}"),
            host_ip: Ipv4Addr::new(10, 99, index, 1),
            inner_ip: Ipv4Addr::new(10, 99, index, 2),
            table: format!("{PREFIX}{pid}t{index}"),
        };
        let (name, host, inner) = (
            namespace.name.as_str(),
            namespace.host_link.as_str(),
            namespace.inner_link.as_str(),
        );
        run("ip", &["netns", "add", name]);
        run(
            "ip",
            &["link", "add", host, "type", "veth", "peer", "name", inner],
        );
        run("ip", &["link", "set", inner, "netns", name]);
        let host_cidr = format!("{}/30", namespace.host_ip);
        let inner_cidr = format!("{}/30", namespace.inner_ip);
        run("ip", &["addr", "add", &host_cidr, "dev", host]);
        run("ip", &["link", "set", host, "up"]);
        namespace.inside("ip", &["addr", "add", &inner_cidr, "dev", inner]);
        namespace.inside("ip", &["link", "set", inner, "up"]);
        namespace.inside("ip", &["link", "set", "lo", "up"]);
        namespace.tables();
        namespace
    }

    /// The host side's address: where a process in the namespace reaches the host's servers.
    #[must_use]
    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_ip
    }

    /// The address inside the namespace (the client address servers see).
    #[must_use]
    pub fn inner_ip(&self) -> Ipv4Addr {
        self.inner_ip
    }

    /// `program` to be run inside the namespace (through `ip netns exec`; the environment
    /// is passed on).
    #[must_use]
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Starts `fault` (after healing any fault before it).
    pub fn cut(&self, fault: Fault) {
        let host = format!("iifname \"{}\"", self.host_link);
        let inner = format!("iifname \"{}\"", self.inner_link);
        self.cut_matching(fault, &host, &inner);
    }

    /// Starts `fault` between the process and one server of the host, the one listening on
    /// TCP `port`; everything else passes (after healing any fault before it).
    pub fn cut_port(&self, fault: Fault, port: u16) {
        let host = format!("iifname \"{}\" tcp dport {port}", self.host_link);
        let inner = format!("iifname \"{}\" tcp sport {port}", self.inner_link);
        self.cut_matching(fault, &host, &inner);
    }

    /// `fault` on the packets `host` matches on the host side (sent by the process) and
    /// `inner` matches inside (sent to it).
    fn cut_matching(&self, fault: Fault, host: &str, inner: &str) {
        self.heal();
        match fault {
            Fault::DropBoth => {
                self.host_rule(&format!("{host} drop"));
                self.inner_rule(&format!("{inner} drop"));
            }
            Fault::DropFromProcess => self.host_rule(&format!("{host} drop")),
            Fault::DropToProcess => self.inner_rule(&format!("{inner} drop")),
            Fault::RejectBoth => {
                // The resets themselves pass: each side learns of the other's refusal.
                for (rule, side) in [
                    (host, Self::host_rule as fn(&Self, &str)),
                    (inner, Self::inner_rule),
                ] {
                    side(self, &format!("{rule} tcp flags & rst == rst accept"));
                    side(
                        self,
                        &format!("{rule} meta l4proto tcp reject with tcp reset"),
                    );
                    side(self, &format!("{rule} drop"));
                }
            }
        }
    }

    /// Ends the fault: every packet passes again.
    pub fn heal(&self) {
        run("nft", &["flush", "chain", "inet", &self.table, "input"]);
        self.inside("nft", &["flush", "chain", "inet", &self.table, "input"]);
    }

    /// An empty input chain on each side, for the faults' rules.
    fn tables(&self) {
        let chain = "{ type filter hook input priority -10; policy accept; }";
        run("nft", &["add", "table", "inet", &self.table]);
        run(
            "nft",
            &["add", "chain", "inet", &self.table, "input", chain],
        );
        self.inside("nft", &["add", "table", "inet", &self.table]);
        self.inside(
            "nft",
            &["add", "chain", "inet", &self.table, "input", chain],
        );
    }

    fn host_rule(&self, rule: &str) {
        let words: Vec<&str> = rule.split(' ').collect();
        let mut args = vec!["add", "rule", "inet", &self.table, "input"];
        args.extend(words);
        run("nft", &args);
    }

    fn inner_rule(&self, rule: &str) {
        let words: Vec<&str> = rule.split(' ').collect();
        let mut args = vec!["add", "rule", "inet", &self.table, "input"];
        args.extend(words);
        self.inside("nft", &args);
    }

    /// Runs `program` with `args` inside the namespace.
    fn inside(&self, program: &str, args: &[&str]) {
        let mut all = vec!["netns", "exec", self.name.as_str(), program];
        all.extend_from_slice(args);
        run("ip", &all);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // The namespace's own table and the veth go with it.
        let _ = quiet("nft", &["delete", "table", "inet", &self.table]);
        let _ = quiet("ip", &["link", "del", &self.host_link]);
        let _ = quiet("ip", &["netns", "del", &self.name]);
    }
}

/// Runs a command, panicking with what it printed when it fails.
fn run(program: &str, args: &[&str]) {
    if let Err(failure) = quiet(program, args) {
        panic!("{failure}");
    }
}

fn quiet(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// Removes the namespaces, links and tables a run whose process is gone left behind (it was
/// killed before its drops ran), so that their addresses do not shadow this run's.
fn remove_leftovers() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    let mine = std::process::id() % 100_000;
    for name in listed
        .split_whitespace()
        .filter(|word| word.starts_with(PREFIX))
    {
        let Some((pid, index)) = name[PREFIX.len()..].split_once('n') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid == mine || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = quiet(
            "nft",
            &["delete", "table", "inet", &format!("{PREFIX}{pid}t{index}")],
        );
        let _ = quiet("ip", &["link", "del", &format!("{PREFIX}{pid}h{index}")]);
        let _ = quiet("ip", &["netns", "del", name]);
    }
}
