//! Consumer processes, one after the other, and the verdict on what they handled.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Print, Process, Stored, Tally};
use crate::processes::Setup;

// ---- consumer processes, one after the other ---------------------------------------------

/// The consumer processes of one scenario, one running at a time (each replacing the one
/// killed before it), and what they all printed.
pub struct Consumers<'a> {
    pub(super) setup: &'a Setup,
    pub(super) dir: PathBuf,
    pub(super) args: Vec<String>,
    /// Every consumer started, the running one last.
    pub(super) all: Vec<Process>,
    pub tally: Tally,
    /// The consumers killed (numbered from 1).
    pub(super) killed: Vec<usize>,
}

impl<'a> Consumers<'a> {
    pub fn new(setup: &'a Setup, dir: &Path, args: &[&str]) -> Self {
        Self {
            setup,
            dir: dir.to_path_buf(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            all: Vec::new(),
            tally: Tally::default(),
            killed: Vec::new(),
        }
    }

    /// Starts the next consumer and waits until it consumes.
    pub fn start(&mut self) {
        let number = self.all.len() + 1;
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let command = self
            .setup
            .command("consumer", &format!("orders-consumer-{number}"), &args);
        self.all.push(Process::spawn(
            command,
            &format!("consumer-{number}"),
            &self.dir,
        ));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.current().seen.iter().any(|l| l == "consuming") {
            let consumer = self.current();
            assert!(
                consumer.running() && Instant::now() < deadline,
                "consumer {number} never printed `consuming`: {:?}{}",
                consumer.seen,
                consumer.errors()
            );
            self.pump(Duration::from_millis(100));
        }
    }

    pub(super) fn current(&mut self) -> &mut Process {
        self.all.last_mut().expect("a consumer started")
    }

    /// Reads what the running consumer printed (waiting up to `wait` for a line).
    pub fn pump(&mut self, wait: Duration) {
        let number = self.all.len();
        for line in self.current().read(wait) {
            self.tally.note(number, &line);
        }
    }

    /// Polls until `done` holds of what the consumers printed, for up to `within`; how long
    /// it took. Fails with what was handled and the consumers' errors otherwise.
    pub fn wait_until(
        &mut self,
        what: &str,
        stored: &Stored,
        within: Duration,
        done: impl Fn(&Tally) -> bool,
    ) -> Duration {
        let started = Instant::now();
        while !done(&self.tally) {
            if started.elapsed() > within || !self.current().running() {
                panic!(
                    "{what}: not within {within:?} (consumer {} {}); {}",
                    self.all.len(),
                    if self.current().running() {
                        "running"
                    } else {
                        "exited"
                    },
                    self.progress(stored) + &self.errors()
                );
            }
            self.pump(Duration::from_millis(100));
        }
        started.elapsed()
    }

    /// SIGKILL to the running consumer; its last lines counted.
    pub fn kill(&mut self) {
        let number = self.all.len();
        for line in self.current().kill() {
            self.tally.note(number, &line);
        }
        self.killed.push(number);
    }

    /// SIGTERM to the running consumer: it stops gracefully (status 0, `consumer stopped`).
    pub fn stop(&mut self) {
        let number = self.all.len();
        for line in self.current().terminate(Duration::from_secs(30)) {
            self.tally.note(number, &line);
        }
        let consumer = self.current();
        let status = consumer.status().expect("exited");
        assert!(
            status.success() && consumer.seen.iter().any(|l| l == "consumer stopped"),
            "consumer {number}: a graceful stop, not {status}{}",
            consumer.errors()
        );
    }

    /// How far the consumers got, for messages.
    pub fn progress(&self, stored: &Stored) -> String {
        format!(
            "handled {} of {} placed, {} of {} shipped",
            self.tally.placed_done(stored),
            stored.placed.len(),
            self.tally.shipped_done(stored),
            stored.shipped.len()
        )
    }

    pub(super) fn errors(&self) -> String {
        self.all.iter().map(Process::errors).collect()
    }

    /// Every line the consumers printed so far, each consumer's (numbered from 1) in order.
    pub fn lines(&self) -> impl Iterator<Item = (usize, &str)> {
        self.all
            .iter()
            .enumerate()
            .flat_map(|(n, consumer)| consumer.seen.iter().map(move |line| (n + 1, line.as_str())))
    }

    /// How many lines of every consumer's standard error contain `needle`.
    pub fn errors_with(&self, needle: &str) -> usize {
        self.all.iter().map(|c| c.errors_with(needle)).sum()
    }

    /// Checks every stored event was handled, the idempotent confirmation once (or again
    /// only where its documentation allows it: see the module), nothing unknown; reports
    /// the duplicates.
    pub fn check(&self, test: &str, stored: &Stored) -> Verdict {
        let tally = &self.tally;
        let missing = |kind: Print, ids: &BTreeSet<Uuid>| -> Vec<Uuid> {
            ids.iter()
                .filter(|id| tally.printed(kind, id) == 0)
                .copied()
                .collect()
        };
        let unconfirmed = missing(Print::Confirmation, &stored.placed);
        let no_crm = missing(Print::CrmUpdated, &stored.placed);
        let not_shipped = missing(Print::Shipping, &stored.shipped);
        let errors = self.errors();
        assert!(
            unconfirmed.is_empty() && no_crm.is_empty() && not_shipped.is_empty(),
            "{test}: never handled: {} unconfirmed {unconfirmed:?}, {} without the CRM \
             update {no_crm:?}, {} not shipped {not_shipped:?}{errors}",
            unconfirmed.len(),
            no_crm.len(),
            not_shipped.len()
        );
        let unknown: BTreeSet<&Uuid> = Print::ALL
            .into_iter()
            .flat_map(|kind| tally.by(kind).map(|(id, _)| id))
            .filter(|id| !stored.placed.contains(id) && !stored.shipped.contains(id))
            .collect();
        assert!(unknown.is_empty(), "{test}: never stored: {unknown:?}");

        // A second confirmation is allowed only after a consumer that confirmed died
        // before recording it: killed, and without the CRM update that follows the record.
        let mut again_after_kill = Vec::new();
        let mut twice = Vec::new();
        for (id, by) in tally.by(Print::Confirmation).filter(|(_, by)| by.len() > 1) {
            let died_before_the_record = by[..by.len() - 1].iter().all(|consumer| {
                self.killed.contains(consumer)
                    && !tally
                        .prints
                        .get(&Print::CrmStarted)
                        .and_then(|ids| ids.get(id))
                        .is_some_and(|started| started.contains(consumer))
            });
            if died_before_the_record {
                again_after_kill.push(*id);
            } else {
                twice.push((*id, by.clone()));
            }
        }
        assert!(
            twice.is_empty(),
            "{test}: the idempotent confirmation ran twice (by consumers {twice:?}; killed: \
             {:?})",
            self.killed
        );
        let verdict = Verdict {
            consumers: self.all.len(),
            killed: self.killed.len(),
            confirmations_again_after_kill: again_after_kill.len(),
            crm_duplicates: tally.extra(Print::CrmUpdated),
            shipping_duplicates: tally.extra(Print::Shipping),
            stalls: self.errors_with("stalled"),
            failed_commits: self.errors_with("commit failed"),
        };
        eprintln!(
            "{test}: all {} stored events handled by {} consumer process(es), {} killed; \
             duplicates: {} CRM updates, {} shipping notices (at least once), {} \
             confirmations run again after a kill between the confirmation and its record \
             (allowed), 0 otherwise; on the consumers' stderr: {} stall lines, {} failed \
             commits; {}",
            stored.len(),
            verdict.consumers,
            verdict.killed,
            verdict.crm_duplicates,
            verdict.shipping_duplicates,
            verdict.confirmations_again_after_kill,
            verdict.stalls,
            verdict.failed_commits,
            tally.per_consumer(self.all.len())
        );
        verdict
    }
}

/// What a scenario's consumers did, once every event was handled.
#[derive(Debug)]
pub struct Verdict {
    pub consumers: usize,
    pub killed: usize,
    /// Confirmations run again because a consumer died between one and its record.
    pub confirmations_again_after_kill: usize,
    pub crm_duplicates: usize,
    pub shipping_duplicates: usize,
    /// Lines of the consumers' standard error saying a group stalled.
    pub stalls: usize,
    /// Lines of the consumers' standard error saying a Kafka commit failed.
    pub failed_commits: usize,
}
