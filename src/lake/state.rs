//! What a Delta table holds of its sources, recorded in the commit info of every commit
//! binlake makes (under `binlake`), next to the Delta `txn` actions that carry the same Kafka
//! offsets: read back on open, it is where a restarted sink resumes.

use std::collections::BTreeMap;

use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{CommitInfo, Transaction};
use deltalake::{DeltaTable, DeltaTableError};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::transport::record::Offsets;

/// What a table holds of its sources, recorded in each commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerState {
    /// The next Kafka offset per `topic:partition`.
    #[serde(default)]
    pub offsets: Offsets,
    /// The order key of the last streamed change per source partition.
    #[serde(default)]
    pub positions: BTreeMap<String, String>,
    /// Silver and history: the key columns the table is built on.
    #[serde(default)]
    pub key: Vec<String>,
    /// Columns added with a DEFAULT whose default is not yet given to the earlier rows (set by
    /// the commit that adds them, cleared by the one that fills them).
    #[serde(default)]
    pub pending_defaults: Vec<String>,
    /// Source commit time (ms since the epoch) of the newest change the table holds.
    #[serde(default)]
    pub source_ts_ms: Option<i64>,
    /// Silver and history: the order key of the last TRUNCATE applied. Through Kafka a
    /// truncate may overtake earlier rows on other partitions; those rows are then stale.
    #[serde(default)]
    pub truncated_at: Option<String>,
}

const STATE_KEY: &str = "binlake";

/// Commit info key naming the process that made the commit (several sinks may share a group).
pub const WRITER_KEY: &str = "binlake.writer";

/// This process as a writer: `<host>:<pid>` (the host from `HOSTNAME`, a pod's name under
/// Kubernetes).
fn writer_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        format!("{host}:{}", std::process::id())
    })
}

impl LayerState {
    /// `ours`, this state advanced by a batch, put on top of `theirs`, which another writer
    /// committed since this state was read: their partitions as they left them, ours as the
    /// batch left them. None when the two are not disjoint: the other writer moved a partition
    /// the batch also moved (the partition changed hands), or changed what the table is built
    /// on (its key, pending defaults, last truncate).
    pub(super) fn rebased(&self, ours: &LayerState, theirs: &LayerState) -> Option<LayerState> {
        let read = self;
        let same = |a: &LayerState, b: &LayerState| {
            a.key == b.key
                && a.pending_defaults == b.pending_defaults
                && a.truncated_at == b.truncated_at
        };
        if !same(read, theirs) || !same(read, ours) {
            return None;
        }
        let mut merged = theirs.clone();
        for (sp, next) in ours.offsets.iter() {
            if read.offsets.get(sp) == Some(next) {
                continue;
            }
            if theirs.offsets.get(sp) != read.offsets.get(sp) {
                return None;
            }
            merged.offsets.insert(sp, next);
        }
        for (sp, order) in &ours.positions {
            if read.positions.get(sp) == Some(order) {
                continue;
            }
            if theirs.positions.get(sp) != read.positions.get(sp) {
                return None;
            }
            merged.positions.insert(sp.clone(), order.clone());
        }
        merged.source_ts_ms = ours.source_ts_ms.max(theirs.source_ts_ms);
        Some(merged)
    }

    pub(super) fn with_key(mut self, key: &[String]) -> LayerState {
        self.key = key.to_vec();
        self
    }

    /// The commit properties that record this state: a `txn` action per Kafka partition (app
    /// id `binlake:<topic>:<partition>`, version = the next offset) and the state itself.
    ///
    /// No retries: the commit goes in only on top of the version the batch was computed from.
    /// A table another sink committed to in the meantime fails the commit (see
    /// [`super::LakeError::is_concurrent_commit`]), and the writer reloads the table and applies
    /// the batch again, so the state it records always includes the other sink's.
    ///
    /// No log cleanup either: see [`without_log_cleanup`].
    pub(super) fn commit_properties(&self) -> CommitProperties {
        let txns = self
            .offsets
            .iter()
            .map(|(sp, next)| Transaction::new(format!("binlake:{sp}"), next))
            .collect();
        without_log_cleanup(CommitProperties::default())
            .with_max_retries(0)
            .with_application_transactions(txns)
            .with_metadata(
                [(
                    STATE_KEY.to_string(),
                    serde_json::to_value(self).expect("state serialises"),
                )]
                .into_iter()
                .chain(writer_metadata()),
            )
    }
}

/// The commit info naming this process as the commit's writer (every commit binlake makes).
fn writer_metadata() -> [(String, serde_json::Value); 1] {
    [(WRITER_KEY.to_string(), writer_id().into())]
}

/// The commit properties of maintenance (compaction, vacuum): no state, since such a commit
/// changes no data. delta-rs retries these commits on top of newer versions by Delta's conflict
/// rules, so a state recorded in one could be older than a concurrent commit's, and
/// [`load_state`] would take it for the newest.
pub(super) fn maintenance_commit_properties() -> CommitProperties {
    without_log_cleanup(CommitProperties::default()).with_metadata(writer_metadata())
}

/// `properties` for a commit that leaves expired log files to the vacuum
/// ([`super::maintenance`]). delta-rs otherwise cleans the log after every commit, and that
/// lists the whole `_delta_log`: every commit of the log retention (30 days by default), a
/// listing that grows with every commit and, on Azure, costs a paid call per 5,000 files.
pub(crate) fn without_log_cleanup(properties: CommitProperties) -> CommitProperties {
    properties.with_cleanup_expired_logs(Some(false))
}

/// Whether a commit is maintenance: a compaction or a vacuum (binlake's or any engine's), which
/// changes no data and records no binlake state.
pub(super) fn is_maintenance(commit: &CommitInfo) -> bool {
    matches!(
        commit.operation.as_deref(),
        Some("OPTIMIZE" | "VACUUM START" | "VACUUM END")
    ) && !commit.info.contains_key(STATE_KEY)
}

/// Whether a commit is a write in append mode without a predicate (binlake's appends, or any
/// engine's): it adds files and removes none. A schema it widened is checked apart.
pub(super) fn is_blind_append(commit: &CommitInfo) -> bool {
    let parameter = |name: &str| {
        commit
            .operation_parameters
            .as_ref()
            .and_then(|p| p.get(name))
            .and_then(|v| v.as_str())
    };
    commit.operation.as_deref() == Some("WRITE")
        && parameter("mode") == Some("Append")
        && parameter("predicate").is_none()
}

/// The binlake state a commit records, if it records one.
pub(super) fn state_of(commit: &CommitInfo) -> Option<LayerState> {
    serde_json::from_value(commit.info.get(STATE_KEY)?.clone()).ok()
}

/// The state the newest commit that recorded one holds (empty for a table binlake never wrote).
pub(super) async fn load_state(table: &DeltaTable) -> Result<LayerState, DeltaTableError> {
    let mut history = table.history(Some(1000));
    while let Some(commit) = history.next().await {
        if let Some(state) = state_of(&commit?) {
            return Ok(state);
        }
    }
    Ok(LayerState::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(offsets: &[(&str, i64)], positions: &[(&str, &str)], ts: i64) -> LayerState {
        let mut state = LayerState {
            source_ts_ms: Some(ts),
            ..LayerState::default()
        };
        for (sp, next) in offsets {
            state.offsets.insert(sp, *next);
        }
        for (sp, order) in positions {
            state.positions.insert(sp.to_string(), order.to_string());
        }
        state
    }

    #[test]
    fn a_rebased_state_keeps_each_writers_own_partitions() {
        let read = state(
            &[("t:0", 10), ("t:1", 20)],
            &[("t:0", "a"), ("t:1", "b")],
            100,
        );
        let ours = state(
            &[("t:0", 15), ("t:1", 20)],
            &[("t:0", "c"), ("t:1", "b")],
            150,
        );
        let theirs = state(
            &[("t:0", 10), ("t:1", 25), ("t:2", 3)],
            &[("t:0", "a"), ("t:1", "d")],
            120,
        );
        assert_eq!(
            read.rebased(&ours, &theirs),
            Some(state(
                &[("t:0", 15), ("t:1", 25), ("t:2", 3)],
                &[("t:0", "c"), ("t:1", "d")],
                150
            ))
        );
    }

    #[test]
    fn a_partition_both_writers_moved_or_a_changed_table_is_no_rebase() {
        let read = state(&[("t:0", 10)], &[("t:0", "a")], 100);
        let ours = state(&[("t:0", 15)], &[("t:0", "c")], 150);
        // The partition changed hands: the other writer applied some of the same records.
        let moved = state(&[("t:0", 12)], &[("t:0", "a")], 120);
        assert_eq!(read.rebased(&ours, &moved), None);
        let positioned = state(&[("t:0", 10)], &[("t:0", "b")], 120);
        assert_eq!(read.rebased(&ours, &positioned), None);
        let mut truncated = read.clone();
        truncated.truncated_at = Some("b".into());
        assert_eq!(read.rebased(&ours, &truncated), None);
        let rekeyed = read.clone().with_key(&["id".into()]);
        assert_eq!(read.rebased(&ours, &rekeyed), None);
    }
}
