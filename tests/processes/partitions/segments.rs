//! A projection split into segments under faults: worker `a`, in the namespace, and worker
//! `b`, on the host, share the segments (claimed on PostgreSQL, by the server's clock);
//! each writes its read model in the checkpoint's transaction on condition of its claim
//! (`Fenced`). Judged from what committed (`handled`, read back as the history's commits
//! and claims): every acknowledged append handled exactly once, no write under an epoch
//! older than one already written, no stream out of order; a fault held at least the claim
//! timeout has `b` writing every segment within the claim timeout + a rebalance + 5 s of
//! its start; both stop within 30 s of SIGTERM.

use std::collections::HashMap;
use std::time::Duration;

use eventsource_runtime::sqlx;
use eventsource_test_support::history::{
    Call, Delivery, Expectations, Handling, Op, OpKind, check,
};

use super::TIMEOUT;
use super::child::PROJECTION;
use super::world::{Db, Nemesis, World, took};

/// The longest the other worker may take to write every segment after `a` is cut off:
/// `a`'s claims expire after the claim timeout, `b` claims them at its next rebalance
/// (`T/8`), then the 5 s.
fn takeover_bound() -> Duration {
    TIMEOUT + TIMEOUT / 8 + Duration::from_secs(5)
}

/// Does `nemesis` to worker `a` for `hold`, then heals, and judges.
pub async fn run(index: u8, nemesis: Nemesis, hold: Duration) {
    let Some(mut world) = World::start(index).await else {
        return;
    };
    let db = &world.db;
    let a = world.start_child("worker", "a", true, nemesis);
    let mut b = world.start_child("worker", "b", false, nemesis);
    let both = async || db.handled_by("a").await > 0 && db.handled_by("b").await > 0;
    b.wait_for("a and b share the segments", Duration::from_secs(30), both)
        .await;

    let struck_at = db
        .scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
        .await;
    // The segments `a` held: those whose last row before the fault is its.
    let taken_over = format!(
        "WITH before AS (SELECT DISTINCT ON (segment) segment, runner \
                           FROM \"__schema__\".handled \
                          WHERE at <= to_timestamp({struck_at} / 1000.0) \
                          ORDER BY segment, at DESC) \
         SELECT count(*) FILTER (WHERE NOT EXISTS ( \
                    SELECT 1 FROM \"__schema__\".handled h WHERE h.runner = 'b' \
                       AND h.segment = before.segment \
                       AND h.at > to_timestamp({struck_at} / 1000.0))) \
           FROM before WHERE runner = 'a'"
    );
    let b_has_all = async || db.scalar(&taken_over).await == 0;
    let takeover = world
        .cut_off(nemesis, hold, &a, &mut b, takeover_bound(), b_has_all)
        .await;

    let acknowledged = world.finish_appending(&mut b).await;
    let (a_stop, b_stop) = (a.stop(), b.stop());
    let committed = committed(&world.db).await;
    let expectations = Expectations::new().handler(PROJECTION, Delivery::ExactlyOnce);
    let report = check(&world.history("a", nemesis, committed), &expectations);
    report.assert_clean();
    println!(
        "segments, {} held {hold:?} (claim timeout {TIMEOUT:?}): {acknowledged} appends \
         acknowledged; b wrote every segment a held {} after it began; stopped after SIGTERM in \
         {a_stop:?} (a) and {b_stop:?} (b)",
        nemesis.name(),
        took(takeover),
    );
    world.end().await;
}

/// A row of `handled` with its event: what committed, where, under which claim, when (by
/// the server's clock).
type Row = (uuid::Uuid, String, i32, i64, i64, String, i64, i64);

/// What committed, as the history's ops: each worker's first write under a claim as that
/// claim (an upper bound of when it took it), and each row as a commit.
async fn committed(db: &Db) -> Vec<Op> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT h.event_id, h.runner, h.segment, h.epoch, \
                (extract(epoch FROM h.at) * 1000)::bigint, \
                e.stream_type || '-' || e.stream_id, e.version, e.position \
           FROM \"{0}\".handled h JOIN \"{0}\".events e USING (event_id) ORDER BY h.at",
        db.schema
    ))
    .fetch_all(db.pool())
    .await
    .unwrap();
    let mut seq: HashMap<String, u64> = HashMap::new();
    let mut claimed = std::collections::HashSet::new();
    let mut ops = Vec::new();
    let mut push = |ops: &mut Vec<Op>, process: &str, at_ms: i64, f: Call| {
        let next = seq.entry(format!("{process}.committed")).or_default();
        ops.push(Op {
            process: format!("{process}.committed"),
            seq: *next,
            at_ms: u64::try_from(at_ms).unwrap(),
            kind: OpKind::Ok,
            completes: None,
            f,
        });
        *next += 1;
    };
    for (event_id, runner, segment, epoch, at_ms, stream, version, position) in rows {
        let (segment, epoch) = (
            u32::try_from(segment).unwrap(),
            u64::try_from(epoch).unwrap(),
        );
        if claimed.insert((runner.clone(), segment, epoch)) {
            let claim = Call::Claim {
                handler: PROJECTION.to_owned(),
                segment,
                epoch,
            };
            push(&mut ops, &runner, at_ms, claim);
        }
        let handling = Handling {
            handler: PROJECTION.to_owned(),
            event_id,
            stream,
            version: u64::try_from(version).unwrap(),
            position: u64::try_from(position).unwrap(),
            segment: Some(segment),
            epoch: Some(epoch),
        };
        push(&mut ops, &runner, at_ms, Call::HandleCommit(handling));
    }
    ops
}
