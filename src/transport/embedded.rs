//! The embedded transport: the source and the lake writer in one process, joined by a bounded
//! channel of records (the same records Kafka would carry). The source's checkpoint waits until
//! the lake has committed everything sent before it, so the binlog position the checkpoint
//! records is never ahead of the lake.

use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Duration;

use super::record::{table_topic, Record, RecordEncoder};
use crate::event::{now_ms, ChangeEvent};
use crate::mysql::durable::Durable;
use crate::mysql::SourceOutput;

/// What travels on the channel.
pub enum Handoff {
    Record(Record),
    /// Commit everything received so far, then answer.
    Flush(SyncSender<Result<(), String>>),
    /// Answer once everything received so far is committed, in the lake's own time.
    Mark(SyncSender<Result<(), String>>),
    /// The source has stopped (caught up, or asked to); nothing more will come.
    End,
}

/// Records in flight between the two halves; the source blocks when the lake falls behind.
pub const CHANNEL_CAPACITY: usize = 20_000;

pub fn channel() -> (SyncSender<Handoff>, Receiver<Handoff>) {
    std::sync::mpsc::sync_channel(CHANNEL_CAPACITY)
}

/// The source's side.
pub struct EmbeddedOutput {
    tx: SyncSender<Handoff>,
    encoder: RecordEncoder,
    prefix: String,
    now_ms: u64,
    flush_timeout: Duration,
}

impl EmbeddedOutput {
    pub fn new(tx: SyncSender<Handoff>, topic_prefix: &str, flush_timeout: Duration) -> Self {
        EmbeddedOutput {
            tx,
            // Tombstones only matter to Kafka's log compaction.
            encoder: RecordEncoder::new(topic_prefix, false),
            prefix: topic_prefix.to_string(),
            now_ms: now_ms(),
            flush_timeout,
        }
    }

    /// Tells the lake side that no more records will come.
    pub fn finish(&self) {
        let _ = self.tx.send(Handoff::End);
    }
}

/// Who takes the records, for errors about what it did not take or answer.
const WRITER: &str = "the lake writer";

impl SourceOutput for EmbeddedOutput {
    fn change(&mut self, event: &ChangeEvent<'_>) -> Result<(), String> {
        let topic = table_topic(&self.prefix, &event.table.id);
        let tx = &self.tx;
        self.encoder.encode(event, self.now_ms, &mut |key, value| {
            tx.send(Handoff::Record(Record {
                topic: topic.clone(),
                partition: 0,
                offset: None,
                key: key.map(<[u8]>::to_vec),
                value: value.map(<[u8]>::to_vec),
                schema_id: None,
                schema: Some(event.table.clone()),
            }))
            .map_err(|_| format!("{WRITER} stopped"))
        })
    }

    fn make_durable(&mut self) -> Result<(), String> {
        self.now_ms = now_ms();
        let (ack_tx, ack_rx) = std::sync::mpsc::sync_channel(1);
        self.tx
            .send(Handoff::Flush(ack_tx))
            .map_err(|_| format!("{WRITER} stopped"))?;
        match ack_rx.recv_timeout(self.flush_timeout) {
            Ok(result) => result,
            Err(_) => Err(format!(
                "the lake did not commit within {:?}",
                self.flush_timeout
            )),
        }
    }

    fn make_durable_later(&mut self) -> Result<Durable, String> {
        self.now_ms = now_ms();
        let (ack_tx, ack_rx) = std::sync::mpsc::sync_channel(1);
        self.tx
            .send(Handoff::Mark(ack_tx))
            .map_err(|_| format!("{WRITER} stopped"))?;
        Ok(Durable::Later {
            answer: ack_rx,
            asked_at: std::time::Instant::now(),
            timeout: self.flush_timeout,
            from: WRITER,
        })
    }
}
