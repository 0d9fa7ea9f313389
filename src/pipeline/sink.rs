//! The sink loop: batches records from any [`RecordSource`], applies each batch to the lake,
//! reports it to the metrics, acknowledges it to the source, and refreshes gold models. The
//! next batch is collected (and with `[lake] decode_ahead` decoded) while the last one is
//! applied.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use super::PipelineError;
use crate::lake::gold_schedule::GoldSchedule;
use crate::lake::metrics::LakeMetrics;
use crate::lake::writer::{Decoded, LakeWriter};
use crate::lake::LakeError;
use crate::metrics::Metrics;
use crate::transport::record::Record;

/// The answer to a flush: `Err` names what the lake could not commit.
pub type FlushAck = std::sync::mpsc::SyncSender<Result<(), String>>;

/// What a record source hands the loop.
pub enum Next {
    Record(Record),
    /// Commit everything received so far now, then answer on the sender (which waits).
    Flush(FlushAck),
    /// Answer on the sender once everything received so far is committed, in the batch's own
    /// time: the sender goes on meanwhile (the embedded source's checkpoints).
    Mark(FlushAck),
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
    /// Batches committed at `busy_latency_ms`, before `max_latency_ms`, for being busy.
    pub busy_batches: u64,
    /// How long the loop waited for a batch's apply to end before it could go on: the part of
    /// applying that collecting (and with `decode_ahead` decoding) the next batch did not
    /// cover.
    pub apply_wait: Duration,
}

/// When a batch is old enough to commit: `[lake] max_latency_ms` after its first record, or
/// `busy_latency_ms` when it holds `busy_changes_per_table` records for each table it touches.
#[derive(Debug, Clone, Copy)]
struct Cadence {
    max_latency: Duration,
    busy_latency: Duration,
    busy_per_table: usize,
}

impl Cadence {
    fn of(settings: &crate::lake::config::LakeConfig) -> Cadence {
        Cadence {
            max_latency: settings.max_latency(),
            busy_latency: settings.busy_latency(),
            busy_per_table: settings.busy_changes_per_table,
        }
    }
}

/// The batch being collected.
struct Filling {
    records: Vec<Record>,
    bytes: usize,
    first_at: Option<Instant>,
    /// The topics (one per source table) the records are of.
    topics: HashSet<String>,
    /// Answered once everything up to here is committed.
    acks: Vec<FlushAck>,
    /// Cut at `busy_latency_ms` for being busy, before `max_latency_ms`.
    busy: bool,
}

impl Filling {
    fn new(max_rows: usize) -> Filling {
        Filling {
            records: Vec::with_capacity(max_rows.min(100_000)),
            bytes: 0,
            first_at: None,
            topics: HashSet::new(),
            acks: Vec::new(),
            busy: false,
        }
    }

    fn push(&mut self, r: Record) {
        self.first_at.get_or_insert_with(Instant::now);
        self.bytes += r.payload_bytes();
        if !self.topics.contains(r.topic.as_str()) {
            self.topics.insert(r.topic.clone());
        }
        self.records.push(r);
    }

    /// Old enough to commit: `max_latency` after its first record, or sooner when busy. A busy
    /// batch's commits cost the same storage calls as a quiet one's, shared by more changes.
    fn aged(&self, cadence: &Cadence) -> bool {
        self.first_at
            .is_some_and(|t| t.elapsed() >= cadence.max_latency)
            || self.busy_and_due(cadence)
    }

    /// Busy, and `busy_latency` old but not yet `max_latency`.
    fn busy_and_due(&self, cadence: &Cadence) -> bool {
        let Some(first_at) = self.first_at else {
            return false;
        };
        let age = first_at.elapsed();
        age >= cadence.busy_latency
            && age < cadence.max_latency
            && self.records.len() >= cadence.busy_per_table.saturating_mul(self.topics.len())
    }

    /// The batch so far, and a new empty one in its place.
    fn take(&mut self) -> Filling {
        let capacity = self.records.capacity();
        std::mem::replace(
            self,
            Filling {
                records: Vec::with_capacity(capacity),
                ..Filling::new(0)
            },
        )
    }
}

/// A batch handed to the writer: the records (acknowledged to the source once committed), and
/// how its apply ended.
struct Applied {
    records: Vec<Record>,
    acks: Vec<FlushAck>,
    busy: bool,
    before: LakeMetrics,
    result: Result<(), LakeError>,
}

/// A batch's apply under way; the writer is lent to it until it ends.
type UnderWay<'w> = Pin<Box<dyn Future<Output = (&'w mut LakeWriter, Applied)> + 'w>>;

/// Lends `writer` to the apply of `batch`, decoded as `decoded`.
fn lend<'w>(writer: &'w mut LakeWriter, mut batch: Filling, decoded: Decoded) -> UnderWay<'w> {
    decoded.release_payloads(&mut batch.records, writer.settings());
    Box::pin(async move {
        let before = writer.metrics.clone();
        let result = writer.apply_decoded(&batch.records, decoded).await;
        let applied = Applied {
            records: batch.records,
            acks: batch.acks,
            busy: batch.busy,
            before,
            result,
        };
        (writer, applied)
    })
}

/// Applies what `source` yields until it ends or is finished.
///
/// Batches commit one after another, in order; while one is being applied the next is
/// collected, and with `[lake] decode_ahead` decoded too (on the loop's own thread: the apply
/// runs on the runtime's workers). A batch that reached `max_latency_ms` (or `busy_latency_ms`,
/// busy) while another is being applied keeps collecting until that one ends.
pub async fn run_sink<S: RecordSource>(
    writer: &mut LakeWriter,
    source: &mut S,
    mut gold: Option<&mut GoldSchedule>,
    metrics: Option<&Metrics>,
) -> Result<SinkStats, PipelineError> {
    source.start(writer).await?;
    let max_rows = writer.settings().max_rows;
    let max_bytes = writer.settings().max_batch_bytes;
    let cadence = Cadence::of(writer.settings());
    let decode_ahead = writer.settings().decode_ahead;
    let mut filling = Filling::new(max_rows);
    let mut stats = SinkStats::default();
    // Exactly one of the two holds the writer.
    let mut free: Option<&mut LakeWriter> = Some(writer);
    let mut under_way: Option<UnderWay<'_>> = None;
    let mut just_applied = false;
    // Marks that came with nothing collected since the batch under way: answered with it.
    let mut with_under_way: Vec<FlushAck> = Vec::new();
    loop {
        // Lets the runtime's other tasks (the stop signal) run between blocking polls.
        tokio::task::yield_now().await;
        if let Some(apply) = under_way.as_mut() {
            // Polled here so the apply's own steps go on between records; its table jobs run on
            // the runtime's workers.
            if let Some((w, applied)) = apply.now_or_never() {
                under_way = None;
                settle(w, applied, source, gold.as_deref_mut(), metrics, &mut stats).await?;
                answer(std::mem::take(&mut with_under_way), w);
                free = Some(w);
                just_applied = true;
            }
        }
        let wait = match filling.first_at {
            // What is under way is polled often: its end may be what the batch waits for.
            _ if under_way.is_some() => Duration::from_millis(5),
            // Nothing more right now: wait briefly for the batch to fill.
            Some(t) => cadence
                .max_latency
                .saturating_sub(t.elapsed())
                .min(Duration::from_millis(20)),
            None => Duration::from_millis(100),
        };
        let (cut, now, end) = match source.next(wait)? {
            Next::Record(r) => {
                filling.push(r);
                let full = filling.records.len() >= max_rows
                    || filling.bytes >= max_bytes
                    || (filling.aged(&cadence) && under_way.is_none());
                (full, false, false)
            }
            Next::Flush(ack) => {
                filling.acks.push(ack);
                (true, true, false)
            }
            Next::Mark(ack) => {
                match (
                    filling.records.is_empty(),
                    under_way.is_some(),
                    free.as_deref(),
                ) {
                    (false, _, _) => filling.acks.push(ack),
                    (true, true, _) => with_under_way.push(ack),
                    (true, false, Some(w)) => answer(vec![ack], w),
                    (true, false, None) => unreachable!("the writer is free or lent"),
                }
                (false, false, false)
            }
            Next::End => (true, true, true),
            // An aged batch waiting for the one under way would start no sooner: it takes what
            // comes meanwhile (fewer, larger commits when applying is slow).
            Next::Idle => (filling.aged(&cadence) && under_way.is_none(), false, false),
        };
        if cut {
            // Cut by the busy rule alone: neither full, nor flushed or ended, nor `max_latency` old.
            let busy = !now
                && filling.records.len() < max_rows
                && filling.bytes < max_bytes
                && filling.busy_and_due(&cadence);
            let mut batch = filling.take();
            batch.busy = busy;
            if !batch.records.is_empty() {
                source.prepare(&mut batch.records)?;
            }
            let decode =
                |batch: &Filling| (!batch.records.is_empty()).then(|| Decoded::new(&batch.records));
            let mut decoded = if decode_ahead { decode(&batch) } else { None };
            // Batches commit in order: the one under way ends first.
            if let Some(apply) = under_way.take() {
                let waiting = Instant::now();
                let (w, applied) = apply.await;
                stats.apply_wait += waiting.elapsed();
                settle(w, applied, source, gold.as_deref_mut(), metrics, &mut stats).await?;
                answer(std::mem::take(&mut with_under_way), w);
                free = Some(w);
            }
            if !decode_ahead {
                decoded = decode(&batch);
            }
            let w = free
                .take()
                .expect("the writer is free when nothing is under way");
            match decoded {
                None => {
                    answer(batch.acks, w);
                    free = Some(w);
                }
                Some(decoded) => {
                    let apply = lend(w, batch, decoded);
                    if now {
                        let (w, applied) = apply.await;
                        settle(w, applied, source, gold.as_deref_mut(), metrics, &mut stats)
                            .await?;
                        free = Some(w);
                    } else {
                        under_way = Some(apply);
                    }
                }
            }
            just_applied |= free.is_some();
        }
        if end {
            break;
        }
        if let Some(w) = free.as_deref_mut() {
            if (just_applied || filling.records.is_empty()) && source.finished(w).await? {
                break;
            }
        }
        just_applied = false;
    }
    let writer = match (free, under_way) {
        (Some(w), _) => w,
        (None, Some(apply)) => {
            let (w, applied) = apply.await;
            settle(w, applied, source, gold, metrics, &mut stats).await?;
            answer(with_under_way, w);
            w
        }
        (None, None) => unreachable!("the writer is always free or lent"),
    };
    writer.finish_maintenance().await?;
    match stopped_message(writer) {
        None => Ok(stats),
        Some(m) => Err(PipelineError::Stopped(m)),
    }
}

/// A batch's apply ended: on success reports it, acknowledges it to the source, refreshes gold
/// and answers its flushes; on failure answers them with the error and returns it.
async fn settle<S: RecordSource>(
    writer: &mut LakeWriter,
    applied: Applied,
    source: &mut S,
    gold: Option<&mut GoldSchedule>,
    metrics: Option<&Metrics>,
    stats: &mut SinkStats,
) -> Result<(), PipelineError> {
    if let Err(e) = applied.result {
        if let Some(m) = metrics {
            m.errors.inc();
        }
        for ack in applied.acks {
            let _ = ack.send(Err(format!("the lake could not commit: {e}")));
        }
        return Err(e.into());
    }
    observe(metrics, writer, &applied.before, applied.records.len());
    source.applied(&applied.records, &writer.stopped_topics());
    stats.records += applied.records.len() as u64;
    stats.batches += 1;
    if applied.busy {
        stats.busy_batches += 1;
        if let Some(m) = metrics {
            m.busy_batches.inc();
        }
    }
    if let Some(g) = gold {
        g.after_commit(&touched_tables(&applied.records)).await;
        if let Some(m) = metrics {
            m.gold_refreshes
                .inc_by(g.refreshes - m.gold_refreshes.get());
            m.gold_failures.inc_by(g.failures - m.gold_failures.get());
            m.gold_vacuums.inc_by(g.vacuums - m.gold_vacuums.get());
            m.set_gold(&g.previews);
        }
    }
    answer(applied.acks, writer);
    Ok(())
}

/// Answers flushes whose records are all committed. A stopped table's changes are not in the
/// lake: what flushes (the embedded source's checkpoint) must not move past them.
fn answer(acks: Vec<FlushAck>, writer: &LakeWriter) {
    if acks.is_empty() {
        return;
    }
    let answer = match stopped_message(writer) {
        None => Ok(()),
        Some(m) => Err(m),
    };
    for ack in acks {
        let _ = ack.send(answer.clone());
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

/// Counts the compactions and vacuums a batch's apply ran or settled, and the appends it put
/// on top of them.
fn count_maintenance(m: &Metrics, before: &LakeMetrics, now: &LakeMetrics) {
    m.compactions.inc_by(now.optimizes - before.optimizes);
    m.compactions_lost
        .inc_by(now.compactions_lost - before.compactions_lost);
    m.vacuums.inc_by(now.vacuums - before.vacuums);
    m.expired_log_files
        .inc_by(now.expired_log_files - before.expired_log_files);
    m.append_rebases
        .inc_by(now.append_rebases - before.append_rebases);
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
    m.portions_committed
        .inc_by(now.portions_committed - before.portions_committed);
    count_maintenance(m, before, now);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record_of(topic: &str) -> Record {
        Record {
            topic: topic.into(),
            partition: 0,
            offset: None,
            key: None,
            value: Some(b"{}".to_vec()),
            schema_id: None,
            schema: None,
        }
    }

    /// A batch of `per_topic` records of each of `topics`, whose first came `age` ago.
    fn filling(topics: &[&str], per_topic: usize, age: Duration) -> Filling {
        let mut f = Filling::new(0);
        for _ in 0..per_topic {
            for t in topics {
                f.push(record_of(t));
            }
        }
        f.first_at = Some(Instant::now() - age);
        f
    }

    /// A batch commits at `max_latency`, or at `busy_latency` once it holds
    /// `busy_per_table` records for each table it touches (and not before either).
    #[test]
    fn a_busy_batch_is_due_sooner_and_a_batch_spread_over_many_tables_is_not_busy() {
        let cadence = Cadence::of(&crate::lake::config::LakeConfig {
            max_latency_ms: 1000,
            busy_latency_ms: 250,
            busy_changes_per_table: 500,
            ..Default::default()
        });
        let ms = Duration::from_millis;
        let due = |topics: &[&str], per_topic, age| filling(topics, per_topic, age).aged(&cadence);
        assert!(
            !Filling::new(0).aged(&cadence),
            "an empty batch is never due"
        );
        assert!(!due(&["a"], 500, ms(200)), "busy, but younger than 250 ms");
        assert!(
            due(&["a"], 500, ms(300)),
            "500 records of one table at 300 ms"
        );
        assert!(!due(&["a"], 499, ms(300)), "one record short of busy");
        assert!(due(&["a"], 499, ms(1000)), "any batch at max_latency");
        assert!(
            due(&["a", "b"], 500, ms(300)),
            "500 records of each of two tables"
        );
        assert!(
            !due(&["a", "b", "c", "d"], 200, ms(300)),
            "800 records over four tables: 200 a table"
        );
        assert!(due(&["a", "b", "c", "d"], 200, ms(1000)));

        let off = Cadence::of(&crate::lake::config::LakeConfig {
            max_latency_ms: 200,
            ..Default::default()
        });
        assert_eq!(off.busy_latency, ms(200), "never later than max_latency");
        assert!(filling(&["a"], 1, ms(200)).aged(&off));

        // Counted as busy only when the busy rule alone brings the commit forward.
        let busy = |topics: &[&str], per_topic, age, cadence: &Cadence| {
            filling(topics, per_topic, age).busy_and_due(cadence)
        };
        assert!(busy(&["a"], 500, ms(300), &cadence));
        assert!(!busy(&["a"], 500, ms(1000), &cadence), "max_latency old");
        assert!(!busy(&["a"], 499, ms(300), &cadence));
        assert!(
            !busy(&["a"], 500, ms(300), &off),
            "busy_latency = max_latency"
        );
    }

    /// What a batch's apply added to the writer's maintenance counts reaches Prometheus.
    #[test]
    fn maintenance_a_batch_ran_is_counted() {
        let m = Metrics::new();
        let before = LakeMetrics {
            optimizes: 2,
            compactions_lost: 1,
            vacuums: 1,
            expired_log_files: 4,
            append_rebases: 1,
            ..LakeMetrics::default()
        };
        let now = LakeMetrics {
            optimizes: 5,
            compactions_lost: 2,
            vacuums: 1,
            expired_log_files: 10,
            append_rebases: 3,
            ..LakeMetrics::default()
        };
        count_maintenance(&m, &before, &now);
        assert_eq!(
            (
                m.compactions.get(),
                m.compactions_lost.get(),
                m.vacuums.get(),
                m.expired_log_files.get(),
                m.append_rebases.get()
            ),
            (3, 1, 0, 6, 2)
        );
        let text = m.render();
        assert!(text.contains("binlake_compactions_total 3"), "{text}");
        assert!(text.contains("binlake_compactions_lost_total 1"), "{text}");
        assert!(text.contains("binlake_expired_log_files_total 6"), "{text}");
        assert!(text.contains("binlake_append_rebases_total 2"), "{text}");
    }
}
