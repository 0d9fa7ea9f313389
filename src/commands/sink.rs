//! `binlake sink --config FILE`: consumes the Kafka topics `source` publishes and applies them
//! to the lake.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use binlake::pipeline::SinkOptions;
use binlake::transport::kafka::KafkaInput;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigFile,
    /// Stop once everything that was in the topics at start is in the lake.
    #[arg(long)]
    exit_when_caught_up: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let Some(kafka) = config.transport.kafka() else {
        anyhow::bail!(
            "config {}: key `transport.kind`: `binlake sink` consumes Kafka; with \"embedded\" use `binlake run`",
            args.config.path.display()
        );
    };
    let mut writer = super::lake_writer(&config, "sink")?;
    let mut gold = super::gold_schedule(&config, &writer)?;
    let mut input = KafkaInput::new(kafka).map_err(anyhow::Error::msg)?;
    let runtime = super::sink_runtime()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    runtime.spawn(async move {
        super::stop_signal().await;
        tracing::info!("stopping: committing the current batch");
        flag.store(true, Ordering::Relaxed);
    });
    let options = SinkOptions {
        exit_when_caught_up: args.exit_when_caught_up,
        source_done: None,
        metrics: super::start_metrics(&config)?,
    };
    let stats = runtime.block_on(async {
        writer.prepare().await?;
        binlake::pipeline::sink_kafka(&mut writer, &mut input, &options, &stop, gold.as_mut())
            .await
            .map_err(anyhow::Error::from)
    })?;
    super::report_sink(&stats, &writer);
    Ok(())
}
