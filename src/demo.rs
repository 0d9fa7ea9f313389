//! `binlake demo`: the whole path on an embedded default, no services. A bundled binlog of the
//! e-commerce workload (captured from MariaDB running sql/online_store.sql and
//! `binlake generate`, with an ALTER TABLE mid-way) is decoded, published to an in-process
//! Kafka (librdkafka's mock cluster, the real protocol over loopback), consumed by the sink
//! into bronze, silver and history on a local lake, and the gold models are built over it.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::lake::config::LakeConfig;
use crate::lake::gold::{refresh, GoldModel, GoldVacuum};
use crate::lake::storage::LakeStorage;
use crate::lake::writer::LakeWriter;
use crate::pipeline::{sink_kafka, SinkOptions};
use crate::replay::{replay_bytes_into, ReplayOptions};
use crate::transport::kafka::{KafkaConfig, KafkaInput, KafkaOutput};

/// The bundled binlog (tests/fixtures/binlogs/mariadb/online-store.000001).
pub const ECOMMERCE_BINLOG: &[u8] =
    include_bytes!("../tests/fixtures/binlogs/mariadb/online-store.000001");

/// The e-commerce gold models (sql/gold), built in.
pub const ECOMMERCE_MODELS: &[(&str, &str)] = &[
    (
        "daily_revenue_by_category",
        include_str!("../sql/gold/daily_revenue_by_category.sql"),
    ),
    (
        "customer_lifetime_value",
        include_str!("../sql/gold/customer_lifetime_value.sql"),
    ),
    (
        "order_status_funnel",
        include_str!("../sql/gold/order_status_funnel.sql"),
    ),
    ("dim_customer", include_str!("../sql/gold/dim_customer.sql")),
    (
        "dim_customer_history",
        include_str!("../sql/gold/dim_customer_history.sql"),
    ),
];

/// A file in the lake directory that says binlake made it (so a rerun may replace it).
const MARKER: &str = ".binlake-demo";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo: {0}")]
    Setup(String),
    #[error(transparent)]
    Replay(#[from] crate::replay::ReplayError),
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    #[error(transparent)]
    Lake(#[from] crate::lake::LakeError),
}

fn setup(e: impl std::fmt::Display) -> DemoError {
    DemoError::Setup(e.to_string())
}

/// Runs the demo into `lake_dir` and prints what it built on `out`.
pub async fn run_demo(lake_dir: &Path, out: &mut dyn Write) -> Result<(), DemoError> {
    if lake_dir.exists() {
        if !lake_dir.join(MARKER).exists() && lake_dir.read_dir().map_err(setup)?.next().is_some() {
            return Err(DemoError::Setup(format!(
                "{} exists and is not a binlake demo lake; pass another --lake",
                lake_dir.display()
            )));
        }
        std::fs::remove_dir_all(lake_dir).map_err(setup)?;
    }
    std::fs::create_dir_all(lake_dir).map_err(setup)?;
    std::fs::write(lake_dir.join(MARKER), "made by binlake demo\n").map_err(setup)?;
    let started = Instant::now();

    let mock = rdkafka::mocking::MockCluster::new(1).map_err(setup)?;
    let bootstrap = mock.bootstrap_servers();
    let prefix = "demo";
    let mut kafka = KafkaConfig::new(&bootstrap, prefix);
    kafka.group_id = Some("binlake-demo".into());
    // The mock cluster has no CreateTopics: it makes a topic when first asked about it.
    kafka
        .librdkafka
        .insert("allow.auto.create.topics".into(), "true".into());
    let mut output = KafkaOutput::new(&kafka).map_err(DemoError::Setup)?;
    let replayed = replay_bytes_into(
        "online-store.000001",
        ECOMMERCE_BINLOG,
        &ReplayOptions::default(),
        &mut output,
    )?;
    drop(output);
    let published = started.elapsed();

    let storage = LakeStorage::new(
        lake_dir
            .to_str()
            .ok_or_else(|| setup("the lake path is not UTF-8"))?,
        &Default::default(),
        Path::new("."),
    )?;
    let mut writer = LakeWriter::new(storage.clone(), LakeConfig::default());
    let mut input = KafkaInput::new(&kafka).map_err(DemoError::Setup)?;
    let options = SinkOptions {
        exit_when_caught_up: true,
        source_done: None,
        metrics: None,
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let sunk = sink_kafka(&mut writer, &mut input, &options, &stop, None).await?;
    let applied = started.elapsed();

    let models: Vec<GoldModel> = ECOMMERCE_MODELS
        .iter()
        .map(|(name, sql)| GoldModel {
            name: name.to_string(),
            file: Path::new("sql/gold").join(format!("{name}.sql")),
            sql: sql.to_string(),
        })
        .collect();
    let outcomes = refresh(&storage, &models, GoldVacuum::default()).await?;
    let built = started.elapsed();

    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").map_err(setup);
    w(
        out,
        format!(
        "binlake demo: {} row changes ({} transactions, {} DDL) from the bundled e-commerce binlog",
        replayed.changes, replayed.commits, replayed.ddl
    ),
    )?;
    w(out, format!(
        "  binlog -> Kafka (in-process mock cluster): {:.2} s; Kafka -> bronze/silver/history: {} records in {} batches, {:.2} s; gold: {:.2} s",
        published.as_secs_f64(),
        sunk.records,
        sunk.batches,
        (applied - published).as_secs_f64(),
        (built - applied).as_secs_f64()
    ))?;
    w(out, format!("  lake: {}", lake_dir.display()))?;
    w(out, String::new())?;
    w(
        out,
        "table                                        rows".into(),
    )?;
    for layer in ["bronze", "silver"] {
        let mut tables = list_tables(&lake_dir.join(layer));
        tables.sort();
        for t in tables {
            let rows = count_rows(&storage, &t).await?;
            w(out, format!("{t:<44} {rows:>6}"))?;
        }
    }
    for o in &outcomes {
        match &o.result {
            Ok(rows) => w(out, format!("{:<44} {rows:>6}", format!("gold/{}", o.name)))?,
            Err(e) => w(out, format!("gold/{}: FAILED: {e}", o.name))?,
        }
    }
    for name in ["order_status_funnel", "daily_revenue_by_category"] {
        w(out, String::new())?;
        w(out, format!("gold/{name}:"))?;
        w(out, show(&storage, &format!("gold/{name}"), 12).await?)?;
    }
    Ok(())
}

/// `layer/db/table` paths of the Delta tables under a layer directory.
fn list_tables(layer: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(dbs) = std::fs::read_dir(layer) else {
        return out;
    };
    let layer_name = layer
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    for db in dbs.flatten() {
        let Ok(tables) = std::fs::read_dir(db.path()) else {
            continue;
        };
        for t in tables.flatten() {
            if t.path().join("_delta_log").is_dir() {
                out.push(format!(
                    "{layer_name}/{}/{}",
                    db.file_name().to_string_lossy(),
                    t.file_name().to_string_lossy()
                ));
            }
        }
    }
    out
}

async fn table_frame(
    storage: &LakeStorage,
    path: &str,
) -> Result<deltalake::datafusion::prelude::DataFrame, DemoError> {
    let url = storage.table_url(path)?;
    let table = deltalake::DeltaTable::try_from_url(url)
        .await
        .map_err(setup)?;
    let ctx = deltalake::datafusion::prelude::SessionContext::new();
    table
        .update_datafusion_session(&ctx.state())
        .map_err(setup)?;
    let provider = table.table_provider().await.map_err(setup)?;
    ctx.read_table(provider).map_err(setup)
}

async fn count_rows(storage: &LakeStorage, path: &str) -> Result<usize, DemoError> {
    table_frame(storage, path)
        .await?
        .count()
        .await
        .map_err(setup)
}

async fn show(storage: &LakeStorage, path: &str, limit: usize) -> Result<String, DemoError> {
    let batches = table_frame(storage, path)
        .await?
        .limit(0, Some(limit))
        .map_err(setup)?
        .collect()
        .await
        .map_err(setup)?;
    deltalake::arrow::util::pretty::pretty_format_batches(&batches)
        .map(|t| t.to_string())
        .map_err(setup)
}
