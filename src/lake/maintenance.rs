//! Table maintenance on a schedule of commits: compaction (`optimize_every_commits`), in the
//! background (see [`super::compaction`]), and vacuum (`vacuum_every_commits`, keeping
//! `vacuum_retention_hours`), in line, with no compaction under way. Their commits change no
//! data and carry no state (see [`super::state::maintenance_commit_properties`]).

use std::time::Duration;

use super::compaction::{self, Outcome};
use super::config::LakeConfig;
use super::layer::{delta_err, Layer};
use super::metrics::LakeMetrics;
use super::state::maintenance_commit_properties;
use super::LakeError;

/// Compaction and vacuum on their schedules, after the batch that made the layer's latest
/// commit.
pub(super) async fn maintain(
    layer: &mut Layer,
    settings: &LakeConfig,
    metrics: &mut LakeMetrics,
) -> Result<(), LakeError> {
    if layer.commits == 0 || !layer.exists() {
        return Ok(());
    }
    let due = |every: u64| every > 0 && layer.commits % every == 0;
    let vacuum_due = due(settings.vacuum_every_commits);
    let optimize_due = due(settings.optimize_every_commits);
    // Vacuum deletes the files no version refers to, and a compaction's new files are such
    // files until it commits: a vacuum waits for it.
    compaction::catch_up(layer, vacuum_due, metrics).await?;
    if layer.compaction_outcome == Outcome::Lost {
        compact_in_line(layer, metrics).await?;
        layer.compaction_outcome = Outcome::Settled;
    }
    if vacuum_due {
        vacuum(layer, settings, metrics).await?;
    }
    if optimize_due {
        if layer.compaction.is_some() {
            tracing::debug!(table = %layer.path, "the last compaction is still under way: skipping this one");
        } else {
            compaction::start(layer);
        }
    }
    Ok(())
}

/// Every background compaction still under way, waited for (a writer that stops).
pub(super) async fn finish(layer: &mut Layer, metrics: &mut LakeMetrics) -> Result<(), LakeError> {
    compaction::catch_up(layer, true, metrics).await
}

/// Compacts the table now (a background compaction that lost to a concurrent commit).
async fn compact_in_line(layer: &mut Layer, metrics: &mut LakeMetrics) -> Result<(), LakeError> {
    let table = layer.existing().cloned().expect("maintained tables exist");
    let compacted = compaction::compact(table, layer.writer_properties())
        .await
        .map_err(delta_err(&layer.path))?;
    layer.maintained(compacted).await?;
    metrics.optimizes += 1;
    Ok(())
}

async fn vacuum(
    layer: &mut Layer,
    settings: &LakeConfig,
    metrics: &mut LakeMetrics,
) -> Result<(), LakeError> {
    let table = layer.existing().cloned().expect("maintained tables exist");
    let retention = chrono_duration(settings.vacuum_retention());
    let (table, _) = table
        .vacuum()
        .with_retention_period(retention)
        .with_enforce_retention_duration(false)
        .with_commit_properties(maintenance_commit_properties())
        .await
        .map_err(delta_err(&layer.path))?;
    layer.maintained(table).await?;
    metrics.vacuums += 1;
    Ok(())
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::milliseconds(d.as_millis() as i64)
}
