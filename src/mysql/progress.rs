//! Progress of the live source: the position after the last decoded commit (with the GTID state
//! there), and the tracker that hands decoded changes to the output, reconciles a running
//! watermark snapshot, and writes a checkpoint only after the output made everything before it
//! durable. See [`super::replication`] for when it checkpoints and how a restart resumes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::checkpoint::{
    Checkpoint, CheckpointError, CheckpointStore, RequestedSnapshot, SnapshotBoard, SnapshotState,
    CHECKPOINT_VERSION,
};
use super::decoder::{Commit, Ddl, DecodeSink};
use super::durable::{InFlight, Unanswered};
use super::gtid::GtidSet;
use super::reconcile::{Observed, Reconciler};
use super::schema::SchemaTracker;
use super::signals::{self, SnapshotRequest};
use super::snapshot_chunk::Chunk;
use super::{BinlogError, SourceError, SourceOutput};
use crate::event::{now_ms, ChangeEvent, TableId};

impl From<SinkError> for SourceError {
    fn from(e: SinkError) -> Self {
        match e {
            SinkError::Binlog(b) => SourceError::Binlog(b),
            SinkError::Output(o) => SourceError::Output(o),
            SinkError::Checkpoint(c) => SourceError::Checkpoint(c),
            SinkError::Snapshot(s) => SourceError::Unsupported(s),
        }
    }
}

#[derive(Debug)]
pub(super) enum SinkError {
    Binlog(BinlogError),
    Output(String),
    Checkpoint(CheckpointError),
    Snapshot(String),
}

impl From<BinlogError> for SinkError {
    fn from(e: BinlogError) -> Self {
        SinkError::Binlog(e)
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStats {
    pub changes: u64,
    pub commits: u64,
    pub checkpoints: u64,
    pub reconnects: u64,
}

/// The replication position: the event after the last commit, and GTID state there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Resume {
    pub(super) file: String,
    pub(super) pos: u64,
    /// MariaDB: the last GTID per replication domain.
    pub(super) domains: BTreeMap<u32, String>,
    /// MySQL: the executed GTID set.
    pub(super) executed: GtidSet,
}

impl Resume {
    pub(super) fn gtid_text(&self) -> String {
        if !self.domains.is_empty() {
            self.domains.values().cloned().collect::<Vec<_>>().join(",")
        } else {
            self.executed.to_string()
        }
    }

    /// A checkpoint at this position, with `schema`, and the snapshot still to take (if any).
    pub(super) fn checkpoint(
        &self,
        schema: &SchemaTracker,
        snapshot: Option<SnapshotState>,
    ) -> Checkpoint {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            file: self.file.clone(),
            pos: self.pos,
            gtid: self.gtid_text(),
            schema: schema.to_entries(),
            snapshot_done: snapshot.is_none(),
            snapshot,
            written_at_ms: now_ms(),
            selection: None,
            requested: Vec::new(),
        }
    }

    pub(super) fn record(&mut self, commit: &Commit) {
        self.file = commit.file.to_string();
        self.pos = commit.next_pos;
        if let Some(g) = &commit.gtid {
            match parse_mariadb_gtid(g) {
                Some(domain) => {
                    self.domains.insert(domain, g.to_string());
                }
                None => {
                    if let Err(e) = self.executed.add(g) {
                        tracing::warn!("{e}");
                    }
                }
            }
        }
    }
}

pub(super) fn parse_mariadb_gtid(g: &str) -> Option<u32> {
    let mut parts = g.split('-');
    let domain = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u32>().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    parts.next().is_none().then_some(domain)
}

/// Adapts the output to the decoder and keeps positions and checkpoints.
pub(super) struct Tracker<'a, O: SourceOutput> {
    pub(super) output: &'a mut O,
    pub(super) store: &'a CheckpointStore,
    pub(super) committed: Resume,
    pub(super) last_checkpoint: Instant,
    pub(super) interval: Duration,
    pub(super) stats: SourceStats,
    pub(super) dirty: bool,
    /// The watermark snapshot while it runs (see [`super::watermark`]).
    pub(super) reconciler: Option<Reconciler>,
    /// The watermark table, whose rows are never published.
    pub(super) watermarks: Option<TableId>,
    /// `snapshot = "only"` with watermarks: stop once the snapshot is out.
    pub(super) stop_after_snapshot: bool,
    /// The signal table, whose rows are requests, never published.
    pub(super) signal_table: TableId,
    /// Where the snapshot's progress is shown, updated at each checkpoint.
    pub(super) board: Option<SnapshotBoard>,
    /// Snapshots asked for and not started yet (one runs at a time).
    pub(super) requests: Vec<SnapshotRequest>,
    /// When the signal folder was last looked at.
    pub(super) signals_checked: Instant,
    /// Checkpoints asked for in passing, waiting for the output's answer, oldest first.
    pub(super) in_flight: InFlight<Checkpoint>,
}

/// Checkpoints asked for in passing and not yet answered: more wait for the oldest answer.
const CHECKPOINTS_IN_FLIGHT: usize = 4;

/// A checkpoint asked for in passing whose changes the output did not make durable: names the
/// position it was for.
fn not_durable(failed: Unanswered<Checkpoint>) -> SinkError {
    SinkError::Output(format!(
        "the changes before {}:{} (the checkpoint asked for there) are not durable: {}",
        failed.item.file, failed.item.pos, failed.reason
    ))
}

impl<O: SourceOutput> Tracker<'_, O> {
    /// Makes everything so far durable, waiting for it, and writes the checkpoint.
    pub(super) fn checkpoint(&mut self, schema: &SchemaTracker) -> Result<(), SinkError> {
        // Durable downstream first; only then may the position move.
        self.output.make_durable().map_err(SinkError::Output)?;
        // Asked for earlier: answered by now, failures included.
        self.in_flight.wait_all().map_err(not_durable)?;
        let cp = self.next_checkpoint(schema);
        self.save(&cp)?;
        self.checkpoint_asked();
        Ok(())
    }

    /// Asks the output to make everything so far durable without waiting (where it can), and
    /// writes the newest checkpoint whose changes the output has since made durable: the
    /// source reads on while the lake commits.
    pub(super) fn checkpoint_in_passing(
        &mut self,
        schema: &SchemaTracker,
    ) -> Result<(), SinkError> {
        let cp = self.next_checkpoint(schema);
        let durable = self
            .output
            .make_durable_later()
            .map_err(SinkError::Output)?;
        self.in_flight.push(durable, cp);
        self.checkpoint_asked();
        self.save_answered()
    }

    /// Writes the newest checkpoint the output has answered for since, without waiting unless
    /// too many are outstanding.
    pub(super) fn save_answered(&mut self) -> Result<(), SinkError> {
        match self
            .in_flight
            .newest_answered(CHECKPOINTS_IN_FLIGHT)
            .map_err(not_durable)?
        {
            Some(cp) => self.save(&cp),
            None => Ok(()),
        }
    }

    /// A checkpoint at the last commit, with the schema and the snapshot's progress.
    fn next_checkpoint(&self, schema: &SchemaTracker) -> Checkpoint {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            file: self.committed.file.clone(),
            pos: self.committed.pos,
            gtid: self.committed.gtid_text(),
            schema: schema.to_entries(),
            snapshot_done: !self.snapshot_running(),
            snapshot: self
                .reconciler
                .as_ref()
                .filter(|r| !r.finished())
                .map(|r| r.state.clone()),
            written_at_ms: now_ms(),
            selection: None,
            requested: self
                .requests
                .iter()
                .map(|r| RequestedSnapshot {
                    id: r.id.clone(),
                    table: r.table.clone(),
                    filter: r.filter.clone(),
                })
                .collect(),
        }
    }

    fn save(&mut self, cp: &Checkpoint) -> Result<(), SinkError> {
        self.store.save(cp).map_err(SinkError::Checkpoint)?;
        self.stats.checkpoints += 1;
        tracing::debug!(file = %cp.file, pos = cp.pos, gtid = %cp.gtid, "checkpoint written");
        Ok(())
    }

    /// A checkpoint was asked for: the interval starts again, and the snapshot's progress is
    /// shown.
    fn checkpoint_asked(&mut self) {
        if let Some(board) = &self.board {
            *board.lock().expect("snapshot board") = self
                .reconciler
                .as_ref()
                .map(|r| r.state.tables.clone())
                .unwrap_or_default();
        }
        self.last_checkpoint = Instant::now();
        self.dirty = false;
    }
}

impl<O: SourceOutput> Tracker<'_, O> {
    /// The read-only snapshot: emits a chunk's rows at the position after the last commit, or
    /// inside a transaction keeps the chunk for its end.
    pub(super) fn place_chunk(
        &mut self,
        chunk: Chunk,
        in_transaction: bool,
    ) -> Result<(), SinkError> {
        let Some(reconciler) = &mut self.reconciler else {
            return Ok(());
        };
        if in_transaction {
            reconciler.hold(chunk);
            return Ok(());
        }
        let file: Arc<str> = Arc::from(self.committed.file.as_str());
        let rows = reconciler
            .place(chunk, &file, self.committed.pos)
            .map_err(SinkError::Snapshot)?;
        for row in &rows {
            self.output.change(row).map_err(SinkError::Output)?;
        }
        self.stats.changes += rows.len() as u64;
        // The snapshot's progress moved: the next checkpoint records it.
        self.dirty = true;
        Ok(())
    }

    /// Whether a watermark snapshot is still emitting chunks.
    pub(super) fn snapshot_running(&self) -> bool {
        self.reconciler.as_ref().is_some_and(|r| !r.finished())
    }
}

impl<O: SourceOutput> DecodeSink for Tracker<'_, O> {
    type Error = SinkError;

    fn change(&mut self, event: &ChangeEvent<'_>) -> Result<(), SinkError> {
        if event.table.id == self.signal_table {
            match signals::from_change(event) {
                Some(Ok(requests)) => {
                    for r in &requests {
                        tracing::info!(signal = %r.id, table = %r.table, filter = ?r.filter, "snapshot requested");
                    }
                    self.requests.extend(requests);
                }
                Some(Err(e)) => {
                    tracing::error!(position = %event.position, "{e}; the signal is ignored")
                }
                None => {}
            }
            return Ok(());
        }
        // The decoder already dropped tables outside include/exclude (but the watermarks).
        if let Some(reconciler) = &mut self.reconciler {
            if let Observed::Watermark(rows) =
                reconciler.observe(event).map_err(SinkError::Snapshot)?
            {
                for row in &rows {
                    self.output.change(row).map_err(SinkError::Output)?;
                }
                self.stats.changes += rows.len() as u64;
                return Ok(());
            }
        } else if self.watermarks.as_ref() == Some(&event.table.id) {
            return Ok(());
        }
        self.output.change(event).map_err(SinkError::Output)?;
        self.stats.changes += 1;
        Ok(())
    }

    fn commit(&mut self, commit: &Commit) -> Result<(), SinkError> {
        if let Some(failure) = self.reconciler.as_ref().and_then(Reconciler::failure) {
            return Err(SinkError::Snapshot(failure));
        }
        self.output.commit(commit).map_err(SinkError::Output)?;
        self.committed.record(commit);
        self.stats.commits += 1;
        self.dirty = true;
        if let Some(chunk) = self.reconciler.as_mut().and_then(Reconciler::ready_chunk) {
            self.place_chunk(chunk, false)?;
        }
        Ok(())
    }

    fn ddl(&mut self, ddl: &Ddl) -> Result<(), SinkError> {
        tracing::info!(db = %ddl.db, position = %ddl.position, "DDL: {}", ddl.sql);
        // A table renamed into the capture, or given a key silver needs, holds rows no insert
        // will carry: it is snapshotted by itself while streaming goes on (tables not captured
        // are passed over there).
        for table in &ddl.needs_snapshot {
            self.requests.push(SnapshotRequest {
                id: format!("ddl-at-{}", ddl.position),
                table: table.clone(),
                filter: None,
            });
        }
        Ok(())
    }

    fn previous_gtids(&mut self, set: &GtidSet) -> Result<(), SinkError> {
        // Everything executed before this file; a continuous stream already holds it.
        self.committed.executed.union(set);
        Ok(())
    }
}
