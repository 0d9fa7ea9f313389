//! Wires the stages for the `sink` and `run` commands: records from a [`RecordSource`] (Kafka
//! or the embedded channel) are batched by `[lake] max_rows`, `max_batch_bytes`,
//! `max_latency_ms` and `busy_latency_ms`, applied by the
//! lake writer, and only then acknowledged (Kafka offsets committed, the source's flush
//! answered), so nothing is acknowledged that is not in the lake. One loop ([`sink::run_sink`])
//! serves both sources.

mod embedded;
mod kafka;
pub mod sink;

pub use embedded::sink_embedded;
pub use kafka::{sink_kafka, SinkOptions};
pub use sink::{Next, RecordSource, SinkStats};

use crate::lake::LakeError;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("transport: {0}")]
    Transport(String),
    /// Tables stopped on changes the lake cannot take (`[lake] on_unappliable = "stop"`).
    #[error("{0}")]
    Stopped(String),
}
