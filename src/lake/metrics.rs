//! The lake writer's counters: what it applied and committed, where the time went, and per
//! table the changes applied and the newest source time; the sink reports them (logs, the
//! Prometheus endpoint, `binlake bench lake`).

use std::collections::BTreeMap;
use std::time::Duration;

/// Counters the sink reports.
#[derive(Debug, Clone, Default)]
pub struct LakeMetrics {
    pub records: u64,
    pub changes_applied: u64,
    pub dead_letters: u64,
    pub commits: u64,
    /// Commits that found another writer's commit first (the batch was applied again).
    pub concurrent_commits: u64,
    /// Leading portions of a batch committed on their own after the whole batch kept losing
    /// to another writer's commits.
    pub portions_committed: u64,
    /// Appends committed again on top of what landed first (maintenance; on bronze, another
    /// sink's append of other partitions).
    pub append_rebases: u64,
    pub last_batch: Duration,
    /// Applying batches, start to end (every layer, maintenance), summed.
    pub apply_time: Duration,
    /// Decoding the envelopes of batches, apart from `apply_time` (with `[lake] decode_ahead`
    /// a batch is decoded while the batch before it is applied).
    pub decode_time: Duration,
    pub optimizes: u64,
    /// Background compactions that lost to a concurrent commit (each run again in line).
    pub compactions_lost: u64,
    pub vacuums: u64,
    /// Log files past the log retention that vacuums deleted.
    pub expired_log_files: u64,
    /// Time spent per layer, summed over batches (for benchmarks and metrics).
    pub bronze_time: Duration,
    /// Working out which changes are new to bronze, before its rows and commit start beside
    /// history and silver.
    pub bronze_rows_time: Duration,
    /// Waiting for bronze's commit after history and silver were done.
    pub bronze_wait_time: Duration,
    /// Typing the row images history and silver write (JSON values into Arrow arrays), once
    /// for both.
    pub typing_time: Duration,
    /// Looking up the positions already applied per key (silver and history).
    pub lookup_time: Duration,
    pub history_time: Duration,
    pub silver_time: Duration,
    pub maintenance_time: Duration,
    /// Source commit time (ms) of the newest change applied.
    pub newest_source_ts_ms: i64,
    /// Per `db.table`: changes applied, and the source commit time (ms) of the newest.
    pub tables: BTreeMap<String, (u64, i64)>,
}

impl LakeMetrics {
    /// Adds what `part` (one table's job) counted.
    pub fn absorb(&mut self, part: &LakeMetrics) {
        self.records += part.records;
        self.changes_applied += part.changes_applied;
        self.dead_letters += part.dead_letters;
        self.commits += part.commits;
        self.concurrent_commits += part.concurrent_commits;
        self.portions_committed += part.portions_committed;
        self.append_rebases += part.append_rebases;
        self.optimizes += part.optimizes;
        self.compactions_lost += part.compactions_lost;
        self.vacuums += part.vacuums;
        self.expired_log_files += part.expired_log_files;
        self.apply_time += part.apply_time;
        self.decode_time += part.decode_time;
        self.bronze_time += part.bronze_time;
        self.bronze_rows_time += part.bronze_rows_time;
        self.bronze_wait_time += part.bronze_wait_time;
        self.typing_time += part.typing_time;
        self.lookup_time += part.lookup_time;
        self.history_time += part.history_time;
        self.silver_time += part.silver_time;
        self.maintenance_time += part.maintenance_time;
        self.newest_source_ts_ms = self.newest_source_ts_ms.max(part.newest_source_ts_ms);
        for (table, (changes, newest)) in &part.tables {
            let entry = self.tables.entry(table.clone()).or_default();
            entry.0 += changes;
            entry.1 = entry.1.max(*newest);
        }
    }
}
