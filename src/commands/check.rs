//! `binlake check --config FILE`: checks that the `[source]` server is ready for capture and
//! prints a report; exits non-zero when something blocks it.

use binlake::mysql::check::{check, format_report, Verdict};

pub fn run(config: super::ConfigFile) -> anyhow::Result<()> {
    let config = config.load()?;
    let runtime = super::current_thread_runtime()?;
    let findings = runtime.block_on(check(config.source("check")?))?;
    print!("{}", format_report(&findings));
    if findings.iter().any(|f| f.verdict == Verdict::Fail) {
        anyhow::bail!("the server is not ready for capture");
    }
    Ok(())
}
