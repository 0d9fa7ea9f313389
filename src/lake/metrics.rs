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
    pub last_batch: Duration,
    pub optimizes: u64,
    pub vacuums: u64,
    /// Time spent per layer, summed over batches (for benchmarks and metrics).
    pub bronze_time: Duration,
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
