//! `binlake status`: per table, where the source stands, what bronze and silver hold, and how
//! far behind the lake is (records still in Kafka, and seconds since the newest applied
//! change's source commit while there are). Read-only: it reads the source's checkpoint, the
//! tables' commit records and the topics' end offsets.

use std::fmt::Write;
use std::time::Duration;

use crate::config::Config;
use crate::event::{now_ms, TableId};
use crate::lake::route::Routes;
use crate::lake::state::LayerState;
use crate::lake::stopped::StoppedTable;
use crate::lake::storage::LakeStorage;
use crate::lake::writer::LakeWriter;
use crate::lake::LakeError;
use crate::mysql::checkpoint::CheckpointStore;
use crate::transport::kafka::KafkaInput;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("status: {0}")]
    Other(String),
}

/// One table's line.
#[derive(Debug, Clone, PartialEq)]
pub struct TableStatus {
    pub table: TableId,
    pub bronze: Option<String>,
    pub silver: Option<String>,
    /// Records in Kafka the lake does not hold yet (Kafka transport only).
    pub pending_rows: Option<i64>,
    pub lag_seconds: Option<f64>,
}

/// `file-sequence:offset` of an order key (`0000000001:000000005325:00000000:1`).
fn position_text(order: &str) -> String {
    let mut parts = order.split(':');
    match (parts.next(), parts.next()) {
        (Some(seq), Some(pos)) => format!(
            "#{}:{}",
            seq.trim_start_matches('0').parse::<u64>().unwrap_or(0),
            pos.trim_start_matches('0').parse::<u64>().unwrap_or(0)
        ),
        _ => order.to_string(),
    }
}

fn applied(state: &Option<LayerState>) -> Option<String> {
    let state = state.as_ref()?;
    Some(match state.positions.values().max() {
        Some(newest) => position_text(newest),
        // Only snapshot rows so far, which carry no stream position.
        None => "snapshot".into(),
    })
}

/// What `binlake status` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// Where the source's checkpoint stands.
    pub source: Option<String>,
    pub tables: Vec<TableStatus>,
    /// Tables whose apply stopped, with why (from the lake's stop records).
    pub stopped: Vec<StoppedTable>,
}

/// Collects the status of every table in the lake.
pub async fn collect_all(config: &Config) -> Result<Status, StatusError> {
    let (source, tables) = collect(config).await?;
    let lake = config.lake("status")?;
    let storage = LakeStorage::new(&lake.url, &lake.storage, &config.base)?;
    let stopped = crate::lake::stopped::list(&storage).await?;
    Ok(Status {
        source,
        tables,
        stopped,
    })
}

/// Collects the source's position and the status of every table in the lake.
pub async fn collect(config: &Config) -> Result<(Option<String>, Vec<TableStatus>), StatusError> {
    let checkpoint = match &config.source {
        Some(s) => CheckpointStore::new(&s.checkpoint)
            .load()
            .map_err(|e| StatusError::Other(e.to_string()))?,
        None => None,
    };
    let source = match &config.source {
        Some(_) => match &checkpoint {
            Some(cp) => Some(format!(
                "{}:{}{} (checkpoint {:.0} s old)",
                cp.file,
                cp.pos,
                if cp.gtid.is_empty() {
                    String::new()
                } else {
                    format!(", gtid {}", cp.gtid)
                },
                (now_ms().saturating_sub(cp.written_at_ms)) as f64 / 1000.0
            )),
            None => Some("no checkpoint yet".into()),
        },
        None => None,
    };
    let lake = config.lake("status")?;
    let storage = LakeStorage::new(&lake.url, &lake.storage, &config.base)?;
    let mut writer = LakeWriter::new(storage.clone(), lake.clone());
    let routes = Routes::new(&lake.routes).map_err(StatusError::Other)?;
    // Each partition's end, with the lake table it lands in: its topic's table (under any of
    // `sink_topic_prefixes`), or the table a route names.
    let mut ends: Vec<(String, i64, TableId)> = Vec::new();
    if let Some(kafka) = config.transport.kafka() {
        let input = KafkaInput::observer(kafka).map_err(StatusError::Other)?;
        let offsets = input
            .end_offsets(Duration::from_secs(10))
            .map_err(StatusError::Other)?;
        for (sp, end) in offsets.iter() {
            if let Some(source) = input.table_of(sp) {
                let target = routes.target(&source).cloned().unwrap_or(source);
                ends.push((sp.to_string(), end, target));
            }
        }
    }
    let mut tables = Vec::new();
    for db in storage.list_dirs("bronze").await? {
        for table in storage.list_tables(&format!("bronze/{db}")).await? {
            let id = TableId {
                db: db.clone(),
                table,
            };
            let [bronze, _history, silver] = writer.table_states(&id).await?;
            let newest = silver.as_ref().or(bronze.as_ref());
            let pending_rows = config.transport.kafka().is_some().then(|| {
                ends.iter()
                    .filter(|(_, _, table)| *table == id)
                    .map(|(sp, end, _)| {
                        let held = newest.and_then(|s| s.offsets.get(sp)).unwrap_or(0);
                        (end - held).max(0)
                    })
                    .sum::<i64>()
            });
            let lag_seconds = match (pending_rows, newest.and_then(|s| s.source_ts_ms)) {
                (Some(0), _) => Some(0.0),
                (Some(_), Some(ts)) => Some((now_ms() as i64 - ts).max(0) as f64 / 1000.0),
                // Embedded: the lake holds everything up to the source's checkpoint, so it is
                // at most as old as the checkpoint.
                (None, _) => checkpoint
                    .as_ref()
                    .map(|cp| now_ms().saturating_sub(cp.written_at_ms) as f64 / 1000.0),
                _ => None,
            };
            tables.push(TableStatus {
                table: id,
                bronze: applied(&bronze),
                silver: applied(&silver),
                pending_rows,
                lag_seconds,
            });
        }
    }
    Ok((source, tables))
}

/// The status as a text table, followed by one line per stopped table.
pub fn render_all(status: &Status) -> String {
    let mut out = render(&status.source, &status.tables);
    for s in &status.stopped {
        let _ = writeln!(out, "STOPPED {}", s.message());
    }
    out
}

/// The status as a text table.
pub fn render(source: &Option<String>, tables: &[TableStatus]) -> String {
    let mut out = String::new();
    if let Some(s) = source {
        let _ = writeln!(out, "source: {s}");
    }
    let _ = writeln!(
        out,
        "{:<40} {:>16} {:>16} {:>12} {:>8}",
        "table", "bronze applied", "silver applied", "lag rows", "lag s"
    );
    let dash = || "-".to_string();
    for t in tables {
        let _ = writeln!(
            out,
            "{:<40} {:>16} {:>16} {:>12} {:>8}",
            t.table.to_string(),
            t.bronze.clone().unwrap_or_else(dash),
            t.silver.clone().unwrap_or_else(dash),
            t.pending_rows.map_or_else(dash, |r| r.to_string()),
            t.lag_seconds.map_or_else(dash, |s| format!("{s:.1}")),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_as_file_and_offset() {
        assert_eq!(
            position_text("0000000001:000000005325:00000000:1"),
            "#1:5325"
        );
        let t = TableStatus {
            table: TableId {
                db: "shop".into(),
                table: "orders".into(),
            },
            bronze: Some("#1:5325".into()),
            silver: None,
            pending_rows: Some(3),
            lag_seconds: Some(1.25),
        };
        let text = render(&Some("mariadb-bin.000001:5400".into()), &[t]);
        assert!(
            text.starts_with("source: mariadb-bin.000001:5400\n"),
            "{text}"
        );
        let line = text.lines().nth(2).unwrap();
        assert!(line.starts_with("shop.orders"), "{line}");
        assert!(
            line.ends_with("#1:5325                -            3      1.2"),
            "{line}"
        );
    }
}
