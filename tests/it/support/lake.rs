//! Reading the lake back in tests: a Delta table queried through delta-rs and DataFusion, the
//! server's rows in the same text form, and the outside readers and stores the suite runs
//! against (Python's deltalake, Azurite).

use std::path::Path;

use deltalake::arrow::array::{Array, StringArray};
use deltalake::arrow::datatypes::DataType;
use deltalake::datafusion::prelude::SessionContext;

use super::mariadb::MariaDb;

/// Runs `sql` (over table `t`) against the Delta table at `url`; every value cast to text,
/// NULL as `NULL`, columns joined with `|`.
pub fn lake_query(url: &str, options: &[(&str, &str)], sql: &str) -> Vec<String> {
    // One runtime for every query: delta-rs keeps HTTP clients (and their pooled connections)
    // across tables, and a connection made on a runtime that is gone fails the next request.
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| tokio::runtime::Runtime::new().unwrap());
    runtime.block_on(async {
        let table = open_table(url, options).await;
        let ctx = SessionContext::new();
        table.update_datafusion_session(&ctx.state()).unwrap();
        ctx.register_table("t", table.table_provider().await.unwrap())
            .unwrap();
        let batches = ctx
            .sql(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .collect()
            .await
            .unwrap();
        let mut rows = Vec::new();
        for b in batches {
            let columns: Vec<_> = b
                .columns()
                .iter()
                .map(|c| deltalake::arrow::compute::cast(c, &DataType::Utf8).unwrap())
                .collect();
            for i in 0..b.num_rows() {
                let cells: Vec<String> = columns
                    .iter()
                    .map(|c| {
                        let s = c.as_any().downcast_ref::<StringArray>().unwrap();
                        if s.is_null(i) {
                            "NULL".to_string()
                        } else {
                            s.value(i).to_string()
                        }
                    })
                    .collect();
                rows.push(cells.join("|"));
            }
        }
        rows
    })
}

/// The Delta table at `url` (with storage `options`), at its newest version.
async fn open_table(url: &str, options: &[(&str, &str)]) -> deltalake::DeltaTable {
    deltalake::azure::register_handlers(None);
    let url = url::Url::parse(url).unwrap();
    let options = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    deltalake::DeltaTable::try_from_url_with_storage_options(url.clone(), options)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// The process that made each commit of the Delta table at `url` (commit info
/// `binlake.writer`), oldest first; commits without one are left out.
pub fn commit_writers(url: &str, options: &[(&str, &str)]) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use futures_util::StreamExt;
        let table = open_table(url, options).await;
        let mut writers = Vec::new();
        let mut history = table.history(None);
        while let Some(commit) = history.next().await {
            if let Some(w) = commit.unwrap().info.get(binlake::lake::state::WRITER_KEY) {
                writers.push(w.as_str().unwrap_or_default().to_string());
            }
        }
        writers.reverse();
        writers
    })
}

/// The file URL of table `rel` under a local lake directory.
pub fn table_url(lake: &Path, rel: &str) -> String {
    url::Url::from_directory_path(lake.join(rel))
        .unwrap()
        .to_string()
}

/// The server's rows of `select`, with MariaDB's NULL spelled as the lake side spells it.
pub fn source_rows(db: &MariaDb, select: &str) -> Vec<String> {
    db.sql(select)
        .lines()
        .map(|l| l.replace('\t', "|"))
        .collect()
}

/// Azurite's address: scripts/test.sh starts one for the suite and exports it; every test
/// uses its own fresh container.
pub fn azurite() -> String {
    std::env::var("AZURITE_BLOB_STORAGE_URL").expect(
        "AZURITE_BLOB_STORAGE_URL is not set: run the suite with scripts/test.sh, which starts Azurite",
    )
}

/// Python's `deltalake` (scripts/test.sh installs it in a venv and exports BINLAKE_PYTHON).
pub fn python() -> String {
    std::env::var("BINLAKE_PYTHON").expect(
        "BINLAKE_PYTHON is not set: run the suite with scripts/test.sh, which installs Python's deltalake",
    )
}

/// One change of `shop.k (id BIGINT PRIMARY KEY, v VARCHAR)` as the sink receives it: from
/// Kafka partition 0 at `offset`, or in-process (no offset).
pub fn k_record(
    op: &str,
    id: i64,
    v: &str,
    pos: u64,
    offset: Option<i64>,
) -> binlake::transport::record::Record {
    use binlake::event::{Column, ColumnType};
    let schema = keyed_by_id(
        "shop",
        "k",
        Column::new("v", ColumnType::VarChar { max_bytes: 40 }),
    );
    let row = serde_json::json!({"id": id, "v": v});
    let (before, after) = match op {
        "c" => (serde_json::Value::Null, row),
        "d" => (row, serde_json::Value::Null),
        _ => (serde_json::json!({"id": id, "v": "?"}), row),
    };
    record_of(schema, op, before, after, pos, offset)
}

/// The table `db.table (id BIGINT PRIMARY KEY, <other>)`.
pub fn keyed_by_id(
    db: &str,
    table: &str,
    other: binlake::event::Column,
) -> std::sync::Arc<binlake::event::TableSchema> {
    use binlake::event::{Column, ColumnType, TableId, TableSchema};
    let mut id = Column::new("id", ColumnType::BigInt);
    id.nullable = false;
    std::sync::Arc::new(TableSchema {
        id: TableId {
            db: db.into(),
            table: table.into(),
        },
        columns: vec![id, other],
        primary_key: vec![0],
        positional_names: false,
    })
}

/// One change of the table `schema` describes as the sink receives it (topic
/// `t.<db>.<table>`, binlog file `mysql-bin.000001`): from Kafka partition 0 at `offset`, or
/// in-process (no offset).
pub fn record_of(
    schema: std::sync::Arc<binlake::event::TableSchema>,
    op: &str,
    before: serde_json::Value,
    after: serde_json::Value,
    pos: u64,
    offset: Option<i64>,
) -> binlake::transport::record::Record {
    let (db, table) = (&schema.id.db, &schema.id.table);
    let value = serde_json::json!({
        "before": before, "after": after, "op": op, "ts_ms": 1_700_000_000_000i64,
        "source": {"db": db, "table": table, "file": "mysql-bin.000001", "pos": pos, "row": 0,
                   "ts_ms": 1_700_000_000_000i64, "snapshot": "false"},
    });
    binlake::transport::record::Record {
        topic: format!("t.{db}.{table}"),
        partition: 0,
        offset,
        key: None,
        value: Some(serde_json::to_vec(&value).unwrap()),
        schema_id: None,
        schema: Some(schema),
    }
}

/// A lake writer on `lake`, with silver's deletes by deletion vector or copy-on-write.
pub fn writer(lake: &Path, deletion_vectors: bool) -> binlake::lake::writer::LakeWriter {
    writer_with(
        lake,
        binlake::lake::config::LakeConfig {
            silver_deletes: Some(if deletion_vectors {
                binlake::lake::config::SilverDeletes::DeletionVectors
            } else {
                binlake::lake::config::SilverDeletes::CopyOnWrite
            }),
            ..Default::default()
        },
    )
}

/// A lake writer on `lake` with `settings`.
pub fn writer_with(
    lake: &Path,
    settings: binlake::lake::config::LakeConfig,
) -> binlake::lake::writer::LakeWriter {
    let storage = binlake::lake::storage::LakeStorage::new(
        lake.to_str().unwrap(),
        &Default::default(),
        Path::new("/"),
    )
    .unwrap();
    binlake::lake::writer::LakeWriter::new(storage, settings)
}
