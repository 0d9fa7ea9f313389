//! `binlake status --config FILE`: per table, the source position, what bronze and silver
//! hold, and the lag in seconds and rows.

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigFile,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let runtime = super::sink_runtime()?;
    let (source, tables) = runtime.block_on(binlake::status::collect(&config))?;
    print!("{}", binlake::status::render(&source, &tables));
    Ok(())
}
