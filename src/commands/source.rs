//! `binlake source --config FILE`: captures changes from the live server and publishes them
//! through `[transport]` (Kafka, or NDJSON to a file).

use anyhow::Context;

use binlake::config::{Config, TransportConfig};
use binlake::envelope::EnvelopeOptions;
use binlake::mysql::replication::{LiveSource, RunOptions};
use binlake::mysql::SourceOutput;
use binlake::transport::kafka::KafkaOutput;
use binlake::transport::ndjson::NdjsonOutput;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigFile,
    /// Stop once everything up to the server's binlog position at start is published.
    #[arg(long)]
    exit_when_caught_up: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load()?;
    match &config.transport {
        TransportConfig::Ndjson(ndjson) => {
            let path = ndjson.path.clone().unwrap_or_else(|| "-".into());
            let output = NdjsonOutput::open(
                &path,
                &EnvelopeOptions {
                    name: ndjson.topic_prefix.clone(),
                },
            )
            .with_context(|| format!("transport.path {path}"))?;
            capture(&config, output, args.exit_when_caught_up)
        }
        TransportConfig::Kafka(kafka) => {
            let output = KafkaOutput::new(kafka).map_err(anyhow::Error::msg)?;
            capture(&config, output, args.exit_when_caught_up)
        }
        TransportConfig::Embedded(_) => anyhow::bail!(
            "config {}: key `transport.kind`: \"embedded\" joins capture and apply in one process: use `binlake run`",
            args.config.path.display()
        ),
    }
}

/// Runs the live source into `output` until stopped (Ctrl-C, SIGTERM) or caught up.
fn capture<O: SourceOutput>(
    config: &Config,
    mut output: O,
    exit_when_caught_up: bool,
) -> anyhow::Result<()> {
    let source = LiveSource::new(config.source("source")?.clone())?;
    let runtime = super::current_thread_runtime()?;
    let stats = runtime.block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            super::stop_signal().await;
            tracing::info!("stopping: finishing the current transaction and checkpointing");
            let _ = stop_tx.send(true);
        });
        let options = RunOptions {
            exit_when_caught_up,
            checkpoint_interval: None,
            snapshot_board: None,
        };
        source.run(&mut output, &options, stop_rx).await
    })?;
    tracing::info!(
        changes = stats.changes,
        commits = stats.commits,
        checkpoints = stats.checkpoints,
        reconnects = stats.reconnects,
        "source stopped"
    );
    Ok(())
}
