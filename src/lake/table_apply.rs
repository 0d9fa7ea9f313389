//! One table's share of a batch, on parts it owns (so the tables of a batch are applied in
//! parallel): bronze in a task of its own, history and silver one segment per schema version or
//! TRUNCATE (so a schema change lands between the rows written before and after it), then
//! maintenance (a compaction that ended in the background is taken in before the next
//! batch). A commit another writer got in first makes the job read the tables on to their
//! newest version and apply again: what the other writer applied is then held, and skipped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use super::bronze::bronze_batch;
use super::change::LakeChange;
use super::config::LakeConfig;
use super::evolution::apply_column_defaults;
use super::guard::applied_positions;
use super::history::{truncate_history, write_history, HistoryKeys};
use super::layer::{key_names, Layer, TableLayers};
use super::layout::{bronze_path, history_path, silver_path, INGEST_DATE};
use super::maintenance::{self, maintain};
use super::metrics::LakeMetrics;
use super::multiset;
use super::retype::follow_schema;
use super::silver::{truncate_silver, write_silver, SilverKeys};
use super::storage::LakeStorage;
use super::typed_images::TypedImages;
use super::LakeError;
use crate::event::{Op, TableId};
use crate::transport::record::Offsets;

/// Opens bronze, history and silver of `id` (tables that do not exist yet included).
pub(super) async fn open_layers(
    storage: &LakeStorage,
    settings: &LakeConfig,
    id: &TableId,
) -> Result<TableLayers, LakeError> {
    let layers = TableLayers {
        bronze: Layer::open(storage, bronze_path(id)).await?,
        history: Layer::open(storage, history_path(id)).await?,
        silver: Layer::open(storage, silver_path(id)).await?,
    };
    for layer in [&layers.history, &layers.silver] {
        layer.warn_beyond(settings.readers);
    }
    Ok(layers)
}

/// One table's tables while a batch is applied to them, and what that did.
pub(super) struct TableJob {
    pub(super) id: TableId,
    pub(super) layers: TableLayers,
    pub(super) metrics: LakeMetrics,
    /// Changes this job's bronze commits took in, not yet counted in `metrics`.
    taken_in: u64,
}

impl TableJob {
    pub(super) fn new(id: TableId, layers: TableLayers) -> TableJob {
        TableJob {
            id,
            layers,
            metrics: LakeMetrics::default(),
            taken_in: 0,
        }
    }

    /// [`Self::apply`], applied again on freshly loaded tables when another sink committed to
    /// one of them first: what that sink applied is then held, and skipped.
    ///
    /// A batch that keeps losing (its apply takes longer than the other sink takes between
    /// commits, as when a restarted member catches up beside a live one) is applied in shrinking
    /// leading portions: each portion commits in less time, and what it commits is held and
    /// skipped by the next try. A portion that commits doubles the next; the count of refusals
    /// starts over whenever something commits (a portion, or one of the three tables).
    pub(super) async fn apply_fenced(
        &mut self,
        storage: &LakeStorage,
        settings: &LakeConfig,
        changes: &Arc<Vec<LakeChange>>,
        consumed: &Offsets,
    ) -> Result<(), LakeError> {
        let mut attempt = 0;
        let mut portion = changes.len();
        loop {
            let whole = portion >= changes.len();
            let commits_before = self.layer_commits();
            let applied = if whole {
                self.apply(settings, changes, consumed).await
            } else {
                let (part, part_consumed) = leading_portion(changes, portion);
                self.apply(settings, &part, &part_consumed).await
            };
            match applied {
                Ok(()) if whole => break,
                Ok(()) => {
                    self.metrics.portions_committed += 1;
                    attempt = 0;
                    portion = portion.saturating_mul(2);
                }
                Err(e) if e.is_concurrent_commit() && attempt < CONCURRENT_COMMIT_ATTEMPTS => {
                    if self.layer_commits() > commits_before {
                        // One of the tables took its share before another was refused: that
                        // much is held now.
                        attempt = 0;
                    }
                    attempt += 1;
                    self.metrics.concurrent_commits += 1;
                    if attempt >= PORTIONS_AFTER_REFUSALS {
                        portion = (portion.min(changes.len()) / 2).max(1);
                    }
                    tracing::info!(table = %self.id, attempt, changes = portion.min(changes.len()), "another writer committed to the table first: reloading it and applying the batch again");
                    tokio::time::sleep(backoff(attempt)).await;
                    for layer in self.layers.each_mut() {
                        layer.reload(storage).await?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.count_applied(changes);
        Ok(())
    }

    /// Commits this job's tables took so far (a refusal does not undo the ones before it).
    fn layer_commits(&mut self) -> u64 {
        self.layers.each_mut().iter().map(|l| l.commits).sum()
    }

    /// The batch's changes in the table's metrics, once whichever way they went in: those this
    /// job's bronze commits took in. Bronze holds every change once, so changes the lake already
    /// held (read again after a rebalance, or applied by another sink first) are not counted.
    fn count_applied(&mut self, changes: &[LakeChange]) {
        let taken_in = std::mem::take(&mut self.taken_in);
        self.metrics.changes_applied += taken_in;
        let newest = changes.iter().map(|c| c.ts_ms).max();
        if let Some(newest) = newest {
            self.metrics.newest_source_ts_ms = self.metrics.newest_source_ts_ms.max(newest);
        }
        let entry = self.metrics.tables.entry(self.id.to_string()).or_default();
        entry.0 += taken_in;
        if let Some(newest) = newest {
            entry.1 = entry.1.max(newest);
        }
    }

    async fn apply(
        &mut self,
        settings: &LakeConfig,
        changes: &Arc<Vec<LakeChange>>,
        consumed: &Offsets,
    ) -> Result<(), LakeError> {
        let id = self.id.clone();
        for layer in self.layers.each_mut() {
            maintenance::catch_up(layer, false, &mut self.metrics).await?;
        }
        let layers = &mut self.layers;
        // Bronze (every change not already there) makes its rows and commits in a task of its
        // own while history and silver are worked out here: the tables are independent, each
        // with its own exactly-once record.
        let started = Instant::now();
        let fresh = layers.bronze.fresh_at(changes);
        let fresh_count = fresh.len();
        let bronze_write = if fresh.is_empty() {
            None
        } else {
            let fresh_changes: Vec<&LakeChange> = fresh.iter().map(|&i| &changes[i]).collect();
            let state = layers.bronze.next_state(&fresh_changes, consumed);
            drop(fresh_changes);
            let detached = Layer::detached(&layers.bronze.path);
            let mut bronze = std::mem::replace(&mut layers.bronze, detached);
            let settings = settings.clone();
            let changes = Arc::clone(changes);
            Some(tokio::spawn(async move {
                let started = Instant::now();
                let batch = {
                    let rows: Vec<&LakeChange> = fresh.iter().map(|&i| &changes[i]).collect();
                    bronze_batch(&rows)
                };
                drop(changes);
                let result = match batch {
                    Ok(batch) => {
                        bronze
                            .append(batch, Some(vec![INGEST_DATE.into()]), state, &settings)
                            .await
                    }
                    Err(e) => Err(e),
                };
                (bronze, result, started.elapsed())
            }))
        };
        self.metrics.bronze_rows_time += started.elapsed();
        let current = self.apply_segments(changes, consumed, settings).await;
        if let Some(task) = bronze_write {
            let waiting = Instant::now();
            let joined = task.await;
            self.metrics.bronze_wait_time += waiting.elapsed();
            let (bronze, result, took) =
                joined.map_err(|e| LakeError::storage(&id.to_string(), e))?;
            self.layers.bronze = bronze;
            self.metrics.bronze_time += took;
            result?;
            self.metrics.commits += 1;
            self.taken_in += fresh_count as u64;
        }
        current?;
        let maintenance_started = Instant::now();
        for layer in self.layers.each_mut() {
            self.metrics.append_rebases += std::mem::take(&mut layer.rebases);
            maintain(layer, settings, &mut self.metrics).await?;
        }
        self.metrics.maintenance_time += maintenance_started.elapsed();
        Ok(())
    }

    /// History and silver: one segment per schema version or truncate.
    async fn apply_segments(
        &mut self,
        changes: &[LakeChange],
        consumed: &Offsets,
        settings: &LakeConfig,
    ) -> Result<(), LakeError> {
        let layers = &mut self.layers;
        let mut start = 0;
        while start < changes.len() {
            let schema = &changes[start].schema;
            let mut end = start;
            while end < changes.len()
                && (Arc::ptr_eq(&changes[end].schema, schema) || changes[end].schema == *schema)
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

/// How often a table is reloaded and its batch applied again before a concurrent writer is
/// taken for a fault (two sinks that keep racing on one table).
pub(super) const CONCURRENT_COMMIT_ATTEMPTS: u32 = 20;

/// Refusals in a row after which a batch is applied in shrinking leading portions.
const PORTIONS_AFTER_REFUSALS: u32 = 2;

/// The first `len` changes and the offsets they take each partition to. Changes keep each
/// partition's order, so this is a leading run of every partition's changes: what it commits
/// is a prefix the rest of the batch follows.
fn leading_portion(changes: &[LakeChange], len: usize) -> (Arc<Vec<LakeChange>>, Offsets) {
    let part = changes[..len.min(changes.len())].to_vec();
    let mut consumed = Offsets::default();
    for c in &part {
        if let Some(o) = c.offset {
            consumed.advance(c.source_partition(), o + 1);
        }
    }
    (Arc::new(part), consumed)
}

/// The wait before applying again: growing, with jitter, so racing sinks fall out of step.
pub(super) fn backoff(attempt: u32) -> std::time::Duration {
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
        // The changes of either table, in order, as changes of row ids (a change is known by
        // its address in `segment`).
        let address = |c: &LakeChange| c as *const LakeChange as usize;
        let in_history: HashSet<usize> = fresh_history.iter().map(|c| address(c)).collect();
        let in_silver: HashSet<usize> = fresh_silver.iter().map(|c| address(c)).collect();
        let union: Vec<&LakeChange> = segment
            .iter()
            .filter(|c| in_history.contains(&address(c)) || in_silver.contains(&address(c)))
            .collect();
        identified =
            multiset::identify_rows(&layers.silver, &schema, &union, settings.readers).await?;
        let pick = |set: &HashSet<usize>| -> Vec<&LakeChange> {
            identified
                .iter()
                .filter(|(i, _)| set.contains(&address(union[*i])))
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
    let history_rows: Vec<&LakeChange> = if fresh_history.is_empty() {
        Vec::new()
    } else {
        history_changes
            .iter()
            .copied()
            .filter(|c| guard(c))
            .collect()
    };
    let silver_rows: Vec<&LakeChange> = if fresh_silver.is_empty() {
        Vec::new()
    } else {
        silver_changes
            .iter()
            .copied()
            .filter(|c| silver_guard(c))
            .collect()
    };
    // Every image either table writes, typed once: history's new versions, then silver's rows
    // (mostly the same images).
    let started = Instant::now();
    let new_versions = history_rows
        .iter()
        .filter(|c| c.op != Op::Delete)
        .filter_map(|c| c.after.as_ref());
    let current_rows = silver_rows
        .iter()
        .filter_map(|c| c.after.as_ref().or(c.before.as_ref()));
    let typed_in = if fresh_history.is_empty() {
        &layers.silver
    } else {
        &layers.history
    };
    let typed = TypedImages::build(
        &schema,
        new_versions.chain(current_rows),
        typed_in.arrow_schema().as_ref(),
        settings.readers,
    )?;
    metrics.typing_time += started.elapsed();
    if !fresh_history.is_empty() {
        let changes = history_rows;
        let state = layers
            .history
            .next_state(&fresh_history, consumed)
            .with_key(&key);
        let started = Instant::now();
        write_history(
            &mut layers.history,
            &schema,
            &changes,
            &typed,
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
        let changes = silver_rows;
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
            &typed,
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
