//! One Delta table of the lake and its exactly-once state: opening it, telling which changes it
//! already holds (by Kafka offset, or by binlog position within a source partition), the state
//! after a batch, and the three ways to commit to it (append, MERGE, and new rows beside
//! deletion vectors on the rows they replace), each carrying that state in the same commit as
//! the data.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::prelude::{col, Expr, SessionContext};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::Action;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};

use super::change::LakeChange;
use super::compaction::{Compaction, Outcome};
use super::config::{LakeConfig, Readers};
use super::dv::delete_rows;
use super::key_cache::KeyCache;
use super::keys::{keyed_writer_properties, Located};
use super::state::{load_state, LayerState};
use super::storage::LakeStorage;
use super::LakeError;
use crate::event::{TableId, TableSchema};
use crate::transport::record::Offsets;

pub(super) fn delta_err(table: &str) -> impl Fn(DeltaTableError) -> LakeError + '_ {
    move |source| LakeError::Delta {
        table: table.to_string(),
        source: Box::new(source),
    }
}

pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A MERGE's insert of every source column (`s.<column>`), for the source rows `when` selects.
pub(super) fn insert_all(
    insert: deltalake::operations::merge::InsertBuilder,
    columns: &[String],
    when: Expr,
) -> deltalake::operations::merge::InsertBuilder {
    columns.iter().fold(insert.predicate(when), |i, c| {
        i.set(quote(c), qualified("s", c))
    })
}

pub(super) fn qualified(alias: &str, name: &str) -> Expr {
    col(format!("{alias}.{}", quote(name)))
}

pub(super) fn df_err(id: &TableId, e: impl std::fmt::Display) -> LakeError {
    LakeError::Storage {
        table: id.to_string(),
        reason: e.to_string(),
    }
}

pub(super) fn key_names(schema: &TableSchema) -> Vec<String> {
    schema
        .primary_key
        .iter()
        .map(|&i| schema.columns[i].name.clone())
        .collect()
}

/// One Delta table and what it holds.
pub(super) struct Layer {
    pub(super) path: String,
    /// Silver: its files' sorted integer keys, kept between batches.
    pub(super) key_cache: Arc<KeyCache>,
    /// Always present between operations (taken while one runs); the table may not exist
    /// yet, see [`Layer::exists`].
    pub(super) table: Option<DeltaTable>,
    pub(super) state: LayerState,
    pub(super) commits: u64,
    /// Appends committed again on top of what landed meanwhile ([`super::rebase`]), not yet
    /// counted in the writer's metrics.
    pub(super) rebases: u64,
    /// A compaction of the table under way in the background.
    pub(super) compaction: Option<Compaction>,
    /// What became of the last background compaction.
    pub(super) compaction_outcome: Outcome,
}

/// The three tables of one source table.
pub(super) struct TableLayers {
    pub(super) bronze: Layer,
    pub(super) history: Layer,
    pub(super) silver: Layer,
}

impl TableLayers {
    /// Bronze, history and silver.
    pub(super) fn each_mut(&mut self) -> [&mut Layer; 3] {
        [&mut self.bronze, &mut self.history, &mut self.silver]
    }
}

/// How many times an append goes on top of commits that refused it ([`super::rebase`]) before
/// the refusal is handed to the caller.
const APPEND_REBASES: u32 = 3;

impl Layer {
    pub(super) async fn open(storage: &LakeStorage, path: String) -> Result<Layer, LakeError> {
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
            rebases: 0,
            compaction: None,
            compaction_outcome: Outcome::Settled,
        })
    }

    /// The table and its state as they are now, after a commit was refused because another
    /// writer (or a compaction) committed first: read on from the version it holds, or opened
    /// again when it holds none (a table that did not exist, or a failed operation took it).
    /// The process's count of commits (the maintenance schedule) and the compaction under way
    /// stay, as do the cached keys of files (a file never changes; those gone leave the cache).
    pub(super) async fn reload(&mut self, storage: &LakeStorage) -> Result<(), LakeError> {
        if self.existing().is_some() {
            return self.refresh().await;
        }
        let mut reopened = Layer::open(storage, self.path.clone()).await?;
        reopened.commits = self.commits;
        reopened.rebases = self.rebases;
        reopened.compaction = self.compaction.take();
        reopened.compaction_outcome = self.compaction_outcome;
        reopened.key_cache = Arc::clone(&self.key_cache);
        *self = reopened;
        Ok(())
    }

    /// Brings the table and its state up to the newest version (another writer's commits,
    /// or a background compaction's, went in since it was read).
    pub(super) async fn refresh(&mut self) -> Result<(), LakeError> {
        let mut table = self.table.take().expect("a layer keeps its table");
        let updated = table.update_incremental(None).await;
        self.table = Some(table);
        updated.map_err(delta_err(&self.path))?;
        self.reload_state().await
    }

    /// Takes `table` as the layer's after a maintenance commit, and the state its newest
    /// commit carrying one records: delta-rs commits maintenance on top of whatever went in
    /// meanwhile, another writer's commits included.
    pub(super) async fn maintained(&mut self, table: DeltaTable) -> Result<(), LakeError> {
        self.table = Some(table);
        self.reload_state().await
    }

    async fn reload_state(&mut self) -> Result<(), LakeError> {
        let table = self.table.as_ref().expect("a layer keeps its table");
        self.state = load_state(table).await.map_err(delta_err(&self.path))?;
        Ok(())
    }

    /// A stand-in for a layer whose table is being committed by a task of its own: it holds no
    /// table until the task gives the layer back.
    pub(super) fn detached(path: &str) -> Layer {
        Layer {
            path: path.to_string(),
            key_cache: Default::default(),
            table: None,
            state: LayerState::default(),
            commits: 0,
            rebases: 0,
            compaction: None,
            compaction_outcome: Outcome::Settled,
        }
    }

    /// Logs a warning when the table carries a reader feature `readers` rules out: it was
    /// written under another profile, and the profile's engines cannot open it.
    pub(super) fn warn_beyond(&self, readers: Readers) {
        let Some(snapshot) = self.existing().and_then(|t| t.snapshot().ok()) else {
            return;
        };
        let Some(features) = snapshot.protocol().reader_features() else {
            return;
        };
        let names: Vec<String> = features.iter().map(|f| f.to_string()).collect();
        let beyond: Vec<&str> = [
            ("deletionVectors", readers.deletion_vectors()),
            ("timestampNtz", readers.timestamp_ntz()),
        ]
        .into_iter()
        .filter(|(name, allowed)| !allowed && names.iter().any(|n| n == name))
        .map(|(name, _)| name)
        .collect();
        if !beyond.is_empty() {
            tracing::warn!(
                table = %self.path,
                "the table has {} from before readers = \"{}\": engines of that profile cannot open it until it is rewritten (move it aside and snapshot the table again)",
                beyond.join(" and "),
                readers.name()
            );
        }
    }

    pub(super) fn exists(&self) -> bool {
        self.table.as_ref().is_some_and(|t| t.version().is_some())
    }

    /// The table, when it exists.
    pub(super) fn existing(&self) -> Option<&DeltaTable> {
        self.table.as_ref().filter(|t| t.version().is_some())
    }

    /// The changes this table does not hold yet. A source that re-publishes after a crash can
    /// put a change and its copy in one batch: within a source partition, a streamed change
    /// at or before one already taken is such a copy.
    pub(super) fn fresh<'c>(&self, changes: &'c [LakeChange]) -> Vec<&'c LakeChange> {
        self.fresh_at(changes)
            .into_iter()
            .map(|i| &changes[i])
            .collect()
    }

    /// [`Self::fresh`], as places in `changes`.
    pub(super) fn fresh_at(&self, changes: &[LakeChange]) -> Vec<usize> {
        let mut partitions = PartitionText::default();
        let mut newest: HashMap<String, &str> = HashMap::new();
        let mut out = Vec::with_capacity(changes.len());
        for (at, c) in changes.iter().enumerate() {
            let sp = partitions.of(c);
            if self.holds_at(c, sp) {
                continue;
            }
            if !c.snapshot {
                match newest.get_mut(sp) {
                    Some(n) if c.order.as_str() <= *n => continue,
                    Some(n) => *n = c.order.as_str(),
                    None => {
                        newest.insert(sp.to_string(), c.order.as_str());
                    }
                }
            }
            out.push(at);
        }
        out
    }

    /// Whether the table already holds `c`, which came through the source partition `sp`.
    fn holds_at(&self, c: &LakeChange, sp: &str) -> bool {
        if let (Some(offset), Some(next)) = (c.offset, self.state.offsets.get(sp)) {
            if offset < next {
                return true;
            }
        }
        !c.snapshot
            && self
                .state
                .positions
                .get(sp)
                .is_some_and(|last| c.order.as_str() <= last.as_str())
    }

    /// Silver and history are read by key: their files get small, indexed pages.
    pub(super) fn writer_properties(
        &self,
    ) -> Option<deltalake::parquet::file::properties::WriterProperties> {
        self.path
            .starts_with("silver/")
            .then(keyed_writer_properties)
    }

    pub(super) fn arrow_schema(&self) -> Option<SchemaRef> {
        self.existing()
            .and_then(|t| t.snapshot().ok())
            .map(|s| s.snapshot().arrow_schema())
    }

    /// The state after `changes`, with `consumed` as the next offsets of their partitions.
    pub(super) fn next_state(&self, changes: &[&LakeChange], consumed: &Offsets) -> LayerState {
        let mut state = self.state.clone();
        state.offsets.advance_all(consumed);
        if let Some(newest) = changes.iter().map(|c| c.ts_ms).max() {
            state.source_ts_ms = Some(state.source_ts_ms.unwrap_or(0).max(newest));
        }
        let mut partitions = PartitionText::default();
        for c in changes.iter().filter(|c| !c.snapshot) {
            let sp = partitions.of(c);
            match state.positions.get_mut(sp) {
                Some(last) if c.order > *last => last.clone_from(&c.order),
                Some(_) => {}
                None => {
                    state.positions.insert(sp.to_string(), c.order.clone());
                }
            }
        }
        state
    }

    /// [`Layer::commit_with`] for an operation on the rows the table holds (a TRUNCATE): a
    /// table that does not exist yet has none, and `state` is kept for its first commit.
    pub(super) async fn commit_if_exists<F, Fut>(
        &mut self,
        state: LayerState,
        operation: F,
    ) -> Result<(), LakeError>
    where
        F: FnOnce(DeltaTable, CommitProperties) -> Fut,
        Fut: std::future::Future<Output = Result<DeltaTable, DeltaTableError>>,
    {
        if !self.exists() {
            self.state = state;
            return Ok(());
        }
        self.commit_with(state, operation).await
    }

    /// Runs one Delta operation on the table that commits `state` with its data: `operation`
    /// gets the table and the commit properties recording `state`, and returns the table after.
    pub(super) async fn commit_with<F, Fut>(
        &mut self,
        state: LayerState,
        operation: F,
    ) -> Result<(), LakeError>
    where
        F: FnOnce(DeltaTable, CommitProperties) -> Fut,
        Fut: std::future::Future<Output = Result<DeltaTable, DeltaTableError>>,
    {
        let table = self.table.take().expect("a layer keeps its table");
        let properties = state.commit_properties();
        let table = operation(table, properties)
            .await
            .map_err(delta_err(&self.path))?;
        self.table = Some(table);
        self.state = state;
        self.commits += 1;
        Ok(())
    }

    /// Appends `batch` to the table (created with `partitions` on its first commit; new
    /// columns merged into its schema), committing `state` with it.
    pub(super) async fn append(
        &mut self,
        batch: RecordBatch,
        partitions: Option<Vec<String>>,
        state: LayerState,
        settings: &LakeConfig,
    ) -> Result<(), LakeError> {
        if let Some(target) = self.takes_as_is(&batch) {
            return self.append_files(batch, &target, state).await;
        }
        let properties = state.commit_properties();
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
    /// The table's schema, when every column of `batch` is one of the table's with the same
    /// type: the batch then needs no schema change, only the table's other columns as nulls.
    fn takes_as_is(&self, batch: &RecordBatch) -> Option<SchemaRef> {
        let target = self.arrow_schema()?;
        batch
            .schema()
            .fields()
            .iter()
            .all(|f| {
                target
                    .field_with_name(f.name())
                    .is_ok_and(|t| t.data_type() == f.data_type())
            })
            .then_some(target)
    }

    /// [`Self::append`] to an existing table whose schema `batch` fits: its files written and
    /// committed directly, without the query planning of delta-rs's write operation.
    async fn append_files(
        &mut self,
        batch: RecordBatch,
        target: &SchemaRef,
        state: LayerState,
    ) -> Result<(), LakeError> {
        use deltalake::writer::DeltaWriter;
        let table = self.table.as_ref().expect("a layer keeps its table");
        // Batches are moved in and let go as soon as they are copied: a batch's Arrow forms
        // are the largest part of the sink's peak memory.
        let conformed = conform(&batch, target, &self.path)?;
        drop(batch);
        let mut writer = deltalake::writer::RecordBatchWriter::for_table(table)
            .map_err(delta_err(&self.path))?;
        if let Some(properties) = self.writer_properties() {
            writer = writer.with_writer_properties(properties);
        }
        writer
            .write(conformed)
            .await
            .map_err(delta_err(&self.path))?;
        let adds: Vec<Action> = writer
            .flush()
            .await
            .map_err(delta_err(&self.path))?
            .into_iter()
            .map(Action::Add)
            .collect();
        let operation = deltalake::protocol::DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: None,
            predicate: None,
        };
        let mut state = state;
        let mut rebases = 0;
        let committed = loop {
            let table = self.table.as_ref().expect("a layer keeps its table");
            let snapshot = table.snapshot().map_err(delta_err(&self.path))?;
            let refused = match CommitBuilder::from(state.commit_properties())
                .with_actions(adds.clone())
                .build(Some(snapshot), table.log_store(), operation.clone())
                .await
            {
                Ok(committed) => break committed,
                Err(e) => delta_err(&self.path)(e),
            };
            if !refused.is_concurrent_commit() || rebases == APPEND_REBASES {
                return Err(refused);
            }
            match self.rebase_append(&state, target).await? {
                Some(on_top) => state = on_top,
                None => return Err(refused),
            }
            rebases += 1;
            self.rebases += 1;
        };
        let table = self.table.as_mut().expect("a layer keeps its table");
        table.state = Some(committed.snapshot);
        self.state = state;
        self.commits += 1;
        Ok(())
    }

    /// MERGEs `batch` (aliased `s`) into the table (`t`) on the key columns (and `extra`),
    /// with the clauses `clauses` adds over the batch's columns except `marker` (the column
    /// that says what a source row is for); commits `state` with the data.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn merge(
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
        let properties = state.commit_properties();
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

/// `batch` with the columns of `target`, in its order (a column `batch` lacks, e.g. one
/// dropped at the source, is null).
pub(super) fn conform(
    batch: &RecordBatch,
    target: &SchemaRef,
    table: &str,
) -> Result<RecordBatch, LakeError> {
    let mut columns = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let column = match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => Arc::clone(c),
            Some(c) => deltalake::arrow::compute::cast(c, field.data_type())
                .map_err(|e| LakeError::storage(table, format!("column {}: {e}", field.name())))?,
            None => deltalake::arrow::array::new_null_array(field.data_type(), batch.num_rows()),
        };
        columns.push(column);
    }
    RecordBatch::try_new(Arc::clone(target), columns).map_err(|e| LakeError::storage(table, e))
}

/// `batch` ordered by the key columns, so each file covers a narrow key range.
pub(super) fn sorted_by_key(
    batch: &RecordBatch,
    schema: &TableSchema,
) -> Result<RecordBatch, LakeError> {
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

impl Layer {
    /// Silver with deletion vectors: deletes the live rows of the `replaced` keys (as
    /// `located`) by deletion vector and adds `batch` as a new file sorted by key, in one
    /// commit carrying `state`.
    pub(super) async fn upsert_by_deletion(
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
        let conformed = conform(&batch, &target, &schema.id.to_string())?;
        drop(batch);
        let batch = sorted_by_key(&conformed, schema)?;
        drop(conformed);
        let mut actions =
            delete_rows(table, &self.path, located.deletes(replaced.into_iter())).await?;
        if batch.num_rows() > 0 {
            let mut writer = deltalake::writer::RecordBatchWriter::for_table(table)
                .map_err(delta_err(&self.path))?
                .with_writer_properties(keyed_writer_properties());
            writer.write(batch).await.map_err(delta_err(&self.path))?;
            let adds = writer.flush().await.map_err(delta_err(&self.path))?;
            actions.extend(adds.into_iter().map(deltalake::kernel::Action::Add));
        }
        let properties = state.commit_properties();
        let snapshot = table.snapshot().map_err(delta_err(&self.path))?;
        let operation = deltalake::protocol::DeltaOperation::Merge {
            predicate: None,
            merge_predicate: Some("binlake: key match, deletion vectors".into()),
            matched_predicates: Vec::new(),
            not_matched_predicates: Vec::new(),
            not_matched_by_source_predicates: Vec::new(),
        };
        let committed = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(snapshot), table.log_store(), operation)
            .await
            .map_err(delta_err(&self.path))?;
        let table = self.table.as_mut().expect("a layer keeps its table");
        table.state = Some(committed.snapshot);
        self.state = state;
        self.commits += 1;
        Ok(())
    }

    /// Turns on the `deletionVectors` table feature (once per table).
    pub(super) async fn enable_deletion_vectors(&mut self) -> Result<(), LakeError> {
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
        let properties = self.state.commit_properties();
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
}

/// The text form of each change's source partition (as the lake's state keys it), made once per
/// run of changes through one partition: a batch is a few long runs.
#[derive(Default)]
struct PartitionText {
    /// Kafka or not, topic, partition of the run.
    run: Option<(bool, String, i32)>,
    text: String,
}

impl PartitionText {
    fn of(&mut self, c: &LakeChange) -> &str {
        let kafka = c.offset.is_some();
        let same = self.run.as_ref().is_some_and(|(k, topic, partition)| {
            *k == kafka && (!kafka || (*partition == c.partition && *topic == c.topic))
        });
        if !same {
            self.run = Some((kafka, c.topic.clone(), c.partition));
            self.text = c.source_partition().to_string();
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use deltalake::arrow::array::{Int64Array, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn rows(columns: &[(&str, Vec<Option<&str>>)], ids: std::ops::Range<i64>) -> RecordBatch {
        let mut fields = vec![Field::new("id", DataType::Int64, false)];
        let mut arrays: Vec<deltalake::arrow::array::ArrayRef> =
            vec![Arc::new(Int64Array::from_iter_values(ids))];
        for (name, values) in columns {
            fields.push(Field::new(*name, DataType::Utf8, true));
            arrays.push(Arc::new(StringArray::from(values.clone())));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
    }

    async fn query(layer: &Layer, sql: &str) -> Vec<String> {
        let table = layer.existing().unwrap().clone();
        let ctx = SessionContext::new();
        table.update_datafusion_session(&ctx.state()).unwrap();
        ctx.register_table("t", table.table_provider().await.unwrap())
            .unwrap();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let mut out = Vec::new();
        for b in batches {
            for r in 0..b.num_rows() {
                let cells: Vec<String> = (0..b.num_columns())
                    .map(|c| {
                        deltalake::arrow::util::display::array_value_to_string(b.column(c), r)
                            .unwrap()
                    })
                    .collect();
                out.push(cells.join("|"));
            }
        }
        out
    }

    /// Appends to a partitioned table: a batch of the table's columns is written straight to
    /// files (no schema change), one with a new column goes through delta-rs's write and
    /// widens the schema, and a later batch without it gets nulls there. Every commit records
    /// its state, and the rows land in their partitions.
    #[tokio::test]
    async fn appends_write_fitting_batches_directly_and_widen_the_schema_for_new_columns() {
        let dir = tempfile::tempdir().unwrap();
        let storage =
            LakeStorage::new(dir.path().to_str().unwrap(), &BTreeMap::new(), dir.path()).unwrap();
        let mut layer = Layer::open(&storage, "bronze/shop/t".into()).await.unwrap();
        let settings = LakeConfig::default();
        let state = |next: i64| {
            let mut s = LayerState::default();
            s.offsets.advance("binlake.shop:0", next);
            s
        };
        let day = |d: &'static str, n: usize| ("day", vec![Some(d); n]);
        let partitioned = Some(vec!["day".to_string()]);

        let first = rows(&[day("2026-12-01", 2)], 0..2);
        assert!(layer.takes_as_is(&first).is_none(), "no table yet");
        layer
            .append(first, partitioned.clone(), state(2), &settings)
            .await
            .unwrap();
        let fits = rows(&[day("2026-12-02", 2)], 2..4);
        assert!(layer.takes_as_is(&fits).is_some());
        layer
            .append(fits, partitioned.clone(), state(4), &settings)
            .await
            .unwrap();
        let wider = rows(&[day("2026-12-02", 1), ("note", vec![Some("n")])], 4..5);
        assert!(layer.takes_as_is(&wider).is_none(), "a new column");
        layer
            .append(wider, partitioned.clone(), state(5), &settings)
            .await
            .unwrap();
        let narrower = rows(&[day("2026-12-02", 1)], 5..6);
        assert!(layer.takes_as_is(&narrower).is_some());
        layer
            .append(narrower, partitioned, state(6), &settings)
            .await
            .unwrap();

        assert_eq!(
            (layer.existing().unwrap().version(), layer.commits),
            (Some(3), 4)
        );
        assert_eq!(layer.state, state(6));
        let reopened = Layer::open(&storage, "bronze/shop/t".into()).await.unwrap();
        assert_eq!(reopened.state, state(6));
        assert_eq!(
            query(&reopened, "SELECT id, day, note FROM t ORDER BY id").await,
            [
                "0|2026-12-01|",
                "1|2026-12-01|",
                "2|2026-12-02|",
                "3|2026-12-02|",
                "4|2026-12-02|n",
                "5|2026-12-02|"
            ]
        );
        let partitions: Vec<String> = std::fs::read_dir(dir.path().join("bronze/shop/t"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("day="))
            .collect();
        assert_eq!(partitions.len(), 2, "{partitions:?}");
        let table = reopened.existing().unwrap();
        let metadata = table.snapshot().unwrap().metadata().clone();
        assert_eq!(metadata.partition_columns(), &["day".to_string()]);
    }
}
