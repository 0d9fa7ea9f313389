//! `binlake run --config FILE`: capture and apply in one process, through Kafka or in-process
//! (`[transport] kind = "embedded"`). The source runs on its own thread; the sink on this one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use binlake::config::{Config, TransportConfig};
use binlake::mysql::replication::{LiveSource, RunOptions};
use binlake::mysql::SourceOutput;
use binlake::pipeline::SinkOptions;
use binlake::transport::embedded::{channel, EmbeddedOutput};
use binlake::transport::kafka::{KafkaInput, KafkaOutput};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigFile,
    /// Stop once everything up to the server's binlog position at start is in the lake.
    #[arg(long)]
    exit_when_caught_up: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let exit_when_caught_up = args.exit_when_caught_up;
    let config = args.config.load()?;
    config.source("run")?;
    if let TransportConfig::Ndjson(_) = config.transport {
        anyhow::bail!(
            "config {}: key `transport.kind`: `binlake run` applies to the lake through \"kafka\" or \"embedded\"",
            args.config.path.display()
        );
    }
    let mut writer = super::lake_writer(&config, "run")?;
    let mut gold = super::gold_schedule(&config, &writer)?;
    let metrics = super::start_metrics(&config)?;
    let runtime = super::sink_runtime()?;
    runtime.block_on(writer.prepare())?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let signal_tx = stop_tx.clone();
    runtime.spawn(async move {
        super::stop_signal().await;
        tracing::info!("stopping: finishing the current transaction, committing and checkpointing");
        let _ = signal_tx.send(true);
        flag.store(true, Ordering::Relaxed);
    });
    let board = metrics.as_ref().map(|m| m.snapshot_board());
    let (sunk, captured) = match &config.transport {
        TransportConfig::Kafka(kafka) => {
            let mut output = KafkaOutput::new(kafka).map_err(anyhow::Error::msg)?;
            let mut input = KafkaInput::new(kafka).map_err(anyhow::Error::msg)?;
            let done = Arc::new(AtomicBool::new(false));
            let source_done = done.clone();
            let source_config = config.clone();
            let board = board.clone();
            let source = std::thread::spawn(move || {
                let result = capture_with(
                    &source_config,
                    &mut output,
                    exit_when_caught_up,
                    stop_rx,
                    board,
                );
                source_done.store(true, Ordering::Release);
                result
            });
            let options = SinkOptions {
                exit_when_caught_up,
                source_done: exit_when_caught_up.then_some(done),
                metrics: metrics.clone(),
            };
            let sunk = runtime.block_on(binlake::pipeline::sink_kafka(
                &mut writer,
                &mut input,
                &options,
                &stop,
                gold.as_mut(),
            ));
            if sunk.is_err() {
                let _ = stop_tx.send(true);
            }
            (sunk, source.join())
        }
        _ => {
            let (tx, rx) = channel();
            let output = EmbeddedOutput::new(
                tx,
                config.transport.topic_prefix(),
                std::time::Duration::from_secs(600),
            );
            let source_config = config.clone();
            let source = std::thread::spawn(move || {
                let mut output = output;
                let result = capture_with(
                    &source_config,
                    &mut output,
                    exit_when_caught_up,
                    stop_rx,
                    board,
                );
                output.finish();
                result
            });
            let sunk = runtime.block_on(binlake::pipeline::sink_embedded(
                &mut writer,
                rx,
                gold.as_mut(),
                metrics.as_ref(),
            ));
            (sunk, source.join())
        }
    };
    let captured = captured.map_err(|_| anyhow::anyhow!("the source thread panicked"))?;
    let stats = sunk?;
    captured?;
    super::report_sink(&stats, &writer);
    Ok(())
}

/// Runs the live source into `output` on this thread until `stop`, caught up, or an error.
fn capture_with<O: SourceOutput>(
    config: &Config,
    output: &mut O,
    exit_when_caught_up: bool,
    stop: tokio::sync::watch::Receiver<bool>,
    snapshot_board: Option<binlake::mysql::checkpoint::SnapshotBoard>,
) -> anyhow::Result<()> {
    let source = LiveSource::new(config.source("run")?.clone())?;
    let runtime = super::current_thread_runtime()?;
    let options = RunOptions {
        exit_when_caught_up,
        checkpoint_interval: None,
        snapshot_board,
    };
    let stats = runtime.block_on(source.run(output, &options, stop))?;
    tracing::info!(
        changes = stats.changes,
        commits = stats.commits,
        checkpoints = stats.checkpoints,
        reconnects = stats.reconnects,
        "source stopped"
    );
    Ok(())
}
