//! The embedded transport: the source and the lake writer in one process, joined by a bounded
//! channel of records (the same records Kafka would carry). The source's checkpoint waits until
//! the lake has committed everything sent before it, so the binlog position the checkpoint
//! records is never ahead of the lake.
//!
//! The channel is bounded twice: by records, and by the bytes of their keys and values, so that
//! rows of a megabyte each do not pile up twenty thousand deep in memory when the lake falls
//! behind.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
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

/// Bytes of record keys and values in flight between the two halves; the source blocks when
/// they would go over (a record larger than this alone still goes, on its own).
pub const CHANNEL_BYTES: usize = 4 << 20;

/// The record bytes sent and not yet taken, shared by the two ends.
#[derive(Default)]
struct InFlight {
    state: Mutex<Gate>,
    taken: Condvar,
}

#[derive(Default)]
struct Gate {
    bytes: usize,
    /// The source waits for room: the lake side wakes it when it takes a record.
    waiting: bool,
    /// The lake side has gone.
    closed: bool,
}

/// Sends records and signals to the lake side.
pub struct HandoffSender {
    tx: SyncSender<Handoff>,
    in_flight: Arc<InFlight>,
}

/// The lake side's end of the channel.
pub struct HandoffReceiver {
    rx: Receiver<Handoff>,
    in_flight: Arc<InFlight>,
}

/// The channel is closed: the lake side has gone.
#[derive(Debug)]
pub struct Closed;

fn record_bytes(handoff: &Handoff) -> usize {
    match handoff {
        Handoff::Record(r) => r.payload_bytes(),
        _ => 0,
    }
}

impl HandoffSender {
    /// Sends `handoff`, first waiting while the records in flight would go over
    /// [`CHANNEL_BYTES`] with it.
    pub fn send(&self, handoff: Handoff) -> Result<(), Closed> {
        let bytes = record_bytes(&handoff);
        if bytes > 0 {
            let mut gate = self.in_flight.state.lock().map_err(|_| Closed)?;
            while gate.bytes > 0 && gate.bytes + bytes > CHANNEL_BYTES && !gate.closed {
                gate.waiting = true;
                gate = self.in_flight.taken.wait(gate).map_err(|_| Closed)?;
            }
            gate.waiting = false;
            if gate.closed {
                return Err(Closed);
            }
            gate.bytes += bytes;
        }
        self.tx.send(handoff).map_err(|_| Closed)
    }
}

impl HandoffReceiver {
    /// The next handoff, waiting up to `wait`.
    pub fn recv_timeout(&self, wait: Duration) -> Result<Handoff, RecvTimeoutError> {
        let handoff = self.rx.recv_timeout(wait)?;
        let bytes = record_bytes(&handoff);
        if bytes > 0 {
            if let Ok(mut gate) = self.in_flight.state.lock() {
                gate.bytes -= bytes;
                if gate.waiting {
                    self.in_flight.taken.notify_one();
                }
            }
        }
        Ok(handoff)
    }
}

impl Drop for HandoffReceiver {
    fn drop(&mut self) {
        if let Ok(mut gate) = self.in_flight.state.lock() {
            gate.closed = true;
        }
        self.in_flight.taken.notify_one();
    }
}

pub fn channel() -> (HandoffSender, HandoffReceiver) {
    let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_CAPACITY);
    let in_flight = Arc::new(InFlight::default());
    (
        HandoffSender {
            tx,
            in_flight: in_flight.clone(),
        },
        HandoffReceiver { rx, in_flight },
    )
}

/// The source's side.
pub struct EmbeddedOutput {
    tx: HandoffSender,
    encoder: RecordEncoder,
    prefix: String,
    now_ms: u64,
    flush_timeout: Duration,
}

impl EmbeddedOutput {
    pub fn new(tx: HandoffSender, topic_prefix: &str, flush_timeout: Duration) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record_of(bytes: usize) -> Handoff {
        Handoff::Record(Record {
            topic: "binlake.shop.t".into(),
            partition: 0,
            offset: None,
            key: Some(vec![b'k'; 10]),
            value: Some(vec![b'v'; bytes - 10]),
            schema_id: None,
            schema: None,
        })
    }

    fn value_len(handoff: Handoff) -> usize {
        match handoff {
            Handoff::Record(r) => r.value.unwrap().len(),
            _ => panic!("not a record"),
        }
    }

    /// Sends a 100-byte record on a thread of its own; the receiver hears when it went.
    fn send_aside(
        tx: HandoffSender,
    ) -> (
        std::thread::JoinHandle<HandoffSender>,
        std::sync::mpsc::Receiver<()>,
    ) {
        let (sent_tx, sent_rx) = std::sync::mpsc::channel();
        let sender = std::thread::spawn(move || {
            tx.send(record_of(100)).unwrap();
            sent_tx.send(()).unwrap();
            tx
        });
        (sender, sent_rx)
    }

    /// Records fill the byte budget; the next waits until the lake side takes one, and then
    /// goes.
    #[test]
    fn the_source_waits_while_records_in_flight_hold_the_byte_budget() {
        let (tx, rx) = channel();
        tx.send(record_of(CHANNEL_BYTES / 2)).unwrap();
        tx.send(record_of(CHANNEL_BYTES / 2)).unwrap();
        let (sender, sent_rx) = send_aside(tx);
        assert_eq!(
            sent_rx.recv_timeout(Duration::from_millis(300)),
            Err(RecvTimeoutError::Timeout)
        );
        let taken = rx.recv_timeout(Duration::from_secs(1)).unwrap();
        assert_eq!(value_len(taken), CHANNEL_BYTES / 2 - 10);
        sent_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        sender.join().unwrap();
        let lens: Vec<usize> = (0..2)
            .map(|_| value_len(rx.recv_timeout(Duration::from_secs(1)).unwrap()))
            .collect();
        assert_eq!(lens, [CHANNEL_BYTES / 2 - 10, 90]);
        assert_eq!(rx.in_flight.state.lock().unwrap().bytes, 0);
    }

    /// A record larger than the whole budget goes when the channel is empty, on its own.
    #[test]
    fn a_record_larger_than_the_budget_goes_alone() {
        let (tx, rx) = channel();
        tx.send(record_of(CHANNEL_BYTES * 2)).unwrap();
        let (sender, sent_rx) = send_aside(tx);
        assert_eq!(
            sent_rx.recv_timeout(Duration::from_millis(300)),
            Err(RecvTimeoutError::Timeout)
        );
        let taken = rx.recv_timeout(Duration::from_secs(1)).unwrap();
        assert_eq!(value_len(taken), CHANNEL_BYTES * 2 - 10);
        sent_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let _tx = sender.join().unwrap();
        assert_eq!(rx.in_flight.state.lock().unwrap().bytes, 100);
    }

    /// A source waiting for room learns that the lake side has gone instead of waiting forever.
    #[test]
    fn a_waiting_source_is_told_when_the_lake_side_goes() {
        let (tx, rx) = channel();
        tx.send(record_of(CHANNEL_BYTES)).unwrap();
        let sender = std::thread::spawn(move || tx.send(record_of(100)).is_err());
        std::thread::sleep(Duration::from_millis(100));
        drop(rx);
        assert!(
            sender.join().unwrap(),
            "the send should fail once the taker is gone"
        );
    }
}
