//! The lake writer: routes a batch of transport records to the Delta tables of each source
//! table (bronze, history and silver; through `[[lake.route]]` to the table a route names) and
//! to the dead-letter table, exactly once.
//!
//! Every commit carries, atomically with its data, what the table now holds (see
//! [`super::state`]): the next Kafka offset per partition and the last streamed binlog position
//! per source partition. A record at an offset or position a table already holds is not applied
//! to it again, so a sink killed anywhere and a source that re-publishes after a crash both
//! leave every table as if each change had arrived once. Within silver and history, a change at
//! or before the position already applied to its key is ignored (see [`super::guard`]), which
//! keeps a late snapshot row or a replayed older insert from resurrecting a deleted row.
//!
//! The tables of a batch are applied in parallel, each by a [`TableJob`] (see
//! [`super::table_apply`]).
//!
//! A change the lake cannot take (a value its column cannot hold) stops its table at that
//! change under `[lake] on_unappliable = "stop"` (see [`super::stopped`]): the table's changes
//! before it are applied, it and everything after stay unapplied, and the other tables go on.
//! Under `"dead_letter"` it goes to the dead-letter table instead.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::change::{parse, LakeChange};
use super::config::{LakeConfig, OnUnappliable};
use super::dead_letters::{convertible, write_dead_letters, DeadLetter};
use super::layer::{Layer, TableLayers};
use super::layout::DEAD_LETTERS;
use super::maintenance;
use super::metrics::LakeMetrics;
use super::route::Routes;
use super::schema_runs::by_schema_version;
use super::state::LayerState;
use super::stopped::{self, StoppedTable};
use super::storage::LakeStorage;
use super::table_apply::{backoff, open_layers, TableJob, CONCURRENT_COMMIT_ATTEMPTS};
use super::LakeError;
use crate::event::TableId;
use crate::transport::record::{Offsets, Record, SourcePartition};

/// Applies batches of records to the lake.
pub struct LakeWriter {
    storage: LakeStorage,
    settings: LakeConfig,
    tables: HashMap<TableId, TableLayers>,
    dead_letters: Option<Layer>,
    pub metrics: LakeMetrics,
    /// Tables stopped in this run, and why.
    stopped: BTreeMap<TableId, StoppedTable>,
    /// Tables with a stop record in the lake (from an earlier run), loaded on first use.
    recorded_stops: Option<HashSet<String>>,
    /// `[[lake.route]]`: source tables landed in another table.
    routes: Routes,
}

impl LakeWriter {
    pub fn new(storage: LakeStorage, settings: LakeConfig) -> LakeWriter {
        LakeWriter {
            storage,
            tables: HashMap::new(),
            dead_letters: None,
            metrics: LakeMetrics::default(),
            stopped: BTreeMap::new(),
            recorded_stops: None,
            routes: Routes::new(&settings.routes).expect("routes are checked with the config"),
            settings,
        }
    }

    /// The tables stopped in this run, and why.
    pub fn stopped(&self) -> Vec<StoppedTable> {
        self.stopped.values().cloned().collect()
    }

    /// The topics of stopped tables: their records must not be acknowledged.
    pub fn stopped_topics(&self) -> HashSet<String> {
        self.stopped.values().map(|s| s.topic.clone()).collect()
    }

    pub fn storage(&self) -> &LakeStorage {
        &self.storage
    }

    pub fn settings(&self) -> &LakeConfig {
        &self.settings
    }

    pub async fn prepare(&self) -> Result<(), LakeError> {
        self.storage.ensure_container().await
    }

    /// The next offset per Kafka `topic:partition` every table of that topic already holds:
    /// where consuming must resume so nothing is missed (anything earlier that comes again is
    /// skipped per table).
    pub async fn resume_offsets(&mut self, tables: &[TableId]) -> Result<Offsets, LakeError> {
        let mut out = Offsets::default();
        for id in tables {
            let id = &self.routes.target(id).unwrap_or(id).clone();
            let layers = self.layers(id).await?;
            for layer in [&layers.bronze, &layers.history, &layers.silver] {
                for (sp, next) in layer.state.offsets.iter() {
                    out.lower(sp, next);
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
            let layers = open_layers(&self.storage, &self.settings, id).await?;
            self.tables.insert(id.clone(), layers);
        }
        Ok(self.tables.get_mut(id).expect("just inserted"))
    }

    /// Applies `records` (in the order they were consumed) and commits them.
    pub async fn apply(&mut self, records: &[Record]) -> Result<(), LakeError> {
        let decoded = Decoded::new(records);
        self.apply_decoded(records, decoded).await
    }

    /// Applies `records`, already decoded by [`Decoded::new`] (the sink decodes before it
    /// lends the writer; with `[lake] decode_ahead`, while the batch before is still being
    /// applied), and commits them.
    pub async fn apply_decoded(
        &mut self,
        records: &[Record],
        decoded: Decoded,
    ) -> Result<(), LakeError> {
        let started = Instant::now();
        self.metrics.records += records.len() as u64;
        self.metrics.decode_time += decoded.took;
        let mut dead = Vec::new();
        // Per table: its changes and the offsets they take it to.
        let mut work: Vec<(TableId, Vec<LakeChange>, Offsets)> = Vec::new();
        // Per entry of `work`: each change's place in `records` (see `merge_shard`).
        let mut places: Vec<Vec<usize>> = Vec::new();
        for group in decoded.groups {
            let consumed = Offsets::after(group.places.iter().map(|&i| &records[i]));
            let mut changes = Vec::with_capacity(group.places.len());
            let mut at = Vec::with_capacity(group.places.len());
            for (place, parsed) in group.places.iter().zip(group.parsed) {
                match parsed {
                    Ok(Some(c)) => {
                        changes.push(c);
                        at.push(*place);
                    }
                    Ok(None) => {}
                    Err(reason) => dead.push(DeadLetter {
                        record: &records[*place],
                        reason,
                    }),
                }
            }
            // A topic's changes all belong to one table; anything else is poison.
            let Some(first) = changes.first() else {
                continue;
            };
            let id = first.schema.id.clone();
            type Placed = Vec<(LakeChange, usize)>;
            let (mine, strays): (Placed, Placed) = changes
                .into_iter()
                .zip(at)
                .partition(|(c, _)| c.schema.id == id);
            let (mine, at): (Vec<LakeChange>, Vec<usize>) =
                by_schema_version(mine, |(c, _)| (c.partition, c.schema.as_ref()))
                    .into_iter()
                    .unzip();
            for (s, place) in strays {
                dead.push(DeadLetter {
                    record: &records[place],
                    reason: format!("{} on the topic of {id}", s.schema.id),
                });
            }
            let routed = self.routes.target(&id).is_some();
            let (id, mine) = match self.routes.route(id, mine) {
                Ok(routed) => routed,
                Err(unroutable) => {
                    if !self.stopped.contains_key(&unroutable.target) {
                        let error = LakeError::Schema {
                            table: unroutable.target.to_string(),
                            reason: unroutable.reason,
                        };
                        self.stop_at(&unroutable.target, &unroutable.changes, error)
                            .await?;
                    }
                    continue;
                }
            };
            if self.stopped.contains_key(&id) {
                // Stopped earlier in this run: nothing more of it applies until a restart.
                continue;
            }
            if !routed {
                if let Some(reason) = self.second_server(&id, &mine, &work).await? {
                    let error = LakeError::Schema {
                        table: id.to_string(),
                        reason,
                    };
                    self.stop_at(&id, &mine, error).await?;
                    continue;
                }
            }
            // Shards routed into one table make one job.
            match work.iter().position(|(w, _, _)| *w == id) {
                Some(i) => {
                    let (_, changes, offsets) = &mut work[i];
                    merge_shard(changes, &mut places[i], mine, at);
                    offsets.advance_all(&consumed);
                }
                None => {
                    work.push((id, mine, consumed));
                    places.push(at);
                }
            }
        }
        for (id, changes, consumed, result) in self.apply_in_parallel(work).await? {
            // A value that does not fit its column: checked change by change only when the
            // batch fails to convert.
            let error = match result {
                Err(e @ LakeError::Value { .. }) => e,
                other => {
                    other?;
                    // (Stopped in this batch by another server's changes: the stop stands.)
                    if !self.stopped.contains_key(&id) {
                        self.clear_stop(&id).await?;
                    }
                    continue;
                }
            };
            if self.settings.on_unappliable == OnUnappliable::Stop {
                self.stop_at(&id, &changes, error).await?;
                continue;
            }
            let mut ok = Vec::with_capacity(changes.len());
            for c in changes {
                match convertible(&c) {
                    Ok(()) => ok.push(c),
                    Err(reason) => {
                        let record = records
                            .iter()
                            .find(|r| {
                                r.topic == c.topic
                                    && r.partition == c.partition
                                    && r.offset == c.offset
                            })
                            .expect("from this batch");
                        dead.push(DeadLetter { record, reason });
                    }
                }
            }
            self.apply_table_fenced(&id, ok, &consumed).await?;
            self.clear_stop(&id).await?;
        }
        if !dead.is_empty() {
            let settings = self.settings.clone();
            let mut attempt = 0;
            loop {
                if self.dead_letters.is_none() {
                    self.dead_letters =
                        Some(Layer::open(&self.storage, DEAD_LETTERS.into()).await?);
                }
                let layer = self.dead_letters.as_mut().expect("opened");
                match write_dead_letters(layer, &dead, &settings, &mut self.metrics).await {
                    Err(e) if e.is_concurrent_commit() && attempt < CONCURRENT_COMMIT_ATTEMPTS => {
                        attempt += 1;
                        self.metrics.concurrent_commits += 1;
                        self.dead_letters = None;
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    other => {
                        self.metrics.commits += other?;
                        break;
                    }
                }
            }
        }
        self.metrics.last_batch = started.elapsed();
        self.metrics.apply_time += self.metrics.last_batch;
        Ok(())
    }

    /// Why `changes` cannot go into `id` unrouted, when they come from another server's topic
    /// than what the table already holds (in the lake, or earlier in this batch): one sink group
    /// reading several servers' prefixes would mix their rows under one key. A route makes the
    /// server part of the key.
    async fn second_server(
        &mut self,
        id: &TableId,
        changes: &[LakeChange],
        work: &[(TableId, Vec<LakeChange>, Offsets)],
    ) -> Result<Option<String>, LakeError> {
        let Some(topic) = changes.first().map(|c| c.topic.clone()) else {
            return Ok(None);
        };
        let mut others: Vec<String> = work
            .iter()
            .filter(|(w, _, _)| w == id)
            .flat_map(|(_, c, _)| c.iter().map(|c| c.topic.clone()))
            .collect();
        let layers = self.layers(id).await?;
        for layer in [&layers.bronze, &layers.history, &layers.silver] {
            others.extend(layer.state.offsets.iter().filter_map(|(sp, _)| {
                SourcePartition::parse(sp).and_then(|p| p.topic().map(str::to_string))
            }));
        }
        Ok(others.into_iter().find(|t| *t != topic).map(|other| {
            format!(
                "changes from topic {topic}, but the table holds changes from topic {other}: two servers' tables of one name would mix their rows under one key. Route them with [[lake.route]] (the server then leads the key), or read each server's topics into a lake of its own"
            )
        }))
    }

    /// Stops `id` at the first of `changes` the lake cannot take, after applying those before
    /// it. `error` is the batch's own.
    async fn stop_at(
        &mut self,
        id: &TableId,
        changes: &[LakeChange],
        error: LakeError,
    ) -> Result<(), LakeError> {
        // No single change fails alone (the table's own rows did not convert to a new column
        // type): the table stops at the batch's first change.
        let (bad, reason) = changes
            .iter()
            .enumerate()
            .find_map(|(i, c)| convertible(c).err().map(|r| (i, r)))
            .unwrap_or_else(|| {
                let reason = match &error {
                    LakeError::Value { column, reason, .. } => format!("column {column}: {reason}"),
                    other => other.to_string(),
                };
                (0, reason)
            });
        if bad > 0 {
            let before = &changes[..bad];
            let mut consumed = Offsets::default();
            for c in before {
                if let Some(o) = c.offset {
                    consumed.advance(c.source_partition(), o + 1);
                }
            }
            self.apply_table_fenced(id, before.to_vec(), &consumed)
                .await?;
        }
        let stop = StoppedTable::new(id, &changes[bad], reason);
        tracing::error!(table = %id, "{}", stop.message());
        stopped::record(&self.storage, &stop).await?;
        self.recorded_stops
            .get_or_insert_with(HashSet::new)
            .insert(stop.table.clone());
        self.stopped.insert(id.clone(), stop);
        Ok(())
    }

    /// `id` applied: a stop recorded by an earlier run is over.
    async fn clear_stop(&mut self, id: &TableId) -> Result<(), LakeError> {
        if self.recorded_stops.is_none() {
            let recorded = stopped::list(&self.storage).await?;
            self.recorded_stops = Some(recorded.into_iter().map(|s| s.table).collect());
        }
        let name = id.to_string();
        if self
            .recorded_stops
            .as_ref()
            .is_some_and(|r| r.contains(&name))
        {
            stopped::clear(&self.storage, id).await?;
            self.recorded_stops.as_mut().expect("loaded").remove(&name);
            tracing::info!(table = %id, "applying again after a stop");
        }
        Ok(())
    }

    /// Applies `changes` to `id`'s tables (see [`TableJob`]).
    async fn apply_table_fenced(
        &mut self,
        id: &TableId,
        changes: Vec<LakeChange>,
        consumed: &Offsets,
    ) -> Result<(), LakeError> {
        let mut job = self.take_job(id).await?;
        let result = job
            .apply_fenced(&self.storage, &self.settings, &Arc::new(changes), consumed)
            .await;
        self.put_back(job);
        result
    }

    /// Applies each table's changes in a job of its own, as many at a time as twice the cores
    /// (commits to object storage wait on the network); the results in `work`'s order, the
    /// tables back in the writer.
    #[allow(clippy::type_complexity)]
    async fn apply_in_parallel(
        &mut self,
        work: Vec<(TableId, Vec<LakeChange>, Offsets)>,
    ) -> Result<Vec<(TableId, Vec<LakeChange>, Offsets, Result<(), LakeError>)>, LakeError> {
        use futures_util::StreamExt;
        let mut jobs = Vec::with_capacity(work.len());
        for (id, changes, consumed) in work {
            jobs.push((self.take_job(&id).await?, changes, consumed));
        }
        let parallel = 2 * std::thread::available_parallelism().map_or(1, |n| n.get());
        let storage = self.storage.clone();
        let settings = Arc::new(self.settings.clone());
        let mut done: Vec<_> = futures_util::stream::iter(jobs.into_iter().enumerate())
            .map(|(i, (mut job, changes, consumed))| {
                let storage = storage.clone();
                let settings = settings.clone();
                tokio::spawn(async move {
                    let changes = Arc::new(changes);
                    let result = job
                        .apply_fenced(&storage, &settings, &changes, &consumed)
                        .await;
                    // Bronze's task, the only other holder, has ended.
                    let changes = Arc::unwrap_or_clone(changes);
                    (i, job, changes, consumed, result)
                })
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
        let mut out = Vec::with_capacity(done.len());
        let mut failed = None;
        for joined in done.drain(..) {
            match joined {
                Ok((i, job, changes, consumed, result)) => {
                    let id = job.id.clone();
                    self.put_back(job);
                    out.push((i, (id, changes, consumed, result)));
                }
                Err(e) => failed = Some(LakeError::storage("a table's job", e)),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        out.sort_by_key(|(i, _)| *i);
        Ok(out.into_iter().map(|(_, r)| r).collect())
    }

    /// Waits for the compactions still under way in the background (a writer that stops:
    /// one left behind is harmless, its commit carries no state, but its work would be lost).
    pub async fn finish_maintenance(&mut self) -> Result<(), LakeError> {
        let mut metrics = LakeMetrics::default();
        for layers in self.tables.values_mut() {
            for layer in layers.each_mut() {
                maintenance::finish(layer, &mut metrics).await?;
            }
        }
        self.metrics.absorb(&metrics);
        Ok(())
    }

    /// `id`'s tables, out of the writer while a job applies to them.
    async fn take_job(&mut self, id: &TableId) -> Result<TableJob, LakeError> {
        let layers = match self.tables.remove(id) {
            Some(layers) => layers,
            None => open_layers(&self.storage, &self.settings, id).await?,
        };
        Ok(TableJob::new(id.clone(), layers))
    }

    fn put_back(&mut self, job: TableJob) {
        self.metrics.absorb(&job.metrics);
        self.tables.insert(job.id, job.layers);
    }
}

/// Adds one shard's changes (`shard`, at places `shard_at` of the batch) to a routed table's
/// (`changes`, at `changes_at`). Shards with Kafka topics of their own are independent streams,
/// so each keeps a run of its own (one schema segment per shard, not one per change while the
/// shards' schemas differ). Shards read from one binlog in-process share one stream, whose
/// positions must be applied in order: those are merged back into the order they came in.
fn merge_shard(
    changes: &mut Vec<LakeChange>,
    changes_at: &mut Vec<usize>,
    shard: Vec<LakeChange>,
    shard_at: Vec<usize>,
) {
    let one_stream = shard.iter().any(|c| c.offset.is_none());
    changes.extend(shard);
    changes_at.extend(shard_at);
    if one_stream {
        let mut both: Vec<(usize, LakeChange)> =
            changes_at.drain(..).zip(changes.drain(..)).collect();
        both.sort_by_key(|(at, _)| *at);
        for (at, c) in both {
            changes_at.push(at);
            changes.push(c);
        }
    }
}

/// A batch's records decoded into changes, grouped by topic (a topic is one source table;
/// order within it is kept).
pub struct Decoded {
    groups: Vec<DecodedTopic>,
    /// How long decoding took.
    took: Duration,
}

struct DecodedTopic {
    /// Each record's place in the batch.
    places: Vec<usize>,
    /// Its change, `None` for a record that carries none (a tombstone), or why it is poison.
    parsed: Vec<Result<Option<LakeChange>, String>>,
}

impl Decoded {
    /// Decodes `records` (see [`parse`]) on every core.
    pub fn new(records: &[Record]) -> Decoded {
        let started = Instant::now();
        let mut topics: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            match topics.iter_mut().find(|(t, _)| *t == r.topic) {
                Some((_, places)) => places.push(i),
                None => topics.push((&r.topic, vec![i])),
            }
        }
        let groups = topics
            .into_iter()
            .map(|(_, places)| {
                let group: Vec<&Record> = places.iter().map(|&i| &records[i]).collect();
                DecodedTopic {
                    parsed: parse_on_every_core(&group),
                    places,
                }
            })
            .collect();
        Decoded {
            groups,
            took: started.elapsed(),
        }
    }

    /// Frees the key and value of every record of `records` (the batch this decoded) that
    /// [`LakeWriter::apply_decoded`] will not write as a dead letter: its change is decoded, so
    /// only a record that failed to decode, or whose change belongs to another table than its
    /// topic's, still needs them. For a full batch that is `max_batch_bytes` of memory freed
    /// before the batch's Arrow forms are built. Not under `on_unappliable = "dead_letter"`,
    /// where any change whose value the lake cannot take is written as its record.
    pub fn release_payloads(&self, records: &mut [Record], settings: &LakeConfig) {
        if settings.on_unappliable != OnUnappliable::Stop {
            return;
        }
        for group in &self.groups {
            let table = group
                .parsed
                .iter()
                .find_map(|p| p.as_ref().ok().and_then(Option::as_ref))
                .map(|c| &c.schema.id);
            for (&place, parsed) in group.places.iter().zip(&group.parsed) {
                let needed = match parsed {
                    Ok(None) => false,
                    Ok(Some(c)) => Some(&c.schema.id) != table,
                    Err(_) => true,
                };
                if !needed {
                    let record = &mut records[place];
                    record.key = None;
                    record.value = None;
                }
            }
        }
    }
}

/// Decodes `records` (see [`parse`]), in order, split over the cores: decoding the envelopes
/// is the largest share of a batch's work done on the sink's own thread.
fn parse_on_every_core(records: &[&Record]) -> Vec<Result<Option<LakeChange>, String>> {
    const CHUNK_AT_LEAST: usize = 2_000;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 || records.len() < 2 * CHUNK_AT_LEAST {
        return records.iter().map(|r| parse(r)).collect();
    }
    let chunk = records.len().div_ceil(cores);
    std::thread::scope(|scope| {
        let parts: Vec<_> = records
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|r| parse(r)).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("decoding does not panic"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Column, ColumnType, TableSchema};

    fn schema(table: &str) -> Arc<TableSchema> {
        Arc::new(TableSchema {
            id: TableId::new("shop", table),
            columns: vec![Column::new("id", ColumnType::Int)],
            primary_key: vec![0],
            positional_names: false,
        })
    }

    /// A record on `shop.orders`'s topic: an insert of `id` into `table`, or `value` as given.
    fn record(table: &str, value: Option<String>, id: i64) -> Record {
        let value = value.unwrap_or_else(|| {
            serde_json::json!({
                "before": null,
                "after": {"id": id},
                "source": {"db": "shop", "table": table, "file": "mysql-bin.000001", "pos": 100 + id, "row": 0, "ts_ms": 1_700_000_000_000i64, "snapshot": "false"},
                "op": "c",
                "ts_ms": 1_700_000_000_000i64,
            })
            .to_string()
        });
        Record {
            topic: "binlake.shop.orders".into(),
            partition: 0,
            offset: Some(id),
            key: Some(format!("{{\"id\":{id}}}").into_bytes()),
            value: Some(value.into_bytes()),
            schema_id: None,
            schema: Some(schema(table)),
        }
    }

    /// Once a batch is decoded, only what can still become a dead letter keeps its bytes: a
    /// record that did not decode, and one whose change is another table's than its topic's.
    #[test]
    fn decoded_records_give_up_their_payloads_unless_they_can_become_dead_letters() {
        let batch = || {
            let mut tombstone = record("orders", None, 4);
            tombstone.value = None;
            vec![
                record("orders", None, 1),
                record("orders", Some("{not json".into()), 2),
                record("customers", None, 3),
                tombstone,
                record("orders", None, 5),
            ]
        };
        let mut records = batch();
        // The third decodes: it is kept as a stray, not as poison.
        assert!(matches!(parse(&records[2]), Ok(Some(_))));
        let decoded = Decoded::new(&records);
        decoded.release_payloads(&mut records, &LakeConfig::default());
        let kept: Vec<(Option<i64>, bool, bool)> = records
            .iter()
            .map(|r| (r.offset, r.key.is_some(), r.value.is_some()))
            .collect();
        assert_eq!(
            kept,
            vec![
                (Some(1), false, false),
                (Some(2), true, true),
                (Some(3), true, true),
                (Some(4), false, false),
                (Some(5), false, false),
            ]
        );

        // Under on_unappliable = "dead_letter" any change can become one: every record keeps
        // its bytes.
        let mut records = batch();
        let decoded = Decoded::new(&records);
        let dead_letters = LakeConfig {
            on_unappliable: OnUnappliable::DeadLetter,
            ..LakeConfig::default()
        };
        decoded.release_payloads(&mut records, &dead_letters);
        assert!(records.iter().all(|r| r.key.is_some()));
        assert_eq!(records.iter().filter(|r| r.value.is_some()).count(), 4);
    }
}
