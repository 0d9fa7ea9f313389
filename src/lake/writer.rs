//! The lake writer: applies batches of transport records to the Delta tables of each source
//! table (bronze, then history, then silver) and to the dead-letter table, exactly once.
//!
//! Every commit carries, atomically with its data, what the table now holds: a Delta `txn`
//! action per Kafka partition (app id `binlake:<topic>:<partition>`, version = the next offset)
//! and, in the commit info under `binlake`, the same offsets plus the last streamed binlog
//! position per source partition. A record at an offset or position a table already holds is
//! not applied to it again, so a sink killed anywhere and a source that re-publishes after a
//! crash both leave every table as if each change had arrived once. Within silver and history,
//! a change at or before the position already applied to its key is ignored, which keeps a
//! late snapshot row or a replayed older insert from resurrecting a deleted row.

use std::collections::{BTreeMap, HashMap};
use std::ops::Not;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::datafusion::prelude::{col, lit, Expr, SessionContext};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::Transaction;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::change::{parse, source_partition, ChangeOp, LakeChange};
use super::deletion::{self, Located};
use super::storage::LakeStorage;
use super::types::{arrow_type, build_array, utc_micros};
use super::LakeError;
use crate::event::{now_ms, TableId, TableSchema};
use crate::transport::record::Record;

/// Commit cadence and table maintenance (`[lake]`).
#[derive(Debug, Clone)]
pub struct LakeSettings {
    pub max_rows: usize,
    pub max_latency: Duration,
    /// Compact a table's small files after this many commits to it (0: never).
    pub optimize_every_commits: u64,
    /// Remove files no longer referenced after this many commits to a table (0: never).
    pub vacuum_every_commits: u64,
    pub vacuum_retention: Duration,
    /// A Delta checkpoint every this many versions (`delta.checkpointInterval`).
    pub checkpoint_interval: u64,
    /// Silver deletes replaced rows with deletion vectors (`[lake] silver_deletes =
    /// "deletion_vectors"`) instead of rewriting their files (`"copy_on_write"`).
    pub deletion_vectors: bool,
}

impl Default for LakeSettings {
    fn default() -> Self {
        LakeSettings {
            max_rows: 50_000,
            max_latency: Duration::from_millis(1000),
            optimize_every_commits: 100,
            vacuum_every_commits: 500,
            vacuum_retention: Duration::from_secs(7 * 24 * 3600),
            checkpoint_interval: 100,
            deletion_vectors: true,
        }
    }
}

/// What a table holds of its sources, recorded in each commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerState {
    /// The next Kafka offset per `topic:partition`.
    #[serde(default)]
    pub offsets: BTreeMap<String, i64>,
    /// The order key of the last streamed change per source partition.
    #[serde(default)]
    pub positions: BTreeMap<String, String>,
    /// Silver and history: the key columns the table is built on.
    #[serde(default)]
    pub key: Vec<String>,
    /// Columns added with a DEFAULT whose default is not yet given to the earlier rows (set by
    /// the commit that adds them, cleared by the one that fills them).
    #[serde(default)]
    pub pending_defaults: Vec<String>,
    /// Source commit time (ms since the epoch) of the newest change the table holds.
    #[serde(default)]
    pub source_ts_ms: Option<i64>,
    /// Silver and history: the order key of the last TRUNCATE applied. Through Kafka a
    /// truncate may overtake earlier rows on other partitions; those rows are then stale.
    #[serde(default)]
    pub truncated_at: Option<String>,
}

const STATE_KEY: &str = "binlake";

/// Counters the sink reports.
#[derive(Debug, Clone, Default)]
pub struct LakeMetrics {
    pub records: u64,
    pub changes_applied: u64,
    pub dead_letters: u64,
    pub commits: u64,
    pub last_batch: Duration,
    pub optimizes: u64,
    pub vacuums: u64,
    /// Time spent per layer, summed over batches (for benchmarks and metrics).
    pub bronze_time: Duration,
    /// Looking up the positions already applied per key (silver and history).
    pub lookup_time: Duration,
    pub history_time: Duration,
    pub silver_time: Duration,
    pub maintenance_time: Duration,
    /// Source commit time (ms) of the newest change applied.
    pub newest_source_ts_ms: i64,
    /// Per `db.table`: changes applied, and the source commit time (ms) of the newest.
    pub tables: BTreeMap<String, (u64, i64)>,
}

fn delta_err(table: &str) -> impl Fn(DeltaTableError) -> LakeError + '_ {
    move |source| LakeError::Delta {
        table: table.to_string(),
        source: Box::new(source),
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn qualified(alias: &str, name: &str) -> Expr {
    col(format!("{alias}.{}", quote(name)))
}

/// One Delta table and what it holds.
struct Layer {
    path: String,
    /// Silver: its files' sorted integer keys, kept between batches.
    key_cache: Arc<deletion::KeyCache>,
    /// Always present between operations (taken while one runs); the table may not exist
    /// yet, see [`Layer::exists`].
    table: Option<DeltaTable>,
    state: LayerState,
    commits: u64,
}

impl Layer {
    async fn open(storage: &LakeStorage, path: String) -> Result<Layer, LakeError> {
        let url = storage.table_url(&path)?;
        let table = DeltaTable::try_from_url_with_storage_options(url, storage.options().clone())
            .await
            .map_err(delta_err(&path))?;
        let state = if table.version().is_some() {
            load_state(&table).await.map_err(delta_err(&path))?
        } else {
            LayerState::default()
        };
        Ok(Layer {
            path,
            key_cache: Default::default(),
            table: Some(table),
            state,
            commits: 0,
        })
    }

    fn exists(&self) -> bool {
        self.table.as_ref().is_some_and(|t| t.version().is_some())
    }

    /// The table, when it exists.
    fn existing(&self) -> Option<&DeltaTable> {
        self.table.as_ref().filter(|t| t.version().is_some())
    }

    /// The changes this table does not hold yet. A source that re-publishes after a crash can
    /// put a change and its copy in one batch: within a source partition, a streamed change
    /// at or before one already taken is such a copy.
    fn fresh<'c>(&self, changes: &'c [LakeChange]) -> Vec<&'c LakeChange> {
        let mut newest: HashMap<String, &str> = HashMap::new();
        let mut out = Vec::with_capacity(changes.len());
        for c in changes {
            if self.holds(c) {
                continue;
            }
            if !c.snapshot {
                let sp = c.source_partition();
                if newest.get(&sp).is_some_and(|n| c.order.as_str() <= *n) {
                    continue;
                }
                newest.insert(sp, c.order.as_str());
            }
            out.push(c);
        }
        out
    }

    fn holds(&self, c: &LakeChange) -> bool {
        let sp = c.source_partition();
        if let (Some(offset), Some(next)) = (c.offset, self.state.offsets.get(&sp)) {
            if offset < *next {
                return true;
            }
        }
        !c.snapshot
            && self
                .state
                .positions
                .get(&sp)
                .is_some_and(|last| c.order.as_str() <= last.as_str())
    }

    /// Silver and history are read by key: their files get small, indexed pages.
    fn writer_properties(&self) -> Option<deltalake::parquet::file::properties::WriterProperties> {
        self.path
            .starts_with("silver/")
            .then(deletion::keyed_writer_properties)
    }

    fn arrow_schema(&self) -> Option<SchemaRef> {
        self.existing()
            .and_then(|t| t.snapshot().ok())
            .map(|s| s.snapshot().arrow_schema())
    }

    /// The state after `changes`, with `consumed` as the next offsets of their partitions.
    fn next_state(&self, changes: &[&LakeChange], consumed: &BTreeMap<String, i64>) -> LayerState {
        let mut state = self.state.clone();
        for (sp, next) in consumed {
            let e = state.offsets.entry(sp.clone()).or_insert(*next);
            *e = (*e).max(*next);
        }
        if let Some(newest) = changes.iter().map(|c| c.ts_ms).max() {
            state.source_ts_ms = Some(state.source_ts_ms.unwrap_or(0).max(newest));
        }
        for c in changes.iter().filter(|c| !c.snapshot) {
            let e = state
                .positions
                .entry(c.source_partition())
                .or_insert_with(|| c.order.clone());
            if c.order > *e {
                *e = c.order.clone();
            }
        }
        state
    }

    fn properties(&self, state: &LayerState) -> CommitProperties {
        let txns = state
            .offsets
            .iter()
            .map(|(sp, next)| Transaction::new(format!("binlake:{sp}"), *next))
            .collect();
        CommitProperties::default()
            .with_application_transactions(txns)
            .with_metadata([(
                STATE_KEY.to_string(),
                serde_json::to_value(state).expect("state serialises"),
            )])
    }

    async fn append(
        &mut self,
        batch: RecordBatch,
        partitions: Option<Vec<String>>,
        state: LayerState,
        settings: &LakeSettings,
    ) -> Result<(), LakeError> {
        let properties = self.properties(&state);
        let table = self.table.take().expect("a layer keeps its table");
        let mut write = table
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .with_schema_mode(deltalake::operations::write::SchemaMode::Merge)
            .with_commit_properties(properties)
            .with_configuration([(
                "delta.checkpointInterval".to_string(),
                Some(settings.checkpoint_interval.max(1).to_string()),
            )]);
        if let Some(p) = partitions {
            write = write.with_partition_columns(p);
        }
        if let Some(properties) = self.writer_properties() {
            write = write.with_writer_properties(properties);
        }
        let table = write.await.map_err(delta_err(&self.path))?;
        self.table = Some(table);
        self.state = state;
        self.commits += 1;
        Ok(())
    }
}

impl Layer {
    /// MERGEs `batch` (aliased `s`) into the table (`t`) on the key columns (and `extra`),
    /// with the clauses `clauses` adds over the batch's columns except `marker` (the column
    /// that says what a source row is for); commits `state` with the data.
    #[allow(clippy::too_many_arguments)]
    async fn merge(
        &mut self,
        schema: &TableSchema,
        batch: RecordBatch,
        marker: &str,
        extra: Option<Expr>,
        state: LayerState,
        clauses: impl FnOnce(
            deltalake::operations::merge::MergeBuilder,
            &[String],
        )
            -> Result<deltalake::operations::merge::MergeBuilder, DeltaTableError>,
    ) -> Result<(), LakeError> {
        let columns: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != marker)
            .collect();
        let ctx = SessionContext::new();
        let source = ctx.read_batch(batch).map_err(|e| df_err(&schema.id, e))?;
        let on = key_names(schema)
            .iter()
            .map(|k| qualified("t", k).eq(qualified("s", k)))
            .reduce(Expr::and)
            .expect("a key");
        let predicate = match extra {
            Some(e) => on.and(e),
            None => on,
        };
        let properties = self.properties(&state);
        let table = self.table.take().expect("a layer keeps its table");
        let mut builder = table
            .merge(source, predicate)
            .with_source_alias("s")
            .with_target_alias("t")
            .with_merge_schema(true)
            .with_commit_properties(properties);
        if let Some(properties) = self.writer_properties() {
            builder = builder.with_writer_properties(properties);
        }
        let (table, _) = clauses(builder, &columns)
            .map_err(delta_err(&self.path))?
            .await
            .map_err(delta_err(&self.path))?;
        self.table = Some(table);
        self.state = state;
        self.commits += 1;
        Ok(())
    }
}

impl Layer {
    /// Silver with deletion vectors: deletes the live rows of the `replaced` keys (as
    /// `located`) by deletion vector and adds `batch` as a new file sorted by key, in one
    /// commit carrying `state`.
    async fn upsert_by_deletion(
        &mut self,
        schema: &TableSchema,
        batch: RecordBatch,
        located: &Located,
        replaced: Vec<usize>,
        state: LayerState,
    ) -> Result<(), LakeError> {
        use deltalake::writer::DeltaWriter;
        self.enable_deletion_vectors().await?;
        self.add_missing_columns(schema, &batch.schema()).await?;
        let table = self.table.as_ref().expect("a layer keeps its table");
        let target = self.arrow_schema().expect("the table exists");
        let batch = sorted_by_key(&conform(&batch, &target, &schema.id)?, schema)?;
        let mut actions =
            deletion::delete_rows(table, &self.path, located, replaced.into_iter()).await?;
        if batch.num_rows() > 0 {
            let mut writer = deltalake::writer::RecordBatchWriter::for_table(table)
                .map_err(delta_err(&self.path))?
                .with_writer_properties(deletion::keyed_writer_properties());
            writer.write(batch).await.map_err(delta_err(&self.path))?;
            let adds = writer.flush().await.map_err(delta_err(&self.path))?;
            actions.extend(adds.into_iter().map(deltalake::kernel::Action::Add));
        }
        let properties = self.properties(&state);
        let snapshot = table.snapshot().map_err(delta_err(&self.path))?;
        let operation = deltalake::protocol::DeltaOperation::Merge {
            predicate: None,
            merge_predicate: Some("binlake: key match, deletion vectors".into()),
            matched_predicates: Vec::new(),
            not_matched_predicates: Vec::new(),
            not_matched_by_source_predicates: Vec::new(),
        };
        deltalake::kernel::transaction::CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(snapshot), table.log_store(), operation)
            .await
            .map_err(delta_err(&self.path))?;
        let mut table = self.table.take().expect("a layer keeps its table");
        let reloaded = table.update_incremental(None).await;
        self.table = Some(table);
        reloaded.map_err(delta_err(&self.path))?;
        self.state = state;
        self.commits += 1;
        Ok(())
    }

    /// Turns on the `deletionVectors` table feature (once per table).
    async fn enable_deletion_vectors(&mut self) -> Result<(), LakeError> {
        use buoyant_kernel::table_features::TableFeature;
        let table = self.table.as_ref().expect("a layer keeps its table");
        let snapshot = table.snapshot().map_err(delta_err(&self.path))?;
        let enabled = snapshot
            .protocol()
            .writer_features()
            .is_some_and(|f| f.contains(&TableFeature::DeletionVectors));
        if enabled {
            return Ok(());
        }
        let properties = self.properties(&self.state.clone());
        let table = self.table.take().expect("a layer keeps its table");
        let table = table
            .add_feature()
            .with_feature(deltalake::kernel::TableFeatures::DeletionVectors)
            .with_allow_protocol_versions_increase(true)
            .with_commit_properties(properties)
            .await
            .map_err(delta_err(&self.path))?;
        self.table = Some(table);
        Ok(())
    }

    /// Adds the columns of `batch` the table lacks (nullable; earlier rows read null).
    async fn add_missing_columns(
        &mut self,
        schema: &TableSchema,
        batch: &SchemaRef,
    ) -> Result<(), LakeError> {
        use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
        let existing = self.arrow_schema().expect("the table exists");
        let mut added = Vec::new();
        for field in batch.fields() {
            if existing.field_with_name(field.name()).is_ok() {
                continue;
            }
            let field = field.as_ref().clone().with_nullable(true);
            let delta_field: deltalake::kernel::StructField =
                (&field).try_into_kernel().map_err(|e| LakeError::Schema {
                    table: schema.id.to_string(),
                    reason: format!("column {}: {e}", field.name()),
                })?;
            added.push(delta_field);
        }
        if added.is_empty() {
            return Ok(());
        }
        let properties = self.properties(&self.state.clone());
        let table = self.table.take().expect("a layer keeps its table");
        let table = table
            .add_columns()
            .with_fields(added)
            .with_commit_properties(properties)
            .await
            .map_err(delta_err(&self.path))?;
        self.table = Some(table);
        Ok(())
    }
}

/// `batch` with the columns of `target`, in its order (a column `batch` lacks, e.g. one
/// dropped at the source, is null).
fn conform(
    batch: &RecordBatch,
    target: &SchemaRef,
    id: &TableId,
) -> Result<RecordBatch, LakeError> {
    let mut columns = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let column = match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => Arc::clone(c),
            Some(c) => deltalake::arrow::compute::cast(c, field.data_type())
                .map_err(|e| df_err(id, format!("column {}: {e}", field.name())))?,
            None => deltalake::arrow::array::new_null_array(field.data_type(), batch.num_rows()),
        };
        columns.push(column);
    }
    RecordBatch::try_new(Arc::clone(target), columns).map_err(|e| df_err(id, e))
}

/// `batch` ordered by the key columns, so each file covers a narrow key range.
fn sorted_by_key(batch: &RecordBatch, schema: &TableSchema) -> Result<RecordBatch, LakeError> {
    use deltalake::arrow::compute::{lexsort_to_indices, take_record_batch, SortColumn};
    let columns: Vec<SortColumn> = key_names(schema)
        .iter()
        .filter_map(|k| batch.column_by_name(k))
        .map(|c| SortColumn {
            values: Arc::clone(c),
            options: None,
        })
        .collect();
    if columns.is_empty() || batch.num_rows() < 2 {
        return Ok(batch.clone());
    }
    let indices = lexsort_to_indices(&columns, None).map_err(|e| df_err(&schema.id, e))?;
    take_record_batch(batch, &indices).map_err(|e| df_err(&schema.id, e))
}

async fn load_state(table: &DeltaTable) -> Result<LayerState, DeltaTableError> {
    let mut history = table.history(Some(1000));
    while let Some(commit) = history.next().await {
        let commit = commit?;
        if let Some(v) = commit.info.get(STATE_KEY) {
            if let Ok(state) = serde_json::from_value::<LayerState>(v.clone()) {
                return Ok(state);
            }
        }
    }
    Ok(LayerState::default())
}

/// The three tables of one source table.
struct TableLayers {
    bronze: Layer,
    history: Layer,
    silver: Layer,
}

/// Applies batches of records to the lake.
pub struct LakeWriter {
    storage: LakeStorage,
    settings: LakeSettings,
    tables: HashMap<TableId, TableLayers>,
    dead_letters: Option<Layer>,
    pub metrics: LakeMetrics,
}

/// A poison record and why.
struct DeadLetter<'a> {
    record: &'a Record,
    reason: String,
}

impl LakeWriter {
    pub fn new(storage: LakeStorage, settings: LakeSettings) -> LakeWriter {
        LakeWriter {
            storage,
            settings,
            tables: HashMap::new(),
            dead_letters: None,
            metrics: LakeMetrics::default(),
        }
    }

    pub fn storage(&self) -> &LakeStorage {
        &self.storage
    }

    pub fn settings(&self) -> &LakeSettings {
        &self.settings
    }

    pub async fn prepare(&self) -> Result<(), LakeError> {
        self.storage.ensure_container().await
    }

    /// The next offset per Kafka `topic:partition` every table of that topic already holds:
    /// where consuming must resume so nothing is missed (anything earlier that comes again is
    /// skipped per table).
    pub async fn resume_offsets(
        &mut self,
        tables: &[TableId],
    ) -> Result<BTreeMap<String, i64>, LakeError> {
        let mut out: BTreeMap<String, i64> = BTreeMap::new();
        for id in tables {
            let layers = self.layers(id).await?;
            for layer in [&layers.bronze, &layers.history, &layers.silver] {
                for (sp, next) in &layer.state.offsets {
                    let e = out.entry(sp.clone()).or_insert(*next);
                    *e = (*e).min(*next);
                }
            }
        }
        Ok(out)
    }

    /// What bronze, history and silver of `id` hold (None: the table does not exist yet).
    pub async fn table_states(
        &mut self,
        id: &TableId,
    ) -> Result<[Option<LayerState>; 3], LakeError> {
        let layers = self.layers(id).await?;
        let state = |l: &Layer| l.exists().then(|| l.state.clone());
        Ok([
            state(&layers.bronze),
            state(&layers.history),
            state(&layers.silver),
        ])
    }

    async fn layers(&mut self, id: &TableId) -> Result<&mut TableLayers, LakeError> {
        if !self.tables.contains_key(id) {
            let layers = TableLayers {
                bronze: Layer::open(&self.storage, format!("bronze/{}/{}", id.db, id.table))
                    .await?,
                history: Layer::open(
                    &self.storage,
                    format!("silver/{}/{}__history", id.db, id.table),
                )
                .await?,
                silver: Layer::open(&self.storage, format!("silver/{}/{}", id.db, id.table))
                    .await?,
            };
            self.tables.insert(id.clone(), layers);
        }
        Ok(self.tables.get_mut(id).expect("just inserted"))
    }

    /// Applies `records` (in the order they were consumed) and commits them.
    pub async fn apply(&mut self, records: &[Record]) -> Result<(), LakeError> {
        let started = Instant::now();
        self.metrics.records += records.len() as u64;
        // Group by topic: a topic is one source table; order within it is kept.
        let mut groups: Vec<(String, Vec<&Record>)> = Vec::new();
        for r in records {
            match groups.iter_mut().find(|(t, _)| *t == r.topic) {
                Some((_, g)) => g.push(r),
                None => groups.push((r.topic.clone(), vec![r])),
            }
        }
        let mut dead = Vec::new();
        for (_, group) in groups {
            let mut changes = Vec::with_capacity(group.len());
            let mut consumed: BTreeMap<String, i64> = BTreeMap::new();
            for r in &group {
                if let Some(o) = r.offset {
                    let e = consumed
                        .entry(source_partition(&r.topic, r.partition, true))
                        .or_insert(o + 1);
                    *e = (*e).max(o + 1);
                }
                match parse(r, r.schema.as_ref()) {
                    Ok(Some(c)) => changes.push(c),
                    Ok(None) => {}
                    Err(reason) => dead.push(DeadLetter { record: r, reason }),
                }
            }
            // A topic's changes all belong to one table; anything else is poison.
            let Some(first) = changes.first() else {
                continue;
            };
            let id = first.schema.id.clone();
            let (mine, strays): (Vec<LakeChange>, Vec<LakeChange>) =
                changes.into_iter().partition(|c| c.schema.id == id);
            for s in strays {
                let record = group
                    .iter()
                    .find(|r| r.offset == s.offset && r.partition == s.partition)
                    .expect("from this group");
                dead.push(DeadLetter {
                    record,
                    reason: format!("{} on the topic of {id}", s.schema.id),
                });
            }
            // A value that does not fit its column makes its record poison; the rest of the
            // table's batch still applies. Checked one by one only when the batch fails to
            // convert.
            let mine = match self.apply_table(&id, &mine, &consumed).await {
                Err(LakeError::Value { .. }) => mine,
                other => {
                    other?;
                    continue;
                }
            };
            {
                let mut ok = Vec::with_capacity(mine.len());
                for c in mine {
                    match convertible(&c) {
                        Ok(()) => ok.push(c),
                        Err(reason) => {
                            let record = group
                                .iter()
                                .find(|r| r.offset == c.offset && r.partition == c.partition)
                                .expect("from this group");
                            dead.push(DeadLetter { record, reason });
                        }
                    }
                }
                self.apply_table(&id, &ok, &consumed).await?;
            }
        }
        if !dead.is_empty() {
            self.write_dead_letters(&dead).await?;
        }
        self.metrics.last_batch = started.elapsed();
        Ok(())
    }

    async fn write_dead_letters(&mut self, dead: &[DeadLetter<'_>]) -> Result<(), LakeError> {
        if self.dead_letters.is_none() {
            self.dead_letters = Some(Layer::open(&self.storage, "dead_letters".into()).await?);
        }
        let layer = self.dead_letters.as_mut().expect("opened");
        let fresh: Vec<&DeadLetter> = dead
            .iter()
            .filter(|d| match d.record.offset {
                Some(o) => layer
                    .state
                    .offsets
                    .get(&source_partition(&d.record.topic, d.record.partition, true))
                    .is_none_or(|next| o >= *next),
                None => true,
            })
            .collect();
        for d in &fresh {
            tracing::warn!(topic = %d.record.topic, partition = d.record.partition, offset = ?d.record.offset, reason = %d.reason, "dead letter");
        }
        self.metrics.dead_letters += fresh.len() as u64;
        if fresh.is_empty() {
            return Ok(());
        }
        let mut consumed = BTreeMap::new();
        for d in &fresh {
            if let Some(o) = d.record.offset {
                let e = consumed
                    .entry(source_partition(&d.record.topic, d.record.partition, true))
                    .or_insert(o + 1);
                *e = (*e).max(o + 1);
            }
        }
        let text =
            |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
        let now = now_ms() as i64 * 1000;
        let schema = Arc::new(Schema::new(vec![
            Field::new("reason", DataType::Utf8, false),
            Field::new("topic", DataType::Utf8, false),
            Field::new("partition", DataType::Int32, false),
            Field::new("offset", DataType::Int64, true),
            Field::new("key", DataType::Utf8, true),
            Field::new("value", DataType::Utf8, true),
            Field::new("ingested_at", utc_micros(), false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(
                    fresh.iter().map(|d| d.reason.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    fresh.iter().map(|d| d.record.topic.as_str()),
                )),
                Arc::new(Int32Array::from_iter_values(
                    fresh.iter().map(|d| d.record.partition),
                )),
                Arc::new(Int64Array::from_iter(fresh.iter().map(|d| d.record.offset))),
                Arc::new(StringArray::from_iter(
                    fresh.iter().map(|d| text(&d.record.key)),
                )),
                Arc::new(StringArray::from_iter(
                    fresh.iter().map(|d| text(&d.record.value)),
                )),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(fresh.iter().map(|_| now))
                        .with_timezone("UTC"),
                ),
            ],
        )
        .map_err(|e| LakeError::Storage {
            table: "dead_letters".into(),
            reason: e.to_string(),
        })?;
        let state = layer.next_state(&[], &consumed);
        let settings = self.settings.clone();
        layer.append(batch, None, state, &settings).await?;
        self.metrics.commits += 1;
        Ok(())
    }

    async fn apply_table(
        &mut self,
        id: &TableId,
        changes: &[LakeChange],
        consumed: &BTreeMap<String, i64>,
    ) -> Result<(), LakeError> {
        let settings = self.settings.clone();
        let layers = self.layers(id).await?;
        // Bronze: every change not already there.
        let fresh = layers.bronze.fresh(changes);
        let bronze_started = Instant::now();
        if !fresh.is_empty() {
            let batch = bronze_batch(&fresh)?;
            let state = layers.bronze.next_state(&fresh, consumed);
            layers
                .bronze
                .append(batch, Some(vec!["ingest_date".into()]), state, &settings)
                .await?;
            self.metrics.commits += 1;
        }
        self.metrics.bronze_time += bronze_started.elapsed();
        let layers = self.tables.get_mut(id).expect("opened");
        // Silver and history, one segment per schema version or truncate.
        let mut start = 0;
        while start < changes.len() {
            let schema = &changes[start].schema;
            let mut end = start;
            while end < changes.len()
                && Arc::ptr_eq(&changes[end].schema, schema) | (changes[end].schema == *schema)
                && (changes[end].op != ChangeOp::Truncate || end == start)
            {
                end += 1;
                if changes[end - 1].op == ChangeOp::Truncate {
                    break;
                }
            }
            let segment = &changes[start..end];
            let last = end == changes.len();
            let seg_consumed = if last {
                consumed.clone()
            } else {
                let mut m = BTreeMap::new();
                for c in segment {
                    if let Some(o) = c.offset {
                        let e = m.entry(c.source_partition()).or_insert(o + 1);
                        *e = (*e).max(o + 1);
                    }
                }
                m
            };
            let n =
                apply_current(layers, segment, &seg_consumed, &settings, &mut self.metrics).await?;
            self.metrics.commits += n;
            start = end;
        }
        self.metrics.changes_applied += changes.len() as u64;
        if let Some(newest) = changes.iter().map(|c| c.ts_ms).max() {
            self.metrics.newest_source_ts_ms = self.metrics.newest_source_ts_ms.max(newest);
        }
        let entry = self.metrics.tables.entry(id.to_string()).or_default();
        entry.0 += changes.len() as u64;
        if let Some(newest) = changes.iter().map(|c| c.ts_ms).max() {
            entry.1 = entry.1.max(newest);
        }
        let layers = self.tables.get_mut(id).expect("opened");
        let maintenance_started = Instant::now();
        for layer in [&mut layers.bronze, &mut layers.history, &mut layers.silver] {
            maintain(layer, &settings, &mut self.metrics).await?;
        }
        self.metrics.maintenance_time += maintenance_started.elapsed();
        Ok(())
    }
}

/// A column added with a literal DEFAULT: the server gave the default to every existing row
/// without a row event, so the lake does the same, in two commits (add the column, marking it
/// pending; fill the rows that existed, clearing the mark) before any later change. In
/// history only the open versions get it: the closed ones predate the column.
async fn apply_column_defaults(layer: &mut Layer, schema: &TableSchema) -> Result<(), LakeError> {
    use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
    let Some(existing) = layer.arrow_schema() else {
        return Ok(());
    };
    let history = layer.path.ends_with("__history");
    // A new DATETIME column needs the timestampNtz table feature before any write adds it.
    let new_ntz = schema.columns.iter().any(|c| {
        existing.field_with_name(&c.name).is_err()
            && matches!(
                arrow_type(c),
                DataType::Timestamp(deltalake::arrow::datatypes::TimeUnit::Microsecond, None)
            )
    });
    let has_ntz = existing.fields().iter().any(|f| {
        matches!(
            f.data_type(),
            DataType::Timestamp(deltalake::arrow::datatypes::TimeUnit::Microsecond, None)
        )
    });
    if new_ntz && !has_ntz {
        let properties = layer.properties(&layer.state.clone());
        let table = layer.table.take().expect("a layer keeps its table");
        let table = table
            .add_feature()
            .with_feature(deltalake::kernel::TableFeatures::TimestampWithoutTimezone)
            .with_allow_protocol_versions_increase(true)
            .with_commit_properties(properties)
            .await
            .map_err(delta_err(&layer.path))?;
        layer.table = Some(table);
    }
    let mut added = Vec::new();
    for column in &schema.columns {
        if column.default.is_none() || existing.field_with_name(&column.name).is_ok() {
            continue;
        }
        let field = Field::new(&column.name, arrow_type(column), true);
        let delta_field: deltalake::kernel::StructField =
            (&field).try_into_kernel().map_err(|e| LakeError::Schema {
                table: schema.id.to_string(),
                reason: format!("column {}: {e}", column.name),
            })?;
        added.push(delta_field);
    }
    if !added.is_empty() {
        let mut state = layer.state.clone();
        state
            .pending_defaults
            .extend(added.iter().map(|f| f.name().to_string()));
        let properties = layer.properties(&state);
        let table = layer.table.take().expect("a layer keeps its table");
        let table = table
            .add_columns()
            .with_fields(added)
            .with_commit_properties(properties)
            .await
            .map_err(delta_err(&layer.path))?;
        layer.table = Some(table);
        layer.state = state;
    }
    if layer.state.pending_defaults.is_empty() {
        return Ok(());
    }
    let pending = layer.state.pending_defaults.clone();
    for (i, name) in pending.iter().enumerate() {
        // Each fill's commit records the columns still pending after it.
        let mut state = layer.state.clone();
        state.pending_defaults = pending[i + 1..].to_vec();
        let value = schema
            .columns
            .iter()
            .find(|c| &c.name == name)
            .and_then(|column| {
                let v = default_value(column);
                if v.is_none() {
                    tracing::warn!(table = %schema.id, column = %name, default = ?column.default, "this DEFAULT is not given to earlier rows in the lake (only literal numbers and strings are)");
                }
                v
            });
        if let Some(value) = value {
            let properties = layer.properties(&state);
            let table = layer.table.take().expect("a layer keeps its table");
            let target = col(quote(name));
            let predicate = if history {
                col("__end_position").is_null().and(target.is_null())
            } else {
                target.is_null()
            };
            let (table, _) = table
                .update()
                .with_predicate(predicate)
                .with_update(quote(name), lit(value))
                .with_commit_properties(properties)
                .await
                .map_err(delta_err(&layer.path))?;
            layer.table = Some(table);
        }
        layer.state = state;
    }
    Ok(())
}

/// A literal DEFAULT as the Arrow value of its column, when binlake can read it.
fn default_value(
    column: &crate::event::Column,
) -> Option<deltalake::datafusion::scalar::ScalarValue> {
    use crate::event::ColumnType as T;
    let text = column.default.as_deref()?;
    let json = match &column.column_type {
        T::TinyInt | T::SmallInt | T::MediumInt | T::Int | T::BigInt | T::Year => {
            Json::from(text.parse::<i64>().ok()?)
        }
        T::Float | T::Double => Json::from(text.parse::<f64>().ok()?),
        T::Decimal { .. } | T::Char { .. } | T::VarChar { .. } | T::Enum | T::Set | T::Json => {
            if column.is_binary() {
                return None;
            }
            Json::from(text)
        }
        T::Blob { .. } if !column.is_binary() => Json::from(text),
        _ => return None,
    };
    let data_type = arrow_type(column);
    let array = build_array(column, &data_type, &[Some(&json)]).ok()?;
    deltalake::datafusion::scalar::ScalarValue::try_from_array(&array, 0).ok()
}

/// Compaction and vacuum on their schedules; their commits carry the table's state on.
async fn maintain(
    layer: &mut Layer,
    settings: &LakeSettings,
    metrics: &mut LakeMetrics,
) -> Result<(), LakeError> {
    if layer.commits == 0 {
        return Ok(());
    }
    let properties = layer.properties(&layer.state.clone());
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
            let retention = chrono_duration(settings.vacuum_retention);
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

/// Whether one change's values convert into their columns; the error names the column.
fn convertible(c: &LakeChange) -> Result<(), String> {
    for row in [&c.before, &c.after].into_iter().flatten() {
        for column in &c.schema.columns {
            let value = row.get(&column.name);
            build_array(column, &arrow_type(column), &[value])
                .map_err(|e| format!("column {}: {e}", column.name))?;
        }
    }
    Ok(())
}

fn bronze_batch(changes: &[&LakeChange]) -> Result<RecordBatch, LakeError> {
    let now = now_ms() as i64;
    let day = (now / 86_400_000) as i32;
    let json = |m: &Option<serde_json::Map<String, Json>>| {
        m.as_ref().map(|m| serde_json::to_string(m).expect("json"))
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("op", DataType::Utf8, false),
        Field::new("before", DataType::Utf8, true),
        Field::new("after", DataType::Utf8, true),
        Field::new("position", DataType::Utf8, false),
        Field::new("source_file", DataType::Utf8, false),
        Field::new("source_pos", DataType::Int64, false),
        Field::new("source_row", DataType::Int32, false),
        Field::new("gtid", DataType::Utf8, true),
        Field::new("source_ts", utc_micros(), false),
        Field::new("snapshot", DataType::Boolean, false),
        Field::new("kafka_topic", DataType::Utf8, true),
        Field::new("kafka_partition", DataType::Int32, true),
        Field::new("kafka_offset", DataType::Int64, true),
        Field::new("ingested_at", utc_micros(), false),
        Field::new("ingest_date", DataType::Date32, false),
    ]));
    let from_kafka = |c: &&LakeChange| c.offset.is_some();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            changes.iter().map(|c| c.op.code()),
        )),
        Arc::new(StringArray::from_iter(
            changes.iter().map(|c| json(&c.before)),
        )),
        Arc::new(StringArray::from_iter(
            changes.iter().map(|c| json(&c.after)),
        )),
        Arc::new(StringArray::from_iter_values(
            changes.iter().map(|c| c.order.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            changes.iter().map(|c| c.file.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            changes.iter().map(|c| c.pos as i64),
        )),
        Arc::new(Int32Array::from_iter_values(
            changes.iter().map(|c| c.row as i32),
        )),
        Arc::new(StringArray::from_iter(
            changes.iter().map(|c| c.gtid.as_deref()),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(changes.iter().map(|c| c.ts_ms * 1000))
                .with_timezone("UTC"),
        ),
        Arc::new(BooleanArray::from_iter(
            changes.iter().map(|c| Some(c.snapshot)),
        )),
        Arc::new(StringArray::from_iter(
            changes
                .iter()
                .map(|c| from_kafka(c).then_some(c.topic.as_str())),
        )),
        Arc::new(Int32Array::from_iter(
            changes.iter().map(|c| from_kafka(c).then_some(c.partition)),
        )),
        Arc::new(Int64Array::from_iter(changes.iter().map(|c| c.offset))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(changes.iter().map(|_| now * 1000))
                .with_timezone("UTC"),
        ),
        Arc::new(Date32Array::from_iter_values(changes.iter().map(|_| day))),
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| LakeError::Storage {
        table: "bronze".into(),
        reason: e.to_string(),
    })
}

/// The typed source columns of `schema` for `rows` (None: all null).
fn typed_columns(
    schema: &TableSchema,
    rows: &[Option<&serde_json::Map<String, Json>>],
    existing: Option<&SchemaRef>,
) -> Result<(Vec<Field>, Vec<ArrayRef>), LakeError> {
    let mut fields = Vec::with_capacity(schema.columns.len());
    let mut arrays = Vec::with_capacity(schema.columns.len());
    for column in &schema.columns {
        let data_type = arrow_type(column);
        if let Some(existing) = existing {
            if let Ok(f) = existing.field_with_name(&column.name) {
                if *f.data_type() != data_type {
                    return Err(LakeError::Schema {
                        table: schema.id.to_string(),
                        reason: format!(
                            "column {} changed type from {} to {} ({:?}); a Delta column cannot change type in place. Recover: stop binlake, move silver/{}/{} and its __history aside, and re-snapshot the table",
                            column.name, f.data_type(), data_type, column.column_type, schema.id.db, schema.id.table
                        ),
                    });
                }
            }
        }
        let values: Vec<Option<&Json>> = rows
            .iter()
            .map(|r| r.and_then(|r| r.get(&column.name)))
            .collect();
        let array =
            build_array(column, &data_type, &values).map_err(|reason| LakeError::Value {
                table: schema.id.to_string(),
                column: column.name.clone(),
                reason,
            })?;
        fields.push(Field::new(&column.name, data_type, true));
        arrays.push(array);
    }
    Ok((fields, arrays))
}

fn key_names(schema: &TableSchema) -> Vec<String> {
    schema
        .primary_key
        .iter()
        .map(|&i| schema.columns[i].name.clone())
        .collect()
}

/// Applies one segment (one schema version, or one truncate) to history and silver.
async fn apply_current(
    layers: &mut TableLayers,
    segment: &[LakeChange],
    consumed: &BTreeMap<String, i64>,
    settings: &LakeSettings,
    metrics: &mut LakeMetrics,
) -> Result<u64, LakeError> {
    let schema = Arc::clone(&segment[0].schema);
    let fresh_history = layers.history.fresh(segment);
    let fresh_silver = layers.silver.fresh(segment);
    if fresh_history.is_empty() && fresh_silver.is_empty() {
        return Ok(0);
    }
    let mut commits = 0;
    if segment[0].op == ChangeOp::Truncate {
        let t = segment[0].clone();
        if !fresh_history.is_empty() {
            let mut state = layers.history.next_state(&fresh_history, consumed);
            state.truncated_at = Some(t.order.clone()).max(state.truncated_at);
            truncate_history(&mut layers.history, &t, state).await?;
            commits += 1;
        }
        if !fresh_silver.is_empty() {
            let mut state = layers.silver.next_state(&fresh_silver, consumed);
            state.truncated_at = Some(t.order.clone()).max(state.truncated_at);
            truncate_silver(&mut layers.silver, &t, state).await?;
            commits += 1;
        }
        return Ok(commits);
    }
    let key = key_names(&schema);
    if key.is_empty() {
        tracing::warn!(table = %schema.id, "no primary key: the table lands in bronze only");
        return Ok(0);
    }
    for layer in [&layers.history, &layers.silver] {
        if layer.exists() && !layer.state.key.is_empty() && layer.state.key != key {
            return Err(LakeError::Schema {
                table: schema.id.to_string(),
                reason: format!(
                    "the primary key changed from ({}) to ({}); silver is keyed by it. Recover: stop binlake, move {} aside (and its __history), and re-snapshot the table",
                    layer.state.key.join(", "),
                    key.join(", "),
                    layer.path
                ),
            });
        }
    }
    for layer in [&mut layers.history, &mut layers.silver] {
        apply_column_defaults(layer, &schema).await?;
    }
    // The position already applied per key: silver's row, or for a key silver does not hold,
    // the end of its last closed version in history (a delete).
    let mut keys: Vec<&LakeChange> = Vec::new();
    let mut seen = HashMap::new();
    for c in fresh_history.iter().chain(fresh_silver.iter()) {
        if seen.insert(c.key_text(), ()).is_none() {
            keys.push(c);
        }
    }
    let started = Instant::now();
    let mut floors: HashMap<String, &str> = HashMap::new();
    for c in fresh_history.iter().chain(fresh_silver.iter()) {
        let e = floors.entry(c.key_text()).or_insert(c.order.as_str());
        if c.order.as_str() < *e {
            *e = c.order.as_str();
        }
    }
    let (applied, locations) = applied_positions(layers, &schema, &keys, &floors).await?;
    let index: HashMap<String, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, c)| (c.key_text(), i))
        .collect();
    metrics.lookup_time += started.elapsed();
    let truncated_at = layers
        .silver
        .state
        .truncated_at
        .clone()
        .max(layers.history.state.truncated_at.clone());
    let guard = |c: &LakeChange| {
        truncated_at.as_ref().is_none_or(|t| c.order > *t)
            && match applied.get(&c.key_text()).and_then(|k| k.position.as_ref()) {
                Some(position) => c.order > *position,
                None => true,
            }
    };
    if !fresh_history.is_empty() {
        let changes: Vec<&LakeChange> =
            fresh_history.iter().copied().filter(|c| guard(c)).collect();
        let state = layers
            .history
            .next_state(&fresh_history, consumed)
            .with_key(&key);
        let started = Instant::now();
        write_history(
            &mut layers.history,
            &schema,
            &changes,
            HistoryKeys {
                applied: &applied,
                keys: locations.keys.as_ref(),
                index: &index,
            },
            state,
            settings,
        )
        .await?;
        metrics.history_time += started.elapsed();
        commits += 1;
    }
    if !fresh_silver.is_empty() {
        let changes: Vec<&LakeChange> = fresh_silver.iter().copied().filter(|c| guard(c)).collect();
        let state = layers
            .silver
            .next_state(&fresh_silver, consumed)
            .with_key(&key);
        let started = Instant::now();
        let silver_keys = SilverKeys {
            applied: &applied,
            located: &locations.silver,
            index: &index,
        };
        write_silver(
            &mut layers.silver,
            &schema,
            &changes,
            silver_keys,
            state,
            settings,
        )
        .await?;
        metrics.silver_time += started.elapsed();
        commits += 1;
    }
    Ok(commits)
}

impl LayerState {
    fn with_key(mut self, key: &[String]) -> LayerState {
        self.key = key.to_vec();
        self
    }
}

/// key text → (applied order, true when the key is live in silver).
type Applied = HashMap<String, KeyState>;

/// What the lake already holds of one key.
#[derive(Debug, Clone, Default)]
struct KeyState {
    /// The order of the last change applied to it (silver's row, else its last delete).
    position: Option<String>,
    /// Silver holds the key.
    live: bool,
    /// History has an open version of it (silver may not yet, after a crash between the two).
    open_in_history: bool,
}

/// Where silver and history keep a batch's keys (indexed as the batch's distinct keys).
#[derive(Default)]
struct KeyLocations {
    silver: Located,
    /// The batch's distinct keys as typed key columns (what the locations are indexed by).
    keys: Option<RecordBatch>,
}

/// What silver and history hold of the keys of `changes`: the position applied per key, and
/// where each table keeps them.
async fn applied_positions(
    layers: &TableLayers,
    schema: &TableSchema,
    changes: &[&LakeChange],
    floors: &HashMap<String, &str>,
) -> Result<(Applied, KeyLocations), LakeError> {
    let mut applied = Applied::new();
    let mut locations = KeyLocations::default();
    if changes.is_empty() || (!layers.silver.exists() && !layers.history.exists()) {
        return Ok((applied, locations));
    }
    // The batch's keys as typed columns, looked up in silver and history.
    let key_schema = TableSchema {
        columns: schema
            .primary_key
            .iter()
            .map(|&i| schema.columns[i].clone())
            .collect(),
        primary_key: Vec::new(),
        ..schema.clone()
    };
    let rows: Vec<Option<&serde_json::Map<String, Json>>> = changes
        .iter()
        .map(|c| c.after.as_ref().or(c.before.as_ref()))
        .collect();
    let (fields, arrays) = typed_columns(&key_schema, &rows, None)?;
    let keys = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| df_err(&schema.id, e))?;
    // The earliest change per key: a row whose position is below it needs no exact value.
    let floor = |i: usize| floors.get(&changes[i].key_text()).map(|f| f.to_string());
    let mut silver_positions = HashMap::new();
    if let Some(silver) = layers.silver.existing() {
        let started = Instant::now();
        locations.silver = deletion::locate(
            silver,
            &layers.silver.path,
            &keys,
            None,
            Some(&layers.silver.key_cache),
        )
        .await?;
        silver_positions = locations
            .silver
            .max_values(silver, &layers.silver.path, "_cdc_position", floor)
            .await?;
        let l = &locations.silver;
        tracing::debug!(table = %schema.id, keys = changes.len(), files = l.files_scanned, rows = l.rows_scanned, elapsed_ms = started.elapsed().as_millis() as u64, "silver keys located");
    }
    // A key silver does not hold was last deleted: the end of its last closed version. (The
    // history step looks up the open versions of the other keys itself.)
    let mut deleted_positions = HashMap::new();
    let mut history_of_others = Located::default();
    if let Some(history) = layers.history.existing() {
        let started = Instant::now();
        let others: Vec<usize> = (0..changes.len())
            .filter(|&i| !locations.silver.is_live(i))
            .collect();
        // An open version has no end.
        history_of_others = deletion::locate_subset(
            history,
            &layers.history.path,
            &keys,
            &others,
            Some("__end_at"),
        )
        .await?;
        deleted_positions = history_of_others
            .max_values(history, &layers.history.path, "__end_position", floor)
            .await?;
        let l = &history_of_others;
        tracing::debug!(table = %schema.id, keys = others.len(), files = l.files_scanned, rows = l.rows_scanned, elapsed_ms = started.elapsed().as_millis() as u64, "history keys of deleted rows located");
    }
    for (i, c) in changes.iter().enumerate() {
        let live = locations.silver.is_live(i);
        let open_in_history = history_of_others.has_null(i);
        let position = if live {
            silver_positions.remove(&i)
        } else {
            deleted_positions.remove(&i)
        };
        if live || open_in_history || position.is_some() {
            applied.insert(
                c.key_text(),
                KeyState {
                    position,
                    live,
                    open_in_history,
                },
            );
        }
    }
    locations.keys = Some(keys);
    Ok((applied, locations))
}

fn df_err(id: &TableId, e: impl std::fmt::Display) -> LakeError {
    LakeError::Storage {
        table: id.to_string(),
        reason: e.to_string(),
    }
}

/// What the history step knows of a batch's keys.
struct HistoryKeys<'a> {
    applied: &'a Applied,
    /// The batch's distinct keys as typed key columns (when a table existed to look them up).
    keys: Option<&'a RecordBatch>,
    /// Key text → the key's row in `keys`.
    index: &'a HashMap<String, usize>,
}

/// What silver holds of a batch's keys.
struct SilverKeys<'a> {
    applied: &'a Applied,
    located: &'a Located,
    /// Key text → the key's index in `located`.
    index: &'a HashMap<String, usize>,
}

/// Silver: the last change per key, merged.
async fn write_silver(
    layer: &mut Layer,
    schema: &TableSchema,
    changes: &[&LakeChange],
    keys: SilverKeys<'_>,
    state: LayerState,
    settings: &LakeSettings,
) -> Result<(), LakeError> {
    let applied = keys.applied;
    let mut last: HashMap<String, usize> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for (i, c) in changes.iter().enumerate() {
        let k = c.key_text();
        match last.get(&k) {
            Some(&j) if changes[j].order >= c.order => {}
            Some(_) => {
                last.insert(k, i);
            }
            None => {
                order.push(k.clone());
                last.insert(k, i);
            }
        }
    }
    let finals: Vec<&LakeChange> = order.iter().map(|k| changes[last[k]]).collect();
    let any_live = finals
        .iter()
        .any(|c| applied.get(&c.key_text()).is_some_and(|k| k.live));
    let rows: Vec<Option<&serde_json::Map<String, Json>>> = finals
        .iter()
        .map(|c| c.after.as_ref().or(c.before.as_ref()))
        .collect();
    let existing = layer.arrow_schema();
    let (mut fields, mut arrays) = typed_columns(schema, &rows, existing.as_ref())?;
    fields.push(Field::new("_cdc_op", DataType::Utf8, false));
    arrays.push(Arc::new(StringArray::from_iter_values(
        finals.iter().map(|c| c.op.code()),
    )));
    fields.push(Field::new("_cdc_position", DataType::Utf8, false));
    arrays.push(Arc::new(StringArray::from_iter_values(
        finals.iter().map(|c| c.order.as_str()),
    )));
    fields.push(Field::new("_cdc_ts", utc_micros(), false));
    arrays.push(Arc::new(
        TimestampMicrosecondArray::from_iter_values(finals.iter().map(|c| c.ts_ms * 1000))
            .with_timezone("UTC"),
    ));
    let deleted: Vec<bool> = finals.iter().map(|c| c.op == ChangeOp::Delete).collect();
    let batch_schema = Arc::new(Schema::new(fields.clone()));
    let make = |arrays: Vec<ArrayRef>| {
        RecordBatch::try_new(batch_schema.clone(), arrays).map_err(|e| df_err(&schema.id, e))
    };
    if !layer.exists() || !any_live {
        // Nothing to update or delete: append the live rows.
        let keep = BooleanArray::from(deleted.iter().map(|d| !d).collect::<Vec<_>>());
        let batch = deltalake::arrow::compute::filter_record_batch(&make(arrays)?, &keep)
            .map_err(|e| df_err(&schema.id, e))?;
        return layer.append(batch, None, state, settings).await;
    }
    // A column dropped at the source keeps its values in silver; a MERGE leaves it alone
    // where a new row would not have it.
    let dropped_columns = existing.as_ref().is_some_and(|t| {
        t.fields()
            .iter()
            .any(|f| !f.name().starts_with("_cdc_") && !fields.iter().any(|b| b.name() == f.name()))
    });
    if settings.deletion_vectors && !dropped_columns {
        let keep = BooleanArray::from(deleted.iter().map(|d| !d).collect::<Vec<_>>());
        let batch = deltalake::arrow::compute::filter_record_batch(&make(arrays)?, &keep)
            .map_err(|e| df_err(&schema.id, e))?;
        let replaced: Vec<usize> = finals
            .iter()
            .filter_map(|c| keys.index.get(&c.key_text()).copied())
            .collect();
        return layer
            .upsert_by_deletion(schema, batch, keys.located, replaced, state)
            .await;
    }
    fields.push(Field::new("__delete", DataType::Boolean, false));
    arrays.push(Arc::new(BooleanArray::from(deleted)));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| df_err(&schema.id, e))?;
    let delete = || qualified("s", "__delete");
    layer
        .merge(schema, batch, "__delete", None, state, |m, columns| {
            m.when_matched_delete(|d| d.predicate(delete()))?
                .when_matched_update(|u| {
                    columns.iter().fold(u.predicate(delete().not()), |u, c| {
                        u.update(quote(c), qualified("s", c))
                    })
                })?
                .when_not_matched_insert(|i| {
                    columns.iter().fold(i.predicate(delete().not()), |i, c| {
                        i.set(quote(c), qualified("s", c))
                    })
                })
        })
        .await
}

/// History: every change a version; the open version of a changed key is closed.
async fn write_history(
    layer: &mut Layer,
    schema: &TableSchema,
    changes: &[&LakeChange],
    keys: HistoryKeys<'_>,
    state: LayerState,
    settings: &LakeSettings,
) -> Result<(), LakeError> {
    let applied = keys.applied;
    // Per key, its changes in order.
    let mut by_key: Vec<(String, Vec<&LakeChange>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for c in changes {
        let k = c.key_text();
        match index.get(&k) {
            Some(&i) => by_key[i].1.push(c),
            None => {
                index.insert(k.clone(), by_key.len());
                by_key.push((k, vec![c]));
            }
        }
    }
    // Rows: (kind, values, op, start, end)
    struct Row<'a> {
        close: bool,
        values: Option<&'a serde_json::Map<String, Json>>,
        op: &'static str,
        start: Option<&'a LakeChange>,
        end: Option<&'a LakeChange>,
    }
    let mut rows: Vec<Row> = Vec::new();
    for (k, list) in &mut by_key {
        list.sort_by(|a, b| a.order.cmp(&b.order));
        let first = list[0];
        if applied
            .get(k)
            .is_some_and(|state| state.live || state.open_in_history)
        {
            rows.push(Row {
                close: true,
                values: first.before.as_ref().or(first.after.as_ref()),
                op: "",
                start: None,
                end: Some(first),
            });
        }
        for (i, c) in list.iter().enumerate() {
            if c.op == ChangeOp::Delete {
                continue;
            }
            rows.push(Row {
                close: false,
                values: c.after.as_ref(),
                op: c.op.code(),
                start: Some(c),
                end: list.get(i + 1).copied(),
            });
        }
    }
    let any_close = rows.iter().any(|r| r.close);
    let values: Vec<_> = rows.iter().map(|r| r.values).collect();
    let existing = layer.arrow_schema();
    let (mut fields, mut arrays) = typed_columns(schema, &values, existing.as_ref())?;
    let ts = |c: Option<&LakeChange>| c.map(|c| c.ts_ms * 1000);
    fields.push(Field::new("_cdc_op", DataType::Utf8, true));
    arrays.push(Arc::new(StringArray::from_iter(
        rows.iter().map(|r| (!r.close).then_some(r.op)),
    )));
    fields.push(Field::new("__start_at", utc_micros(), true));
    arrays.push(Arc::new(
        TimestampMicrosecondArray::from_iter(rows.iter().map(|r| ts(r.start))).with_timezone("UTC"),
    ));
    fields.push(Field::new("__end_at", utc_micros(), true));
    arrays.push(Arc::new(
        TimestampMicrosecondArray::from_iter(rows.iter().map(|r| ts(r.end))).with_timezone("UTC"),
    ));
    fields.push(Field::new("__start_position", DataType::Utf8, true));
    arrays.push(Arc::new(StringArray::from_iter(
        rows.iter().map(|r| r.start.map(|c| c.order.as_str())),
    )));
    fields.push(Field::new("__end_position", DataType::Utf8, true));
    arrays.push(Arc::new(StringArray::from_iter(
        rows.iter().map(|r| r.end.map(|c| c.order.as_str())),
    )));
    if !layer.exists() || !any_close {
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| df_err(&schema.id, e))?;
        return layer.append(batch, None, state, settings).await;
    }
    if settings.deletion_vectors {
        // The open versions are read, closed and written again; the old copies are deleted
        // by deletion vector.
        let new_versions = BooleanArray::from(rows.iter().map(|r| !r.close).collect::<Vec<_>>());
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| df_err(&schema.id, e))?;
        let batch = deltalake::arrow::compute::filter_record_batch(&batch, &new_versions)
            .map_err(|e| df_err(&schema.id, e))?;
        // Key index → the change that ends its open version.
        let ends: HashMap<usize, &LakeChange> = rows
            .iter()
            .filter(|r| r.close)
            .filter_map(|r| {
                let end = r.end?;
                Some((*keys.index.get(&end.key_text())?, end))
            })
            .collect();
        layer.add_missing_columns(schema, &batch.schema()).await?;
        let table = layer.existing().expect("exists");
        let target = layer.arrow_schema().expect("exists");
        let closing: Vec<usize> = ends.keys().copied().collect();
        // The open versions (no end) of the keys to close.
        let mut open = match keys.keys {
            Some(all) => {
                deletion::locate_subset(table, &layer.path, all, &closing, Some("__end_at")).await?
            }
            None => Located::default(),
        };
        open.retain_null();
        let mut parts = vec![conform(&batch, &target, &schema.id)?];
        for (open, key_of_row) in
            deletion::read_located(table, &layer.path, &open, closing.iter().copied()).await?
        {
            let mut closed = conform(&open, &target, &schema.id)?;
            let end_of = |i: usize| ends[&key_of_row[i]];
            let n = closed.num_rows();
            let end_at: ArrayRef = Arc::new(
                TimestampMicrosecondArray::from_iter_values((0..n).map(|i| end_of(i).ts_ms * 1000))
                    .with_timezone("UTC"),
            );
            let end_position: ArrayRef = Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| end_of(i).order.as_str()),
            ));
            let mut columns = closed.columns().to_vec();
            for (name, values) in [("__end_at", end_at), ("__end_position", end_position)] {
                if let Ok(i) = target.index_of(name) {
                    columns[i] =
                        deltalake::arrow::compute::cast(&values, target.field(i).data_type())
                            .map_err(|e| df_err(&schema.id, e))?;
                }
            }
            closed = RecordBatch::try_new(Arc::clone(&target), columns)
                .map_err(|e| df_err(&schema.id, e))?;
            parts.push(closed);
        }
        let batch = deltalake::arrow::compute::concat_batches(&target, &parts)
            .map_err(|e| df_err(&schema.id, e))?;
        return layer
            .upsert_by_deletion(schema, batch, &open, closing, state)
            .await;
    }
    fields.push(Field::new("__close", DataType::Boolean, false));
    arrays.push(Arc::new(BooleanArray::from(
        rows.iter().map(|r| r.close).collect::<Vec<_>>(),
    )));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| df_err(&schema.id, e))?;
    let close = || qualified("s", "__close");
    // Only the open version of a key is closed, and only by a close row.
    let open = qualified("t", "__end_position").is_null().and(close());
    layer
        .merge(schema, batch, "__close", Some(open), state, |m, columns| {
            m.when_matched_update(|u| {
                u.update("__end_at", qualified("s", "__end_at"))
                    .update("__end_position", qualified("s", "__end_position"))
            })?
            .when_not_matched_insert(|i| {
                columns.iter().fold(i.predicate(close().not()), |i, c| {
                    i.set(quote(c), qualified("s", c))
                })
            })
        })
        .await
}

async fn truncate_silver(
    layer: &mut Layer,
    t: &LakeChange,
    state: LayerState,
) -> Result<(), LakeError> {
    if !layer.exists() {
        // Nothing to empty; the truncate's position is remembered with the next commit.
        layer.state = state;
        return Ok(());
    }
    let table = layer.table.take().expect("exists");
    let properties = layer.properties(&state);
    let (table, _) = table
        .delete()
        .with_predicate(col("_cdc_position").lt(lit(t.order.clone())))
        .with_commit_properties(properties)
        .await
        .map_err(delta_err(&layer.path))?;
    layer.table = Some(table);
    layer.state = state;
    layer.commits += 1;
    Ok(())
}

async fn truncate_history(
    layer: &mut Layer,
    t: &LakeChange,
    state: LayerState,
) -> Result<(), LakeError> {
    if !layer.exists() {
        // Nothing to empty; the truncate's position is remembered with the next commit.
        layer.state = state;
        return Ok(());
    }
    let table = layer.table.take().expect("exists");
    let properties = layer.properties(&state);
    let (table, _) = table
        .update()
        .with_predicate(col("__end_position").is_null())
        .with_update("__end_position", lit(t.order.clone()))
        .with_update(
            "__end_at",
            Expr::Literal(
                deltalake::datafusion::scalar::ScalarValue::TimestampMicrosecond(
                    Some(t.ts_ms * 1000),
                    Some("UTC".into()),
                ),
                None,
            ),
        )
        .with_commit_properties(properties)
        .await
        .map_err(delta_err(&layer.path))?;
    layer.table = Some(table);
    layer.state = state;
    layer.commits += 1;
    Ok(())
}
