//! `binlake bench lake`: the lake's costs, measured side by side in one process. Bronze append
//! rows/s; 10k-change batches (90% updates and deletes, 10% inserts) applied to 1M- and
//! 10M-row tables with OLTP-like and uniform keys, through binlake's writer and through the
//! naive delta-rs MERGE (`when_matched_update_all` + `when_not_matched_insert_all`); peak RSS of
//! each; and the files a table collects over many small commits with and without maintenance.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::arrow::array::{
    ArrayRef, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use deltalake::datafusion::prelude::{col, SessionContext};
use deltalake::protocol::SaveMode;
use deltalake::DeltaTable;
use serde_json::json;

use crate::event::{Column, ColumnType, Position, TableId, TableSchema};
use crate::lake::config::LakeConfig;
use crate::lake::layout::{
    CDC_OP, CDC_POSITION, CDC_TS, END_AT, END_POSITION, START_AT, START_POSITION,
};
use crate::lake::storage::LakeStorage;
use crate::lake::writer::LakeWriter;
use crate::lake::LakeError;
use crate::transport::record::Record;
use crate::workload::Rng;

#[derive(Debug, Clone)]
pub struct LakeBenchOptions {
    /// Scratch directory (tables are built here and removed at the end).
    pub dir: PathBuf,
    /// Table sizes, in rows.
    pub sizes: Vec<u64>,
    pub batch: usize,
    pub batches: usize,
    /// Small commits for the maintenance comparison (3,600 = an hour at one per second).
    pub small_commits: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Keys {
    /// 90% of the touched keys among the newest 10%.
    Oltp,
    Uniform,
}

pub(super) fn schema() -> Arc<TableSchema> {
    let mut id = Column::new("id", ColumnType::BigInt);
    id.nullable = false;
    Arc::new(TableSchema {
        id: TableId {
            db: "shop".into(),
            table: "bench".into(),
        },
        columns: vec![
            id,
            Column::new("customer", ColumnType::VarChar { max_bytes: 160 }),
            Column::new(
                "amount",
                ColumnType::Decimal {
                    precision: 12,
                    scale: 2,
                },
            ),
            Column::new("status", ColumnType::VarChar { max_bytes: 40 }),
            Column::new("qty", ColumnType::Int),
            Column::new("updated", ColumnType::DateTime { fsp: 6 }),
        ],
        primary_key: vec![0],
        positional_names: false,
    })
}

const STATUSES: [&str; 3] = ["new", "paid", "shipped"];
const BASE_TS_US: i64 = 1_700_000_000_000_000;

fn order(file_seq: u32, pos: u64) -> String {
    let p = Position {
        file: Arc::from(format!("mysql-bin.{file_seq:06}").as_str()),
        pos,
        row: 0,
    };
    format!("{}:1", p.sort_key())
}

/// Rows `lo..hi` of the base table, typed as silver (and, with `history`, as history) holds them.
fn base_batch(lo: u64, hi: u64, history: bool) -> RecordBatch {
    let ids: Vec<i64> = (lo as i64..hi as i64).collect();
    let ts = |_: &i64| BASE_TS_US;
    let mut fields = vec![
        Field::new("id", DataType::Int64, true),
        Field::new("customer", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(12, 2), true),
        Field::new("status", DataType::Utf8, true),
        Field::new("qty", DataType::Int32, true),
        Field::new(
            "updated",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
    ];
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|i| format!("customer{}", i % 1000)),
        )),
        Arc::new(
            Decimal128Array::from_iter_values(ids.iter().map(|i| (i % 100_000) as i128))
                .with_precision_and_scale(12, 2)
                .expect("valid"),
        ),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|i| STATUSES[(*i % 3) as usize]),
        )),
        Arc::new(Int32Array::from_iter_values(
            ids.iter().map(|i| (i % 10) as i32),
        )),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            ids.iter().map(|i| BASE_TS_US + i),
        )),
    ];
    let utc = crate::lake::types::utc_micros();
    let positions = StringArray::from_iter_values(ids.iter().map(|i| order(1, *i as u64)));
    let times =
        TimestampMicrosecondArray::from_iter_values(ids.iter().map(ts)).with_timezone("UTC");
    fields.push(Field::new(CDC_OP, DataType::Utf8, !history));
    arrays.push(Arc::new(StringArray::from_iter_values(
        ids.iter().map(|_| "r"),
    )));
    if history {
        fields.push(Field::new(START_AT, utc.clone(), true));
        arrays.push(Arc::new(times));
        fields.push(Field::new(END_AT, utc, true));
        arrays.push(Arc::new(
            TimestampMicrosecondArray::from(vec![None; ids.len()]).with_timezone("UTC"),
        ));
        fields.push(Field::new(START_POSITION, DataType::Utf8, true));
        arrays.push(Arc::new(positions));
        fields.push(Field::new(END_POSITION, DataType::Utf8, true));
        arrays.push(Arc::new(StringArray::from(vec![None::<&str>; ids.len()])));
    } else {
        fields.push(Field::new(CDC_POSITION, DataType::Utf8, false));
        arrays.push(Arc::new(positions));
        fields.push(Field::new(CDC_TS, utc, false));
        arrays.push(Arc::new(times));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("consistent")
}

async fn open(path: &Path) -> Result<DeltaTable, LakeError> {
    std::fs::create_dir_all(path).map_err(|e| LakeError::Storage {
        table: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let url = url::Url::from_directory_path(path).expect("absolute");
    DeltaTable::try_from_url(url)
        .await
        .map_err(|e| LakeError::Delta {
            table: path.display().to_string(),
            source: Box::new(e),
        })
}

fn delta(path: &Path) -> impl Fn(deltalake::DeltaTableError) -> LakeError + '_ {
    move |e| LakeError::Delta {
        table: path.display().to_string(),
        source: Box::new(e),
    }
}

/// Writes silver and history of `rows` rows, in key order, 1M rows per commit, with the
/// parquet settings binlake gives them.
pub(super) async fn build_base(lake: &Path, rows: u64) -> Result<(), LakeError> {
    for (rel, history) in [
        ("silver/shop/bench", false),
        ("silver/shop/bench__history", true),
    ] {
        let path = lake.join(rel);
        let mut table = open(&path).await?;
        let mut lo = 1;
        while lo <= rows {
            let hi = (lo + 1_000_000).min(rows + 1);
            let mut batches = Vec::new();
            let mut at = lo;
            while at < hi {
                let next = (at + 100_000).min(hi);
                batches.push(base_batch(at, next, history));
                at = next;
            }
            table = table
                .write(batches)
                .with_save_mode(SaveMode::Append)
                .with_writer_properties(crate::lake::keys::keyed_writer_properties())
                .await
                .map_err(delta(&path))?;
            lo = hi;
        }
    }
    Ok(())
}

#[derive(Clone)]
pub(super) struct Change {
    pub(super) op: &'static str,
    pub(super) id: u64,
    pub(super) pos: u64,
}

/// Generates batches of changes on a table whose keys are 1..=max.
struct Workload {
    rng: Rng,
    keys: Keys,
    rows: u64,
    max: u64,
    deleted: HashSet<u64>,
    pos: u64,
}

impl Workload {
    fn new(rows: u64, keys: Keys) -> Workload {
        Workload {
            rng: Rng(0x9E37_79B9_7F4A_7C15),
            keys,
            rows,
            max: rows,
            deleted: HashSet::new(),
            pos: 4,
        }
    }

    fn pick(&mut self) -> u64 {
        for _ in 0..100 {
            let id = match self.keys {
                Keys::Oltp if self.rng.below_u64(10) < 9 => {
                    let newest = (self.rows / 10).max(1);
                    self.max - self.rng.below_u64(newest)
                }
                _ => 1 + self.rng.below_u64(self.max),
            };
            if !self.deleted.contains(&id) {
                return id;
            }
        }
        self.max
    }

    fn batch(&mut self, n: usize) -> Vec<Change> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            self.pos += 100;
            let roll = self.rng.below_u64(10);
            let change = if roll == 0 {
                self.max += 1;
                Change {
                    op: "c",
                    id: self.max,
                    pos: self.pos,
                }
            } else if roll == 1 {
                let id = self.pick();
                self.deleted.insert(id);
                Change {
                    op: "d",
                    id,
                    pos: self.pos,
                }
            } else {
                Change {
                    op: "u",
                    id: self.pick(),
                    pos: self.pos,
                }
            };
            out.push(change);
        }
        out
    }
}

fn row_json(id: u64, version: u64) -> serde_json::Value {
    json!({
        "id": id,
        "customer": format!("customer{}", (id + version) % 1000),
        "amount": format!("{}.{:02}", (id + version) % 1000, version % 100),
        "status": STATUSES[((id + version) % 3) as usize],
        "qty": ((id + version) % 10) as i64,
        "updated": BASE_TS_US + (id + version) as i64,
    })
}

pub(super) fn records(changes: &[Change], schema: &Arc<TableSchema>) -> Vec<Record> {
    changes
        .iter()
        .map(|c| {
            let (before, after) = match c.op {
                "c" => (serde_json::Value::Null, row_json(c.id, c.pos)),
                "d" => (row_json(c.id, 0), serde_json::Value::Null),
                _ => (row_json(c.id, 0), row_json(c.id, c.pos)),
            };
            let value = json!({
                "before": before,
                "after": after,
                "source": {"db": "shop", "table": "bench", "file": "mysql-bin.000002", "pos": c.pos, "row": 0, "ts_ms": 1_700_000_000_000i64, "snapshot": "false"},
                "op": c.op,
                "ts_ms": 1_700_000_000_000i64,
            });
            Record {
                topic: "bench.shop.bench".into(),
                partition: 0,
                offset: None,
                key: None,
                value: Some(serde_json::to_vec(&value).expect("json")),
                schema_id: None,
                schema: Some(Arc::clone(schema)),
            }
        })
        .collect()
}

/// The naive baseline's source: the last change per key as a typed silver row.
fn naive_batch(changes: &[Change]) -> RecordBatch {
    let mut last: std::collections::HashMap<u64, &Change> = std::collections::HashMap::new();
    for c in changes {
        last.insert(c.id, c);
    }
    let mut rows: Vec<&Change> = last.into_values().collect();
    rows.sort_by_key(|c| c.id);
    let v = |c: &Change| c.id + c.pos;
    let fields = vec![
        Field::new("id", DataType::Int64, true),
        Field::new("customer", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(12, 2), true),
        Field::new("status", DataType::Utf8, true),
        Field::new("qty", DataType::Int32, true),
        Field::new(
            "updated",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        Field::new(CDC_OP, DataType::Utf8, true),
        Field::new(CDC_POSITION, DataType::Utf8, false),
        Field::new(CDC_TS, crate::lake::types::utc_micros(), false),
    ];
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|c| c.id as i64),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|c| format!("customer{}", v(c) % 1000)),
        )),
        Arc::new(
            Decimal128Array::from_iter_values(rows.iter().map(|c| (v(c) % 100_000) as i128))
                .with_precision_and_scale(12, 2)
                .expect("valid"),
        ),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|c| STATUSES[(v(c) % 3) as usize]),
        )),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|c| (v(c) % 10) as i32),
        )),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            rows.iter().map(|c| BASE_TS_US + v(c) as i64),
        )),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|c| c.op))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|c| order(2, c.pos)),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|_| BASE_TS_US))
                .with_timezone("UTC"),
        ),
    ];
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("consistent")
}

async fn naive_merge(
    table: DeltaTable,
    batch: RecordBatch,
    path: &Path,
) -> Result<DeltaTable, LakeError> {
    let ctx = SessionContext::new();
    let source = ctx.read_batch(batch).map_err(|e| LakeError::Storage {
        table: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let (table, _) = table
        .merge(source, col("t.id").eq(col("s.id")))
        .with_source_alias("s")
        .with_target_alias("t")
        .when_matched_update(|u| {
            [
                "customer",
                "amount",
                "status",
                "qty",
                "updated",
                CDC_OP,
                CDC_POSITION,
                CDC_TS,
            ]
            .iter()
            .fold(u, |u, c| u.update(*c, col(format!("s.{c}"))))
        })
        .and_then(|m| {
            m.when_not_matched_insert(|i| {
                [
                    "id",
                    "customer",
                    "amount",
                    "status",
                    "qty",
                    "updated",
                    CDC_OP,
                    CDC_POSITION,
                    CDC_TS,
                ]
                .iter()
                .fold(i, |i, c| i.set(*c, col(format!("s.{c}"))))
            })
        })
        .map_err(delta(path))?
        .await
        .map_err(delta(path))?;
    Ok(table)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), LakeError> {
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .map_err(|e| LakeError::Storage {
            table: to.display().to_string(),
            reason: e.to_string(),
        })?;
    if !status.success() {
        return Err(LakeError::Storage {
            table: to.display().to_string(),
            reason: "cp -r failed".into(),
        });
    }
    Ok(())
}

/// Resets the kernel's peak-RSS counter (Linux), so the next reading covers what follows.
/// Memory the previous case freed is first handed back to the system (glibc keeps it
/// otherwise, and it would count toward the next case's peak).
pub(super) fn reset_peak_rss() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub(super) fn mb(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".into(), |b| format!("{:.0} MB", b as f64 / 1e6))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn settings(maintenance: bool) -> LakeConfig {
    LakeConfig {
        optimize_every_commits: if maintenance { 100 } else { 0 },
        vacuum_every_commits: if maintenance { 500 } else { 0 },
        vacuum_retention_hours: 0,
        ..LakeConfig::default()
    }
}

pub(super) fn writer(lake: &Path, maintenance: bool) -> Result<LakeWriter, LakeError> {
    let storage = LakeStorage::new(
        lake.to_str().expect("utf-8 path"),
        &Default::default(),
        Path::new("/"),
    )?;
    Ok(LakeWriter::new(storage, settings(maintenance)))
}

fn parquet_files(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|f| f != "_delta_log") {
                    n += parquet_files(&p);
                }
            } else if p.extension().is_some_and(|x| x == "parquet") {
                n += 1;
            }
        }
    }
    n
}

async fn active_files(path: &Path) -> Result<usize, LakeError> {
    let table = open(path).await?;
    let count = table.get_file_uris().map_err(delta(path))?.count();
    Ok(count)
}

/// Runs every measurement and prints it.
pub async fn bench_lake(options: &LakeBenchOptions, out: &mut dyn Write) -> Result<(), LakeError> {
    let schema = schema();
    let io = |e: std::io::Error| LakeError::Storage {
        table: "stdout".into(),
        reason: e.to_string(),
    };
    let mut bronze_rows = 0u64;
    let mut bronze_time = Duration::ZERO;
    for &rows in &options.sizes {
        let base = options.dir.join(format!("base-{rows}"));
        let started = Instant::now();
        build_base(&base, rows).await?;
        writeln!(
            out,
            "table of {rows} rows (silver + history) built in {:.1} s",
            started.elapsed().as_secs_f64()
        )
        .map_err(io)?;
        for keys in [Keys::Oltp, Keys::Uniform] {
            let name = if keys == Keys::Oltp {
                "OLTP-like"
            } else {
                "uniform"
            };
            let ours_dir = options.dir.join(format!("ours-{rows}-{name}"));
            let naive_dir = options.dir.join(format!("naive-{rows}-{name}"));
            copy_dir(&base, &ours_dir)?;
            copy_dir(&base.join("silver/shop/bench"), &naive_dir)?;
            let mut workload = Workload::new(rows, keys);
            let batches: Vec<Vec<Change>> = (0..options.batches)
                .map(|_| workload.batch(options.batch))
                .collect();

            reset_peak_rss();
            let mut writer = writer(&ours_dir, false)?;
            let mut ours = Vec::new();
            let mut silver = Vec::new();
            for b in &batches {
                let recs = records(b, &schema);
                let before = writer.metrics.clone();
                let t = Instant::now();
                writer.apply(&recs).await?;
                ours.push(t.elapsed());
                let m = &writer.metrics;
                silver.push(
                    m.silver_time - before.silver_time + (m.lookup_time - before.lookup_time),
                );
            }
            let ours_rss = super::peak_rss_bytes();
            bronze_rows += (options.batch * options.batches) as u64;
            bronze_time += writer.metrics.bronze_time;
            let history = writer.metrics.history_time;
            drop(writer);

            reset_peak_rss();
            let naive_path = naive_dir.clone();
            let mut table = open(&naive_path).await?;
            let mut naive = Vec::new();
            for b in &batches {
                let batch = naive_batch(b);
                let t = Instant::now();
                table = naive_merge(table, batch, &naive_path).await?;
                naive.push(t.elapsed());
            }
            let naive_rss = super::peak_rss_bytes();
            let (o, s, n) = (median(ours), median(silver), median(naive));
            writeln!(
                out,
                "  {rows} rows, {name} keys, {}-change batches (median of {}): binlake {:.3} s per batch (silver merge + key lookup {:.3} s, history {:.3} s per batch), naive MERGE {:.3} s; silver vs naive {:.2}x; peak RSS binlake {}, naive {}",
                options.batch,
                options.batches,
                o.as_secs_f64(),
                s.as_secs_f64(),
                history.as_secs_f64() / options.batches as f64,
                n.as_secs_f64(),
                n.as_secs_f64() / s.as_secs_f64(),
                mb(ours_rss),
                mb(naive_rss),
            )
            .map_err(io)?;
            let _ = std::fs::remove_dir_all(&ours_dir);
            let _ = std::fs::remove_dir_all(&naive_dir);
        }
        let _ = std::fs::remove_dir_all(&base);
    }
    if bronze_rows > 0 {
        writeln!(
            out,
            "bronze append: {:.0} rows/s ({} rows in {:.2} s of bronze commits)",
            bronze_rows as f64 / bronze_time.as_secs_f64(),
            bronze_rows,
            bronze_time.as_secs_f64()
        )
        .map_err(io)?;
    }
    if options.small_commits > 0 {
        for maintenance in [false, true] {
            let lake = options.dir.join(format!("small-{maintenance}"));
            let mut writer = writer(&lake, maintenance)?;
            let mut workload = Workload::new(0, Keys::Oltp);
            let started = Instant::now();
            for i in 0..options.small_commits {
                // Ten changes a second: inserts first, then a mix.
                let changes = if i < 10 {
                    (0..10)
                        .map(|_| {
                            workload.max += 1;
                            workload.rows = workload.max;
                            workload.pos += 100;
                            Change {
                                op: "c",
                                id: workload.max,
                                pos: workload.pos,
                            }
                        })
                        .collect()
                } else {
                    workload.rows = workload.max;
                    workload.batch(10)
                };
                writer.apply(&records(&changes, &schema)).await?;
            }
            writer.finish_maintenance().await?;
            let elapsed = started.elapsed();
            let mut counts = Vec::new();
            for rel in [
                "bronze/shop/bench",
                "silver/shop/bench",
                "silver/shop/bench__history",
            ] {
                let path = lake.join(rel);
                counts.push(format!(
                    "{rel}: {} active files, {} parquet files on disk",
                    active_files(&path).await?,
                    parquet_files(&path)
                ));
            }
            let read = Instant::now();
            let silver_rows = {
                let table = open(&lake.join("silver/shop/bench")).await?;
                let ctx = SessionContext::new();
                table
                    .update_datafusion_session(&ctx.state())
                    .map_err(delta(&lake))?;
                let provider = table
                    .table_provider()
                    .await
                    .map_err(|e| LakeError::Storage {
                        table: "silver".into(),
                        reason: e.to_string(),
                    })?;
                ctx.read_table(provider)
                    .map_err(|e| LakeError::Storage {
                        table: "silver".into(),
                        reason: e.to_string(),
                    })?
                    .count()
                    .await
                    .map_err(|e| LakeError::Storage {
                        table: "silver".into(),
                        reason: e.to_string(),
                    })?
            };
            writeln!(
                out,
                "{} small commits of 10 changes {} maintenance ({:.1} s, {} optimizes ({} lost in the background and run in line), {} vacuums): {}; reading silver ({silver_rows} rows) {:.3} s",
                options.small_commits,
                if maintenance { "with" } else { "without" },
                elapsed.as_secs_f64(),
                writer.metrics.optimizes,
                writer.metrics.compactions_lost,
                writer.metrics.vacuums,
                counts.join("; "),
                read.elapsed().as_secs_f64()
            )
            .map_err(io)?;
            let _ = std::fs::remove_dir_all(&lake);
        }
    }
    Ok(())
}
