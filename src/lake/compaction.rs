//! A compaction in the background: delta-rs optimize run by a task of its own on the table as
//! it was when it started, while the writer goes on committing batches to it.
//!
//! Its commit carries no binlake state (see [`super::state::maintenance_commit_properties`]):
//! the state is read from the newest commit that records one, so the compaction may land
//! between two of the writer's commits without changing what the table holds. Delta's conflict
//! rules decide whether it may land at all: compacting files that a later commit deleted rows
//! from (silver's and history's deletion vectors) loses. What the writer does with a landed or
//! lost compaction is [`super::maintenance`]'s.

use deltalake::parquet::file::properties::WriterProperties;
use deltalake::{DeltaTable, DeltaTableError};
use tokio::task::JoinHandle;

use super::state::maintenance_commit_properties;

/// A compaction under way on one table.
pub(super) struct Compaction {
    task: JoinHandle<Result<DeltaTable, DeltaTableError>>,
}

/// What became of a table's last background compaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Nothing to do: none ran, or it landed.
    #[default]
    Settled,
    /// It lost to a concurrent commit: compact in line at the next batch.
    Lost,
}

impl Compaction {
    /// Starts compacting `table` in a task of its own.
    pub(super) fn start(table: DeltaTable, writer_properties: Option<WriterProperties>) -> Self {
        Compaction {
            task: tokio::spawn(compact(table, writer_properties)),
        }
    }

    pub(super) fn ended(&self) -> bool {
        self.task.is_finished()
    }

    /// The table after the compaction's commit, or why it did not commit.
    pub(super) async fn finish(mut self) -> Result<DeltaTable, DeltaTableError> {
        (&mut self.task)
            .await
            .map_err(|e| DeltaTableError::Generic(format!("the compaction's task: {e}")))?
    }
}

/// A table dropped with its compaction under way (a writer that stops without waiting, a table
/// reopened) abandons it, so no compaction commits for a writer that no longer watches the
/// table. Cut short, it leaves files no version refers to (see the lake layout's maintenance
/// section on such files).
impl Drop for Compaction {
    fn drop(&mut self) {
        self.task.abort();
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
