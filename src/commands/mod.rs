//! One file per `binlake` command: each parses nothing itself (clap has done that in main.rs)
//! and turns its arguments into a run of the library; this module holds what several share.

pub mod bench;
pub mod check;
pub mod demo;
pub mod generate;
pub mod gold;
pub mod replay;
pub mod run;
pub mod sink;
pub mod snapshot;
pub mod source;
pub mod status;

use std::path::PathBuf;

use anyhow::Context;

use binlake::config::Config;
use binlake::lake::gold::GoldVacuum;
use binlake::lake::gold_schedule::GoldSchedule;
use binlake::lake::storage::LakeStorage;
use binlake::lake::writer::LakeWriter;
use binlake::metrics::Metrics;
use binlake::pipeline::SinkStats;

/// `--config FILE`, which most commands take.
#[derive(clap::Args)]
pub struct ConfigFile {
    #[arg(long = "config", value_name = "FILE")]
    pub path: PathBuf,
}

impl ConfigFile {
    pub fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&self.path)?)
    }
}

/// A runtime whose workers serve the stop signal while the main thread blocks on Kafka, and
/// scan a table's files in parallel (one worker per core).
pub fn sink_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// A runtime on this thread alone (the source, `check`).
pub fn current_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Resolves on Ctrl-C, or on SIGTERM (docker stop, Kubernetes): the two ways to ask binlake
/// to finish what it is doing and exit 0.
pub async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The lake writer of `[lake]`, which `command` needs.
pub fn lake_writer(config: &Config, command: &str) -> anyhow::Result<LakeWriter> {
    let lake = config.lake(command)?;
    let storage = LakeStorage::new(&lake.url, &lake.storage, &config.base)
        .with_context(|| format!("config {}", config.file))?;
    Ok(LakeWriter::new(storage, lake.clone()))
}

/// The gold schedule of `[gold]`, when configured.
pub fn gold_schedule(config: &Config, writer: &LakeWriter) -> anyhow::Result<Option<GoldSchedule>> {
    let Some(gold) = &config.gold else {
        return Ok(None);
    };
    let models = binlake::lake::gold::load_models(&gold.models)?;
    let policy = gold
        .refresh_policy()
        .map_err(|r| anyhow::anyhow!("config {}: key `gold.refresh`: {r}", config.file))?;
    Ok(Some(GoldSchedule::new(
        writer.storage().clone(),
        models,
        policy,
        GoldVacuum::from(gold),
    )))
}

/// Starts the `[metrics]` endpoint when configured.
pub fn start_metrics(config: &Config) -> anyhow::Result<Option<Metrics>> {
    let Some(m) = &config.metrics else {
        return Ok(None);
    };
    let metrics = Metrics::new();
    metrics
        .serve(&m.listen)
        .map_err(|e| anyhow::anyhow!("config {}: key `{e}", config.file))?;
    Ok(Some(metrics))
}

/// Logs what a sink run did.
pub fn report_sink(stats: &SinkStats, writer: &LakeWriter) {
    let m = &writer.metrics;
    tracing::info!(
        records = stats.records,
        batches = stats.batches,
        busy_batches = stats.busy_batches,
        changes = m.changes_applied,
        commits = m.commits,
        dead_letters = m.dead_letters,
        "sink stopped"
    );
    tracing::debug!(
        apply_seconds = m.apply_time.as_secs_f64(),
        apply_wait_seconds = stats.apply_wait.as_secs_f64(),
        decode_seconds = m.decode_time.as_secs_f64(),
        bronze_seconds = m.bronze_time.as_secs_f64(),
        bronze_rows_seconds = m.bronze_rows_time.as_secs_f64(),
        bronze_wait_seconds = m.bronze_wait_time.as_secs_f64(),
        typing_seconds = m.typing_time.as_secs_f64(),
        lookup_seconds = m.lookup_time.as_secs_f64(),
        history_seconds = m.history_time.as_secs_f64(),
        silver_seconds = m.silver_time.as_secs_f64(),
        maintenance_seconds = m.maintenance_time.as_secs_f64(),
        "where the sink's time went"
    );
}
