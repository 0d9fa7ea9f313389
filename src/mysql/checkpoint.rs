//! The source's checkpoint: the binlog position (file/offset and GTID state) up to which every
//! change is durable downstream, with the schema as of that position, written atomically to a
//! directory and read back on start.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use mysql_async::Value as MyValue;
use serde::{Deserialize, Serialize};

use super::config::TableFilter;
use super::schema::{DeclaredTable, SchemaTracker};
use crate::event::TableId;

/// Bumped when the stored layout changes incompatibly.
pub const CHECKPOINT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    /// The binlog file and the offset to resume reading at (the event after the last commit).
    pub file: String,
    pub pos: u64,
    /// GTID state at that point: MariaDB's `domain-server-seq` list (comma-separated, one per
    /// domain) or MySQL's executed GTID set; empty when the server has no GTIDs.
    pub gtid: String,
    /// The declared schema of every table as of `file:pos`, so a restart decodes the events
    /// after it with the schema they were written under.
    pub schema: Vec<(TableId, DeclaredTable)>,
    /// True once the initial snapshot finished (or when none was taken).
    pub snapshot_done: bool,
    /// The snapshot's progress while it runs (`file`/`pos` are then where streaming will start).
    #[serde(default)]
    pub snapshot: Option<SnapshotState>,
    /// Milliseconds since the epoch when this checkpoint was written.
    pub written_at_ms: u64,
    /// The `include`/`exclude` it was written under: a restart under ones that match more
    /// tables snapshots the tables they add. None in checkpoints of earlier binlake versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
    /// Snapshots asked for (`binlake snapshot`, DDL) and not started yet: a restart starts them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requested: Vec<RequestedSnapshot>,
}

/// A snapshot asked for and not started yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedSnapshot {
    pub id: String,
    pub table: TableId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// A source's table selection, as `[source] include` / `exclude` give it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Selection {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// `[source] key_columns` (absent in checkpoints written before binlake recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_columns: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

impl Checkpoint {
    pub fn schema_tracker(&self) -> SchemaTracker {
        SchemaTracker::from_entries(self.schema.clone())
    }
}

/// A primary-key value as a checkpoint stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KeyValue {
    Null,
    Int(i64),
    UInt(u64),
    Double(f64),
    Bytes(Vec<u8>),
    Date(u16, u8, u8, u8, u8, u8, u32),
    Time(bool, u32, u8, u8, u8, u32),
}

impl From<&MyValue> for KeyValue {
    fn from(v: &MyValue) -> Self {
        match v {
            MyValue::NULL => KeyValue::Null,
            MyValue::Int(i) => KeyValue::Int(*i),
            MyValue::UInt(u) => KeyValue::UInt(*u),
            MyValue::Float(f) => KeyValue::Double(*f as f64),
            MyValue::Double(f) => KeyValue::Double(*f),
            MyValue::Bytes(b) => KeyValue::Bytes(b.clone()),
            MyValue::Date(y, mo, d, h, mi, s, us) => KeyValue::Date(*y, *mo, *d, *h, *mi, *s, *us),
            MyValue::Time(n, d, h, m, s, us) => KeyValue::Time(*n, *d, *h, *m, *s, *us),
        }
    }
}

impl From<&KeyValue> for MyValue {
    fn from(v: &KeyValue) -> Self {
        match v {
            KeyValue::Null => MyValue::NULL,
            KeyValue::Int(i) => MyValue::Int(*i),
            KeyValue::UInt(u) => MyValue::UInt(*u),
            KeyValue::Double(f) => MyValue::Double(*f),
            KeyValue::Bytes(b) => MyValue::Bytes(b.clone()),
            KeyValue::Date(y, mo, d, h, mi, s, us) => MyValue::Date(*y, *mo, *d, *h, *mi, *s, *us),
            KeyValue::Time(n, d, h, m, s, us) => MyValue::Time(*n, *d, *h, *m, *s, *us),
        }
    }
}

/// How far one table's snapshot got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableProgress {
    pub table: TableId,
    pub done: bool,
    pub rows: u64,
    /// The primary key of the last row emitted; the next chunk starts after it.
    pub last_key: Option<Vec<KeyValue>>,
    /// A backfill of part of the table (`binlake snapshot --where`): an SQL predicate every
    /// chunk's SELECT adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Where a running source shows its lock-free snapshot's progress (the status page reads it):
/// each table's progress as of the last checkpoint; empty while none runs.
pub type SnapshotBoard = std::sync::Arc<std::sync::Mutex<Vec<TableProgress>>>;

/// A snapshot in progress, kept in the checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotState {
    /// The position of the first chunk: streaming starts here once the snapshot is done.
    pub start: Option<(String, u64)>,
    /// MySQL: the executed GTID set at that position (empty on MariaDB, whose GTID state
    /// comes from the stream).
    #[serde(default)]
    pub start_gtid: String,
    pub tables: Vec<TableProgress>,
    /// Taken while streaming goes on (tables added to `include` later): resumed the same way.
    #[serde(default)]
    pub alongside_stream: bool,
}

impl SnapshotState {
    pub fn new(schema: &SchemaTracker, filter: &TableFilter) -> Self {
        SnapshotState {
            start: None,
            start_gtid: String::new(),
            alongside_stream: false,
            tables: schema
                .tables()
                .filter(|(id, _)| filter.matches(&id.db, &id.table))
                .map(|(id, _)| TableProgress {
                    table: id.clone(),
                    done: false,
                    rows: 0,
                    last_key: None,
                    filter: None,
                })
                .collect(),
        }
    }

    pub fn done(&self) -> bool {
        self.tables.iter().all(|t| t.done)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {op}: {source}")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint {path}: not a binlake checkpoint ({reason}); move it away to start over")]
    Corrupt { path: String, reason: String },
    #[error("checkpoint {path}: written by a newer binlake (layout version {found}, this one reads {CHECKPOINT_VERSION})")]
    Version { path: String, found: u32 },
}

/// A directory holding `checkpoint.json`.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
    /// Stamped on every checkpoint saved.
    selection: Option<Selection>,
}

impl CheckpointStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CheckpointStore {
            dir: dir.into(),
            selection: None,
        }
    }

    /// Every checkpoint saved records `selection` (see [`Checkpoint::selection`]).
    pub fn with_selection(mut self, selection: Selection) -> Self {
        self.selection = Some(selection);
        self
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("checkpoint.json")
    }

    fn io(&self, op: &'static str) -> impl Fn(std::io::Error) -> CheckpointError + '_ {
        move |source| CheckpointError::Io {
            path: self.path().display().to_string(),
            op,
            source,
        }
    }

    pub fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("read")(e)),
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| CheckpointError::Corrupt {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        let found = value["version"].as_u64().unwrap_or(0) as u32;
        if found > CHECKPOINT_VERSION {
            return Err(CheckpointError::Version {
                path: path.display().to_string(),
                found,
            });
        }
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| CheckpointError::Corrupt {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
    }

    /// Writes the checkpoint so that a crash at any moment leaves either the old or the new
    /// one: a temporary file, fsync, rename over the old, fsync of the directory.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        fs::create_dir_all(&self.dir).map_err(self.io("create directory"))?;
        let tmp = self.dir.join("checkpoint.json.tmp");
        let json = match &self.selection {
            Some(selection) => {
                let mut stamped = checkpoint.clone();
                stamped.selection = Some(selection.clone());
                serde_json::to_vec_pretty(&stamped)
            }
            None => serde_json::to_vec_pretty(checkpoint),
        }
        .expect("checkpoint serializes");
        {
            let mut f = File::create(&tmp).map_err(self.io("create"))?;
            f.write_all(&json).map_err(self.io("write"))?;
            f.sync_all().map_err(self.io("fsync"))?;
        }
        fs::rename(&tmp, self.path()).map_err(self.io("rename"))?;
        sync_dir(&self.dir).map_err(self.io("fsync directory"))?;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_atomically_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join("state"));
        assert_eq!(store.load().unwrap(), None);
        let mut schema = SchemaTracker::new();
        schema
            .apply("shop", "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(3))")
            .unwrap();
        let cp = Checkpoint {
            version: CHECKPOINT_VERSION,
            file: "mariadb-bin.000002".into(),
            pos: 1234,
            gtid: "0-1-17".into(),
            schema: schema.to_entries(),
            snapshot_done: true,
            snapshot: None,
            written_at_ms: 1,
            selection: None,
            requested: vec![RequestedSnapshot {
                id: "snapshot-1".into(),
                table: TableId::new("shop", "t"),
                filter: Some("id > 5".into()),
            }],
        };
        store.save(&cp).unwrap();
        assert_eq!(store.load().unwrap(), Some(cp.clone()));
        assert_eq!(
            cp.schema_tracker()
                .get(&TableId::new("shop", "t"))
                .unwrap()
                .columns
                .len(),
            2
        );
        std::fs::write(store.path(), b"{not json").unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(
            err.contains("checkpoint.json: not a binlake checkpoint"),
            "{err}"
        );
    }
}
