//! `binlake generate --config FILE`: writes a steady workload to the `[source]` server (load
//! sql/online_store.sql first) and prints what it wrote.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use binlake::mysql::server::Server;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigFile,
    /// Row changes per second.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Seconds to run.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    #[arg(long, default_value = "ecommerce")]
    scenario: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let source = Server::new(config.source("generate")?)?;
    let runtime = super::sink_runtime()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    runtime.spawn(async move {
        super::stop_signal().await;
        flag.store(true, Ordering::Relaxed);
    });
    let started = std::time::Instant::now();
    let stats = runtime.block_on(async {
        let mut conn = source.connect_for_workload().await?;
        let stats = binlake::workload::generate(
            &mut conn,
            &args.scenario,
            args.rate,
            std::time::Duration::from_secs(args.duration),
            &stop,
        )
        .await?;
        let _ = conn.disconnect().await;
        anyhow::Ok(stats)
    })?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}: {} row changes in {} transactions over {secs:.1} s ({:.0} row changes/s)",
        args.scenario,
        stats.row_changes,
        stats.transactions,
        stats.row_changes as f64 / secs
    );
    Ok(())
}
