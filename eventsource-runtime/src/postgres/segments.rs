//! Split projections on PostgreSQL: the segments' claims (`projection_segments`), the
//! workers alive (`projection_workers`), fenced checkpoint saves, and the event store's
//! segment reads through an index per segment count.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgConnection;

use super::checkpoints::PostgresCheckpointStore;
use super::events::PostgresEventStore;
use super::rows::decode;
use super::schema::qualify;
use super::{to_i64, to_u64, unavailable};
use crate::event::StreamId;
use crate::projection::checkpoint::CheckpointStore;
use crate::projection::segments::{
    Claim, Claimed, Fence, Resplit, Retire, SegmentClaims, SegmentOwner,
};
use crate::sql::row::readable_prefix;
use crate::store::backend::ReadAll;
use crate::store::{Segment, StoreError};

// Records the split once: rows are added only when the projection has none.
const SPLIT: &str = "INSERT INTO __schema__.projection_segments (projection, segment, segments) \
     SELECT $1, g, $2 FROM generate_series(0, $2 - 1) AS g \
     WHERE NOT EXISTS (SELECT 1 FROM __schema__.projection_segments WHERE projection = $1) \
     ON CONFLICT DO NOTHING";
const RECORDED: &str =
    "SELECT max(segments) FROM __schema__.projection_segments WHERE projection = $1";
const SEEN: &str = "INSERT INTO __schema__.projection_workers (projection, worker, seen_at) \
     VALUES ($1, $2, now()) ON CONFLICT (projection, worker) DO UPDATE SET seen_at = now()";
// Rows another worker is writing right now are left for the next heartbeat.
const FORGET_SILENT: &str = "DELETE FROM __schema__.projection_workers \
     WHERE (projection, worker) IN ( \
         SELECT projection, worker FROM __schema__.projection_workers \
          WHERE projection = $1 AND seen_at < now() - make_interval(secs => $2) \
          FOR UPDATE SKIP LOCKED)";
const LIVE: &str = "SELECT count(*) FROM __schema__.projection_workers WHERE projection = $1";
const RENEW: &str = "UPDATE __schema__.projection_segments s SET renewed_at = now() \
     FROM unnest($3::int4[], $4::int8[]) AS c(segment, epoch) \
     WHERE s.projection = $1 AND s.owner = $2 AND s.segment = c.segment AND s.epoch = c.epoch \
     RETURNING s.segment, s.segments, s.epoch";
// Free segments, or claims their owners did not renew within their own timeout (the default
// for a claim that recorded none); rows another worker is claiming right now are skipped,
// not waited for. The claim records the claimer's timeout.
const CLAIM: &str = "WITH picked AS ( \
         SELECT segment, owner FROM __schema__.projection_segments \
          WHERE projection = $1 \
            AND (owner IS NULL OR renewed_at IS NULL \
                 OR renewed_at + coalesce(claim_timeout, make_interval(secs => $5)) < now()) \
          ORDER BY segment LIMIT $3 FOR UPDATE SKIP LOCKED) \
     UPDATE __schema__.projection_segments s \
        SET owner = $2, epoch = s.epoch + 1, renewed_at = now(), \
            claim_timeout = make_interval(secs => $4) \
       FROM picked WHERE s.projection = $1 AND s.segment = picked.segment \
     RETURNING s.segment, s.segments, s.epoch, picked.owner";
const RELEASE: &str = "UPDATE __schema__.projection_segments s \
        SET owner = NULL, renewed_at = NULL \
       FROM unnest($3::int4[], $4::int8[]) AS c(segment, epoch) \
      WHERE s.projection = $1 AND s.owner = $2 AND s.segment = c.segment AND s.epoch = c.epoch";
const LEAVE: &str =
    "DELETE FROM __schema__.projection_workers WHERE projection = $1 AND worker = $2";
// The claim's row is locked (FOR SHARE) until the end of the transaction: a worker taking
// the segment over waits for this save, then sees its position; a save after the takeover
// finds no row at its epoch and saves nothing. Never back, as every save: a late save under
// the claim (a background save overtaken, a retry) leaves a further checkpoint as it is.
const SAVE_FENCED: &str = "WITH claim AS ( \
         SELECT 1 FROM __schema__.projection_segments \
          WHERE projection = $1 AND segment = $2 AND owner = $3 AND epoch = $4 FOR SHARE) \
     INSERT INTO __schema__.checkpoints (projection, position) SELECT $5, $6 FROM claim \
     ON CONFLICT (projection) DO UPDATE \
     SET position = GREATEST(checkpoints.position, excluded.position), updated_at = now()";
// Expired: not renewed within the owner's own timeout (the default for a claim without one).
const OWNERS: &str = "SELECT segment, segments, owner, epoch, \
            (owner IS NOT NULL AND (renewed_at IS NULL \
             OR renewed_at + coalesce(claim_timeout, make_interval(secs => $2)) < now())) \
       FROM __schema__.projection_segments WHERE projection = $1 ORDER BY segment";

const SPLITS: &str = "SELECT projection, max(segments) FROM __schema__.projection_segments \
     GROUP BY projection ORDER BY projection";

/// The timeout of a claim that recorded none (made before schema version 10, or by an
/// earlier release's worker), in seconds.
fn unrecorded_timeout() -> f64 {
    crate::projection::segments::DEFAULT_CLAIM_TIMEOUT.as_secs_f64()
}

fn segment_of(index: i32, count: i32) -> Option<Segment> {
    Segment::new(u32::try_from(index).ok()?, u32::try_from(count).ok()?)
}

fn epoch_of(epoch: i64) -> u64 {
    to_u64(epoch)
}

fn claims_columns(claims: &[Claim]) -> (Vec<i32>, Vec<i64>) {
    claims
        .iter()
        .map(|claim| {
            let index = i32::try_from(claim.segment.index()).unwrap_or(i32::MAX);
            (index, to_i64(claim.epoch))
        })
        .unzip()
}

impl PostgresCheckpointStore {
    fn segments_sql(&self, template: &str) -> String {
        qualify(template, self.schema())
    }

    /// Saves `position` as the checkpoint of `fence`'s segment on `connection` (inside the
    /// caller's transaction), if the fence's claim still holds: `false` (nothing saved)
    /// once another worker took the segment over. Locks the claim's row until the
    /// transaction ends, so a takeover waits for the commit.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn save_fenced_on(
        &self,
        connection: &mut PgConnection,
        fence: &Fence,
        position: u64,
    ) -> Result<bool, StoreError> {
        let claim = fence.claim();
        let done = sqlx::query(&self.segments_sql(SAVE_FENCED))
            .bind(fence.projection())
            .bind(i32::try_from(claim.segment.index()).unwrap_or(i32::MAX))
            .bind(fence.worker())
            .bind(to_i64(claim.epoch))
            .bind(fence.checkpoint())
            .bind(to_i64(position))
            .execute(connection)
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl SegmentClaims for PostgresCheckpointStore {
    async fn split(&self, projection: &str, count: u32) -> Result<(u32, bool), StoreError> {
        let count = i32::try_from(count.clamp(1, Segment::MAX_COUNT)).unwrap_or(1);
        let done = sqlx::query(&self.segments_sql(SPLIT))
            .bind(projection)
            .bind(count)
            .execute(self.pool())
            .await
            .map_err(unavailable)?;
        let recorded: Option<i32> = sqlx::query_scalar(&self.segments_sql(RECORDED))
            .bind(projection)
            .fetch_one(self.pool())
            .await
            .map_err(unavailable)?;
        let recorded = u32::try_from(recorded.unwrap_or(count)).unwrap_or(0);
        Ok((recorded, done.rows_affected() > 0))
    }

    async fn heartbeat(
        &self,
        projection: &str,
        worker: &str,
        timeout: Duration,
    ) -> Result<u32, StoreError> {
        // Three statements, no transaction: a worker paused in the middle of one would hold
        // its locks, and the others' heartbeats would wait for it.
        sqlx::query(&self.segments_sql(SEEN))
            .bind(projection)
            .bind(worker)
            .execute(self.pool())
            .await
            .map_err(unavailable)?;
        sqlx::query(&self.segments_sql(FORGET_SILENT))
            .bind(projection)
            .bind(timeout.as_secs_f64())
            .execute(self.pool())
            .await
            .map_err(unavailable)?;
        let live: i64 = sqlx::query_scalar(&self.segments_sql(LIVE))
            .bind(projection)
            .fetch_one(self.pool())
            .await
            .map_err(unavailable)?;
        Ok(u32::try_from(live).unwrap_or(u32::MAX))
    }

    async fn renew(
        &self,
        projection: &str,
        worker: &str,
        claims: &[Claim],
    ) -> Result<Vec<Claim>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let (segments, epochs) = claims_columns(claims);
        let rows: Vec<(i32, i32, i64)> = sqlx::query_as(&self.segments_sql(RENEW))
            .bind(projection)
            .bind(worker)
            .bind(segments)
            .bind(epochs)
            .fetch_all(self.pool())
            .await
            .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .filter_map(|(index, count, epoch)| {
                Some(Claim::new(segment_of(index, count)?, epoch_of(epoch)))
            })
            .collect())
    }

    async fn claim(
        &self,
        projection: &str,
        worker: &str,
        most: usize,
        timeout: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        if most == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<(i32, i32, i64, Option<String>)> = sqlx::query_as(&self.segments_sql(CLAIM))
            .bind(projection)
            .bind(worker)
            .bind(i64::try_from(most).unwrap_or(i64::MAX))
            .bind(timeout.as_secs_f64())
            .bind(unrecorded_timeout())
            .fetch_all(self.pool())
            .await
            .map_err(unavailable)?;
        let mut claimed: Vec<Claimed> = rows
            .into_iter()
            .filter_map(|(index, count, epoch, from)| {
                let claim = Claim::new(segment_of(index, count)?, epoch_of(epoch));
                Some(Claimed::new(claim, from))
            })
            .collect();
        claimed.sort_unstable_by_key(|taken| taken.claim.segment);
        Ok(claimed)
    }

    async fn release(
        &self,
        projection: &str,
        worker: &str,
        claims: &[Claim],
    ) -> Result<(), StoreError> {
        if claims.is_empty() {
            return Ok(());
        }
        let (segments, epochs) = claims_columns(claims);
        sqlx::query(&self.segments_sql(RELEASE))
            .bind(projection)
            .bind(worker)
            .bind(segments)
            .bind(epochs)
            .execute(self.pool())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn leave(&self, projection: &str, worker: &str) -> Result<(), StoreError> {
        sqlx::query(&self.segments_sql(LEAVE))
            .bind(projection)
            .bind(worker)
            .execute(self.pool())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn save_fenced(
        &self,
        projection: &str,
        worker: &str,
        claim: Claim,
        _checkpoints: &dyn CheckpointStore,
        checkpoint: &str,
        position: u64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&self.segments_sql(SAVE_FENCED))
            .bind(projection)
            .bind(i32::try_from(claim.segment.index()).unwrap_or(i32::MAX))
            .bind(worker)
            .bind(to_i64(claim.epoch))
            .bind(checkpoint)
            .bind(to_i64(position))
            .execute(self.pool())
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected() > 0)
    }

    async fn owners(&self, projection: &str) -> Result<Vec<SegmentOwner>, StoreError> {
        let rows: Vec<(i32, i32, Option<String>, i64, bool)> =
            sqlx::query_as(&self.segments_sql(OWNERS))
                .bind(projection)
                .bind(unrecorded_timeout())
                .fetch_all(self.pool())
                .await
                .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .filter_map(|(index, count, owner, epoch, expired)| {
                Some(SegmentOwner {
                    segment: segment_of(index, count)?,
                    owner,
                    epoch: epoch_of(epoch),
                    expired,
                })
            })
            .collect())
    }

    async fn resplit(&self, projection: &str, count: u32) -> Result<Resplit, StoreError> {
        self.resplit_segments(projection, count).await
    }

    async fn retire(&self, projection: &str) -> Result<Retire, StoreError> {
        self.retire_segments(projection).await
    }

    async fn split_projections(&self) -> Result<BTreeMap<String, u32>, StoreError> {
        let rows: Vec<(String, i32)> = sqlx::query_as(&self.segments_sql(SPLITS))
            .fetch_all(self.pool())
            .await
            .map_err(unavailable)?;
        let splits = rows
            .into_iter()
            .map(|(name, count)| (name, u32::try_from(count).unwrap_or(0)));
        Ok(splits.collect())
    }
}

impl PostgresEventStore {
    /// One segment's events from `from_position` on, as `read_all` reads the whole log:
    /// below the known high-water mark first, then below a new one.
    pub(super) async fn segment_events(
        &self,
        segment: Segment,
        from_position: u64,
        limit: usize,
    ) -> ReadAll {
        let sql = self.segment_read_sql(segment.count());
        let index = i32::try_from(segment.index()).unwrap_or(i32::MAX);
        let read = |from: u64, mark: u64, limit: usize| {
            sqlx::query(&sql)
                .bind(index)
                .bind(to_i64(from))
                .bind(to_i64(mark))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(self.pool())
        };
        // Below a mark already known every event is final: a reader catching up reads
        // there first, and a full batch needs no new mark.
        let known = self.known_mark();
        let mut rows = Vec::new();
        if from_position < known {
            rows = read(from_position, known, limit)
                .await
                .map_err(unavailable)?;
            if rows.len() >= limit {
                return readable_prefix(rows.iter().map(decode), limit);
            }
        }
        // The mark first; the rows past it then, with a later snapshot (READ COMMITTED):
        // every event below the mark that committed is in it, as for `read_all`.
        let mark = self.current_mark().await?;
        let from = from_position.max(known);
        if from < mark {
            let more = read(from, mark, limit - rows.len()).await;
            rows.extend(more.map_err(unavailable)?);
        }
        readable_prefix(rows.iter().map(decode), limit)
    }

    /// The segment of a log split in `count` holding `stream`, as the database hashes it.
    pub(super) async fn segment_holding(
        &self,
        stream: &StreamId,
        count: u32,
    ) -> Result<Segment, StoreError> {
        let count = count.clamp(1, Segment::MAX_COUNT);
        let index: i32 = sqlx::query_scalar(&self.segment_of_sql())
            .bind(stream.aggregate_type())
            .bind(stream.aggregate_id())
            .bind(i32::try_from(count).unwrap_or(1))
            .fetch_one(self.pool())
            .await
            .map_err(unavailable)?;
        let index = u32::try_from(index).unwrap_or(0);
        Segment::new(index, count).ok_or_else(|| {
            unavailable(sqlx::Error::Protocol(format!(
                "eventsource_segment answered {index} for a count of {count}"
            )))
        })
    }

    /// Creates the index serving the reads of a log split in `count` (none for one).
    pub(super) async fn create_segment_index(&self, count: u32) -> Result<(), StoreError> {
        if count <= 1 {
            return Ok(());
        }
        match sqlx::query(&self.segment_index_sql(count))
            .execute(self.pool())
            .await
        {
            Ok(_) => Ok(()),
            // Another worker made it at the same moment (`IF NOT EXISTS` does not cover a
            // concurrent creation): it is there.
            Err(error)
                if error
                    .as_database_error()
                    .and_then(|e| e.code())
                    .is_some_and(|code| code == "23505" || code == "42P07") =>
            {
                Ok(())
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    /// The statement reading one segment of a log split in `count`, below a mark: through
    /// the index `events_segments_{count}` when [`prepare_segments`] made it.
    ///
    /// [`prepare_segments`]: crate::store::EventStore::prepare_segments
    pub(super) fn segment_read_sql(&self, count: u32) -> String {
        qualify(
            &format!(
                "SELECT {} FROM __schema__.events \
                 WHERE __schema__.eventsource_segment(stream_type, stream_id, {count}) = $1 \
                   AND position >= $2 AND position < $3 ORDER BY position LIMIT $4",
                super::statements::COLUMNS
            ),
            self.schema(),
        )
    }

    /// The statement naming the segment of a stream (`$1`, `$2`) in a log split in `$3`.
    pub(super) fn segment_of_sql(&self) -> String {
        qualify(
            "SELECT __schema__.eventsource_segment($1, $2, $3)",
            self.schema(),
        )
    }

    /// The index serving the reads of a log split in `count`.
    pub(super) fn segment_index_sql(&self, count: u32) -> String {
        qualify(
            &format!(
                "CREATE INDEX IF NOT EXISTS events_segments_{count} ON __schema__.events \
                 (__schema__.eventsource_segment(stream_type, stream_id, {count}), position)"
            ),
            self.schema(),
        )
    }
}
