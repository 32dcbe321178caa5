//! The consumer processes of the group, several at once, and the partitions of its topic.

use super::*;

pub(super) fn partitions_of(brokers: &str, topic: &str) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers.trim_start_matches("kafka://"))
        .create()
        .expect("a client");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("the topic's metadata");
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len())
}

/// The consumer processes of the group, several running at once, and what they printed.
pub(super) struct Group<'a> {
    pub(super) setup: &'a Setup,
    pub(super) dir: PathBuf,
    pub(super) args: Vec<String>,
    /// Every consumer started (number = index + 1).
    pub(super) all: Vec<Process>,
    /// What each printed, in its order.
    pub(super) lines: Vec<Vec<Line>>,
    pub(super) killed: BTreeSet<usize>,
}

impl<'a> Group<'a> {
    /// Starts the next consumer and waits until it consumes; its number.
    pub(super) fn start(&mut self) -> usize {
        let number = self.all.len() + 1;
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let command = self
            .setup
            .command("consumer", &format!("group-consumer-{number}"), &args);
        self.all.push(Process::spawn(
            command,
            &format!("consumer-{number}"),
            &self.dir,
        ));
        self.lines.push(Vec::new());
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.all[number - 1].seen.iter().any(|l| l == "consuming") {
            let consumer = &mut self.all[number - 1];
            assert!(
                consumer.running() && Instant::now() < deadline,
                "consumer {number} never printed `consuming`: {:?}{}",
                consumer.seen,
                consumer.errors()
            );
            self.pump();
        }
        number
    }

    /// Reads what every running consumer printed (up to 20 ms of waiting each).
    fn pump(&mut self) {
        for (index, consumer) in self.all.iter_mut().enumerate() {
            if consumer.running() {
                let new = consumer.read(Duration::from_millis(20));
                self.lines[index].extend(new.iter().filter_map(|l| Line::parse(l)));
            }
        }
    }

    /// The distinct events seen (by `history-seen`) so far, and by each consumer.
    pub(super) fn seen(&self) -> (BTreeSet<Uuid>, Vec<usize>) {
        let mut all = BTreeSet::new();
        let mut each = Vec::new();
        for lines in &self.lines {
            let mine: BTreeSet<Uuid> = lines
                .iter()
                .filter(|l| l.kind == Kind::Seen)
                .map(|l| l.id)
                .collect();
            each.push(mine.len());
            all.extend(mine);
        }
        (all, each)
    }

    /// Polls until `done` holds, for up to `within`; how long it took. Fails with what was
    /// handled and the consumers' errors otherwise, or when a consumer not killed exits.
    pub(super) fn wait_until(
        &mut self,
        what: &str,
        within: Duration,
        done: impl Fn(&Self) -> bool,
    ) -> Duration {
        let started = Instant::now();
        while !done(self) {
            let exited: Vec<usize> = (1..=self.all.len())
                .filter(|n| !self.killed.contains(n) && !self.all[n - 1].running())
                .collect();
            if started.elapsed() > within || !exited.is_empty() {
                panic!(
                    "{what}: not within {within:?} (exited: {exited:?}); {}{}",
                    self.progress(),
                    self.errors()
                );
            }
            self.pump();
        }
        started.elapsed()
    }

    pub(super) fn kill(&mut self, number: usize) {
        let new = self.all[number - 1].kill();
        self.lines[number - 1].extend(new.iter().filter_map(|l| Line::parse(l)));
        self.killed.insert(number);
    }

    /// SIGTERM to every consumer still running: each stops gracefully.
    pub(super) fn stop(&mut self) {
        for (index, consumer) in self.all.iter_mut().enumerate() {
            if !consumer.running() {
                continue;
            }
            let new = consumer.terminate(Duration::from_secs(30));
            self.lines[index].extend(new.iter().filter_map(|l| Line::parse(l)));
            let status = consumer.status().expect("exited");
            assert!(
                status.success() && consumer.seen.iter().any(|l| l == "consumer stopped"),
                "consumer {}: a graceful stop, not {status}{}",
                index + 1,
                consumer.errors()
            );
        }
    }

    pub(super) fn progress(&self) -> String {
        let (all, each) = self.seen();
        format!("{} events seen, by consumer: {each:?}", all.len())
    }

    fn errors(&self) -> String {
        self.all.iter().map(Process::errors).collect()
    }

    pub(super) fn errors_with(&self, needle: &str) -> usize {
        self.all.iter().map(|c| c.errors_with(needle)).sum()
    }
}
