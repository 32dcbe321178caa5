//! Files: written by `HistoryWriter`, read back whole, a torn last line skipped.

use std::path::PathBuf;
use std::sync::Arc;

use uuid::Uuid;

use super::super::{Call, HistoryError, HistoryWriter, OpKind, check};
use super::{History, event, exactly_once, handling};

/// A directory of its own under the system's temporary one, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("eventsource-history-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn append_line(process: &str, seq: u64, id: Uuid) -> String {
    format!(
        r#"{{"process":"{process}","seq":{seq},"at_ms":{at},"kind":"ok","f":{{"type":"append","stream":"order-1","event_ids":["{id}"]}}}}"#,
        at = 100 + seq
    )
}

#[test]
fn a_torn_last_line_is_skipped_and_reported() {
    let dir = TempDir::new();
    let whole = format!(
        "{}\n{}\n",
        append_line("appender-1", 0, event(1)),
        append_line("appender-1", 1, event(2))
    );
    let torn = &append_line("appender-1", 2, event(3))[..40];
    std::fs::write(dir.0.join("appender-1.jsonl"), format!("{whole}{torn}")).unwrap();
    std::fs::write(dir.0.join("ignored.txt"), "not a history").unwrap();

    let history = History::read_dir(&dir.0).expect("a torn last line is no error");

    assert_eq!(history.ops.len(), 2);
    assert_eq!(history.torn_lines.len(), 1);
    assert_eq!(history.torn_lines[0].line, 3);
    assert_eq!(history.torn_lines[0].text, torn);
    assert_eq!(history.files, [dir.0.join("appender-1.jsonl")]);
    let report = check(&history, &super::Expectations::new());
    report.assert_clean();
    assert_eq!(report.torn_lines, history.torn_lines);
    assert!(report.to_string().contains("torn line skipped"), "{report}");
}

#[test]
fn a_bad_line_before_the_last_is_an_error() {
    let dir = TempDir::new();
    let path = dir.0.join("appender-1.jsonl");
    let text = format!(
        "{}\n{{\"process\n{}\n",
        append_line("appender-1", 0, event(1)),
        append_line("appender-1", 2, event(2))
    );
    std::fs::write(&path, text).unwrap();

    match History::read_files([&path]) {
        Err(HistoryError::Malformed { line, .. }) => assert_eq!(line, 2),
        other => panic!("expected a malformed line: {other:?}"),
    }
}

#[test]
fn a_history_written_by_writers_reads_back_and_checks_clean() {
    let dir = TempDir::new();
    let appender = Arc::new(HistoryWriter::create(&dir.0, "appender-1").unwrap());
    let worker = HistoryWriter::create(&dir.0, "worker-1").unwrap();
    let nemesis = HistoryWriter::create(&dir.0, "nemesis").unwrap();
    assert!(
        HistoryWriter::create(&dir.0, "worker-1").is_err(),
        "a file holds one process run"
    );

    // Tasks share the appender's writer: each op gets its own seq and whole line.
    let threads: Vec<_> = (0..4u64)
        .map(|task| {
            let appender = Arc::clone(&appender);
            std::thread::spawn(move || {
                let stream = format!("order-{task}");
                let f = Call::Append {
                    stream: stream.clone(),
                    event_ids: vec![event(task.into())],
                    positions: None,
                };
                let invoked = appender.invoke(f).unwrap();
                let done = Call::Append {
                    stream,
                    event_ids: vec![event(task.into())],
                    positions: Some(vec![task]),
                };
                appender.ok_with(&invoked, done).unwrap();
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let fault = nemesis.note_nemesis("drop both ways").unwrap();
    for task in 0..4u64 {
        let stream = format!("order-{task}");
        let started = worker
            .invoke(Call::HandleStart(handling(
                "projection",
                event(task.into()),
                &stream,
                1,
                None,
            )))
            .unwrap();
        worker.ok(&started).unwrap();
    }
    nemesis.note_nemesis_end(&fault).unwrap();
    nemesis.note_instant_nemesis("SIGKILL worker-1").unwrap();
    let lost = worker
        .invoke(Call::Publish {
            event_ids: vec![event(9)],
        })
        .unwrap();
    worker.info(&lost).unwrap();
    worker
        .record(
            OpKind::Ok,
            Call::Claim {
                handler: "projection".to_owned(),
                segment: 0,
                epoch: 1,
            },
        )
        .unwrap();

    let history = History::read_dir(&dir.0).unwrap();

    assert_eq!(history.ops.len(), 8 + 8 + 3 + 3);
    assert!(history.torn_lines.is_empty());
    assert_eq!(history.processes(), ["appender-1", "nemesis", "worker-1"]);
    let appender_seqs: Vec<u64> = history
        .ops
        .iter()
        .filter(|op| op.process == "appender-1")
        .map(|op| op.seq)
        .collect();
    assert_eq!(appender_seqs, (0..8).collect::<Vec<_>>());
    let commits = history
        .ops
        .iter()
        .filter(|op| op.kind == OpKind::Ok && matches!(op.f, Call::HandleCommit(_)))
        .count();
    assert_eq!(
        commits, 4,
        "the completion of a HandleStart is its HandleCommit"
    );
    let acknowledged = history
        .ops
        .iter()
        .find(|op| op.kind == OpKind::Ok && matches!(op.f, Call::Append { .. }))
        .unwrap();
    assert!(acknowledged.completes.is_some());
    let report = check(&history, &exactly_once("projection"));
    report.assert_clean();
    assert_eq!(report.processes, ["appender-1", "nemesis", "worker-1"]);
}
