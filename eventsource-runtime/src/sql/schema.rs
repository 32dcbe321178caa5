//! What the SQLite and PostgreSQL schemas share: numbered versions, each applied once and
//! recorded in `eventsource_schema_migrations`.

/// The versions of `migrations` (in order) not among those `applied`.
pub(crate) fn pending<'a>(
    migrations: &'a [(i64, &'a str)],
    applied: &'a [i64],
) -> impl Iterator<Item = (i64, &'a str)> + 'a {
    migrations
        .iter()
        .copied()
        .filter(|(version, _)| !applied.contains(version))
}

#[cfg(test)]
mod tests {
    #[test]
    fn pending_versions_keep_their_order() {
        let migrations = [(1, "one"), (2, "two"), (3, "three")];
        let pending: Vec<i64> = super::pending(&migrations, &[2]).map(|m| m.0).collect();
        assert_eq!(pending, [1, 3]);
        assert_eq!(super::pending(&migrations, &[1, 2, 3]).count(), 0);
    }
}
