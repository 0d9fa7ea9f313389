//! Kafka as a record source: a consumer group's records; offsets committed to the group once
//! the lake holds them; with `--exit-when-caught-up`, finished at the end the topics had at
//! start (or, under `run`, when the source has finished).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::sink::{run_sink, Next, RecordSource, SinkStats};
use super::PipelineError;
use crate::event::TableId;
use crate::lake::gold::GoldSchedule;
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

/// How often the sink looks at its consumer group's members (see [`GroupWatch`]).
const MEMBERS_CHECK_EVERY: Duration = Duration::from_secs(10);

/// Checks in a row that must see another member before the sink stops: longer than a
/// SIGKILLed sink stays in the group (`session.timeout.ms`, 10 s by default here).
const MEMBERS_CHECKS: u32 = 4;

/// Several sinks in one consumer group would write the same Delta tables from two processes
/// (a table's partitions split between them, or handed over at a rebalance while the last
/// batch is still being committed), and their exactly-once records (the offsets in each
/// commit) would overwrite each other. Until binlake assigns whole tables to members and
/// fences handovers, a sink that keeps seeing another member in its group stops, naming it.
///
/// A broker that cannot describe groups (librdkafka's mock cluster) is watched through the
/// assignment instead: a table topic whose partitions this sink does not all hold, long after
/// it joined, is held by another member.
#[derive(Default)]
struct GroupWatch {
    last_check: Option<std::time::Instant>,
    /// Checks in a row that saw another member.
    crowded: u32,
    /// The broker does not describe groups: watch the assignment.
    by_assignment: bool,
}

struct KafkaRecords<'a> {
    input: &'a mut KafkaInput,
    options: &'a SinkOptions,
    stop: &'a AtomicBool,
    /// Where "caught up" is, once known.
    targets: Option<Offsets>,
    /// The next offset per partition the lake holds.
    consumed: Offsets,
    group: GroupWatch,
    gaps: GapWatch,
}

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
    fn check(&mut self, record: &Record) -> Result<(), PipelineError> {
        let Some(offset) = record.offset else {
            return Ok(());
        };
        let sp = crate::transport::record::SourcePartition::kafka(&record.topic, record.partition)
            .to_string();
        let expected = self
            .next
            .get(&sp)
            .or(self.unknown_start_at_zero.then_some(0));
        if let Some(expected) = expected {
            if offset > expected {
                return Err(PipelineError::Transport(format!(
                    "{} partition {}: the next record is at offset {offset}, but the lake has not applied offsets {expected}..{}: Kafka deleted them unread (retention, or a size limit), so their changes would be missing from the lake. Stop here rather than skip them: re-snapshot the topic's table (`binlake snapshot --table`) or restore the records, then start the sink again",
                    record.topic,
                    record.partition,
                    offset - 1
                )));
            }
        }
        self.next.advance(&sp, offset + 1);
        Ok(())
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
        self.check_alone_in_group()?;
        Ok(
            match self.input.poll(wait).map_err(PipelineError::Transport)? {
                Some(r) => {
                    self.gaps.check(&r)?;
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
        if let Some(t) = &self.targets {
            if self.consumed.reached(t) {
                tracing::info!("sink: caught up");
                return Ok(true);
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
        group: GroupWatch::default(),
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

    /// Errs when another member has been in this sink's consumer group at
    /// [`MEMBERS_CHECKS`] checks in a row.
    fn check_alone_in_group(&mut self) -> Result<(), PipelineError> {
        let now = std::time::Instant::now();
        if self
            .group
            .last_check
            .is_some_and(|t| now.duration_since(t) < MEMBERS_CHECK_EVERY)
        {
            return Ok(());
        }
        self.group.last_check = Some(now);
        let others = if self.group.by_assignment {
            self.input
                .table_topics_not_held(METADATA_TIMEOUT)
                .map(|topics| {
                    (!topics.is_empty())
                        .then(|| format!("another member holds {}", topics.join(", ")))
                })
        } else {
            match self.input.group_members(METADATA_TIMEOUT) {
                Ok(None) => {
                    tracing::debug!(
                        "the broker cannot describe consumer groups: watching the assignment instead"
                    );
                    self.group.by_assignment = true;
                    self.group.last_check = None;
                    return Ok(());
                }
                result => result.map(|members| {
                    let members = members.unwrap_or_default();
                    (members.len() > 1).then(|| {
                        format!("it has {} members ({})", members.len(), members.join(", "))
                    })
                }),
            }
        };
        let others = match others {
            Ok(others) => others,
            Err(e) => {
                tracing::warn!("{e}; looking again in {MEMBERS_CHECK_EVERY:?}");
                return Ok(());
            }
        };
        let Some(others) = others else {
            self.group.crowded = 0;
            return Ok(());
        };
        self.group.crowded += 1;
        if self.group.crowded < MEMBERS_CHECKS {
            return Ok(());
        }
        Err(PipelineError::Transport(format!(
            "consumer group {}: {others}. Another binlake sink shares the group, and two processes writing one Delta table would break its exactly-once record. Run one sink per group (`[transport] group_id`)",
            self.input.group_id()
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
