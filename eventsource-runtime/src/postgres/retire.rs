//! A split projection retired ([`SegmentClaims::retire`](crate::projection::segments::SegmentClaims::retire))
//! in one transaction: the segments' rows locked (refused while a worker holds one), then
//! every checkpoint and parked event of its segments, whatever count they were written
//! under, its workers and its segments' rows deleted.

use super::checkpoints::PostgresCheckpointStore;
use super::resplit::{LOCK, held_segments, lock_segments};
use super::schema::qualify;
use super::unavailable;
use crate::projection::segments::Retire;
use crate::store::StoreError;

// A segment's checkpoint is named `projection[index/count]`.
const SEGMENT_NAME: &str = "left(projection, length($1) + 1) = $1 || '[' \
     AND substr(projection, length($1) + 1) ~ '^\\[[0-9]+/[0-9]+\\]$'";

impl PostgresCheckpointStore {
    pub(super) async fn retire_segments(&self, projection: &str) -> Result<Retire, StoreError> {
        let sql = |template: &str| qualify(template, self.schema());
        let mut tx = self.pool().begin().await.map_err(unavailable)?;
        let rows = lock_segments(&mut tx, &sql(LOCK), projection).await?;
        let Some(&(_, recorded, ..)) = rows.first() else {
            return Ok(Retire::NotSplit);
        };
        let held = held_segments(&rows);
        if !held.is_empty() {
            return Ok(Retire::Held(held));
        }
        for statement in [
            format!("DELETE FROM __schema__.checkpoints WHERE {SEGMENT_NAME}"),
            format!("DELETE FROM __schema__.parked_events WHERE {SEGMENT_NAME}"),
            "DELETE FROM __schema__.projection_workers WHERE projection = $1".to_owned(),
            "DELETE FROM __schema__.projection_segments WHERE projection = $1".to_owned(),
        ] {
            sqlx::query(&sql(&statement))
                .bind(projection)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(Retire::Done {
            segments: u32::try_from(recorded).unwrap_or(0),
        })
    }
}
