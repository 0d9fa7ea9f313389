//! The embedded channel as a record source: records the source hands over in-process, a flush
//! answered once the lake has committed everything before it, and the end when the source
//! stops.

use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use super::sink::{run_sink, Next, RecordSource, SinkStats};
use super::PipelineError;
use crate::lake::gold_schedule::GoldSchedule;
use crate::lake::writer::LakeWriter;
use crate::metrics::Metrics;
use crate::transport::embedded::{Handoff, HandoffReceiver};

struct EmbeddedRecords {
    input: HandoffReceiver,
}

impl RecordSource for EmbeddedRecords {
    fn next(&mut self, wait: Duration) -> Result<Next, PipelineError> {
        Ok(match self.input.recv_timeout(wait) {
            Ok(Handoff::Record(r)) => Next::Record(r),
            Ok(Handoff::Flush(ack)) => Next::Flush(ack),
            Ok(Handoff::Mark(ack)) => Next::Mark(ack),
            Ok(Handoff::End) | Err(RecvTimeoutError::Disconnected) => Next::End,
            Err(RecvTimeoutError::Timeout) => Next::Idle,
        })
    }
}

/// Applies records handed over in-process until the source ends.
pub async fn sink_embedded(
    writer: &mut LakeWriter,
    input: HandoffReceiver,
    gold: Option<&mut GoldSchedule>,
    metrics: Option<&Metrics>,
) -> Result<SinkStats, PipelineError> {
    run_sink(writer, &mut EmbeddedRecords { input }, gold, metrics).await
}
