//! The offline replay: binlog files → decoder → Debezium JSON lines on a writer, or into any
//! source output (Kafka, the embedded channel) as if a live server had sent them. The same
//! decoder the live source uses; this module only wires files to it.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use crate::envelope::{Envelope, EnvelopeOptions};
use crate::event::ChangeEvent;
use crate::mysql::decoder::{Ddl, DecodeSink};
use crate::mysql::events::event_type_name;
use crate::mysql::schema::SchemaTracker;
use crate::mysql::SourceOutput;
use crate::mysql::{BinlogDecoder, BinlogError, BinlogFileReader};

/// Options of one replay run.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Files of CREATE TABLE statements for binlogs whose table maps carry no column names.
    pub schema_files: Vec<PathBuf>,
    pub envelope: EnvelopeOptions,
    /// Skip CRC32 verification.
    pub no_verify_checksums: bool,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    pub files: usize,
    pub events: u64,
    pub changes: u64,
    pub commits: u64,
    pub ddl: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Binlog(#[from] BinlogError),
    #[error("writing the output: {0}")]
    Output(#[source] std::io::Error),
    #[error("output: {0}")]
    Transport(String),
}

/// A decode sink that counts what a replay did.
trait ReplaySink: DecodeSink<Error = ReplayError> {
    fn stats(&mut self) -> &mut ReplayStats;
    fn set_display(&mut self, display: String);
}

impl<W: Write> ReplaySink for NdjsonSink<'_, W> {
    fn stats(&mut self) -> &mut ReplayStats {
        &mut self.stats
    }
    fn set_display(&mut self, display: String) {
        self.display = display;
    }
}

/// Hands decoded changes to a source output.
struct OutputSink<'o, O: SourceOutput> {
    output: &'o mut O,
    stats: ReplayStats,
}

impl<O: SourceOutput> DecodeSink for OutputSink<'_, O> {
    type Error = ReplayError;

    fn change(&mut self, event: &ChangeEvent<'_>) -> Result<(), ReplayError> {
        self.output.change(event).map_err(ReplayError::Transport)?;
        self.stats.changes += 1;
        Ok(())
    }

    fn commit(&mut self, commit: &crate::mysql::decoder::Commit) -> Result<(), ReplayError> {
        self.output.commit(commit).map_err(ReplayError::Transport)?;
        self.stats.commits += 1;
        Ok(())
    }

    fn ddl(&mut self, _ddl: &Ddl) -> Result<(), ReplayError> {
        self.stats.ddl += 1;
        Ok(())
    }
}

impl<O: SourceOutput> ReplaySink for OutputSink<'_, O> {
    fn stats(&mut self) -> &mut ReplayStats {
        &mut self.stats
    }
    fn set_display(&mut self, _display: String) {}
}

/// Replays one binlog held in memory into `output` (Kafka, the embedded channel), then makes
/// the output durable.
pub fn replay_bytes_into<O: SourceOutput>(
    name: &str,
    bytes: &[u8],
    options: &ReplayOptions,
    output: &mut O,
) -> Result<ReplayStats, ReplayError> {
    let reader = BinlogFileReader::from_reader(
        name.to_string(),
        name.to_string(),
        Box::new(std::io::Cursor::new(bytes.to_vec())),
    )?;
    let mut decoder = BinlogDecoder::new(Arc::from(""), schema_tracker(options)?);
    let mut sink = OutputSink {
        output,
        stats: ReplayStats::default(),
    };
    replay_one(reader, options, &mut decoder, &mut sink)?;
    sink.output.make_durable().map_err(ReplayError::Transport)?;
    Ok(sink.stats)
}

fn schema_tracker(options: &ReplayOptions) -> Result<SchemaTracker, ReplayError> {
    let mut schemas = SchemaTracker::new();
    for f in &options.schema_files {
        let n = schemas.load_sql_file(f)?;
        tracing::info!(file = %f.display(), tables = n, "loaded schema");
    }
    Ok(schemas)
}

struct NdjsonSink<'w, W: Write> {
    out: &'w mut W,
    buf: Vec<u8>,
    envelope: Envelope,
    display: String,
    stats: ReplayStats,
}

impl<W: Write> DecodeSink for NdjsonSink<'_, W> {
    type Error = ReplayError;

    fn change(&mut self, event: &ChangeEvent<'_>) -> Result<(), ReplayError> {
        self.buf.clear();
        // Offline there is no processing time that means anything: ts_ms is the event time,
        // which also keeps the output of a replay reproducible.
        self.envelope
            .write(event, event.source.ts_ms, &mut self.buf)
            .map_err(|m| BinlogError::Malformed {
                file: self.display.clone(),
                offset: event.position.pos,
                event: format!("row {} of {}", event.position.row, event.table.id),
                reason: m.0,
            })?;
        self.buf.push(b'\n');
        self.out.write_all(&self.buf).map_err(ReplayError::Output)?;
        self.stats.changes += 1;
        Ok(())
    }

    fn commit(&mut self, _commit: &crate::mysql::decoder::Commit) -> Result<(), ReplayError> {
        self.stats.commits += 1;
        Ok(())
    }

    fn ddl(&mut self, ddl: &Ddl) -> Result<(), ReplayError> {
        tracing::debug!(db = %ddl.db, position = %ddl.position, "DDL: {}", ddl.sql);
        self.stats.ddl += 1;
        Ok(())
    }
}

/// Replays `files` in order into `out`, one JSON object per row change. On error, every change
/// before the faulty event has been written (and `out` flushed).
pub fn replay_files<W: Write>(
    files: &[PathBuf],
    options: &ReplayOptions,
    out: &mut W,
) -> Result<ReplayStats, ReplayError> {
    replay_sources(
        files.iter().map(|p| BinlogFileReader::open(p)),
        options,
        out,
    )
}

/// Replays one binlog held in memory (tests, fuzzing); `name` is the binlog file name.
pub fn replay_bytes<W: Write>(
    name: &str,
    bytes: &[u8],
    options: &ReplayOptions,
    out: &mut W,
) -> Result<ReplayStats, ReplayError> {
    let reader = BinlogFileReader::from_reader(
        name.to_string(),
        name.to_string(),
        Box::new(std::io::Cursor::new(bytes.to_vec())),
    );
    replay_sources(std::iter::once(reader), options, out)
}

fn replay_sources<W: Write>(
    sources: impl Iterator<Item = Result<BinlogFileReader, BinlogError>>,
    options: &ReplayOptions,
    out: &mut W,
) -> Result<ReplayStats, ReplayError> {
    let mut decoder = BinlogDecoder::new(Arc::from(""), schema_tracker(options)?);
    let mut sink = NdjsonSink {
        out,
        buf: Vec::with_capacity(4096),
        envelope: Envelope::new(&options.envelope),
        display: String::new(),
        stats: ReplayStats::default(),
    };
    let result = (|| -> Result<(), ReplayError> {
        for reader in sources {
            replay_one(reader?, options, &mut decoder, &mut sink)?;
        }
        Ok(())
    })();
    let flushed = sink.out.flush().map_err(ReplayError::Output);
    result?;
    flushed?;
    Ok(sink.stats)
}

fn replay_one<S: ReplaySink>(
    mut reader: BinlogFileReader,
    options: &ReplayOptions,
    decoder: &mut BinlogDecoder,
    sink: &mut S,
) -> Result<(), ReplayError> {
    reader.set_verify_checksums(!options.no_verify_checksums);
    let display = reader.display_name().to_string();
    decoder.start_file(reader.name().clone(), display.clone());
    sink.set_display(display);
    sink.stats().files += 1;
    while let Some(ev) = reader.next_event()? {
        sink.stats().events += 1;
        sink.stats().bytes += ev.header.event_size as u64;
        tracing::trace!(offset = ev.offset, event = %event_type_name(ev.header.type_code));
        decoder.decode(&ev.header, ev.body, ev.offset, sink)?;
    }
    Ok(())
}
