//! Everything that speaks MySQL: reading binlog files, parsing binlog events (MySQL and
//! MariaDB), decoding row images into typed values with the table's schema, and tracking that
//! schema through DDL. The output of this stage is a stream of [`crate::event::ChangeEvent`]s.

pub mod binlog_file;
pub mod charset;
pub mod check;
pub mod checkpoint;
pub mod column_policy;
pub mod config;
pub mod cursor;
pub mod decoder;
pub mod durable;
pub mod events;
pub mod flavor;
pub mod gtid;
pub mod jsonb;
pub mod managed;
mod progress;
pub mod read_only;
pub mod reconcile;
pub mod replication;
pub mod rows;
pub mod schema;
pub mod server;
pub mod signals;
pub mod snapshot;
pub mod snapshot_chunk;
mod snapshot_start;
pub mod table_map;
pub mod tls;
pub mod watermark;

use thiserror::Error;

pub use binlog_file::{BinlogFileReader, EventHeader};
pub use decoder::BinlogDecoder;

use crate::event::ChangeEvent;
use checkpoint::CheckpointError;
use decoder::Commit;

/// A malformed piece of an event: what was wrong, without the file or event it was in; the
/// caller that knows those wraps it into a [`BinlogError`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct Malformed(pub String);

impl Malformed {
    pub fn new(reason: impl Into<String>) -> Self {
        Malformed(reason.into())
    }
}

/// Errors reading or decoding a binlog, each naming the file, byte offset and event type.
#[derive(Debug, Error)]
pub enum BinlogError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{file}: not a binlog file: expected the magic bytes fe 62 69 6e at byte 0, found {found}"
    )]
    NotABinlog { file: String, found: String },
    #[error("{file} at byte {offset}: truncated {what}: needed {needed} bytes, the file has {available} more")]
    Truncated {
        file: String,
        offset: u64,
        what: String,
        needed: u64,
        available: u64,
    },
    #[error("{file} at byte {offset}: {event} event: {reason}")]
    Malformed {
        file: String,
        offset: u64,
        event: String,
        reason: String,
    },
    #[error("{file} at byte {offset}: {event} event: checksum mismatch (stored {stored:08x}, computed {computed:08x}); the file is corrupted")]
    Checksum {
        file: String,
        offset: u64,
        event: String,
        stored: u32,
        computed: u32,
    },
    #[error("{file} at byte {offset}: unknown event type {type_code} that is not marked ignorable; binlake cannot skip it safely")]
    UnknownEvent {
        file: String,
        offset: u64,
        type_code: u8,
    },
    #[error("schema file {file}: {reason}")]
    Schema { file: String, reason: String },
}

/// Where change events go: an output that can make what it received durable.
pub trait SourceOutput {
    fn change(&mut self, event: &ChangeEvent<'_>) -> Result<(), String>;
    /// A transaction committed; its changes came before.
    fn commit(&mut self, _commit: &Commit) -> Result<(), String> {
        Ok(())
    }
    /// The server's heartbeat while the binlog is idle, with the position it reports.
    fn heartbeat(&mut self, _file: &str, _pos: u64) -> Result<(), String> {
        Ok(())
    }
    /// Makes every change received so far durable (flushed and synced, or acknowledged).
    fn make_durable(&mut self) -> Result<(), String>;
    /// Asks for every change received so far to be made durable, and returns without waiting
    /// where the output can answer later; the source reads on meanwhile.
    fn make_durable_later(&mut self) -> Result<durable::Durable, String> {
        self.make_durable().map(|()| durable::Durable::Done)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url}: {what}: {reason}")]
    Server {
        url: String,
        what: String,
        reason: String,
    },
    #[error("{url}: the binlog to resume from ({position}) is no longer on the server: {message}. The changes after the checkpoint are lost to binlog capture; recover with a new snapshot: move {checkpoint} away and start again with snapshot = \"initial\"")]
    Purged {
        url: String,
        position: String,
        message: String,
        checkpoint: String,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Binlog(#[from] BinlogError),
    #[error("output: {0}")]
    Output(String),
}
