//! `binlake gold refresh --config FILE [--model NAME]`: evaluates the `[gold]` models over
//! silver now and writes `gold/<model>`.

use std::path::PathBuf;

use binlake::config::Config;
use binlake::lake::storage::LakeStorage;

#[derive(clap::Subcommand)]
pub enum GoldCommand {
    /// Evaluate the `[gold] models` now and write `gold/<model>`.
    Refresh {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Only this model (and nothing else).
        #[arg(long)]
        model: Option<String>,
    },
}

pub fn run(command: GoldCommand) -> anyhow::Result<()> {
    let GoldCommand::Refresh { config, model } = command;
    let config = Config::load(&config)?;
    let gold = config.gold.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "config {}: key `gold`: `binlake gold refresh` needs a [gold] table with `models`",
            config.file
        )
    })?;
    let lake = config.lake("gold refresh")?;
    let storage = LakeStorage::new(&lake.url, &lake.storage, &config.base)?;
    let mut models = binlake::lake::gold::load_models(&gold.models)?;
    if let Some(name) = &model {
        models.retain(|m| &m.name == name);
        anyhow::ensure!(
            !models.is_empty(),
            "no model {name} in {}",
            gold.models.display()
        );
    }
    let runtime = super::sink_runtime()?;
    let outcomes = runtime.block_on(binlake::lake::gold::refresh(
        &storage,
        &models,
        binlake::lake::gold::GoldVacuum::from(gold),
    ))?;
    let mut failed = 0;
    for o in &outcomes {
        match &o.result {
            Ok(rows) => println!(
                "gold/{}: {rows} rows in {:.3} s",
                o.name,
                o.elapsed.as_secs_f64()
            ),
            Err(e) if !o.waiting_for.is_empty() => {
                failed += 1;
                println!("gold/{}: NOT RUN: {e}", o.name)
            }
            Err(e) => {
                failed += 1;
                println!("gold/{}: FAILED: {e}", o.name)
            }
        }
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} model(s) failed or wait for their tables"
    );
    Ok(())
}
