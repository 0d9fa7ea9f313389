//! The read-only lock-free snapshot (`snapshot_positions = "read_only"`): for a server binlake
//! may only read (no watermark table), after Debezium's read-only incremental snapshot, which
//! uses the server's executed GTID sets where DBLog writes watermarks.
//!
//! For each chunk the reader (a task beside the stream):
//! 1. MySQL: reads `@@global.gtid_executed`, the set V; then opens `START TRANSACTION WITH
//!    CONSISTENT SNAPSHOT`. MariaDB: opens the consistent snapshot and reads the binlog
//!    position it corresponds to (`binlog_snapshot_file`/`_position`): V is everything before.
//! 2. SELECTs the chunk, commits, and hands the rows with V to the stream.
//!
//! The stream remembers, for every table whose snapshot is not finished, the last transaction
//! (its GTID; on MariaDB its binlog position) that changed each key, before and after images
//! alike. When a chunk arrives, between two transactions, the stream forgets every key whose
//! last change V covers, drops the chunk's rows whose key it still remembers, and emits the
//! others at its current position.
//!
//! Why nothing is lost or applied out of order. Let S be the chunk's read, E the place in the
//! stream where its rows are emitted, and k a key of the chunk.
//! - V holds only transactions visible at S. MySQL adds a transaction's GTID to
//!   `gtid_executed` after the engines committed it (`MYSQL_BIN_LOG::process_commit_stage_queue`
//!   in MySQL's `sql/binlog.cc`: `finish_transaction_in_engines`, then
//!   `gtid_state->update_commit_group`), and V is read before S. MariaDB reports the exact
//!   binlog position its consistent snapshot corresponds to.
//! - Every transaction before the point the stream started at is visible at S: the reader
//!   waits, before its first chunk, until V covers that point (the executed set, or the
//!   position, the stream resumes from). V only grows from chunk to chunk.
//! - If the stream remembers k at E, some change to k before E is not visible at S: the row
//!   read may be stale, so it is dropped, and the stream alone carries k: every change to k
//!   since streaming started, each with the whole row (`binlog_row_image = FULL`), in binlog
//!   order. The lake keeps the last.
//! - If it does not, every change to k before E is visible at S (none reached the stream, or
//!   the last did and V covers it, and so every earlier one too): the row read is k's state at
//!   E. Changes after E are applied after it, in binlog order, whole rows each; one the read
//!   already saw is applied again to the same effect.
//!
//! Memory: what the stream remembers is the keys last changed by transactions not yet visible
//! to the latest read, a moment's worth, and nothing of a table once its snapshot is done.
//! Progress and restarts are as for the watermark snapshot ([`super::watermark`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::checkpoint::SnapshotState;
use super::gtid::GtidSet;
use super::schema::SchemaTracker;
use super::snapshot::{mariadb_snapshot_position, prepare_session};
use super::snapshot_chunk::{
    finish_reader, key_of, read_in_snapshot, tables_to_read, Chunk, Failure, Stamp, StreamStart,
    Visibility,
};
use super::SourceError;
use crate::event::{ChangeEvent, TableId};

/// The stream's memory: per table whose snapshot is not done, the last change to each key.
#[derive(Debug, Default)]
pub struct Touched {
    mariadb: bool,
    tables: HashMap<TableId, HashMap<String, Stamp>>,
}

impl Touched {
    pub fn new(mariadb: bool, tables: impl IntoIterator<Item = TableId>) -> Touched {
        Touched {
            mariadb,
            tables: tables.into_iter().map(|t| (t, HashMap::new())).collect(),
        }
    }

    /// Notes the keys a streamed change touched.
    pub fn record(&mut self, event: &ChangeEvent<'_>) {
        let Some(keys) = self.tables.get_mut(&event.table.id) else {
            return;
        };
        let stamp = if self.mariadb {
            Stamp::At(Arc::clone(&event.position.file), event.position.pos)
        } else {
            match &event.source.gtid {
                Some(g) => Stamp::Gtid(Arc::clone(g)),
                // Not a GTID transaction: never covered, so the key stays with the stream.
                None => Stamp::At(Arc::clone(&event.position.file), event.position.pos),
            }
        };
        for row in [&event.before, &event.after].into_iter().flatten() {
            keys.insert(key_of(&event.table, row), stamp.clone());
        }
    }

    /// Forgets every key whose last change `visible` covers, in every table.
    pub fn forget_visible(&mut self, visible: &Visibility) {
        for keys in self.tables.values_mut() {
            keys.retain(|_, stamp| !visible.covers(stamp));
        }
    }

    /// Whether a change to `key` of `table` reached the stream that the read may not have seen.
    pub fn remembers(&self, table: &TableId, key: &str) -> bool {
        self.tables.get(table).is_some_and(|k| k.contains_key(key))
    }

    /// Whether a change to `table` is remembered, whatever its key.
    pub fn remembers_any(&self, table: &TableId) -> bool {
        self.tables.get(table).is_some_and(|k| !k.is_empty())
    }

    /// A table's snapshot is done: its keys are no longer needed.
    pub fn finish(&mut self, table: &TableId) {
        self.tables.remove(table);
    }

    /// Keys remembered, over all tables.
    pub fn remembered(&self) -> usize {
        self.tables.values().map(HashMap::len).sum()
    }
}

/// The reader: every remaining chunk of every table in `state`, each with what its read saw,
/// into `chunks`. A failure is put in `failure` (the stream stops on it).
#[allow(clippy::too_many_arguments)]
pub async fn read_chunks(
    mut conn: Conn,
    url: String,
    mariadb: bool,
    start: StreamStart,
    mut state: SnapshotState,
    schema: SchemaTracker,
    chunk_rows: u64,
    run: String,
    chunks: tokio::sync::mpsc::Sender<Chunk>,
    failure: Failure,
) {
    let result = read_all(
        &mut conn, &url, mariadb, &start, &mut state, &schema, chunk_rows, &run, &chunks,
    )
    .await;
    finish_reader(conn, result, &failure).await;
}

/// How long the first read may wait for the server to show the stream's starting point
/// committed (it is, within a group commit, on a healthy server).
const START_WAIT: Duration = Duration::from_secs(30);

#[allow(clippy::too_many_arguments)]
async fn read_all(
    conn: &mut Conn,
    url: &str,
    mariadb: bool,
    start: &StreamStart,
    state: &mut SnapshotState,
    schema: &SchemaTracker,
    chunk_rows: u64,
    run: &str,
    chunks: &tokio::sync::mpsc::Sender<Chunk>,
) -> Result<(), SourceError> {
    prepare_session(conn, url).await?;
    let mut sequence = 0u64;
    let mut start_seen = false;
    for (t, table, mut last_key) in tables_to_read(state, schema) {
        loop {
            sequence += 1;
            let waited = Instant::now();
            let visible = loop {
                let visible = open_read(conn, url, mariadb).await?;
                if start_seen || visible.covers_start(start) {
                    break visible;
                }
                let _ = conn.query_drop("ROLLBACK").await;
                if waited.elapsed() > START_WAIT {
                    return Err(SourceError::Unsupported(format!(
                        "{url}: the snapshot's reads do not see the point streaming started at ({start:?}) after {} s; is the server committing?",
                        START_WAIT.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            start_seen = true;
            let mut chunk = read_in_snapshot(
                conn,
                url,
                &table,
                t,
                last_key.take(),
                chunk_rows,
                state.tables[t].filter.as_deref(),
                format!("{run}-{sequence}"),
            )
            .await?;
            chunk.visible = Some(visible);
            last_key = chunk.last_key.clone();
            let done = chunk.done;
            if chunks.send(chunk).await.is_err() {
                // The stream has stopped; so does the snapshot.
                return Ok(());
            }
            if done {
                break;
            }
        }
    }
    Ok(())
}

/// Opens the chunk's consistent read and says what it sees.
async fn open_read(conn: &mut Conn, url: &str, mariadb: bool) -> Result<Visibility, SourceError> {
    let err = |what: &'static str| {
        move |e: mysql_async::Error| SourceError::Server {
            url: url.to_string(),
            what: what.into(),
            reason: e.to_string(),
        }
    };
    if mariadb {
        let (file, pos) = mariadb_snapshot_position(conn, url).await?;
        return Ok(Visibility::Before { file, pos });
    }
    let executed: Option<String> = conn
        .query_first("SELECT @@global.gtid_executed")
        .await
        .map_err(err("SELECT @@global.gtid_executed"))?;
    let set = GtidSet::parse(&executed.unwrap_or_default().replace('\n', "")).map_err(|e| {
        SourceError::Server {
            url: url.to_string(),
            what: "reading @@global.gtid_executed".into(),
            reason: e,
        }
    })?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        .await
        .map_err(err("START TRANSACTION WITH CONSISTENT SNAPSHOT"))?;
    Ok(Visibility::Executed(set))
}

/// The tables a snapshot has left, for [`Touched::new`].
pub fn unfinished(state: &SnapshotState) -> HashSet<TableId> {
    state
        .tables
        .iter()
        .filter(|t| !t.done)
        .map(|t| t.table.clone())
        .collect()
}
