//! The lake writer: routes a batch of transport records to the Delta tables of each source
//! table (bronze, then history, then silver) and to the dead-letter table, exactly once.
//!
//! Every commit carries, atomically with its data, what the table now holds (see
//! [`super::state`]): the next Kafka offset per partition and the last streamed binlog position
//! per source partition. A record at an offset or position a table already holds is not applied
//! to it again, so a sink killed anywhere and a source that re-publishes after a crash both
//! leave every table as if each change had arrived once. Within silver and history, a change at
//! or before the position already applied to its key is ignored (see [`super::guard`]), which
//! keeps a late snapshot row or a replayed older insert from resurrecting a deleted row.
//!
//! A batch is cut into segments, one per schema version or TRUNCATE, each applied to history
//! and silver in its own commits, so a schema change lands between the rows written before and
//! after it.
//!
//! A change the lake cannot take (a value its column cannot hold) stops its table at that
//! change under `[lake] on_unappliable = "stop"` (see [`super::stopped`]): the table's changes
//! before it are applied, it and everything after stay unapplied, and the other tables go on.
//! Under `"dead_letter"` it goes to the dead-letter table instead.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use super::bronze::bronze_batch;
use super::change::{parse, LakeChange};
use super::config::{LakeConfig, OnUnappliable};
use super::dead_letters::{convertible, write_dead_letters, DeadLetter};
use super::evolution::apply_column_defaults;
use super::guard::applied_positions;
use super::history::{truncate_history, write_history, HistoryKeys};
use super::layer::{key_names, Layer, TableLayers};
use super::layout::{bronze_path, history_path, silver_path, DEAD_LETTERS, INGEST_DATE};
use super::maintenance::maintain;
use super::metrics::LakeMetrics;
use super::multiset;
use super::retype::follow_schema;
use super::route::Routes;
use super::silver::{truncate_silver, write_silver, SilverKeys};
use super::state::LayerState;
use super::stopped::{self, StoppedTable};
use super::storage::LakeStorage;
use super::LakeError;
use crate::event::{Op, TableId};
use crate::transport::record::{Offsets, Record};

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
            let layers = TableLayers {
                bronze: Layer::open(&self.storage, bronze_path(id)).await?,
                history: Layer::open(&self.storage, history_path(id)).await?,
                silver: Layer::open(&self.storage, silver_path(id)).await?,
            };
            for layer in [&layers.history, &layers.silver] {
                layer.warn_beyond(self.settings.readers);
            }
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
            let consumed = Offsets::after(group.iter().copied());
            for (r, parsed) in group.iter().zip(parse_on_every_core(&group)) {
                match parsed {
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
            // A value that does not fit its column: checked change by change only when the
            // batch fails to convert.
            let (mine, error) = match self.apply_table_fenced(&id, &mine, &consumed).await {
                Err(e @ LakeError::Value { .. }) => (mine, e),
                other => {
                    other?;
                    self.clear_stop(&id).await?;
                    continue;
                }
            };
            if self.settings.on_unappliable == OnUnappliable::Stop {
                self.stop_at(&id, &mine, error).await?;
                continue;
            }
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
                self.apply_table_fenced(&id, &ok, &consumed).await?;
                self.clear_stop(&id).await?;
            }
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
        Ok(())
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
            self.apply_table_fenced(id, before, &consumed).await?;
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

    /// [`Self::apply_table`], applied again on freshly loaded tables when another sink
    /// committed to one of them first: what that sink applied is then held, and skipped.
    async fn apply_table_fenced(
        &mut self,
        id: &TableId,
        changes: &[LakeChange],
        consumed: &Offsets,
    ) -> Result<(), LakeError> {
        let mut attempt = 0;
        loop {
            match self.apply_table(id, changes, consumed).await {
                Err(e) if e.is_concurrent_commit() && attempt < CONCURRENT_COMMIT_ATTEMPTS => {
                    attempt += 1;
                    self.metrics.concurrent_commits += 1;
                    tracing::info!(table = %id, attempt, "another writer committed to the table first: reloading it and applying the batch again");
                    self.tables.remove(id);
                    tokio::time::sleep(backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn apply_table(
        &mut self,
        id: &TableId,
        changes: &[LakeChange],
        consumed: &Offsets,
    ) -> Result<(), LakeError> {
        let settings = self.settings.clone();
        let layers = self.layers(id).await?;
        // Bronze (every change not already there) commits in a task of its own while history
        // and silver are worked out here: the tables are independent, each with its own
        // exactly-once record.
        let fresh = layers.bronze.fresh(changes);
        let bronze_write = if fresh.is_empty() {
            None
        } else {
            let batch = bronze_batch(&fresh)?;
            let state = layers.bronze.next_state(&fresh, consumed);
            let detached = Layer::detached(&layers.bronze.path);
            let mut bronze = std::mem::replace(&mut layers.bronze, detached);
            let settings = settings.clone();
            Some(tokio::spawn(async move {
                let started = Instant::now();
                let result = bronze
                    .append(batch, Some(vec![INGEST_DATE.into()]), state, &settings)
                    .await;
                (bronze, result, started.elapsed())
            }))
        };
        let current = self.apply_segments(id, changes, consumed, &settings).await;
        if let Some(task) = bronze_write {
            let (bronze, result, took) = task
                .await
                .map_err(|e| LakeError::storage(&id.to_string(), e))?;
            self.tables.get_mut(id).expect("opened").bronze = bronze;
            self.metrics.bronze_time += took;
            result?;
            self.metrics.commits += 1;
        }
        current?;
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

    /// History and silver of `id`: one segment per schema version or truncate.
    async fn apply_segments(
        &mut self,
        id: &TableId,
        changes: &[LakeChange],
        consumed: &Offsets,
        settings: &LakeConfig,
    ) -> Result<(), LakeError> {
        let layers = self.tables.get_mut(id).expect("opened");
        let mut start = 0;
        while start < changes.len() {
            let schema = &changes[start].schema;
            let mut end = start;
            while end < changes.len()
                && Arc::ptr_eq(&changes[end].schema, schema) | (changes[end].schema == *schema)
                && (changes[end].op != Op::Truncate || end == start)
            {
                end += 1;
                if changes[end - 1].op == Op::Truncate {
                    break;
                }
            }
            let segment = &changes[start..end];
            let last = end == changes.len();
            let seg_consumed = if last {
                consumed.clone()
            } else {
                let mut m = Offsets::default();
                for c in segment {
                    if let Some(o) = c.offset {
                        m.advance(c.source_partition(), o + 1);
                    }
                }
                m
            };
            let n =
                apply_current(layers, segment, &seg_consumed, settings, &mut self.metrics).await?;
            self.metrics.commits += n;
            start = end;
        }
        Ok(())
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

/// How often a table is reloaded and its batch applied again before a concurrent writer is
/// taken for a fault (two sinks that keep racing on one table).
const CONCURRENT_COMMIT_ATTEMPTS: u32 = 20;

/// The wait before applying again: growing, with jitter, so racing sinks fall out of step.
fn backoff(attempt: u32) -> std::time::Duration {
    let jitter = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        % 50) as u64;
    std::time::Duration::from_millis(25 * u64::from(attempt.min(8)) + jitter)
}

/// Applies one segment (one schema version, or one truncate) to history and silver.
async fn apply_current(
    layers: &mut TableLayers,
    segment: &[LakeChange],
    consumed: &Offsets,
    settings: &LakeConfig,
    metrics: &mut LakeMetrics,
) -> Result<u64, LakeError> {
    let schema = Arc::clone(&segment[0].schema);
    let fresh_history = layers.history.fresh(segment);
    let fresh_silver = layers.silver.fresh(segment);
    if fresh_history.is_empty() && fresh_silver.is_empty() {
        return Ok(0);
    }
    let mut commits = 0;
    if segment[0].op == Op::Truncate {
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
    // A table with no key at all is a multiset of whole rows, keyed by row ids.
    let multiset = schema.primary_key.is_empty();
    let schema = if multiset {
        Arc::new(multiset::keyed_schema(&schema))
    } else {
        schema
    };
    let key = key_names(&schema);
    for layer in [&mut layers.history, &mut layers.silver] {
        follow_schema(
            layer,
            &schema,
            &key,
            settings.schema_changes_for(&schema.id.to_string()),
            settings.readers,
            &segment[0],
        )
        .await?;
        apply_column_defaults(layer, &schema, settings.readers).await?;
    }
    let identified;
    let (history_changes, silver_changes) = if multiset {
        // The changes of either table, in order, as changes of row ids.
        let in_history: HashSet<*const LakeChange> =
            fresh_history.iter().map(|c| *c as *const _).collect();
        let in_silver: HashSet<*const LakeChange> =
            fresh_silver.iter().map(|c| *c as *const _).collect();
        let union: Vec<&LakeChange> = segment
            .iter()
            .filter(|c| {
                in_history.contains(&(*c as *const _)) || in_silver.contains(&(*c as *const _))
            })
            .collect();
        identified =
            multiset::identify_rows(&layers.silver, &schema, &union, settings.readers).await?;
        let pick = |set: &HashSet<*const LakeChange>| -> Vec<&LakeChange> {
            identified
                .iter()
                .filter(|(i, _)| set.contains(&(union[*i] as *const _)))
                .map(|(_, c)| c)
                .collect()
        };
        (pick(&in_history), pick(&in_silver))
    } else {
        (fresh_history.clone(), fresh_silver.clone())
    };
    // The position already applied per key: silver's row, or for a key silver does not hold,
    // the end of its last closed version in history (a delete).
    let mut keys: Vec<&LakeChange> = Vec::new();
    let mut seen = HashMap::new();
    for c in history_changes.iter().chain(silver_changes.iter()) {
        if seen.insert(c.key_text(), ()).is_none() {
            keys.push(c);
        }
    }
    let started = Instant::now();
    let mut floors: HashMap<&str, &str> = HashMap::new();
    for c in history_changes.iter().chain(silver_changes.iter()) {
        let e = floors.entry(c.key_text()).or_insert(c.order.as_str());
        if c.order.as_str() < *e {
            *e = c.order.as_str();
        }
    }
    let (applied, locations) = applied_positions(layers, &schema, &keys, &floors).await?;
    let index: HashMap<&str, usize> = keys
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
    let after_truncate = |c: &LakeChange| truncated_at.as_ref().is_none_or(|t| c.order > *t);
    let guard = |c: &LakeChange| {
        after_truncate(c)
            && match applied.get(c.key_text()).and_then(|k| k.position.as_ref()) {
                Some(position) => c.order > *position,
                None => true,
            }
    };
    // Silver may be behind history for a key (a crash between their commits): see
    // [`KeyState::silver_applies`].
    let silver_guard = |c: &LakeChange| {
        after_truncate(c)
            && applied
                .get(c.key_text())
                .is_none_or(|k| k.silver_applies(&c.order))
    };
    if !fresh_history.is_empty() {
        let changes: Vec<&LakeChange> = history_changes
            .iter()
            .copied()
            .filter(|c| guard(c))
            .collect();
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
        let changes: Vec<&LakeChange> = silver_changes
            .iter()
            .copied()
            .filter(|c| silver_guard(c))
            .collect();
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
