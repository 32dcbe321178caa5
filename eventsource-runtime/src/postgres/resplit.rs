//! A split projection split again into a multiple of its count, without a rebuild
//! ([`SegmentClaims::resplit`](crate::projection::segments::SegmentClaims::resplit)), in one
//! transaction: the segments' rows locked, each new segment's checkpoint from the old
//! segment holding its streams, the parked events moved to their new segment.

use super::checkpoints::PostgresCheckpointStore;
use super::schema::qualify;
use super::{to_i64, to_u64, unavailable};
use crate::projection::segments::{Resplit, SegmentOwner};
use crate::store::{Segment, StoreError};

// The rows locked until the commit: no worker claims or renews meanwhile. Expired as
// `OWNERS` says.
pub(super) const LOCK: &str = "SELECT segment, segments, owner, epoch, \
            (owner IS NOT NULL AND (renewed_at IS NULL \
             OR renewed_at + coalesce(claim_timeout, make_interval(secs => $2)) < now())) \
       FROM __schema__.projection_segments WHERE projection = $1 ORDER BY segment FOR UPDATE";
// New segment g of $2 starts where old segment g % $3 of $3 got.
const CHECKPOINTS: &str = "INSERT INTO __schema__.checkpoints (projection, position) \
     SELECT format('%s[%s/%s]', $1::text, g, $2::int), coalesce(c.position, 0) \
       FROM generate_series(0, $2::int - 1) AS g \
       LEFT JOIN __schema__.checkpoints c \
         ON c.projection = format('%s[%s/%s]', $1::text, g % $3::int, $3::int) \
     ON CONFLICT (projection) DO UPDATE SET position = excluded.position, updated_at = now()";
// Each parked event to the new segment of its stream.
const PARKED: &str = "UPDATE __schema__.parked_events p \
        SET projection = format('%s[%s/%s]', $1::text, \
            __schema__.eventsource_segment(e.stream_type, e.stream_id, $2::int), $2::int) \
       FROM __schema__.events e \
      WHERE e.position = p.position AND p.projection = ANY($3::text[])";
const FORGET: &str = "DELETE FROM __schema__.projection_segments WHERE projection = $1";
const SPLIT: &str = "INSERT INTO __schema__.projection_segments (projection, segment, segments, epoch) \
     SELECT $1, g, $2, $3 FROM generate_series(0, $2 - 1) AS g";

impl PostgresCheckpointStore {
    pub(super) async fn resplit_segments(
        &self,
        projection: &str,
        count: u32,
    ) -> Result<Resplit, StoreError> {
        let sql = |template: &str| qualify(template, self.schema());
        let count_sql = i32::try_from(count.min(Segment::MAX_COUNT)).unwrap_or(i32::MAX);
        let mut tx = self.pool().begin().await.map_err(unavailable)?;
        let rows = lock_segments(&mut tx, &sql(LOCK), projection).await?;
        let Some(&(_, recorded, ..)) = rows.first() else {
            return Ok(Resplit::NotSplit);
        };
        let recorded = u32::try_from(recorded).unwrap_or(0);
        if recorded == 0
            || count <= recorded
            || !count.is_multiple_of(recorded)
            || count > Segment::MAX_COUNT
        {
            return Ok(Resplit::NotAMultiple { recorded });
        }
        let held = held_segments(&rows);
        if !held.is_empty() {
            return Ok(Resplit::Held(held));
        }
        let recorded_sql = i32::try_from(recorded).unwrap_or(i32::MAX);
        let old_names: Vec<String> = (0..recorded)
            .map(|index| format!("{projection}[{index}/{recorded}]"))
            .collect();
        let epoch = rows.iter().map(|row| row.3).max().unwrap_or(0);
        sqlx::query(&sql(CHECKPOINTS))
            .bind(projection)
            .bind(count_sql)
            .bind(recorded_sql)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(&sql(PARKED))
            .bind(projection)
            .bind(count_sql)
            .bind(&old_names)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(&sql(FORGET))
            .bind(projection)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(&sql(SPLIT))
            .bind(projection)
            .bind(count_sql)
            .bind(to_i64(to_u64(epoch)))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Resplit::Done { from: recorded })
    }
}

/// A segment's row, locked: its index, its count, its owner, its epoch, whether its claim
/// expired.
pub(super) type LockedSegment = (i32, i32, Option<String>, i64, bool);

/// Locks `projection`'s segment rows (`LOCK`, qualified) until `tx` ends.
pub(super) async fn lock_segments(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    lock: &str,
    projection: &str,
) -> Result<Vec<LockedSegment>, StoreError> {
    sqlx::query_as(lock)
        .bind(projection)
        .bind(crate::projection::segments::DEFAULT_CLAIM_TIMEOUT.as_secs_f64())
        .fetch_all(&mut **tx)
        .await
        .map_err(unavailable)
}

/// The locked segments a worker holds (claimed, not expired).
pub(super) fn held_segments(rows: &[LockedSegment]) -> Vec<SegmentOwner> {
    rows.iter()
        .filter(|(_, _, owner, _, expired)| owner.is_some() && !expired)
        .filter_map(|(index, total, owner, epoch, expired)| {
            let segment = Segment::new(u32::try_from(*index).ok()?, u32::try_from(*total).ok()?)?;
            Some(SegmentOwner {
                segment,
                owner: owner.clone(),
                epoch: to_u64(*epoch),
                expired: *expired,
            })
        })
        .collect()
}
