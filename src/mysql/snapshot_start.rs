//! Snapshots taken while the binlog streams: the lock-free snapshot of a first start (with
//! watermarks, or read-only), of tables added to `include` since the checkpoint, and of tables
//! asked for by `binlake snapshot` or by DDL (a table renamed into the capture, a keyless table
//! given a key). Each starts a reader task beside the stream and hands the stream a
//! [`Reconciler`] (see [`super::reconcile`]).

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::checkpoint::{Checkpoint, SnapshotState, TableProgress};
use super::config::SnapshotMode;
use super::config::TableFilter;
use super::decoder::BinlogDecoder;
use super::flavor::ServerInfo;
use super::gtid::GtidSet;
use super::progress::{Resume, Tracker};
use super::reconcile::Reconciler;
use super::replication::LiveSource;
use super::schema::SchemaTracker;
use super::snapshot_chunk::{Failure, StreamStart};
use super::watermark::ensure_table;
use super::{SourceError, SourceOutput};
use crate::event::{now_ms, TableId};

impl LiveSource {
    /// Starts the snapshot `binlake snapshot` asked for (see [`super::signals`]): the tables
    /// asked for that are captured, each with its filter, read lock-free while streaming goes on,
    /// from the position after the last commit.
    pub(super) async fn start_requested_snapshot<O: SourceOutput>(
        &self,
        tracker: &mut Tracker<'_, O>,
        decoder: &BinlogDecoder,
        info: &ServerInfo,
    ) -> Result<(), SourceError> {
        let schema = decoder.schemas().clone();
        let mut tables = Vec::new();
        for r in std::mem::take(&mut tracker.requests) {
            if !self.filter.matches(&r.table.db, &r.table.table) || schema.get(&r.table).is_none() {
                tracing::error!(signal = %r.id, table = %r.table, "a snapshot was asked of a table this source does not capture; ignored");
                continue;
            }
            tables.push(TableProgress {
                table: r.table,
                done: false,
                rows: 0,
                last_key: None,
                filter: r.filter,
            });
        }
        if tables.is_empty() {
            return Ok(());
        }
        let mut state = SnapshotState {
            start: Some((tracker.committed.file.clone(), tracker.committed.pos)),
            start_gtid: tracker.committed.gtid_text(),
            tables,
            alongside_stream: true,
        };
        let mut conn = self.server.connect().await?;
        let mut resume = tracker.committed.clone();
        let reconciler = self
            .start_lock_free_snapshot(
                &mut conn,
                info,
                &mut state,
                &schema,
                tracker.watermarks.as_ref(),
                &mut resume,
            )
            .await?;
        tracker.reconciler = Some(reconciler);
        tracker.dirty = true;
        Ok(())
    }

    /// Tables the configuration matches now that the checkpoint's selection did not (a table
    /// added to `include`), and tables `key_columns` now keys otherwise than it did (a table
    /// with no key given one: the lake empties its multiset silver, see
    /// [`crate::lake`]'s retype): their schema is read from the server and they are
    /// snapshotted, lock-free and chunked, while streaming of the other tables goes on from the
    /// checkpoint (a snapshot still running takes them on too).
    pub(super) async fn snapshot_added_tables(
        &self,
        conn: &mut Conn,
        cp: &Checkpoint,
        schema: &mut SchemaTracker,
        pending: &mut Option<SnapshotState>,
    ) -> Result<(), SourceError> {
        let Some(old) = &cp.selection else {
            return Ok(());
        };
        let rekeyed: Vec<&String> = match &old.key_columns {
            Some(old_keys) => self
                .config
                .key_columns
                .iter()
                .filter(|(table, columns)| old_keys.get(*table) != Some(columns))
                .map(|(table, _)| table)
                .collect(),
            None => Vec::new(),
        };
        // Tables added to `include` follow `snapshot`; a table keyed anew is read whatever it
        // says, as a table given a key by DDL is: the lake refills its silver from that read.
        let added_tables = self.config.snapshot != SnapshotMode::Never
            && (old.include != self.config.include || old.exclude != self.config.exclude);
        if !added_tables && rekeyed.is_empty() {
            return Ok(());
        }
        let before = TableFilter::new(&old.include, &old.exclude).map_err(|e| {
            SourceError::Unsupported(format!(
                "{}: the selection it was written under: {e}",
                self.store.path().display()
            ))
        })?;
        let now = self.server.load_schema(conn, &self.filter).await?;
        let snapshotting: Vec<TableId> = pending
            .iter()
            .flat_map(|s| s.tables.iter().map(|t| t.table.clone()))
            .collect();
        let added: Vec<TableId> = now
            .tables()
            .map(|(id, _)| id.clone())
            .filter(|id| {
                let key_given = rekeyed.iter().any(|t| **t == id.to_string());
                ((added_tables && !before.matches(&id.db, &id.table)) || key_given)
                    && !snapshotting.contains(id)
            })
            .collect();
        if added.is_empty() {
            return Ok(());
        }
        tracing::info!(tables = ?added.iter().map(ToString::to_string).collect::<Vec<_>>(), key_columns_changed = ?rekeyed, "tables added to include: snapshotting them while streaming goes on");
        let progress = added.iter().map(|id| TableProgress {
            table: id.clone(),
            done: false,
            rows: 0,
            last_key: None,
            filter: None,
        });
        for id in &added {
            if let Some(declared) = now.get(id) {
                schema.insert(id.clone(), declared.clone());
            }
        }
        match pending {
            Some(state) => state.tables.extend(progress),
            None => {
                *pending = Some(SnapshotState {
                    start: Some((cp.file.clone(), cp.pos)),
                    start_gtid: cp.gtid.clone(),
                    tables: progress.collect(),
                    alongside_stream: true,
                })
            }
        }
        Ok(())
    }

    /// Starts a lock-free snapshot: with watermarks in `watermarks` ([`super::watermark`]), or
    /// read-only without ([`super::read_only`]). On a first start, streaming begins at the
    /// binlog position now, recorded before any chunk is read; the reader task then reads
    /// chunks while the stream reconciles them ([`super::reconcile`]).
    pub(super) async fn start_lock_free_snapshot(
        &self,
        conn: &mut Conn,
        info: &ServerInfo,
        state: &mut SnapshotState,
        schema: &SchemaTracker,
        watermarks: Option<&TableId>,
        resume: &mut Resume,
    ) -> Result<Reconciler, SourceError> {
        if let Some(table) = watermarks {
            ensure_table(conn, table)
                .await
                .map_err(self.server.server_err(&format!(
                    "creating the watermark table {table} (needs CREATE, INSERT and DELETE on it)"
                )))?;
        } else if !info.is_mariadb {
            let mode: Option<String> = conn
                .query_first("SELECT @@global.gtid_mode")
                .await
                .map_err(self.server.server_err("SELECT @@global.gtid_mode"))?;
            let mode = mode.unwrap_or_default();
            if !mode.eq_ignore_ascii_case("ON") {
                return Err(SourceError::Unsupported(format!(
                    "{}: snapshot_positions = \"read_only\" places each chunk by the executed GTID set, and the server has gtid_mode = {mode}: turn GTIDs on (gtid_mode = ON, enforce_gtid_consistency = ON), or use snapshot_positions = \"watermark\"",
                    self.server.display_url
                )));
            }
        }
        if state.start.is_none() {
            let status = self.server.binlog_status(conn, info).await?;
            resume.file = status.file.clone();
            resume.pos = status.pos;
            if let Ok(set) = GtidSet::parse(&status.executed_gtids) {
                resume.executed = set;
            }
            state.start = Some((status.file, status.pos));
            state.start_gtid = status.executed_gtids;
            // Streaming starts here whatever happens next.
            self.store
                .save(&resume.checkpoint(schema, Some(state.clone())))?;
        }
        let server_id: u32 = conn
            .query_first("SELECT @@server_id")
            .await
            .map_err(self.server.server_err("SELECT @@server_id"))?
            .unwrap_or(0);
        let reader = self.server.connect().await?;
        let run = format!("r{}", now_ms());
        let (chunks, received) = tokio::sync::mpsc::channel(1);
        let failure = Failure::default();
        let url = self.server.display_url.clone();
        let chunk_rows = self.config.snapshot_chunk_rows;
        match watermarks {
            Some(table) => {
                tokio::spawn(super::watermark::read_chunks(
                    reader,
                    url,
                    state.clone(),
                    schema.clone(),
                    table.clone(),
                    chunk_rows,
                    run.clone(),
                    chunks,
                    failure.clone(),
                ));
                tracing::info!(watermarks = %table, file = %resume.file, pos = resume.pos, "snapshot with watermarks, no lock; streaming from here");
            }
            None => {
                let start = if info.is_mariadb {
                    StreamStart::At {
                        file: resume.file.clone(),
                        pos: resume.pos,
                    }
                } else {
                    StreamStart::Executed(resume.executed.clone())
                };
                tokio::spawn(super::read_only::read_chunks(
                    reader,
                    url,
                    info.is_mariadb,
                    start,
                    state.clone(),
                    schema.clone(),
                    chunk_rows,
                    run.clone(),
                    chunks,
                    failure.clone(),
                ));
                tracing::info!(file = %resume.file, pos = resume.pos, "read-only snapshot, no lock and no writes; streaming from here");
            }
        }
        Ok(Reconciler::new(
            received,
            failure,
            watermarks.cloned(),
            info.is_mariadb,
            run,
            state.clone(),
            schema,
            server_id,
        ))
    }
}
