//! Table maintenance on a schedule of commits: compaction (`optimize_every_commits`), in the
//! background ([`super::compaction`]), and vacuum (`vacuum_every_commits`, keeping
//! `vacuum_retention_hours`; by default a full one, which also deletes the files of commits that
//! never happened, and the log files past the table's log retention), in line, with no compaction under way. Their commits change no
//! data and carry no state (see [`super::state::maintenance_commit_properties`]).
//!
//! A compaction that landed leaves the writer's view of the table behind: the layer catches up
//! before its next batch ([`catch_up`]) or, when it landed during a batch, that batch's commit
//! is refused and the batch applied again on the reloaded table, as for any concurrent writer.
//! One that lost to a concurrent commit runs again in line after the table's next batch, so
//! every table is still compacted on its schedule.

use std::time::Duration;

use deltalake::table::config::TablePropertiesExt;
use deltalake::DeltaTableError;

use super::compaction::{self, Compaction, Outcome};
use super::config::{LakeConfig, VacuumMode};
use super::layer::{delta_err, Layer};
use super::metrics::LakeMetrics;
use super::state::maintenance_commit_properties;
use super::LakeError;

/// Compaction and vacuum on their schedules, after the batch that made the layer's latest
/// commit.
pub(super) async fn maintain(
    layer: &mut Layer,
    settings: &LakeConfig,
    metrics: &mut LakeMetrics,
) -> Result<(), LakeError> {
    if layer.commits == 0 || !layer.exists() {
        return Ok(());
    }
    let due = |every: u64| every > 0 && layer.commits % every == 0;
    let vacuum_due = due(settings.vacuum_every_commits);
    let optimize_due = due(settings.optimize_every_commits);
    // Vacuum deletes the files removed longer than the retention ago; with a short retention
    // that can be a file a compaction under way is still reading (a copy-on-write MERGE removed
    // it meanwhile): a vacuum waits for the compaction.
    catch_up(layer, vacuum_due, metrics).await?;
    if layer.compaction_outcome == Outcome::Lost {
        compact_in_line(layer, metrics).await?;
        layer.compaction_outcome = Outcome::Settled;
    }
    if vacuum_due {
        vacuum(layer, settings, metrics).await?;
    }
    if optimize_due {
        if layer.compaction.is_some() {
            tracing::debug!(table = %layer.path, "the last compaction is still under way: skipping this one");
        } else {
            let table = layer.existing().cloned().expect("maintained tables exist");
            layer.compaction = Some(Compaction::start(table, layer.writer_properties()));
        }
    }
    Ok(())
}

/// Every background compaction still under way, waited for (a writer that stops).
pub(super) async fn finish(layer: &mut Layer, metrics: &mut LakeMetrics) -> Result<(), LakeError> {
    catch_up(layer, true, metrics).await
}

/// Takes in `layer`'s compaction if it ended (or, with `wait`, once it ends): counts it, and
/// brings the layer's table up to the version it committed, so the next commit goes in on top
/// of it.
pub(super) async fn catch_up(
    layer: &mut Layer,
    wait: bool,
    metrics: &mut LakeMetrics,
) -> Result<(), LakeError> {
    match &layer.compaction {
        Some(compaction) if wait || compaction.ended() => {}
        _ => return Ok(()),
    }
    let compaction = layer.compaction.take().expect("a compaction under way");
    let compacted = match compaction.finish().await {
        Ok(table) => table,
        Err(e) => {
            let e = delta_err(&layer.path)(e);
            if !e.is_concurrent_commit() {
                return Err(e);
            }
            tracing::info!(table = %layer.path, "a compaction lost to a concurrent commit: compacting in line after the next batch");
            metrics.compactions_lost += 1;
            layer.compaction_outcome = Outcome::Lost;
            return Ok(());
        }
    };
    metrics.optimizes += 1;
    let current = layer.existing().and_then(|t| t.version());
    if current.is_some() && current.map(|v| v + 1) == compacted.version() {
        // The compaction's commit is the only one since: the table holds what it held.
        layer.table = Some(compacted);
        return Ok(());
    }
    layer.refresh().await
}

/// Compacts the table now (a background compaction that lost to a concurrent commit).
async fn compact_in_line(layer: &mut Layer, metrics: &mut LakeMetrics) -> Result<(), LakeError> {
    let table = layer.existing().cloned().expect("maintained tables exist");
    let compacted = compaction::compact(table, layer.writer_properties())
        .await
        .map_err(delta_err(&layer.path))?;
    layer.maintained(compacted).await?;
    metrics.optimizes += 1;
    Ok(())
}

async fn vacuum(
    layer: &mut Layer,
    settings: &LakeConfig,
    metrics: &mut LakeMetrics,
) -> Result<(), LakeError> {
    let table = layer.existing().cloned().expect("maintained tables exist");
    let (table, vacuumed) = vacuum_table(table, settings.vacuum_retention(), settings.vacuum_mode)
        .await
        .map_err(delta_err(&layer.path))?;
    metrics.expired_log_files += vacuumed.log_files;
    layer.maintained(table).await?;
    metrics.vacuums += 1;
    Ok(())
}

/// What a vacuum deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vacuumed {
    pub files: usize,
    pub log_files: u64,
}

/// Vacuums `table` (silver, history, bronze, or a gold model's): deletes the data files no
/// version within `retention` needs (under `mode`), then the expired log files; returns the
/// table as it is after. Its commits carry no state
/// ([`super::state::maintenance_commit_properties`]).
pub(super) async fn vacuum_table(
    table: deltalake::DeltaTable,
    retention: Duration,
    mode: VacuumMode,
) -> Result<(deltalake::DeltaTable, Vacuumed), DeltaTableError> {
    let (table, metrics) = table
        .vacuum()
        .with_retention_period(chrono_duration(retention))
        .with_enforce_retention_duration(false)
        .with_mode(match mode {
            VacuumMode::Full => deltalake::operations::vacuum::VacuumMode::Full,
            VacuumMode::Lite => deltalake::operations::vacuum::VacuumMode::Lite,
        })
        .with_commit_properties(maintenance_commit_properties())
        .await?;
    let log_files = expire_log_files(&table).await?;
    Ok((
        table,
        Vacuumed {
            files: metrics.files_deleted.len(),
            log_files,
        },
    ))
}

/// Deletes the log files older than the table's `delta.logRetentionDuration` (30 days by
/// default) that its newest checkpoint before them makes unneeded, unless the table turns
/// `delta.enableExpiredLogCleanup` off. binlake's commits leave this to the vacuum
/// ([`super::state::without_log_cleanup`]), gold's too: it lists the whole log.
async fn expire_log_files(table: &deltalake::DeltaTable) -> Result<u64, DeltaTableError> {
    if !table
        .snapshot()?
        .table_config()
        .enable_expired_log_cleanup()
    {
        return Ok(0);
    }
    let deleted = deltalake::protocol::checkpoints::cleanup_metadata(table, None).await?;
    if deleted > 0 {
        tracing::debug!(table = %table.table_url(), deleted, "expired log files deleted");
    }
    Ok(deleted as u64)
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::milliseconds(d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::state::load_state;
    use crate::lake::test_tables::{files, ids, rows, state_after, storage, three_files};
    use tokio::sync::Semaphore;

    /// A compaction that landed is taken in without a reload: the table is one version on, in
    /// one file, its state the one the last batch committed, and the next commit goes in on top.
    #[tokio::test]
    async fn a_landed_compaction_moves_the_table_on_and_keeps_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut layer = three_files(dir.path()).await;
        assert_eq!(
            (layer.existing().unwrap().version(), files(&layer)),
            (Some(2), 3)
        );
        let table = layer.existing().cloned().unwrap();
        layer.compaction = Some(Compaction::start(table, None));
        let mut metrics = LakeMetrics::default();
        catch_up(&mut layer, true, &mut metrics).await.unwrap();
        assert_eq!((metrics.optimizes, metrics.compactions_lost), (1, 0));
        assert_eq!(
            (layer.existing().unwrap().version(), files(&layer)),
            (Some(3), 1)
        );
        assert_eq!(layer.state, state_after(30));
        assert_eq!(
            load_state(layer.existing().unwrap()).await.unwrap(),
            state_after(30)
        );
        layer
            .append(ids(30, 35), None, state_after(35), &LakeConfig::default())
            .await
            .unwrap();
        assert_eq!(layer.existing().unwrap().version(), Some(4));
        assert_eq!(rows(&layer).await, 35);
    }

    /// Deletes the rows with ids 0-4 in a commit that records `state_after(31)`.
    async fn delete_ids_below_5(layer: &mut Layer) {
        layer
            .commit_with(state_after(31), |table, properties| async move {
                table
                    .delete()
                    .with_predicate("id < 5")
                    .with_commit_properties(properties)
                    .await
                    .map(|(table, _)| table)
            })
            .await
            .unwrap();
    }

    /// A compaction that read files a later commit deleted rows from loses to that commit; the
    /// table's next maintenance compacts it in line, and no row or state is lost.
    #[tokio::test]
    async fn a_lost_compaction_runs_again_in_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut layer = three_files(dir.path()).await;
        let before_delete = layer.existing().unwrap().clone();
        delete_ids_below_5(&mut layer).await;
        // Turns of its own: another test's compaction would make it wait, and read on.
        let turns = Box::leak(Box::new(Semaphore::new(1)));
        layer.compaction = Some(Compaction::start_in_turn(before_delete, None, turns));
        let mut metrics = LakeMetrics::default();
        catch_up(&mut layer, true, &mut metrics).await.unwrap();
        assert_eq!((metrics.optimizes, metrics.compactions_lost), (0, 1));
        assert_eq!(layer.compaction_outcome, Outcome::Lost);
        assert_eq!(layer.existing().unwrap().version(), Some(3));
        // Neither compaction nor vacuum is due at this commit count: only the lost one runs.
        let settings = LakeConfig {
            optimize_every_commits: 0,
            vacuum_every_commits: 0,
            ..LakeConfig::default()
        };
        maintain(&mut layer, &settings, &mut metrics).await.unwrap();
        assert_eq!(
            (metrics.optimizes, layer.compaction_outcome),
            (1, Outcome::Settled)
        );
        assert_eq!(
            (layer.existing().unwrap().version(), files(&layer)),
            (Some(4), 1)
        );
        assert_eq!(layer.state, state_after(31));
        assert_eq!(rows(&layer).await, 25);
    }

    /// A compaction that waited for its turn compacts the table as it is when the turn comes:
    /// the delete committed meanwhile does not make it lose.
    #[tokio::test]
    async fn a_compaction_that_waited_for_its_turn_compacts_the_newest_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut layer = three_files(dir.path()).await;
        let before_delete = layer.existing().unwrap().clone();
        let turns: &'static Semaphore = Box::leak(Box::new(Semaphore::new(1)));
        let other_compaction = turns.acquire().await.unwrap();
        layer.compaction = Some(Compaction::start_in_turn(before_delete, None, turns));
        delete_ids_below_5(&mut layer).await;
        assert!(!layer.compaction.as_ref().unwrap().ended());
        drop(other_compaction);
        let mut metrics = LakeMetrics::default();
        catch_up(&mut layer, true, &mut metrics).await.unwrap();
        assert_eq!((metrics.optimizes, metrics.compactions_lost), (1, 0));
        assert_eq!(
            (layer.existing().unwrap().version(), files(&layer)),
            (Some(4), 1)
        );
        assert_eq!(layer.state, state_after(31));
        assert_eq!(rows(&layer).await, 25);
    }

    /// The names in `dir` that end with `suffix`, sorted.
    fn names_ending(dir: &std::path::Path, suffix: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(suffix))
            .collect();
        names.sort();
        names
    }

    fn parquet_files(dir: &std::path::Path) -> Vec<String> {
        names_ending(dir, ".parquet")
    }

    /// The lite vacuum deletes only what a commit removed; the full one also deletes a file no
    /// version ever referred to (a refused batch's, a lost compaction's), once older than the
    /// retention, and never a file the table holds.
    #[tokio::test]
    async fn a_full_vacuum_deletes_files_no_version_refers_to() {
        let dir = tempfile::tempdir().unwrap();
        let mut layer = three_files(dir.path()).await;
        let mut metrics = LakeMetrics::default();
        compact_in_line(&mut layer, &mut metrics).await.unwrap();
        let table_dir = dir.path().join("bronze/shop/t");
        let compacted = parquet_files(&table_dir);
        assert_eq!(compacted.len(), 4, "{compacted:?}");
        let orphan = "part-00000-never-committed-c000.snappy.parquet";
        std::fs::copy(table_dir.join(&compacted[0]), table_dir.join(orphan)).unwrap();
        let vacuum_with = |mode, retention_hours| LakeConfig {
            vacuum_mode: mode,
            vacuum_retention_hours: retention_hours,
            ..LakeConfig::default()
        };

        vacuum(&mut layer, &vacuum_with(VacuumMode::Lite, 0), &mut metrics)
            .await
            .unwrap();
        let live = layer
            .existing()
            .unwrap()
            .get_file_uris()
            .unwrap()
            .collect::<Vec<_>>();
        assert_eq!(live.len(), 1);
        let live_name = live[0].rsplit('/').next().unwrap().to_string();
        let mut want = vec![live_name.clone(), orphan.to_string()];
        want.sort();
        assert_eq!(parquet_files(&table_dir), want);

        // Younger than the retention: kept, it may be a writer's commit still to come.
        vacuum(&mut layer, &vacuum_with(VacuumMode::Full, 1), &mut metrics)
            .await
            .unwrap();
        assert_eq!(parquet_files(&table_dir), want);

        vacuum(&mut layer, &vacuum_with(VacuumMode::Full, 0), &mut metrics)
            .await
            .unwrap();
        assert_eq!(parquet_files(&table_dir), [live_name]);
        assert_eq!(metrics.vacuums, 3);
        assert_eq!(rows(&layer).await, 30);
        assert_eq!(layer.state, state_after(30));
    }

    fn log_commits(table_dir: &std::path::Path) -> Vec<String> {
        names_ending(&table_dir.join("_delta_log"), ".json")
    }

    /// binlake's commits leave expired log files alone (delta-rs would list the whole log after
    /// every commit to find them); the vacuum deletes them, up to the newest checkpoint, and the
    /// table reads the same after.
    #[tokio::test]
    async fn expired_log_files_are_left_by_commits_and_deleted_by_the_vacuum() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage(dir.path());
        let settings = LakeConfig {
            checkpoint_interval: 2,
            vacuum_retention_hours: 0,
            ..LakeConfig::default()
        };
        let mut layer = Layer::open(&storage, "bronze/shop/t".into()).await.unwrap();
        layer
            .append(ids(0, 10), None, state_after(10), &settings)
            .await
            .unwrap();
        let table = layer.existing().cloned().unwrap();
        let table = table
            .set_tbl_properties()
            .with_properties(
                [(
                    "delta.logRetentionDuration".to_string(),
                    "interval 0 seconds".to_string(),
                )]
                .into(),
            )
            .with_commit_properties(maintenance_commit_properties())
            .await
            .unwrap();
        layer.maintained(table).await.unwrap();
        for i in 1..6 {
            let (from, to) = (i * 10, i * 10 + 10);
            layer
                .append(ids(from, to), None, state_after(to), &settings)
                .await
                .unwrap();
        }
        let table_dir = dir.path().join("bronze/shop/t");
        // Versions 0-6, checkpoints at 1, 3 and 5 (delta-rs checkpoints the version that makes
        // `checkpointInterval` commits): every commit file is past the retention and those
        // before a checkpoint are no longer needed, yet all are still there.
        assert_eq!(log_commits(&table_dir).len(), 7);

        let mut metrics = LakeMetrics::default();
        vacuum(&mut layer, &settings, &mut metrics).await.unwrap();
        // From the newest checkpoint on (5) the log stays; before it, five commit files and
        // two checkpoints went (this vacuum found no data file to delete, so it committed
        // nothing).
        let kept = log_commits(&table_dir);
        assert_eq!(metrics.expired_log_files, 7, "{kept:?}");
        assert_eq!(
            kept,
            (5..=6).map(|v| format!("{v:020}.json")).collect::<Vec<_>>()
        );
        let reopened = Layer::open(&storage, "bronze/shop/t".into()).await.unwrap();
        assert_eq!(reopened.state, state_after(60));
        assert_eq!(rows(&reopened).await, 60);
    }
}
