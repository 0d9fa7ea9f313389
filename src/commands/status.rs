//! `binlake status --config FILE`: per table, the source position, what bronze and silver
//! hold, and the lag in seconds and rows; then every table whose apply stopped, with why.

pub fn run(config: super::ConfigFile) -> anyhow::Result<()> {
    let config = config.load()?;
    let runtime = super::sink_runtime()?;
    let status = runtime.block_on(binlake::status::collect_all(&config))?;
    print!("{}", binlake::status::render_all(&status));
    Ok(())
}
