//! Kafka as a record source: a consumer group's records; offsets committed to the group once
//! the lake holds them; with `--exit-when-caught-up`, finished at the end the topics had at
//! start (or, under `run`, when the source has finished).
//!
//! Several sinks may share one consumer group: Kafka assigns each its partitions, and a Delta
//! table written from two of them (a table's partitions split, or handed over at a rebalance
//! while the last batch is still being committed) stays exactly once because every binlake
//! commit goes in only on top of the version it was computed from (see
//! `lake::writer::LakeWriter`): the loser reloads the table, skips what the winner applied, and
//! commits the rest. See docs/exactly-once.md.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::sink::{run_sink, Next, RecordSource, SinkStats};
use super::PipelineError;
use crate::event::TableId;
use crate::lake::gold_schedule::GoldSchedule;
use crate::lake::writer::LakeWriter;
use crate::metrics::Metrics;
use crate::transport::kafka::KafkaInput;
use crate::transport::record::{Offsets, Record};

/// When the sink stops on its own.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// Stop once everything that was in the topics at start is in the lake.
    pub exit_when_caught_up: bool,
    /// Set by `run` when its source has finished: the sink then takes the topics' ends at that
    /// moment as its target and stops on reaching them.
    pub source_done: Option<Arc<AtomicBool>>,
    /// Updated after every batch when `[metrics]` is on.
    pub metrics: Option<Metrics>,
}

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

struct KafkaRecords<'a> {
    input: &'a mut KafkaInput,
    options: &'a SinkOptions,
    stop: &'a AtomicBool,
    /// Where "caught up" is, once known.
    targets: Option<Offsets>,
    /// The next offset per partition the lake holds.
    consumed: Offsets,
    /// When the group's committed offsets were last read for "caught up" (other members apply
    /// the partitions this sink does not hold).
    group_checked: Option<std::time::Instant>,
    /// When the partitions still short of "caught up" were last logged.
    progress_logged: Option<std::time::Instant>,
    gaps: GapWatch,
}

/// How often a catching-up sink logs the partitions it has not reached yet.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Kafka deletes records by retention whether or not a consumer read them, and a consumer
/// whose position was deleted jumps to the oldest record left (`auto.offset.reset`): the
/// changes in between would be missing from the lake with nothing to show for it. The sink
/// knows, per partition, the next offset it must read (where the group's committed offset
/// puts the consumer, offset 0 without one, then what it consumed); a record beyond it means
/// records were deleted unread, and the sink stops, naming the partition and the offsets.
/// (binlake's topics are neither compacted nor transactional, so their offsets have no holes
/// of their own. The lake's own record is no guide here: a layer a batch did not change keeps
/// an older offset, and the group commits only what the lake holds.)
#[derive(Default)]
struct GapWatch {
    /// The next offset to read per `topic:partition`.
    next: Offsets,
    /// A partition not in `next` starts at offset 0: the group answered at start and has no
    /// committed offset for it. (When it did not answer, a partition's first record is taken
    /// as where reading starts.)
    unknown_start_at_zero: bool,
}

impl GapWatch {
    /// The offset `record` was expected at, when it lies beyond it (a gap, or a partition
    /// another member of the group applied up to there and handed over).
    fn beyond(&self, record: &Record) -> Option<i64> {
        let offset = record.offset?;
        let sp = crate::transport::record::SourcePartition::kafka(&record.topic, record.partition)
            .to_string();
        let expected = self
            .next
            .get(&sp)
            .or(self.unknown_start_at_zero.then_some(0))?;
        (offset > expected).then_some(expected)
    }

    fn accept(&mut self, record: &Record) {
        if let Some(offset) = record.offset {
            let sp =
                crate::transport::record::SourcePartition::kafka(&record.topic, record.partition);
            self.next.advance(sp, offset + 1);
        }
    }
}

impl RecordSource for KafkaRecords<'_> {
    async fn start(&mut self, writer: &mut LakeWriter) -> Result<(), PipelineError> {
        self.watch_gaps_from()?;
        if self.options.exit_when_caught_up && self.options.source_done.is_none() {
            let t = self
                .input
                .end_offsets(METADATA_TIMEOUT)
                .map_err(PipelineError::Transport)?;
            tracing::info!(
                partitions = t.len(),
                "sink: catching up to the current end of the topics"
            );
            // What earlier runs already applied: the tables' own record, and the group's
            // offsets (which also cover trailing tombstones no table records).
            self.consumed = already_applied(writer, self.input, &t).await?;
            self.targets = Some(t);
        }
        Ok(())
    }

    fn next(&mut self, wait: Duration) -> Result<Next, PipelineError> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(Next::End);
        }
        Ok(
            match self.input.poll(wait).map_err(PipelineError::Transport)? {
                Some(r) => {
                    self.check_gap(&r)?;
                    self.gaps.accept(&r);
                    Next::Record(r)
                }
                None => Next::Idle,
            },
        )
    }

    fn prepare(&mut self, batch: &mut [Record]) -> Result<(), PipelineError> {
        self.input
            .resolve_schemas(batch)
            .map_err(PipelineError::Transport)
    }

    fn applied(&mut self, batch: &[Record], held: &HashSet<String>) {
        let offsets = Offsets::after(batch);
        // The lake holds them: now the group may move on. The lake's own record is what
        // resuming trusts, so a failed group commit only costs re-reading (and skipping). A
        // stopped table's partitions stay where they are, so a restart reads its unapplied
        // changes again.
        let committable = if held.is_empty() {
            offsets.clone()
        } else {
            Offsets::after(batch.iter().filter(|r| !held.contains(&r.topic)))
        };
        if let Err(e) = self.input.commit(&committable) {
            tracing::warn!("{e}; the lake has the records, the group will re-read them");
        }
        self.consumed.advance_all(&offsets);
    }

    async fn finished(&mut self, writer: &mut LakeWriter) -> Result<bool, PipelineError> {
        if self.targets.is_none() {
            if let Some(done) = &self.options.source_done {
                if done.load(Ordering::Acquire) {
                    let t = self
                        .input
                        .end_offsets(METADATA_TIMEOUT)
                        .map_err(PipelineError::Transport)?;
                    let applied = already_applied(writer, self.input, &t).await?;
                    self.consumed.advance_all(&applied);
                    self.targets = Some(t);
                }
            }
        }
        let Some(t) = &self.targets else {
            return Ok(false);
        };
        if self.consumed.reached(t) {
            tracing::info!("sink: caught up");
            return Ok(true);
        }
        if self
            .progress_logged
            .is_none_or(|at| at.elapsed() >= PROGRESS_EVERY)
        {
            self.progress_logged = Some(std::time::Instant::now());
            let behind: Vec<String> = t
                .iter()
                .filter_map(|(sp, end)| {
                    let at = self.consumed.get(sp);
                    (at.is_none_or(|a| a < end)).then(|| match at {
                        Some(a) => format!("{sp} at {a} of {end}"),
                        None => format!("{sp} not read yet, end {end}"),
                    })
                })
                .collect();
            tracing::info!(
                partitions_behind = behind.len(),
                partitions = t.len(),
                "sink: catching up: {}{}",
                behind
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                if behind.len() > 5 { ", ..." } else { "" }
            );
        }
        // Other members of the group apply the partitions this sink does not hold: what they
        // committed counts too.
        if self
            .group_checked
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            self.group_checked = Some(std::time::Instant::now());
            match self.input.committed(t, Duration::from_secs(1)) {
                Ok(committed) => self.consumed.advance_all(&committed),
                Err(e) => tracing::debug!("{e}"),
            }
        }
        Ok(false)
    }
}

/// Consumes Kafka into the lake until stopped (or caught up, with the options).
pub async fn sink_kafka(
    writer: &mut LakeWriter,
    input: &mut KafkaInput,
    options: &SinkOptions,
    stop: &AtomicBool,
    gold: Option<&mut GoldSchedule>,
) -> Result<SinkStats, PipelineError> {
    let mut source = KafkaRecords {
        input,
        options,
        stop,
        targets: None,
        consumed: Offsets::default(),
        group_checked: None,
        progress_logged: None,
        gaps: GapWatch::default(),
    };
    run_sink(writer, &mut source, gold, options.metrics.as_ref()).await
}

impl KafkaRecords<'_> {
    /// Where each partition's reading starts: the group's committed offset, or 0.
    fn watch_gaps_from(&mut self) -> Result<(), PipelineError> {
        let targets = self
            .input
            .end_offsets(METADATA_TIMEOUT)
            .map_err(PipelineError::Transport)?;
        match self.input.committed(&targets, METADATA_TIMEOUT) {
            Ok(committed) => {
                self.gaps.next = committed;
                self.gaps.unknown_start_at_zero = true;
            }
            Err(e) => tracing::warn!(
                "{e}; each partition's first record is taken as where reading starts (a gap before it goes unseen)"
            ),
        }
        Ok(())
    }

    /// Errs when `record` lies beyond the next offset its partition must be read at, unless
    /// the group's committed offset has moved there: another member applied the partition up
    /// to it and the group handed it to this sink (a rebalance). Otherwise Kafka deleted
    /// records no member applied.
    fn check_gap(&mut self, record: &Record) -> Result<(), PipelineError> {
        let (Some(expected), Some(offset)) = (self.gaps.beyond(record), record.offset) else {
            return Ok(());
        };
        let sp = crate::transport::record::SourcePartition::kafka(&record.topic, record.partition);
        let mut wanted = Offsets::default();
        wanted.insert(&sp, offset);
        let committed = self
            .input
            .committed(&wanted, METADATA_TIMEOUT)
            .map_err(PipelineError::Transport)?
            .get(&sp.to_string());
        if committed.is_some_and(|c| c >= offset) {
            tracing::info!(topic = %record.topic, partition = record.partition, offset, "reading on where another member of the group left the partition");
            return Ok(());
        }
        Err(PipelineError::Transport(format!(
            "{} partition {}: the next record is at offset {offset}, but the lake has not applied offsets {expected}..{}: Kafka deleted them unread (retention, or a size limit), so their changes would be missing from the lake. Stop here rather than skip them: re-snapshot the topic's table (`binlake snapshot --table`) or restore the records, then start the sink again",
            record.topic,
            record.partition,
            offset - 1
        )))
    }
}

/// The next offset per partition of `targets` that is already applied: the larger of what the
/// lake's tables record and what the consumer group committed (when the group answers).
async fn already_applied(
    writer: &mut LakeWriter,
    input: &KafkaInput,
    targets: &Offsets,
) -> Result<Offsets, PipelineError> {
    let tables: Vec<TableId> = targets
        .iter()
        .filter_map(|(sp, _)| input.table_of(sp))
        .collect();
    let mut applied = writer.resume_offsets(&tables).await?;
    match input.committed(targets, Duration::from_secs(1)) {
        Ok(committed) => applied.advance_all(&committed),
        Err(e) => tracing::warn!("{e}; going by the lake's own offsets"),
    }
    Ok(applied)
}
