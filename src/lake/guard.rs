//! The position guard: what silver and history already hold of a batch's keys. Per key, the
//! order key of the last change applied (silver's `_cdc_position`, or for a key silver does not
//! hold the end of its last closed version in history, i.e. its delete), whether silver holds
//! it, and whether history has an open version; plus where silver keeps the keys, which the
//! silver step deletes by. A change at or before a key's applied position is not applied again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::Schema;

use super::change::LakeChange;
use super::config::Readers;
use super::keys::{self, Located};
use super::layer::df_err;
use super::layer::TableLayers;
use super::layout::{CDC_POSITION, END_AT, END_POSITION, START_POSITION};
use super::types::typed_columns_from;
use super::LakeError;
use crate::envelope::row::RowImage;
use crate::event::TableSchema;

/// key text → (applied order, true when the key is live in silver).
pub(super) type Applied = HashMap<String, KeyState>;

/// What the lake already holds of one key.
#[derive(Debug, Clone, Default)]
pub(super) struct KeyState {
    /// The order of the last change applied to it (silver's row, else its last delete).
    pub(super) position: Option<String>,
    /// Silver holds the key.
    pub(super) live: bool,
    /// History has an open version of it (silver may not yet, after a crash between the two).
    pub(super) open_in_history: bool,
    /// For a key silver does not hold but history has open: where that version starts (the
    /// change silver still has to apply). None when it starts before every change of the
    /// batch for the key.
    pub(super) open_since: Option<String>,
}

impl KeyState {
    /// Whether silver applies `order`: a change after the last one it applied to the key; for
    /// a key history holds open and silver lacks (a crash between their commits), from the
    /// change that opened that version on (the end of the version before it is the same
    /// order, and must not hide it).
    pub(super) fn silver_applies(&self, order: &str) -> bool {
        if !self.live && self.open_in_history {
            return self.open_since.as_deref().is_none_or(|s| order >= s);
        }
        self.position.as_deref().is_none_or(|p| order > p)
    }
}

/// Where silver and history keep a batch's keys (indexed as the batch's distinct keys).
#[derive(Default)]
pub(super) struct KeyLocations {
    pub(super) silver: Located,
    /// The batch's distinct keys as typed key columns (what the locations are indexed by).
    pub(super) keys: Option<RecordBatch>,
}

/// What silver and history hold of the keys of `changes`: the position applied per key, and
/// where each table keeps them.
pub(super) async fn applied_positions(
    layers: &TableLayers,
    schema: &TableSchema,
    changes: &[&LakeChange],
    floors: &HashMap<&str, &str>,
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
    let rows: Vec<Option<&RowImage>> = changes
        .iter()
        .map(|c| c.after.as_ref().or(c.before.as_ref()))
        .collect();
    // In the types the tables hold (a DATETIME key is either timestamp, by the profile the
    // table was created under).
    let held = layers
        .silver
        .arrow_schema()
        .or_else(|| layers.history.arrow_schema());
    let (fields, arrays) = typed_columns_from(
        &key_schema,
        &schema.primary_key,
        &rows,
        held.as_ref(),
        Readers::default(),
    )?;
    let keys = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| df_err(&schema.id, e))?;
    // The earliest change per key: a row whose position is below it needs no exact value.
    let floor = |i: usize| floors.get(changes[i].key_text()).map(|f| f.to_string());
    let mut silver_positions = HashMap::new();
    if let Some(silver) = layers.silver.existing() {
        let started = Instant::now();
        locations.silver = keys::locate(
            silver,
            &layers.silver.path,
            &keys,
            None,
            Some(&layers.silver.key_cache),
        )
        .await?;
        silver_positions = locations
            .silver
            .max_values(silver, &layers.silver.path, CDC_POSITION, floor)
            .await?;
        let l = &locations.silver;
        tracing::debug!(table = %schema.id, keys = changes.len(), files = l.files_scanned, rows = l.rows_scanned, elapsed_ms = started.elapsed().as_millis() as u64, "silver keys located");
    }
    // A key silver does not hold was last deleted: the end of its last closed version. (The
    // history step looks up the open versions of the other keys itself.)
    let mut deleted_positions = HashMap::new();
    let mut open_starts = HashMap::new();
    let mut history_of_others = Located::default();
    if let Some(history) = layers.history.existing() {
        let started = Instant::now();
        let others: Vec<usize> = (0..changes.len())
            .filter(|&i| !locations.silver.is_live(i))
            .collect();
        // An open version has no end.
        history_of_others =
            keys::locate_subset(history, &layers.history.path, &keys, &others, Some(END_AT))
                .await?;
        deleted_positions = history_of_others
            .max_values(history, &layers.history.path, END_POSITION, floor)
            .await?;
        open_starts = history_of_others
            .max_values(history, &layers.history.path, START_POSITION, floor)
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
        let open_since = (!live && open_in_history)
            .then(|| open_starts.remove(&i))
            .flatten();
        if live || open_in_history || position.is_some() {
            applied.insert(
                c.key_text().to_string(),
                KeyState {
                    position,
                    live,
                    open_in_history,
                    open_since,
                },
            );
        }
    }
    locations.keys = Some(keys);
    Ok((applied, locations))
}
