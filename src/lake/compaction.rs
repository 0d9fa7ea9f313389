//! Compaction in the background. A table due for compaction (`optimize_every_commits`) is
//! compacted by a task of its own while the writer goes on committing batches to it, so a
//! compaction no longer holds the table's next commit back for the seconds it takes.
//!
//! The compaction's commit carries no binlake state (see
//! [`super::state::maintenance_commit_properties`]): the state is read from the newest commit
//! that does, so the compaction may land between two of the writer's commits without changing
//! what the table holds. Delta's conflict rules decide whether it may land at
//! all: compacting files that a later commit deleted rows from (silver's and history's deletion
//! vectors) loses, and a compaction that lost is run again in line at the table's next batch,
//! so every table is still compacted on its schedule.
//!
//! Once the compaction landed, the writer's view of the table is one version behind: the layer
//! catches up before its next batch ([`catch_up`]) or, when it landed during a batch, that
//! batch's commit is refused and applied again on the reloaded table, as for any concurrent
//! writer ([`super::table_apply::TableJob::apply_fenced`]).

use deltalake::parquet::file::properties::WriterProperties;
use deltalake::{DeltaTable, DeltaTableError};
use tokio::task::JoinHandle;

use super::layer::{delta_err, Layer};
use super::metrics::LakeMetrics;
use super::state::maintenance_commit_properties;
use super::LakeError;

/// A compaction under way on one layer's table.
pub(super) struct Compaction {
    task: JoinHandle<Result<DeltaTable, DeltaTableError>>,
}

/// A layer dropped with its compaction under way (a writer that stops without waiting, a
/// table reopened) abandons it: cut short, it leaves only files no version refers to, and a
/// compaction no writer watches could still be writing when a vacuum deletes such files.
impl Drop for Compaction {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What became of a layer's last background compaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Nothing to do: none ran, or it landed.
    #[default]
    Settled,
    /// It lost to a concurrent commit: compact in line at the next batch.
    Lost,
}

/// Starts compacting `layer`'s table in a task of its own.
pub(super) fn start(layer: &mut Layer) {
    if let Some(table) = layer.existing().cloned() {
        let task = tokio::spawn(compact(table, layer.writer_properties()));
        layer.compaction = Some(Compaction { task });
    }
}

/// Compacts `table` (delta-rs optimize), committing no state.
pub(super) async fn compact(
    table: DeltaTable,
    writer_properties: Option<WriterProperties>,
) -> Result<DeltaTable, DeltaTableError> {
    let mut optimize = table
        .optimize()
        .with_commit_properties(maintenance_commit_properties());
    if let Some(p) = writer_properties {
        optimize = optimize.with_writer_properties(p);
    }
    optimize.await.map(|(table, _)| table)
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
        Some(compaction) if wait || compaction.task.is_finished() => {}
        _ => return Ok(()),
    }
    let Some(mut compaction) = layer.compaction.take() else {
        return Ok(());
    };
    let ended = (&mut compaction.task)
        .await
        .map_err(|e| LakeError::storage(&layer.path, format!("compaction: {e}")))?;
    let compacted = match ended {
        Ok(table) => table,
        Err(e) => {
            let e = delta_err(&layer.path)(e);
            if !e.is_concurrent_commit() {
                return Err(e);
            }
            tracing::info!(table = %layer.path, "a compaction lost to a concurrent commit: compacting in line at the next batch");
            metrics.compactions_lost += 1;
            layer.compaction_outcome = Outcome::Lost;
            return Ok(());
        }
    };
    metrics.optimizes += 1;
    let current = layer.table.as_ref().and_then(|t| t.version());
    if current.is_some() && current.map(|v| v + 1) == compacted.version() {
        // The compaction's commit is the only one since: the table holds what it held.
        layer.table = Some(compacted);
        return Ok(());
    }
    layer.refresh().await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use deltalake::arrow::array::{Int64Array, RecordBatch};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::lake::config::LakeConfig;
    use crate::lake::maintenance::maintain;
    use crate::lake::state::{load_state, LayerState};
    use crate::lake::storage::LakeStorage;

    fn ids(from: i64, to: i64) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Int64Array::from_iter_values(from..to))],
        )
        .unwrap()
    }

    fn state_after(offset: i64) -> LayerState {
        let mut state = LayerState::default();
        state.offsets.advance("binlake.shop:0", offset);
        state
    }

    /// A table of three appended files of 10 rows, its state at offset 30.
    async fn three_files(lake: &std::path::Path) -> Layer {
        let storage = LakeStorage::new(lake.to_str().unwrap(), &BTreeMap::new(), lake).unwrap();
        let mut layer = Layer::open(&storage, "bronze/shop/t".into()).await.unwrap();
        for i in 0..3 {
            let (from, to) = (i * 10, i * 10 + 10);
            layer
                .append(ids(from, to), None, state_after(to), &LakeConfig::default())
                .await
                .unwrap();
        }
        layer
    }

    fn files(layer: &Layer) -> usize {
        layer
            .existing()
            .unwrap()
            .snapshot()
            .unwrap()
            .log_data()
            .num_files()
    }

    async fn rows(layer: &Layer) -> usize {
        use deltalake::datafusion::prelude::SessionContext;
        let table = layer.existing().unwrap().clone();
        let ctx = SessionContext::new();
        table.update_datafusion_session(&ctx.state()).unwrap();
        let provider = table.table_provider().await.unwrap();
        ctx.read_table(provider).unwrap().count().await.unwrap()
    }

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
        start(&mut layer);
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

    /// A compaction that read files a later commit deleted rows from loses to that commit; the
    /// table's next maintenance compacts it in line, and no row or state is lost.
    #[tokio::test]
    async fn a_lost_compaction_runs_again_in_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut layer = three_files(dir.path()).await;
        let before_delete = layer.existing().unwrap().clone();
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
        layer.compaction = Some(Compaction {
            task: tokio::spawn(compact(before_delete, None)),
        });
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
}
