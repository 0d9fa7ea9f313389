//! A compaction in the background: delta-rs optimize run by a task of its own on the table as
//! it was when it started, while the writer goes on committing batches to it. The task runs on
//! a runtime whose threads have the lowest CPU priority, so that where no core is spare the
//! batches take the CPU first and the compaction what they leave.
//!
//! Its commit carries no binlake state (see [`super::state::maintenance_commit_properties`]):
//! the state is read from the newest commit that records one, so the compaction may land
//! between two of the writer's commits without changing what the table holds. Delta's conflict
//! rules decide whether it may land at all: compacting files that a later commit deleted rows
//! from (silver's and history's deletion vectors) loses. What the writer does with a landed or
//! lost compaction is [`super::maintenance`]'s.

use std::sync::OnceLock;

use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::{DeltaTable, DeltaTableError};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::Semaphore;
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
    /// Starts compacting `table` in a task of its own, once no other background compaction of
    /// this process runs: each holds a row group of every column in memory while it writes,
    /// and the three layers of a table fall due in the same batch.
    pub(super) fn start(table: DeltaTable, writer_properties: Option<WriterProperties>) -> Self {
        static ONE_AT_A_TIME: Semaphore = Semaphore::const_new(1);
        Self::start_in_turn(table, writer_properties, &ONE_AT_A_TIME)
    }

    /// Starts compacting `table` once it has one of `turns`. One that had to wait reads the
    /// table on to its newest version first, so it compacts what is there then.
    pub(super) fn start_in_turn(
        table: DeltaTable,
        writer_properties: Option<WriterProperties>,
        turns: &'static Semaphore,
    ) -> Self {
        let runtime = background_runtime().unwrap_or_else(Handle::current);
        Compaction {
            task: runtime.spawn(async move {
                let mut table = table;
                let _turn = match turns.try_acquire() {
                    Ok(turn) => turn,
                    Err(_) => {
                        let turn = turns.acquire().await;
                        table.update_incremental(None).await?;
                        turn.expect("the semaphore is never closed")
                    }
                };
                compact(table, writer_properties).await
            }),
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
/// table. Cut short, it leaves files no version refers to, which the next full vacuum deletes
/// once they are older than the retention.
impl Drop for Compaction {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The runtime background compactions run on (delta-rs spawns the rewrite of each bin on the
/// runtime it runs on), created at the first; `None` when its threads could not be started,
/// and compactions then run on the caller's runtime.
fn background_runtime() -> Option<Handle> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("binlake-compaction")
            .on_thread_start(lowest_cpu_priority)
            .enable_all()
            .build()
            .inspect_err(|e| {
                tracing::warn!(error = %e, "no runtime for background compactions: they share the writer's");
            })
            .ok()
    });
    runtime.as_ref().map(|r| r.handle().clone())
}

/// Gives the calling thread the lowest scheduling priority (niceness 19). On Linux niceness is
/// a thread's own, so only the compaction's threads are lowered; elsewhere it would lower the
/// whole process, and nothing is done.
fn lowest_cpu_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its arguments; `who = 0` is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// The most a compacted file's row group holds, by its estimated encoded size. The writer keeps
/// a row group in memory until it is full (parquet's default is 1M rows); with a table's three
/// layers compacting at once the bulk load's peak rose from 276 MB to 459-556 MB.
pub(super) const COMPACTED_ROW_GROUP_BYTES: usize = 32 << 20;

/// The layer's writer properties (delta-rs's zstd when `None`), row groups bounded by
/// [`COMPACTED_ROW_GROUP_BYTES`].
fn compaction_properties(writer_properties: Option<WriterProperties>) -> WriterProperties {
    writer_properties
        .unwrap_or_else(|| {
            WriterProperties::builder()
                .set_compression(Compression::ZSTD(
                    ZstdLevel::try_new(4).expect("a zstd level"),
                ))
                .build()
        })
        .into_builder()
        .set_max_row_group_bytes(Some(COMPACTED_ROW_GROUP_BYTES))
        .build()
}

/// Compacts `table` (delta-rs optimize) one bin at a time, committing no state.
pub(super) async fn compact(
    table: DeltaTable,
    writer_properties: Option<WriterProperties>,
) -> Result<DeltaTable, DeltaTableError> {
    table
        .optimize()
        .with_max_concurrent_tasks(1)
        .with_writer_properties(compaction_properties(writer_properties))
        .with_commit_properties(maintenance_commit_properties())
        .await
        .map(|(table, _)| table)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compacted files keep the layer's encoding, in row groups of bounded size.
    #[test]
    fn compacted_row_groups_are_bounded_and_keep_the_layers_encoding() {
        use deltalake::parquet::schema::types::ColumnPath;
        let column = ColumnPath::from("id");
        let default = compaction_properties(None);
        assert_eq!(
            default.max_row_group_bytes(),
            Some(COMPACTED_ROW_GROUP_BYTES)
        );
        assert_eq!(
            default.compression(&column),
            Compression::ZSTD(ZstdLevel::try_new(4).unwrap())
        );
        let keyed = compaction_properties(Some(crate::lake::keys::keyed_writer_properties()));
        assert_eq!(keyed.max_row_group_bytes(), Some(COMPACTED_ROW_GROUP_BYTES));
        assert_eq!(keyed.compression(&column), Compression::SNAPPY);
        assert_eq!(
            keyed.data_page_row_count_limit(),
            crate::lake::keys::keyed_writer_properties().data_page_row_count_limit()
        );
    }

    /// Compactions run on threads of the lowest priority, and the caller's are left as they are.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn compactions_run_at_the_lowest_cpu_priority() {
        // SAFETY: getpriority only reads its arguments; `who = 0` is the calling thread.
        let niceness = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let callers = niceness();
        let background = background_runtime().expect("the compaction runtime");
        let compactions = background.spawn(async move { niceness() }).await.unwrap();
        let blocking = background.spawn_blocking(niceness).await.unwrap();
        assert_eq!((compactions, blocking), (19, 19));
        assert_eq!(niceness(), callers);
        assert_ne!(callers, 19);
    }
}
