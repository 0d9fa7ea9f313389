//! The sink loop: batches records from any [`RecordSource`], applies each batch to the lake,
//! reports it to the metrics, acknowledges it to the source, and refreshes gold models.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::PipelineError;
use crate::lake::gold::GoldSchedule;
use crate::lake::metrics::LakeMetrics;
use crate::lake::writer::LakeWriter;
use crate::metrics::Metrics;
use crate::transport::record::Record;

/// What a record source hands the loop.
pub enum Next {
    Record(Record),
    /// Commit everything received so far, then answer on the sender.
    Flush(std::sync::mpsc::SyncSender<Result<(), String>>),
    /// Nothing more will come (the source ended, or a stop was asked for).
    End,
    /// Nothing arrived within the wait.
    Idle,
}

/// Where the sink's records come from, and how it acknowledges them.
#[allow(async_fn_in_trait)]
pub trait RecordSource {
    /// Before the first record: learn what the lake already holds.
    async fn start(&mut self, _writer: &mut LakeWriter) -> Result<(), PipelineError> {
        Ok(())
    }
    /// The next record or signal, waiting at most `wait`.
    fn next(&mut self, wait: Duration) -> Result<Next, PipelineError>;
    /// Readies a batch before it is applied (Kafka: resolve the schemas it names).
    fn prepare(&mut self, _batch: &mut [Record]) -> Result<(), PipelineError> {
        Ok(())
    }
    /// The lake committed `batch`: acknowledge it, but not the records of `held` topics (their
    /// tables stopped: those records must come again after a restart).
    fn applied(&mut self, _batch: &[Record], _held: &HashSet<String>) {}
    /// Checked between batches: whether the sink has caught up with what it was asked to.
    async fn finished(&mut self, _writer: &mut LakeWriter) -> Result<bool, PipelineError> {
        Ok(false)
    }
}

/// What a sink run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkStats {
    pub records: u64,
    pub batches: u64,
}

/// Applies what `source` yields until it ends or is finished.
pub async fn run_sink<S: RecordSource>(
    writer: &mut LakeWriter,
    source: &mut S,
    mut gold: Option<&mut GoldSchedule>,
    metrics: Option<&Metrics>,
) -> Result<SinkStats, PipelineError> {
    source.start(writer).await?;
    let max_rows = writer.settings().max_rows;
    let max_bytes = writer.settings().max_batch_bytes;
    let max_latency = writer.settings().max_latency();
    let mut batch: Vec<Record> = Vec::with_capacity(max_rows.min(100_000));
    let mut batch_bytes = 0usize;
    let mut first_at: Option<Instant> = None;
    let mut stats = SinkStats::default();
    loop {
        // Lets the runtime's other tasks (the stop signal) run between blocking polls.
        tokio::task::yield_now().await;
        let wait = match first_at {
            // Nothing more right now: wait briefly for the batch to fill.
            Some(t) => max_latency
                .saturating_sub(t.elapsed())
                .min(Duration::from_millis(20)),
            None => Duration::from_millis(100),
        };
        let aged = |first_at: Option<Instant>| first_at.is_some_and(|t| t.elapsed() >= max_latency);
        let (flush, ack, end) = match source.next(wait)? {
            Next::Record(r) => {
                first_at.get_or_insert_with(Instant::now);
                batch_bytes +=
                    r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len);
                batch.push(r);
                (
                    batch.len() >= max_rows || batch_bytes >= max_bytes || aged(first_at),
                    None,
                    false,
                )
            }
            Next::Flush(ack) => (true, Some(ack), false),
            Next::End => (true, None, true),
            Next::Idle => (aged(first_at), None, false),
        };
        if !flush && !batch.is_empty() {
            continue;
        }
        if !batch.is_empty() {
            source.prepare(&mut batch)?;
            let before = writer.metrics.clone();
            if let Err(e) = writer.apply(&batch).await {
                if let Some(m) = metrics {
                    m.errors.inc();
                }
                if let Some(ack) = ack {
                    let _ = ack.send(Err(format!("the lake could not commit: {e}")));
                }
                return Err(e.into());
            }
            observe(metrics, writer, &before, batch.len());
            source.applied(&batch, &writer.stopped_topics());
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
            batch_bytes = 0;
            first_at = None;
        }
        if let Some(ack) = ack {
            // A stopped table's changes are not in the lake: what flushes (the embedded source's
            // checkpoint) must not move past them.
            let _ = ack.send(match stopped_message(writer) {
                None => Ok(()),
                Some(m) => Err(m),
            });
        }
        if end || source.finished(writer).await? {
            break;
        }
    }
    match stopped_message(writer) {
        None => Ok(stats),
        Some(m) => Err(PipelineError::Stopped(m)),
    }
}

/// Every stopped table's message, one per line; `None` when no table stopped.
fn stopped_message(writer: &LakeWriter) -> Option<String> {
    let stopped = writer.stopped();
    (!stopped.is_empty()).then(|| {
        stopped
            .iter()
            .map(|s| s.message())
            .collect::<Vec<_>>()
            .join("\n")
    })
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
    m.concurrent_commits
        .inc_by(now.concurrent_commits - before.concurrent_commits);
    m.batch_seconds.observe(now.last_batch.as_secs_f64());
    m.set_stopped(&writer.stopped());
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
