//! The stream's side of the lock-free snapshots: it looks at every decoded change, and turns
//! each chunk a reader task read into the snapshot rows to emit, at the place in the binlog
//! where they are right. With watermarks ([`super::watermark`]) a chunk's place is its high
//! watermark and the keys in doubt are those changed between its two watermarks; read-only
//! ([`super::read_only`]) a chunk is emitted between two transactions as soon as it arrives and
//! the keys in doubt are those whose last change its read did not see. Each module's doc has
//! the argument for why nothing is lost or applied out of order.

use std::collections::HashSet;
use std::sync::Arc;

use super::checkpoint::SnapshotState;
use super::read_only::{unfinished, Touched};
use super::schema::SchemaTracker;
use super::snapshot_chunk::{key_of, Chunk, Failure};
use crate::event::{ChangeEvent, Op, Position, SourceInfo, TableId, Value};

/// A chunk's window: from its low watermark in the stream to its high one.
struct Window {
    id: String,
    table: TableId,
    /// Keys of the chunk's table changed inside the window.
    changed: HashSet<String>,
}

/// Which of a chunk's rows the stream may carry a newer change of.
struct Doubt<'a> {
    key: &'a dyn Fn(&str) -> bool,
    /// Any row of the chunk's table, whatever its key.
    table_changed: bool,
}

/// What the stream makes of one change.
pub enum Observed {
    /// A change to publish.
    Change,
    /// A watermark (never published), and the snapshot rows to emit in its place.
    Watermark(Vec<ChangeEvent<'static>>),
}

/// The stream's side: watches for watermarks and changes inside windows, and turns each
/// chunk into the rows to emit.
pub struct Reconciler {
    chunks: tokio::sync::mpsc::Receiver<Chunk>,
    failure: Failure,
    /// The watermark table; `None` for the read-only snapshot.
    watermarks: Option<TableId>,
    /// The read-only snapshot's memory of changed keys.
    touched: Option<Touched>,
    /// The read-only snapshot: where the last chunk was placed, and its last row number.
    placed: Option<(Arc<str>, u64, u32)>,
    run: String,
    window: Option<Window>,
    /// A chunk taken from the channel before its high watermark came.
    early: Option<Chunk>,
    pub state: SnapshotState,
    server_id: u32,
    /// Snapshot rows emitted.
    pub rows: u64,
}

impl Reconciler {
    /// `watermarks`: the watermark table, or `None` for the read-only snapshot on a server of
    /// the flavour `mariadb` says.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        chunks: tokio::sync::mpsc::Receiver<Chunk>,
        failure: Failure,
        watermarks: Option<TableId>,
        mariadb: bool,
        run: String,
        mut state: SnapshotState,
        schema: &SchemaTracker,
        server_id: u32,
    ) -> Reconciler {
        // A table dropped before its snapshot has nothing to read.
        for t in &mut state.tables {
            if !t.done && schema.get(&t.table).is_none() {
                tracing::warn!(table = %t.table, "dropped before its snapshot; skipping it");
                t.done = true;
            }
        }
        let touched = watermarks
            .is_none()
            .then(|| Touched::new(mariadb, unfinished(&state)));
        Reconciler {
            chunks,
            failure,
            watermarks,
            touched,
            placed: None,
            run,
            window: None,
            early: None,
            state,
            server_id,
            rows: 0,
        }
    }

    /// Whether every table's snapshot has been emitted.
    pub fn finished(&self) -> bool {
        self.state.done()
    }

    /// The reader's failure, if it had one.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().expect("failure slot").clone()
    }

    /// Looks at one change the stream decoded.
    pub fn observe(&mut self, event: &ChangeEvent<'_>) -> Result<Observed, String> {
        if let Some(touched) = &mut self.touched {
            touched.record(event);
            return Ok(Observed::Change);
        }
        if self.watermarks.as_ref() == Some(&event.table.id) {
            return self.watermark(event);
        }
        if let Some(window) = &mut self.window {
            if event.table.id == window.table {
                for row in [&event.before, &event.after].into_iter().flatten() {
                    window.changed.insert(key_of(&event.table, row));
                }
            }
        }
        Ok(Observed::Change)
    }

    fn watermark(&mut self, event: &ChangeEvent<'_>) -> Result<Observed, String> {
        let text = |i: usize| match event.after.as_ref().and_then(|r| r.get(i)) {
            Some(Some(Value::Text(t))) => Some(t.to_string()),
            Some(Some(Value::Bytes(b))) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        let (Op::Create, Some(id), Some(kind), Some(table)) = (event.op, text(0), text(1), text(2))
        else {
            return Ok(Observed::Watermark(Vec::new()));
        };
        // Watermarks of an earlier run (before a restart) are passed over.
        if !id.starts_with(&format!("{}-", self.run)) {
            return Ok(Observed::Watermark(Vec::new()));
        }
        match kind.as_str() {
            "low" => {
                let (db, name) = table.split_once('.').unwrap_or((&table, ""));
                self.window = Some(Window {
                    id,
                    table: TableId::new(db, name),
                    changed: HashSet::new(),
                });
                Ok(Observed::Watermark(Vec::new()))
            }
            "high" => self.high(&id, &table, event),
            _ => Ok(Observed::Watermark(Vec::new())),
        }
    }

    fn high(&mut self, id: &str, table: &str, event: &ChangeEvent<'_>) -> Result<Observed, String> {
        let chunk = match self.early.take() {
            Some(c) if c.id == id => c,
            other => {
                self.early = other;
                loop {
                    match self.chunks.try_recv() {
                        Ok(c) if c.id == id => break c,
                        Ok(c) => self.early = Some(c),
                        Err(_) => {
                            return Err(format!(
                                "snapshot of {table}: the high watermark {id} (at {}) came before its chunk; {}",
                                event.position,
                                self.failure()
                                    .unwrap_or_else(|| "the reader stopped".into())
                            ))
                        }
                    }
                }
            }
        };
        let changed = match self.window.take() {
            Some(w) if w.id == id => w.changed,
            // The low watermark was before where this stream started: every key is in doubt.
            _ => {
                return Err(format!(
                    "snapshot of {table}: the high watermark {id} (at {}) came without its low watermark",
                    event.position
                ))
            }
        };
        let at = &event.position;
        let doubt = Doubt {
            key: &|key: &str| changed.contains(key),
            table_changed: !changed.is_empty(),
        };
        let out = self.emit(chunk, doubt, &at.file, at.pos, 1)?;
        tracing::debug!(changed_in_window = changed.len(), "high watermark {id}");
        Ok(Observed::Watermark(out))
    }

    /// The read-only snapshot: a chunk the reader has ready, without waiting.
    pub fn ready_chunk(&mut self) -> Option<Chunk> {
        self.touched.as_ref()?;
        self.early.take().or_else(|| self.chunks.try_recv().ok())
    }

    /// The read-only snapshot: waits for the reader's next chunk (forever with watermarks,
    /// whose chunks come with their high watermark in the stream).
    pub async fn next_chunk(&mut self) -> Option<Chunk> {
        if self.touched.is_none() || self.state.done() {
            return std::future::pending().await;
        }
        if let Some(chunk) = self.early.take() {
            return Some(chunk);
        }
        self.chunks.recv().await
    }

    /// Keeps a chunk that arrived inside a transaction for the next one's end.
    pub fn hold(&mut self, chunk: Chunk) {
        self.early = Some(chunk);
    }

    /// The read-only snapshot: the rows of `chunk` to emit between two transactions, at
    /// `file`:`pos` (the event after the last commit).
    pub fn place(
        &mut self,
        chunk: Chunk,
        file: &Arc<str>,
        pos: u64,
    ) -> Result<Vec<ChangeEvent<'static>>, String> {
        let Some(touched) = &mut self.touched else {
            return Ok(Vec::new());
        };
        if let Some(visible) = &chunk.visible {
            touched.forget_visible(visible);
        }
        let remembered = touched.remembered();
        let table = chunk.table.id.clone();
        let last = chunk.done;
        let mut touched = self.touched.take().expect("read-only");
        // Chunks placed at one position (no transaction between them) number their rows on
        // from the last, so that every snapshot row has a position of its own.
        let first_row = match &self.placed {
            Some((f, p, row)) if f == file && *p == pos => row + 1,
            _ => 1,
        };
        let doubt = Doubt {
            key: &|key: &str| touched.remembers(&table, key),
            table_changed: touched.remembers_any(&table),
        };
        let out = self.emit(chunk, doubt, file, pos, first_row);
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                self.touched = Some(touched);
                return Err(e);
            }
        };
        let last_row = out.last().map_or(first_row - 1, |e| e.position.row);
        self.placed = Some((Arc::clone(file), pos, last_row.max(first_row - 1)));
        if last {
            touched.finish(&table);
        }
        self.touched = Some(touched);
        tracing::debug!(remembered, "read-only chunk placed at {file}:{pos}");
        Ok(out)
    }

    /// The chunk's rows but those in doubt (the stream carries those keys), as snapshot events
    /// at `file`:`pos`, and the snapshot's progress moved past the chunk.
    ///
    /// A table with no key at all is a multiset of whole rows in the lake, read in one chunk:
    /// a change to it the read may not have seen cannot be told apart from the read's copies of
    /// identical rows, so any such change fails the snapshot (the table is read again at the
    /// restart, when it may be quiet). Without one, the read is the table's exact content at
    /// the chunk's place: a TRUNCATE placed just before its rows makes silver that content,
    /// whatever it held (a table read again).
    fn emit(
        &mut self,
        chunk: Chunk,
        doubt: Doubt<'_>,
        file: &Arc<str>,
        pos: u64,
        first_row: u32,
    ) -> Result<Vec<ChangeEvent<'static>>, String> {
        let mut out = Vec::with_capacity(chunk.rows.len() + 1);
        let keyless = chunk.table.primary_key.is_empty();
        if keyless {
            if doubt.table_changed {
                return Err(format!(
                    "snapshot of {}: the table has no key, and it changed while it was read; a lock-free read cannot tell those changes apart from its copies of identical rows. Give the table a key ([source] key_columns), take the snapshot with snapshot_positions = \"server\", or restart binlake to read it again",
                    chunk.table.id
                ));
            }
            out.push(ChangeEvent {
                table: Arc::clone(&chunk.table),
                op: Op::Truncate,
                before: None,
                after: None,
                position: Position {
                    file: Arc::clone(file),
                    pos,
                    row: first_row,
                },
                source: SourceInfo::snapshot_read(self.server_id),
                transaction: None,
            });
        }
        let first_row = first_row + u32::from(keyless);
        for (i, row) in chunk.rows.into_iter().enumerate() {
            if (doubt.key)(&key_of(&chunk.table, &row)) {
                continue;
            }
            out.push(ChangeEvent {
                table: Arc::clone(&chunk.table),
                op: Op::Read,
                before: None,
                after: Some(row),
                position: Position {
                    file: Arc::clone(file),
                    pos,
                    // Row 0 is the watermark's own (or the event at `pos`); the chunk's
                    // rows follow it.
                    row: first_row + i as u32,
                },
                source: SourceInfo::snapshot_read(self.server_id),
                transaction: None,
            });
        }
        let rows = out.iter().filter(|e| e.op == Op::Read).count() as u64;
        let progress = &mut self.state.tables[chunk.table_index];
        progress.rows += rows;
        if chunk.last_key.is_some() {
            progress.last_key = chunk.last_key;
        }
        progress.done |= chunk.done;
        self.rows += rows;
        let done = progress.done;
        tracing::info!(
            table = %progress.table,
            "snapshot {}: {} rows{}",
            progress.table,
            progress.rows,
            if done { ", done" } else { "" }
        );
        if done && self.state.done() {
            tracing::info!(rows = self.rows, "snapshot done");
        }
        Ok(out)
    }
}
