//! `binlake bench`: throughput benchmarks users can run on their own binlogs. Each prints its
//! figures (medians of several runs, measured in one process) on stdout.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

pub mod freshness;
pub mod lake;
pub mod rewrite;

use crate::replay::{replay_files, ReplayError, ReplayOptions, ReplayStats};

/// A writer that counts and discards: the JSON is fully produced, never stored.
#[derive(Default)]
struct CountingSink {
    bytes: u64,
}

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One replay run's figures.
#[derive(Debug, Clone)]
pub struct ReplayRun {
    pub seconds: f64,
    pub stats: ReplayStats,
    pub output_bytes: u64,
}

/// Results of `bench replay`.
#[derive(Debug, Clone)]
pub struct ReplayBench {
    pub runs: Vec<ReplayRun>,
    /// Peak resident memory of this process, in bytes (VmHWM), when the OS reports it.
    pub peak_rss: Option<u64>,
}

impl ReplayBench {
    pub fn median_seconds(&self) -> f64 {
        let mut s: Vec<f64> = self.runs.iter().map(|r| r.seconds).collect();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    }
}

/// Peak resident set size from /proc/self/status (Linux); None elsewhere.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Replays `files` `runs` times into a counting sink.
pub fn bench_replay(
    files: &[PathBuf],
    options: &ReplayOptions,
    runs: usize,
) -> Result<ReplayBench, ReplayError> {
    let mut out = Vec::new();
    for _ in 0..runs.max(1) {
        let mut sink = CountingSink::default();
        let started = Instant::now();
        let stats = replay_files(files, options, &mut sink)?;
        out.push(ReplayRun {
            seconds: started.elapsed().as_secs_f64(),
            stats,
            output_bytes: sink.bytes,
        });
    }
    Ok(ReplayBench {
        runs: out,
        peak_rss: peak_rss_bytes(),
    })
}

/// The report `binlake bench replay` prints.
pub fn format_replay_report(b: &ReplayBench) -> String {
    let mut s = String::new();
    let first = &b.runs[0];
    s.push_str(&format!(
        "replay: {} file(s), {:.1} MB of binlog, {} events, {} row changes, {:.1} MB of NDJSON\n",
        first.stats.files,
        first.stats.bytes as f64 / 1e6,
        first.stats.events,
        first.stats.changes,
        first.output_bytes as f64 / 1e6
    ));
    for (i, r) in b.runs.iter().enumerate() {
        s.push_str(&format!(
            "  run {}: {:.3} s  {:>10.0} row changes/s  {:>7.1} MB/s of binlog\n",
            i + 1,
            r.seconds,
            r.stats.changes as f64 / r.seconds,
            r.stats.bytes as f64 / r.seconds / 1e6
        ));
    }
    let m = b.median_seconds();
    s.push_str(&format!(
        "median: {:.3} s  {:.0} row changes/s  {:.1} MB/s of binlog  {:.1} MB/s of NDJSON\n",
        m,
        first.stats.changes as f64 / m,
        first.stats.bytes as f64 / m / 1e6,
        first.output_bytes as f64 / m / 1e6
    ));
    match b.peak_rss {
        Some(p) => s.push_str(&format!("peak RSS: {:.1} MB\n", p as f64 / 1e6)),
        None => s.push_str("peak RSS: not reported by this OS\n"),
    }
    s
}

/// Figures of `bench consume`.
#[derive(Debug, Clone, Default)]
pub struct ConsumeBench {
    pub messages: u64,
    pub seconds: f64,
    /// Milliseconds from the commit time the row carries to its arrival here, sorted.
    pub latencies_ms: Vec<i64>,
}

impl ConsumeBench {
    fn percentile(&self, p: f64) -> Option<i64> {
        if self.latencies_ms.is_empty() {
            return None;
        }
        let i = ((self.latencies_ms.len() as f64 - 1.0) * p).round() as usize;
        Some(self.latencies_ms[i])
    }
}

/// Reads `topic` from the beginning until `expect` messages (or `idle` without any), timing
/// from the first message. With `latency_column`, each change's `after.<column>` (a commit
/// time in epoch milliseconds written by the workload) gives its commit-to-consumer latency.
pub fn bench_consume(
    bootstrap: &str,
    topic: &str,
    expect: u64,
    latency_column: Option<&str>,
    idle: std::time::Duration,
) -> Result<ConsumeBench, String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("binlake-bench-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "500")
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(|e| format!("consumer for {bootstrap}: {e}"))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| format!("subscribing to {topic}: {e}"))?;
    let mut out = ConsumeBench::default();
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    while out.messages < expect && (first.is_none() || last.elapsed() < idle) {
        let Some(message) = consumer.poll(std::time::Duration::from_millis(100)) else {
            continue;
        };
        let message = match message {
            Ok(m) => m,
            // The source may not have created the topic yet.
            Err(rdkafka::error::KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
            )) if first.is_none() => continue,
            Err(e) => return Err(format!("reading {topic}: {e}")),
        };
        let now = crate::event::now_ms() as i64;
        first.get_or_insert_with(Instant::now);
        last = Instant::now();
        out.messages += 1;
        if let (Some(col), Some(payload)) = (latency_column, message.payload()) {
            let value: serde_json::Value = serde_json::from_slice(payload)
                .map_err(|e| format!("{topic}: a message is not JSON: {e}"))?;
            if let Some(committed) = value["after"][col].as_i64() {
                out.latencies_ms.push(now - committed);
            }
        }
    }
    out.seconds = first.map(|f| f.elapsed().as_secs_f64()).unwrap_or(0.0);
    out.latencies_ms.sort_unstable();
    Ok(out)
}

/// The report `binlake bench consume` prints.
pub fn format_consume_report(b: &ConsumeBench) -> String {
    let mut s = format!(
        "consumed {} messages in {:.3} s = {:.0} messages/s\n",
        b.messages,
        b.seconds,
        b.messages as f64 / b.seconds.max(1e-9)
    );
    if let (Some(p50), Some(p99), Some(max)) =
        (b.percentile(0.5), b.percentile(0.99), b.latencies_ms.last())
    {
        s.push_str(&format!(
            "commit-to-consumer latency over {} changes: p50 {p50} ms, p99 {p99} ms, max {max} ms\n",
            b.latencies_ms.len()
        ));
    }
    s
}
