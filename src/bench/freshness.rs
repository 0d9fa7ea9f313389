//! `binlake bench freshness`: how fresh silver (or a gold model) is, as a reader sees it. While a writer commits
//! rows stamped with their commit time in epoch ms, this polls the silver table every 100 ms
//! and records the age of the newest visible row when the poll found the table's newest
//! version (the query that reads that version afterwards is the reader's time, not the
//! pipeline's); p50/p99 over the run.

use std::time::{Duration, Instant};

use deltalake::arrow::array::{Array, Int64Array};
use deltalake::datafusion::prelude::SessionContext;
use deltalake::DeltaTable;

use crate::event::now_ms;
use crate::lake::storage::LakeStorage;
use crate::lake::LakeError;

#[derive(Debug, Clone)]
pub struct FreshnessReport {
    pub samples: usize,
    pub p50_ms: i64,
    pub p99_ms: i64,
    pub max_ms: i64,
    pub rows: i64,
}

fn err(e: impl std::fmt::Display) -> LakeError {
    LakeError::Storage {
        table: "freshness".into(),
        reason: e.to_string(),
    }
}

/// Polls the table at `path` (`silver/<db>/<table>`, `gold/<model>`) for `duration`, sampling
/// `now - max(column)`.
pub async fn measure(
    storage: &LakeStorage,
    path: &str,
    column: &str,
    duration: Duration,
) -> Result<FreshnessReport, LakeError> {
    let url = storage.table_url(path)?;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut rows = 0;
    while started.elapsed() < duration {
        let tick = Instant::now();
        if let Ok(t) =
            DeltaTable::try_from_url_with_storage_options(url.clone(), storage.options().clone())
                .await
        {
            if t.version().is_some() {
                let seen_at = now_ms() as i64;
                let ctx = SessionContext::new();
                t.update_datafusion_session(&ctx.state()).map_err(err)?;
                ctx.register_table("t", t.table_provider().await.map_err(err)?)
                    .map_err(err)?;
                let batches = ctx
                    .sql(&format!("SELECT max(\"{column}\"), count(*) FROM t"))
                    .await
                    .map_err(err)?
                    .collect()
                    .await
                    .map_err(err)?;
                if let Some(b) = batches.first() {
                    let newest = b.column(0).as_any().downcast_ref::<Int64Array>();
                    let count = b.column(1).as_any().downcast_ref::<Int64Array>();
                    if let (Some(newest), Some(count)) = (newest, count) {
                        if newest.is_valid(0) {
                            samples.push(seen_at - newest.value(0));
                            rows = count.value(0);
                        }
                    }
                }
            }
        }
        if let Some(rest) = Duration::from_millis(100).checked_sub(tick.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    samples.sort();
    let pick = |q: f64| {
        samples
            .get(((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1)))
            .copied()
            .unwrap_or(-1)
    };
    Ok(FreshnessReport {
        samples: samples.len(),
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
        max_ms: samples.last().copied().unwrap_or(-1),
        rows,
    })
}
