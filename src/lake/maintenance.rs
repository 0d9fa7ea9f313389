//! Table maintenance on a schedule of commits: compaction (`optimize_every_commits`) and
//! vacuum (`vacuum_every_commits`, keeping `vacuum_retention_hours`); their commits carry the
//! table's state on, so they never lose what the table holds.

use std::time::Duration;

use super::config::LakeConfig;
use super::layer::{delta_err, Layer};
use super::metrics::LakeMetrics;
use super::LakeError;

/// Compaction and vacuum on their schedules; their commits carry the table's state on.
pub(super) async fn maintain(
    layer: &mut Layer,
    settings: &LakeConfig,
    metrics: &mut LakeMetrics,
) -> Result<(), LakeError> {
    if layer.commits == 0 {
        return Ok(());
    }
    let properties = layer.state.commit_properties();
    if !layer.exists() {
        return Ok(());
    }
    if settings.optimize_every_commits > 0 && layer.commits % settings.optimize_every_commits == 0 {
        let writer_properties = layer.writer_properties();
        if let Some(table) = layer.table.take() {
            let mut optimize = table.optimize().with_commit_properties(properties.clone());
            if let Some(p) = writer_properties {
                optimize = optimize.with_writer_properties(p);
            }
            let (table, _) = optimize.await.map_err(delta_err(&layer.path))?;
            layer.table = Some(table);
            metrics.optimizes += 1;
        }
    }
    if settings.vacuum_every_commits > 0 && layer.commits % settings.vacuum_every_commits == 0 {
        if let Some(table) = layer.table.take() {
            let retention = chrono_duration(settings.vacuum_retention());
            let (table, _) = table
                .vacuum()
                .with_retention_period(retention)
                .with_enforce_retention_duration(false)
                .with_commit_properties(properties)
                .await
                .map_err(delta_err(&layer.path))?;
            layer.table = Some(table);
            metrics.vacuums += 1;
        }
    }
    Ok(())
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::milliseconds(d.as_millis() as i64)
}
