//! Keeping gold tables from growing with every refresh. A refresh overwrites its model's table:
//! the version before is removed from the table but its files stay in storage until a vacuum
//! deletes them, and with `refresh = "on_commit"` that is a copy of the model per batch. Every
//! `[gold] vacuum_every_refreshes` versions a model's table is vacuumed (full: also the files
//! of a refresh that lost to another sink's) down to what `vacuum_retention_hours` keeps for
//! readers still on an older version, and its expired log files go with it.

use std::time::Duration;

use deltalake::{DeltaTable, DeltaTableError};

use super::config::{GoldConfig, VacuumMode};
use super::maintenance::{vacuum_table, Vacuumed};

/// When and how far gold tables are vacuumed (from `[gold]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoldVacuum {
    /// Every this many versions of a model's table; 0 never.
    pub every: u64,
    pub retention: Duration,
}

impl From<&GoldConfig> for GoldVacuum {
    fn from(gold: &GoldConfig) -> GoldVacuum {
        GoldVacuum {
            every: gold.vacuum_every_refreshes,
            retention: Duration::from_secs(gold.vacuum_retention_hours * 3600),
        }
    }
}

impl Default for GoldVacuum {
    fn default() -> GoldVacuum {
        GoldVacuum {
            every: 100,
            retention: Duration::from_secs(3600),
        }
    }
}

/// Vacuums `table`, just refreshed, when its version is due; returns the table as it is after.
pub(super) async fn vacuum_when_due(
    table: DeltaTable,
    settings: GoldVacuum,
) -> Result<(DeltaTable, Option<Vacuumed>), DeltaTableError> {
    let version = table.version().unwrap_or(0);
    if settings.every == 0 || version == 0 || version % settings.every != 0 {
        return Ok((table, None));
    }
    // Full: a refresh that lost to another sink's leaves files no version names.
    let (table, vacuumed) = vacuum_table(table, settings.retention, VacuumMode::Full).await?;
    Ok((table, Some(vacuumed)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::lake::gold::{refresh, GoldModel};
    use crate::lake::storage::LakeStorage;

    fn parquet_files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".parquet")
            })
            .count()
    }

    /// Refreshes leave a copy of the model each until a due version vacuums the table: then
    /// only the newest refresh's file stays, and the table reads the same.
    #[tokio::test]
    async fn a_due_refresh_deletes_the_copies_earlier_refreshes_left() {
        let dir = tempfile::tempdir().unwrap();
        let storage =
            LakeStorage::new(dir.path().to_str().unwrap(), &BTreeMap::new(), dir.path()).unwrap();
        let models = vec![GoldModel {
            name: "m".into(),
            file: PathBuf::from("sql/gold/m.sql"),
            sql: "SELECT 1 AS x UNION ALL SELECT 2 AS x".into(),
        }];
        let table_dir = dir.path().join("gold/m");
        let every_four = GoldVacuum {
            every: 4,
            retention: Duration::ZERO,
        };
        // Versions 0 to 3: not due.
        for _ in 0..4 {
            let outcomes = refresh(&storage, &models, every_four).await.unwrap();
            assert_eq!(outcomes[0].result, Ok(2));
            assert!(!outcomes[0].vacuumed);
        }
        assert_eq!(parquet_files(&table_dir), 4);

        // Version 4 is due: the four files earlier versions held go.
        let outcomes = refresh(&storage, &models, every_four).await.unwrap();
        assert!(outcomes[0].vacuumed);
        assert_eq!(parquet_files(&table_dir), 1);
        let table = DeltaTable::try_from_url(storage.table_url("gold/m").unwrap())
            .await
            .unwrap();
        assert_eq!(table.get_file_uris().unwrap().count(), 1);
        assert_eq!(
            table
                .snapshot()
                .unwrap()
                .log_data()
                .iter()
                .map(|f| f.num_records().unwrap_or(0))
                .sum::<usize>(),
            2
        );

        // Never, with `vacuum_every_refreshes = 0`.
        let never = GoldVacuum {
            every: 0,
            ..every_four
        };
        for _ in 0..4 {
            refresh(&storage, &models, never).await.unwrap();
        }
        assert_eq!(parquet_files(&table_dir), 5);
    }
}
