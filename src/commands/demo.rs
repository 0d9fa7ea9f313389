//! `binlake demo`: the whole path with no services (a bundled binlog, the in-process mock
//! Kafka cluster, a local lake) and what it built, on stdout.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// The lake directory (replaced if an earlier demo made it).
    #[arg(long, default_value = "binlake-demo-lake")]
    lake: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = super::sink_runtime()?;
    let stdout = std::io::stdout();
    let lake = std::path::absolute(&args.lake).context("--lake")?;
    runtime.block_on(binlake::demo::run_demo(&lake, &mut stdout.lock()))?;
    Ok(())
}
