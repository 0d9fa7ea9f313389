//! Wires the stages for the `sink` and `run` commands: records from a transport input (Kafka
//! or the embedded channel) are batched by `[lake] max_rows` / `max_latency_ms`, applied by the
//! lake writer, and only then acknowledged (Kafka offsets committed, the source's flush
//! answered), so nothing is acknowledged that is not in the lake.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::TableId;
use crate::lake::gold::GoldSchedule;
use crate::lake::writer::{LakeMetrics, LakeWriter};
use crate::lake::LakeError;
use crate::metrics::Metrics;
use crate::transport::embedded::Handoff;
use crate::transport::kafka_input::KafkaInput;
use crate::transport::record::Record;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("transport: {0}")]
    Transport(String),
}

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

/// Reports one applied batch to the metrics.
fn observe(metrics: Option<&Metrics>, writer: &LakeWriter, before: &LakeMetrics, records: usize) {
    let Some(m) = metrics else {
        return;
    };
    let now = &writer.metrics;
    m.records.inc_by(records as u64);
    m.changes_applied
        .inc_by(now.changes_applied - before.changes_applied);
    m.dead_letters
        .inc_by(now.dead_letters - before.dead_letters);
    m.commits.inc_by(now.commits - before.commits);
    m.batch_seconds.observe(now.last_batch.as_secs_f64());
    if now.newest_source_ts_ms > 0 {
        let lag = (crate::event::now_ms() as i64 - now.newest_source_ts_ms).max(0);
        m.lag_seconds.set(lag as f64 / 1000.0);
    }
    for (table, (changes, newest)) in &now.tables {
        let earlier = before.tables.get(table).map_or(0, |(c, _)| *c);
        if *changes > earlier {
            m.record_table(table, changes - earlier, *newest);
        }
    }
}

/// The `db.table`s of a batch's records, from their topics (`<prefix>.<db>.<table>`).
fn touched_tables(batch: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in batch {
        let mut parts = r.topic.rsplitn(3, '.');
        if let (Some(table), Some(db)) = (parts.next(), parts.next()) {
            let t = format!("{db}.{table}");
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// What a sink run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkStats {
    pub records: u64,
    pub batches: u64,
}

fn reached(consumed: &BTreeMap<String, i64>, targets: &BTreeMap<String, i64>) -> bool {
    targets
        .iter()
        .all(|(sp, end)| consumed.get(sp).is_some_and(|c| c >= end))
}

/// Consumes Kafka into the lake until stopped (or caught up, with the options).
pub async fn sink_kafka(
    writer: &mut LakeWriter,
    input: &mut KafkaInput,
    options: &SinkOptions,
    stop: &AtomicBool,
    mut gold: Option<&mut GoldSchedule>,
) -> Result<SinkStats, PipelineError> {
    let timeout = Duration::from_secs(10);
    let mut targets = if options.exit_when_caught_up && options.source_done.is_none() {
        let t = input
            .end_offsets(timeout)
            .map_err(PipelineError::Transport)?;
        tracing::info!(
            partitions = t.len(),
            "sink: catching up to the current end of the topics"
        );
        Some(t)
    } else {
        None
    };
    // What earlier runs already applied: the tables' own record, and the group's offsets
    // (which also cover trailing tombstones no table records).
    let mut consumed: BTreeMap<String, i64> = BTreeMap::new();
    if let Some(t) = &targets {
        consumed = already_applied(writer, input, t, timeout).await?;
    }
    let max_rows = writer.settings().max_rows;
    let max_latency = writer.settings().max_latency;
    let mut batch: Vec<Record> = Vec::with_capacity(max_rows.min(100_000));
    let mut first_at: Option<Instant> = None;
    let mut stats = SinkStats::default();
    loop {
        // Lets the runtime's other tasks (the stop signal) run between blocking polls.
        tokio::task::yield_now().await;
        let stopping = stop.load(Ordering::Relaxed);
        if !stopping {
            // Drain what is there without waiting, then wait a little.
            let wait = if batch.is_empty() {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            };
            match input.poll(wait).map_err(PipelineError::Transport)? {
                Some(r) => {
                    first_at.get_or_insert_with(Instant::now);
                    batch.push(r);
                    if batch.len() < max_rows && first_at.is_some_and(|t| t.elapsed() < max_latency)
                    {
                        continue;
                    }
                }
                None if batch.is_empty() => {}
                None => {
                    if first_at.is_some_and(|t| t.elapsed() < max_latency) {
                        // Nothing more right now: wait briefly for the batch to fill.
                        if let Some(r) = input
                            .poll(Duration::from_millis(20))
                            .map_err(PipelineError::Transport)?
                        {
                            batch.push(r);
                        }
                        continue;
                    }
                }
            }
        }
        if !batch.is_empty() {
            input
                .resolve_schemas(&mut batch)
                .map_err(PipelineError::Transport)?;
            let before = writer.metrics.clone();
            if let Err(e) = writer.apply(&batch).await {
                if let Some(m) = &options.metrics {
                    m.errors.inc();
                }
                return Err(e.into());
            }
            observe(options.metrics.as_ref(), writer, &before, batch.len());
            let mut offsets = BTreeMap::new();
            for r in &batch {
                if let Some(o) = r.offset {
                    let e = offsets
                        .entry(format!("{}:{}", r.topic, r.partition))
                        .or_insert(o + 1);
                    *e = (*e).max(o + 1);
                }
            }
            // The lake holds them: now the group may move on. The lake's own record is what
            // resuming trusts, so a failed group commit only costs re-reading (and skipping).
            if let Err(e) = input.commit(&offsets) {
                tracing::warn!("{e}; the lake has the records, the group will re-read them");
            }
            for (sp, next) in offsets {
                let e = consumed.entry(sp).or_insert(next);
                *e = (*e).max(next);
            }
            stats.records += batch.len() as u64;
            stats.batches += 1;
            if let Some(g) = gold.as_deref_mut() {
                g.after_commit(&touched_tables(&batch)).await;
                if let Some(m) = &options.metrics {
                    m.gold_refreshes
                        .inc_by(g.refreshes - m.gold_refreshes.get());
                    m.gold_failures.inc_by(g.failures - m.gold_failures.get());
                    m.set_gold(&g.previews);
                }
            }
            batch.clear();
            first_at = None;
        }
        if stopping {
            break;
        }
        if targets.is_none() {
            if let Some(done) = &options.source_done {
                if done.load(Ordering::Acquire) {
                    let t = input
                        .end_offsets(timeout)
                        .map_err(PipelineError::Transport)?;
                    for (sp, c) in already_applied(writer, input, &t, timeout).await? {
                        let e = consumed.entry(sp).or_insert(c);
                        *e = (*e).max(c);
                    }
                    targets = Some(t);
                }
            }
        }
        if let Some(t) = &targets {
            if reached(&consumed, t) {
                tracing::info!("sink: caught up");
                break;
            }
        }
    }
    Ok(stats)
}

/// The next offset per partition of `targets` that is already applied: the larger of what the
/// lake's tables record and what the consumer group committed (when the group answers).
async fn already_applied(
    writer: &mut LakeWriter,
    input: &KafkaInput,
    targets: &BTreeMap<String, i64>,
    timeout: Duration,
) -> Result<BTreeMap<String, i64>, PipelineError> {
    let tables: Vec<TableId> = targets.keys().filter_map(|sp| input.table_of(sp)).collect();
    let mut applied = writer.resume_offsets(&tables).await?;
    match input.committed(targets, timeout.min(Duration::from_secs(1))) {
        Ok(committed) => {
            for (sp, c) in committed {
                let e = applied.entry(sp).or_insert(c);
                *e = (*e).max(c);
            }
        }
        Err(e) => tracing::warn!("{e}; going by the lake's own offsets"),
    }
    Ok(applied)
}

/// Applies records handed over in-process until the source ends.
pub async fn sink_embedded(
    writer: &mut LakeWriter,
    input: Receiver<Handoff>,
    mut gold: Option<&mut GoldSchedule>,
    metrics: Option<&Metrics>,
) -> Result<SinkStats, PipelineError> {
    let max_rows = writer.settings().max_rows;
    let max_latency = writer.settings().max_latency;
    let mut batch: Vec<Record> = Vec::new();
    let mut first_at: Option<Instant> = None;
    let mut stats = SinkStats::default();
    loop {
        let wait = match first_at {
            Some(t) => max_latency.saturating_sub(t.elapsed()),
            None => Duration::from_millis(200),
        };
        let (flush, ack, end) = match input.recv_timeout(wait) {
            Ok(Handoff::Record(r)) => {
                first_at.get_or_insert_with(Instant::now);
                batch.push(r);
                (batch.len() >= max_rows, None, false)
            }
            Ok(Handoff::Flush(ack)) => (true, Some(ack), false),
            Ok(Handoff::End) | Err(RecvTimeoutError::Disconnected) => (true, None, true),
            Err(RecvTimeoutError::Timeout) => (first_at.is_some(), None, false),
        };
        if flush && !batch.is_empty() {
            let before = writer.metrics.clone();
            let result = writer.apply(&batch).await;
            if result.is_ok() {
                observe(metrics, writer, &before, batch.len());
            } else if let Some(m) = metrics {
                m.errors.inc();
            }
            if let Err(e) = result {
                if let Some(ack) = ack {
                    let _ = ack.send(Err(format!("the lake could not commit: {e}")));
                }
                return Err(e.into());
            }
            stats.records += batch.len() as u64;
            stats.batches += 1;
            if let Some(g) = gold.as_deref_mut() {
                g.after_commit(&touched_tables(&batch)).await;
                if let Some(m) = metrics {
                    m.gold_refreshes
                        .inc_by(g.refreshes - m.gold_refreshes.get());
                    m.gold_failures.inc_by(g.failures - m.gold_failures.get());
                    m.set_gold(&g.previews);
                }
            }
            batch.clear();
            first_at = None;
        }
        if let Some(ack) = ack {
            let _ = ack.send(Ok(()));
        }
        if end {
            break;
        }
    }
    Ok(stats)
}
