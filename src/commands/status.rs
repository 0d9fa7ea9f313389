//! `binlake status --config FILE`: per table, the source position, what bronze and silver
//! hold, and the lag in seconds and rows.

pub fn run(config: super::ConfigFile) -> anyhow::Result<()> {
    let config = config.load()?;
    let runtime = super::sink_runtime()?;
    let (source, tables) = runtime.block_on(binlake::status::collect(&config))?;
    print!("{}", binlake::status::render(&source, &tables));
    Ok(())
}
