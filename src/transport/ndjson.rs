//! The NDJSON transport: Debezium JSON lines appended to a file (or written to stdout). Making
//! it durable means flushing and fsyncing the file, which the source does before every
//! checkpoint, so a checkpointed position never runs ahead of the file.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::envelope::{Envelope, EnvelopeOptions};
use crate::event::now_ms;
use crate::event::ChangeEvent;
use crate::mysql::SourceOutput;

enum Target {
    /// A regular file, fsynced to make it durable.
    File(BufWriter<File>),
    /// A pipe, a device (`/dev/null`) or stdout: flushed, with nothing to sync.
    Stream(BufWriter<Box<dyn Write + Send>>),
}

pub struct NdjsonOutput {
    target: Target,
    display: String,
    envelope: Envelope,
    buf: Vec<u8>,
    /// Processing time for `ts_ms`, refreshed every 256 changes: reading the clock per change
    /// cost 2% of capture time, and the value moves by well under a millisecond in between.
    now_ms: u64,
    changes_since_clock: u32,
}

impl NdjsonOutput {
    /// `path` `-` is stdout; anything else is a file opened for appending.
    pub fn open(path: &str, envelope: &EnvelopeOptions) -> std::io::Result<NdjsonOutput> {
        let target = if path == "-" {
            Target::Stream(BufWriter::with_capacity(
                1 << 20,
                Box::new(std::io::stdout()),
            ))
        } else {
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            if file.metadata()?.is_file() {
                Target::File(BufWriter::with_capacity(1 << 20, file))
            } else {
                Target::Stream(BufWriter::with_capacity(1 << 20, Box::new(file)))
            }
        };
        Ok(NdjsonOutput {
            target,
            display: path.to_string(),
            envelope: Envelope::new(envelope),
            buf: Vec::with_capacity(4096),
            now_ms: now_ms(),
            changes_since_clock: 0,
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match &mut self.target {
            Target::File(w) => w,
            Target::Stream(w) => w,
        }
    }
}

impl SourceOutput for NdjsonOutput {
    fn change(&mut self, event: &ChangeEvent<'_>) -> Result<(), String> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if self.changes_since_clock >= 256 {
            self.now_ms = now_ms();
            self.changes_since_clock = 0;
        }
        self.changes_since_clock += 1;
        let encoded = self.envelope.write(event, self.now_ms, &mut buf);
        let result = encoded
            .map_err(|m| format!("{} at {}: {m}", event.table.id, event.position))
            .and_then(|()| {
                buf.push(b'\n');
                self.writer()
                    .write_all(&buf)
                    .map_err(|e| format!("{}: {e}", self.display))
            });
        self.buf = buf;
        result
    }

    fn make_durable(&mut self) -> Result<(), String> {
        self.changes_since_clock = u32::MAX;
        let display = self.display.clone();
        match &mut self.target {
            Target::File(w) => {
                w.flush().map_err(|e| format!("{display}: {e}"))?;
                w.get_ref()
                    .sync_data()
                    .map_err(|e| format!("{display}: fsync: {e}"))
            }
            Target::Stream(w) => w.flush().map_err(|e| format!("{display}: {e}")),
        }
    }
}
