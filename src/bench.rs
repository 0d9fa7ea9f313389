//! `binlake bench`: throughput benchmarks users can run on their own binlogs. Each prints its
//! figures (medians of several runs, measured in one process) on stdout.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

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
