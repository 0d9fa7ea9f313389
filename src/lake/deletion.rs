//! Silver without copy-on-write: the live row of a key is found by reading only the key columns
//! of the files whose key statistics can hold it, and deleted with a deletion vector (Delta's
//! `deletionVectors` table feature) on its file. An update then costs the batch's new rows plus
//! one small bitmap per touched file, where a MERGE rewrites every file it touches.
//!
//! Deletion vectors are written in the Delta protocol's format (the kernel's writer: a
//! `RoaringTreemap` per file, all of one commit in one `deletion_vector_<uuid>.bin` at the
//! table root) and read back here, so a row deleted earlier is never matched again.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use buoyant_kernel::actions::deletion_vector_writer::{
    KernelDeletionVector, StreamingDeletionVectorWriter,
};
use deltalake::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Int64Type, UInt64Type};
use deltalake::arrow::row::{RowConverter, SortField};
use deltalake::kernel::{Action, Add, DeletionVectorDescriptor, StorageType};
use deltalake::logstore::object_store::{path::Path, ObjectStore, ObjectStoreExt, PutPayload};
use deltalake::logstore::parquet_reader::ParquetObjectReader;
use deltalake::parquet::arrow::arrow_reader::{ArrowReaderOptions, RowSelection};
use deltalake::parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use deltalake::parquet::file::page_index::column_index::ColumnIndexMetaData;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::DeltaTable;
use futures_util::TryStreamExt;
use roaring::RoaringTreemap;

use super::LakeError;

/// Rows per parquet data page in silver and history files. Small pages, with the page
/// index every file carries, let a key lookup decode only the pages whose key range can hold
/// a wanted key: a thousand scattered keys then read about a thousand pages, not the table.
pub const KEYED_PAGE_ROWS: usize = 1024;

/// Parquet settings for files of keyed tables (silver and history).
pub fn keyed_writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_data_page_row_count_limit(KEYED_PAGE_ROWS)
        .build()
}

/// Rows read per Arrow batch while scanning key columns.
const SCAN_BATCH_ROWS: usize = 64 * 1024;

/// One data file that holds some of the wanted keys.
struct DataFile {
    add: Add,
    /// Its Delta statistics (`minValues`, `maxValues`, ...).
    stats: serde_json::Value,
    /// Rows its current deletion vector already removes.
    deleted: RoaringTreemap,
    num_records: u64,
}

/// One live row holding a wanted key.
struct Match {
    file: usize,
    row: u64,
    /// Its value of the probed column, when one was asked for.
    value: Option<String>,
}

/// Where a batch's keys live in a table.
#[derive(Default)]
pub struct Located {
    files: Vec<DataFile>,
    /// Per wanted key (its index in the keys batch): its live rows.
    rows: HashMap<usize, Vec<Match>>,
    /// Files whose key statistics could not rule them out, and rows of key columns read.
    pub files_scanned: usize,
    pub rows_scanned: u64,
}

impl Located {
    pub fn is_live(&self, key: usize) -> bool {
        self.rows.contains_key(&key)
    }

    /// Whether one of the key's live rows has the probed column null (history, probing
    /// `__end_at`: an open version).
    pub fn has_null(&self, key: usize) -> bool {
        self.rows
            .get(&key)
            .is_some_and(|rows| rows.iter().any(|m| m.value.is_none()))
    }

    /// Keeps only the rows whose probed column is null (history: the open versions).
    pub fn retain_null(&mut self) {
        self.rows.retain(|_, rows| {
            rows.retain(|m| m.value.is_none());
            !rows.is_empty()
        });
    }

    /// Renumbers the keys: key `i` becomes `map[i]` (a lookup of a subset of a batch's keys).
    pub fn remap(&mut self, map: &[usize]) {
        self.rows = std::mem::take(&mut self.rows)
            .into_iter()
            .map(|(k, rows)| (map[k], rows))
            .collect();
    }

    /// Per key, the largest value of `column` (text that sorts like the column, e.g. a
    /// position) among its live rows, for the keys `floor` gives a floor. A file whose
    /// statistics put the column's maximum below the key's floor is not read: its rows
    /// cannot reach the floor, which is all a caller comparing against it needs.
    pub async fn max_values(
        &self,
        table: &DeltaTable,
        name: &str,
        column: &str,
        floor: impl Fn(usize) -> Option<String>,
    ) -> Result<HashMap<usize, String>, LakeError> {
        let mut per_file: HashMap<usize, Vec<(u64, usize)>> = HashMap::new();
        for (&k, rows) in &self.rows {
            let Some(floor) = floor(k) else { continue };
            for m in rows {
                let max = self.files[m.file].stats["maxValues"][column].as_str();
                if max.is_some_and(|max| max < floor.as_str()) {
                    continue;
                }
                per_file.entry(m.file).or_default().push((m.row, k));
            }
        }
        let mut out: HashMap<usize, String> = HashMap::new();
        for (batch, keys) in read_files(table, name, &self.files, per_file, Some(column)).await? {
            for (k, value) in keys.into_iter().zip(text_values(&batch, column)) {
                if let Some(v) = value {
                    let e = out.entry(k).or_default();
                    if v > *e {
                        *e = v;
                    }
                }
            }
        }
        Ok(out)
    }
}

fn storage_err(table: &str, reason: impl std::fmt::Display) -> LakeError {
    LakeError::Storage {
        table: table.to_string(),
        reason: reason.to_string(),
    }
}

/// The integer value of a stats entry or a key, for pruning by min/max.
fn stat_int(v: &serde_json::Value) -> Option<i128> {
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
}

fn int_values(array: &ArrayRef) -> Option<Vec<i128>> {
    let wide = deltalake::arrow::compute::cast(array, &DataType::Int64).ok();
    let values: Vec<i128> = match array.data_type() {
        DataType::UInt64 => array
            .as_primitive::<UInt64Type>()
            .iter()
            .flatten()
            .map(i128::from)
            .collect(),
        t if t.is_integer() => wide?
            .as_primitive::<Int64Type>()
            .iter()
            .flatten()
            .map(i128::from)
            .collect(),
        _ => return None,
    };
    Some(values)
}

/// The values of `column` in `batch` as text (all None when it lacks the column).
fn text_values(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    match batch.column_by_name(column) {
        Some(c) => text_of(c),
        None => vec![None; batch.num_rows()],
    }
}

/// An array's values as text (None for null).
fn text_of(array: &ArrayRef) -> Vec<Option<String>> {
    let Ok(text) = deltalake::arrow::compute::cast(array, &DataType::Utf8) else {
        return vec![None; array.len()];
    };
    let text = text.as_string::<i32>();
    (0..text.len())
        .map(|i| text.is_valid(i).then(|| text.value(i).to_string()))
        .collect()
}

/// Rows of integer keys the [`KeyCache`] of one table keeps at most (8 bytes each in a file
/// sorted by key, as binlake writes them; 12 in any other).
pub const KEY_CACHE_ROWS: u64 = 16_000_000;

/// The integer key column of a table's files, sorted, kept between batches. Data files never
/// change, so a file read once is then searched in memory (a binary search per wanted key)
/// instead of read again: a lookup costs about the same at 1M and at 10M rows. Tables with a
/// single integer key qualify; files that leave the table leave the cache.
#[derive(Default)]
pub struct KeyCache {
    files: std::sync::Mutex<HashMap<String, Arc<FileKeys>>>,
}

/// One file's keys in ascending order, and the row of each (empty: the file is in key order).
struct FileKeys {
    keys: Vec<i64>,
    rows: Vec<u32>,
}

impl FileKeys {
    fn new(keys: Vec<i64>) -> FileKeys {
        if keys.windows(2).all(|w| w[0] <= w[1]) {
            return FileKeys {
                keys,
                rows: Vec::new(),
            };
        }
        let mut rows: Vec<u32> = (0..keys.len() as u32).collect();
        rows.sort_unstable_by_key(|&r| keys[r as usize]);
        FileKeys {
            keys: rows.iter().map(|&r| keys[r as usize]).collect(),
            rows,
        }
    }

    /// The rows holding `value`.
    fn rows_of(&self, value: i64) -> impl Iterator<Item = u64> + '_ {
        let from = self.keys.partition_point(|v| *v < value);
        let to = self.keys.partition_point(|v| *v <= value);
        (from..to).map(|p| self.rows.get(p).map_or(p as u64, |&r| u64::from(r)))
    }
}

impl KeyCache {
    fn get(&self, path: &str) -> Option<Arc<FileKeys>> {
        self.files.lock().expect("key cache").get(path).cloned()
    }

    fn insert(&self, path: String, keys: FileKeys) {
        let mut files = self.files.lock().expect("key cache");
        let held: u64 = files.values().map(|k| k.keys.len() as u64).sum();
        if held + keys.keys.len() as u64 <= KEY_CACHE_ROWS {
            files.insert(path, Arc::new(keys));
        }
    }

    /// Forgets the files not in `live`.
    fn retain(&self, live: &std::collections::HashSet<&str>) {
        self.files
            .lock()
            .expect("key cache")
            .retain(|path, _| live.contains(path.as_str()));
    }
}

/// What every file scan of one lookup shares.
struct ScanContext {
    table: String,
    store: Arc<dyn ObjectStore>,
    key_fields: Vec<deltalake::arrow::datatypes::FieldRef>,
    probe: Probe,
    /// The first key column's values, sorted, when it is an integer.
    sorted_first: Option<Vec<i128>>,
    /// Prune pages too (the first key column is a signed integer).
    page_pruning: bool,
    probe_column: Option<String>,
    /// With a single integer key and no probed column: the table's key cache.
    cache: Option<CachedLookup>,
}

/// A lookup through the key cache.
struct CachedLookup {
    cache: Arc<KeyCache>,
    /// The wanted keys, sorted, with their index.
    wanted: Vec<(i64, usize)>,
}

/// One candidate file, as the log describes it.
struct Candidate {
    add: Add,
    stats: serde_json::Value,
}

/// What one file scan found: its live rows holding wanted keys (row, key, probed value).
struct FileMatches {
    file: DataFile,
    matches: Vec<(u64, usize, Option<String>)>,
    rows_scanned: u64,
}

/// [`locate`] for the keys at `subset` of `keys`, numbered as in `keys`.
pub async fn locate_subset(
    table: &DeltaTable,
    name: &str,
    keys: &RecordBatch,
    subset: &[usize],
    probe_column: Option<&str>,
) -> Result<Located, LakeError> {
    if subset.is_empty() {
        return Ok(Located::default());
    }
    let indices =
        deltalake::arrow::array::UInt32Array::from_iter_values(subset.iter().map(|&i| i as u32));
    let picked = deltalake::arrow::compute::take_record_batch(keys, &indices)
        .map_err(|e| storage_err(name, e))?;
    let mut located = locate(table, name, &picked, probe_column, None).await?;
    located.remap(subset);
    Ok(located)
}

/// Finds the live rows of `keys` (a batch of the key columns, named as in the table), and
/// with `probe_column` the value of that column in each. Files are scanned in parallel, one
/// per core.
pub async fn locate(
    table: &DeltaTable,
    name: &str,
    keys: &RecordBatch,
    probe_column: Option<&str>,
    cache: Option<&Arc<KeyCache>>,
) -> Result<Located, LakeError> {
    let mut located = Located::default();
    let snapshot = table.snapshot().map_err(|e| storage_err(name, e))?;
    let key_names: Vec<String> = keys
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    // Files are pruned by the first key column's min/max when it is an integer, and with a
    // signed integer so are the pages inside them (the parquet page index).
    let mut sorted_first = keys
        .num_columns()
        .gt(&0)
        .then(|| int_values(keys.column(0)))
        .flatten();
    if let Some(v) = sorted_first.as_mut() {
        v.sort_unstable();
    }
    let page_pruning = keys.num_columns() > 0
        && matches!(
            keys.column(0).data_type(),
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
        );
    let mut candidates = Vec::new();
    let mut live_paths: Vec<String> = Vec::new();
    for view in snapshot.log_data().iter() {
        if cache.is_some() {
            live_paths.push(view.path().to_string());
        }
        let stats: serde_json::Value = view
            .stats()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        if let Some(sorted) = &sorted_first {
            let min = stats["minValues"].get(&key_names[0]).and_then(stat_int);
            let max = stats["maxValues"].get(&key_names[0]).and_then(stat_int);
            if let (Some(min), Some(max)) = (min, max) {
                if !holds_any(sorted, min, max) {
                    continue;
                }
            }
        }
        #[allow(deprecated)]
        let add = view.add_action();
        candidates.push(Candidate { add, stats });
    }
    located.files_scanned = candidates.len();
    let probe = Probe::new(keys).map_err(|e| storage_err(name, e))?;
    let cache = match (&probe, cache) {
        (Probe::Int(map), Some(cache)) if probe_column.is_none() => {
            cache.retain(&live_paths.iter().map(String::as_str).collect());
            let mut sorted: Vec<(i64, usize)> = map.iter().map(|(v, k)| (*v, *k)).collect();
            sorted.sort_unstable();
            Some(CachedLookup {
                cache: Arc::clone(cache),
                wanted: sorted,
            })
        }
        _ => None,
    };
    let context = Arc::new(ScanContext {
        table: name.to_string(),
        store: table.object_store(),
        key_fields: keys.schema().fields().iter().cloned().collect(),
        probe,
        sorted_first,
        page_pruning,
        probe_column: probe_column.map(str::to_string),
        cache,
    });
    let mut results: Vec<FileMatches> = on_every_core(name, candidates, |candidate| {
        scan_file(Arc::clone(&context), candidate)
    })
    .await?
    .into_iter()
    .flatten()
    .collect();
    // Files in path order, so that a lookup does not depend on which scan finished first.
    results.sort_by(|a, b| a.file.add.path.cmp(&b.file.add.path));
    for found in results {
        located.rows_scanned += found.rows_scanned;
        if found.matches.is_empty() {
            continue;
        }
        let file = located.files.len();
        located.files.push(found.file);
        for (row, k, value) in found.matches {
            located
                .rows
                .entry(k)
                .or_default()
                .push(Match { file, row, value });
        }
    }
    Ok(located)
}

/// Scans one file's key columns for the wanted keys.
async fn scan_file(
    context: Arc<ScanContext>,
    candidate: Candidate,
) -> Result<Option<FileMatches>, LakeError> {
    let add = candidate.add;
    let store = &context.store;
    let path = Path::from(add.path.as_str());
    let file_err = |e: &dyn std::fmt::Display| storage_err(&context.table, format!("{path}: {e}"));
    let deleted = match &add.deletion_vector {
        Some(d) => read_deletion_vector(store.as_ref(), d)
            .await
            .map_err(|e| file_err(&e))?,
        None => RoaringTreemap::new(),
    };
    if let Some(CachedLookup { cache, wanted }) = &context.cache {
        if let Some(file_keys) = cache.get(&add.path) {
            let mut matches = Vec::new();
            let (Some(&first), Some(&last)) = (file_keys.keys.first(), file_keys.keys.last())
            else {
                return Ok(None);
            };
            let lo = wanted.partition_point(|w| w.0 < first);
            let hi = wanted.partition_point(|w| w.0 <= last);
            for &(value, k) in &wanted[lo..hi] {
                for row in file_keys.rows_of(value) {
                    if !deleted.contains(row) {
                        matches.push((row, k, None));
                    }
                }
            }
            matches.sort_unstable();
            let num_records = file_keys.keys.len() as u64;
            return Ok(Some(FileMatches {
                file: DataFile {
                    add,
                    stats: candidate.stats,
                    deleted,
                    num_records,
                },
                matches,
                rows_scanned: 0,
            }));
        }
    }
    let reader =
        ParquetObjectReader::new(Arc::clone(store), path.clone()).with_file_size(add.size as u64);
    let options = ArrowReaderOptions::new()
        .with_page_index_policy(PageIndexPolicy::from(context.page_pruning));
    let builder = ParquetRecordBatchStreamBuilder::new_with_options(reader, options)
        .await
        .map_err(|e| file_err(&e))?;
    let metadata = Arc::clone(builder.metadata());
    let num_records = metadata.file_metadata().num_rows() as u64;
    let first_key = context.key_fields[0].name().as_str();
    let leaf = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().parts() == [first_key]);
    let ranges = match (&context.sorted_first, leaf) {
        (Some(sorted), Some(leaf)) if context.page_pruning => {
            pages_holding(&metadata, leaf, sorted)
        }
        _ => whole(num_records),
    };
    if ranges.is_empty() {
        return Ok(None);
    }
    // Skipping within a file costs about three times reading: pages are picked only when
    // they spare most of it.
    // A file the key cache will keep is read whole, once.
    let selected: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    let mut kept: Option<Vec<i64>> = context
        .cache
        .as_ref()
        .map(|_| Vec::with_capacity(num_records as usize));
    let ranges = if selected * 4 > num_records || kept.is_some() {
        whole(num_records)
    } else {
        ranges
    };
    let mask = ProjectionMask::columns(
        builder.parquet_schema(),
        context
            .key_fields
            .iter()
            .map(|f| f.name().as_str())
            .chain(context.probe_column.as_deref()),
    );
    let selection = RowSelection::from_consecutive_ranges(
        ranges.iter().map(|r| r.start as usize..r.end as usize),
        num_records as usize,
    );
    let mut stream = builder
        .with_projection(mask)
        .with_row_selection(selection)
        .with_batch_size(SCAN_BATCH_ROWS)
        .build()
        .map_err(|e| file_err(&e))?;
    let converter = context
        .probe
        .converter(&context.key_fields)
        .map_err(|e| file_err(&e))?;
    // The file row number of each row the selection yields, in order.
    let mut row_numbers = ranges.iter().flat_map(|r| r.clone());
    let mut matches: Vec<(u64, usize, Option<String>)> = Vec::new();
    let mut found: Vec<(u64, usize)> = Vec::new();
    let mut at: Vec<usize> = Vec::new();
    let mut rows_scanned = 0u64;
    while let Some(batch) = stream.try_next().await.map_err(|e| file_err(&e))? {
        let rows: Vec<u64> = row_numbers.by_ref().take(batch.num_rows()).collect();
        rows_scanned += batch.num_rows() as u64;
        let mut columns = Vec::with_capacity(context.key_fields.len());
        for field in &context.key_fields {
            let Some(column) = batch.column_by_name(field.name()) else {
                break;
            };
            let column = deltalake::arrow::compute::cast(column, field.data_type())
                .map_err(|e| file_err(&e))?;
            columns.push(column);
        }
        if columns.len() < context.key_fields.len() {
            kept = None;
            continue;
        }
        if let Some(keys) = kept.as_mut() {
            let ints = deltalake::arrow::compute::cast(&columns[0], &DataType::Int64)
                .map_err(|e| file_err(&e))?;
            let ints = ints.as_primitive::<Int64Type>();
            if ints.null_count() == 0 && num_records <= u64::from(u32::MAX) {
                keys.extend_from_slice(ints.values());
            } else {
                kept = None;
            }
        }
        found.clear();
        at.clear();
        context
            .probe
            .matches(
                converter.as_ref(),
                &columns,
                &rows,
                &deleted,
                &mut found,
                &mut at,
            )
            .map_err(|e| file_err(&e))?;
        if found.is_empty() {
            continue;
        }
        // The probed values of the matching rows only (text of a whole batch would cost
        // more than the scan).
        let values = match context
            .probe_column
            .as_deref()
            .and_then(|c| batch.column_by_name(c))
        {
            Some(column) => {
                let indices = deltalake::arrow::array::UInt32Array::from_iter_values(
                    at.iter().map(|&i| i as u32),
                );
                let picked = deltalake::arrow::compute::take(column, &indices, None)
                    .map_err(|e| file_err(&e))?;
                text_of(&picked)
            }
            None => vec![None; found.len()],
        };
        for (&(row, k), value) in found.iter().zip(values) {
            matches.push((row, k, value));
        }
    }
    matches.sort_unstable();
    if let (Some(CachedLookup { cache, .. }), Some(keys)) = (&context.cache, kept) {
        if keys.len() as u64 == num_records {
            cache.insert(add.path.clone(), FileKeys::new(keys));
        }
    }
    Ok(Some(FileMatches {
        file: DataFile {
            add,
            stats: candidate.stats,
            deleted,
            num_records,
        },
        matches,
        rows_scanned,
    }))
}

/// Every row of a file of `rows` rows, as a list of row ranges.
fn whole(rows: u64) -> Vec<Range<u64>> {
    std::iter::once(0..rows).collect()
}

/// Whether any of `sorted` lies in `min..=max`.
fn holds_any(sorted: &[i128], min: i128, max: i128) -> bool {
    let from = sorted.partition_point(|k| *k < min);
    from < sorted.len() && sorted[from] <= max
}

/// The row ranges of the pages whose min/max on column `leaf` can hold one of `sorted`
/// (every row when the file has no page index).
fn pages_holding(metadata: &ParquetMetaData, leaf: usize, sorted: &[i128]) -> Vec<Range<u64>> {
    let total = metadata.file_metadata().num_rows() as u64;
    let (Some(column_index), Some(offset_index)) =
        (metadata.column_index(), metadata.offset_index())
    else {
        return whole(total);
    };
    let mut out: Vec<Range<u64>> = Vec::new();
    let mut group_start = 0u64;
    for (group, group_meta) in metadata.row_groups().iter().enumerate() {
        let group_rows = group_meta.num_rows() as u64;
        let (Some(index), Some(offsets)) = (
            column_index.get(group).and_then(|c| c.get(leaf)),
            offset_index.get(group).and_then(|c| c.get(leaf)),
        ) else {
            out.push(group_start..group_start + group_rows);
            group_start += group_rows;
            continue;
        };
        let pages = offsets.page_locations();
        for (page, location) in pages.iter().enumerate() {
            let first = location.first_row_index as u64;
            let end = pages
                .get(page + 1)
                .map_or(group_rows, |next| next.first_row_index as u64);
            let bounds = match index {
                ColumnIndexMetaData::INT64(i) => i
                    .min_value(page)
                    .zip(i.max_value(page))
                    .map(|(a, b)| (i128::from(*a), i128::from(*b))),
                ColumnIndexMetaData::INT32(i) => i
                    .min_value(page)
                    .zip(i.max_value(page))
                    .map(|(a, b)| (i128::from(*a), i128::from(*b))),
                _ => None,
            };
            let hit = match bounds {
                Some((min, max)) => holds_any(sorted, min, max),
                None => !index.is_null_page(page),
            };
            if hit {
                let range = group_start + first..group_start + end;
                match out.last_mut() {
                    Some(last) if last.end == range.start => last.end = range.end,
                    _ => out.push(range),
                }
            }
        }
        group_start += group_rows;
    }
    out
}

/// The wanted keys, for probing the key columns of a file.
enum Probe {
    /// One integer key column (the common case, probed without row encoding).
    Int(foldhash::HashMap<i64, usize>),
    /// Any other key: the row encoding of its columns.
    Rows(foldhash::HashMap<Box<[u8]>, usize>),
}

impl Probe {
    fn new(keys: &RecordBatch) -> Result<Probe, deltalake::arrow::error::ArrowError> {
        use foldhash::HashMapExt;
        if keys.num_columns() == 1 && keys.column(0).data_type().is_integer() {
            if let Ok(ints) = deltalake::arrow::compute::cast(keys.column(0), &DataType::Int64) {
                if ints.null_count() == keys.column(0).null_count() {
                    let ints = ints.as_primitive::<Int64Type>();
                    let mut map = foldhash::HashMap::with_capacity(ints.len());
                    for (i, v) in ints.iter().enumerate() {
                        if let Some(v) = v {
                            map.insert(v, i);
                        }
                    }
                    return Ok(Probe::Int(map));
                }
            }
        }
        let fields: Vec<_> = keys.schema().fields().iter().cloned().collect();
        let converter = Probe::Rows(Default::default())
            .converter(&fields)?
            .expect("a row probe has a converter");
        let rows = converter.convert_columns(keys.columns())?;
        let mut map = foldhash::HashMap::with_capacity(rows.num_rows());
        for i in 0..rows.num_rows() {
            map.insert(Box::from(rows.row(i).data()), i);
        }
        Ok(Probe::Rows(map))
    }

    /// The row encoder a row probe needs for the key columns.
    fn converter(
        &self,
        fields: &[deltalake::arrow::datatypes::FieldRef],
    ) -> Result<Option<RowConverter>, deltalake::arrow::error::ArrowError> {
        match self {
            Probe::Int(_) => Ok(None),
            Probe::Rows(_) => RowConverter::new(
                fields
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )
            .map(Some),
        }
    }

    /// Appends (file row, wanted key) for every live row of `columns` holding a wanted key,
    /// and its index in `columns` to `at`; `rows` are the file row numbers of the columns' rows.
    fn matches(
        &self,
        converter: Option<&RowConverter>,
        columns: &[ArrayRef],
        rows: &[u64],
        deleted: &RoaringTreemap,
        out: &mut Vec<(u64, usize)>,
        at: &mut Vec<usize>,
    ) -> Result<(), deltalake::arrow::error::ArrowError> {
        match self {
            Probe::Int(map) => {
                let ints = deltalake::arrow::compute::cast(&columns[0], &DataType::Int64)?;
                let ints = ints.as_primitive::<Int64Type>();
                for (i, &row) in rows.iter().enumerate() {
                    if ints.is_valid(i) {
                        if let Some(&k) = map.get(&ints.value(i)) {
                            if !deleted.contains(row) {
                                out.push((row, k));
                                at.push(i);
                            }
                        }
                    }
                }
            }
            Probe::Rows(map) => {
                let encoded = converter
                    .expect("a row probe has a converter")
                    .convert_columns(columns)?;
                for (i, &row) in rows.iter().enumerate() {
                    if let Some(&k) = map.get(encoded.row(i).data()) {
                        if !deleted.contains(row) {
                            out.push((row, k));
                            at.push(i);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Rows `rows` (ascending, distinct) of one parquet file: `column`, or every column. Scattered
/// rows touch most pages anyway; then the file is read whole, which costs a third per row of
/// picking pages, and only the wanted rows are kept batch by batch.
async fn read_rows(
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    column: Option<String>,
    rows: Vec<u64>,
    num_records: u64,
) -> Result<RecordBatch, String> {
    let reader = ParquetObjectReader::new(store, path).with_file_size(size);
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let builder = ParquetRecordBatchStreamBuilder::new_with_options(reader, options)
        .await
        .map_err(|e| e.to_string())?;
    let mask = match &column {
        Some(c) => ProjectionMask::columns(builder.parquet_schema(), [c.as_str()]),
        None => ProjectionMask::all(),
    };
    let mut ranges: Vec<Range<u64>> = Vec::new();
    for &r in &rows {
        match ranges.last_mut() {
            Some(last) if last.end == r => last.end += 1,
            _ => ranges.push(r..r + 1),
        }
    }
    if rows.len() as u64 * KEYED_PAGE_ROWS as u64 * 4 > num_records {
        ranges = whole(num_records);
    }
    let selection = RowSelection::from_consecutive_ranges(
        ranges.iter().map(|r| r.start as usize..r.end as usize),
        num_records as usize,
    );
    let schema = Arc::clone(builder.schema());
    let mut stream = builder
        .with_projection(mask)
        .with_row_selection(selection)
        .with_batch_size(SCAN_BATCH_ROWS)
        .build()
        .map_err(|e| e.to_string())?;
    let mut row_numbers = ranges.iter().flat_map(|r| r.clone());
    let mut wanted = rows.iter().peekable();
    let mut picked = Vec::new();
    while let Some(batch) = stream.try_next().await.map_err(|e| e.to_string())? {
        let mut indices = Vec::new();
        for (i, row) in row_numbers.by_ref().take(batch.num_rows()).enumerate() {
            if wanted.next_if_eq(&&row).is_some() {
                indices.push(i as u32);
            }
        }
        if !indices.is_empty() {
            let indices = deltalake::arrow::array::UInt32Array::from(indices);
            picked.push(
                deltalake::arrow::compute::take_record_batch(&batch, &indices)
                    .map_err(|e| e.to_string())?,
            );
        }
    }
    match picked.first() {
        Some(first) => deltalake::arrow::compute::concat_batches(&first.schema(), &picked)
            .map_err(|e| e.to_string()),
        None => Ok(RecordBatch::new_empty(schema)),
    }
}

/// Reads the rows `per_file` names (file → (row, key) pairs), files in parallel; returns each
/// file's rows in row order with their keys.
async fn read_files(
    table: &DeltaTable,
    name: &str,
    files: &[DataFile],
    per_file: HashMap<usize, Vec<(u64, usize)>>,
    column: Option<&str>,
) -> Result<Vec<(RecordBatch, Vec<usize>)>, LakeError> {
    let store = table.object_store();
    let table_name = name.to_string();
    on_every_core(name, per_file, |(file, mut rows)| {
        rows.sort_unstable();
        let data = &files[file];
        let path = Path::from(data.add.path.as_str());
        let read = read_rows(
            Arc::clone(&store),
            path.clone(),
            data.add.size as u64,
            column.map(str::to_string),
            rows.iter().map(|r| r.0).collect(),
            data.num_records,
        );
        let table_name = table_name.clone();
        async move {
            let batch = read
                .await
                .map_err(|e| storage_err(&table_name, format!("{path}: {e}")))?;
            Ok((batch, rows.into_iter().map(|r| r.1).collect()))
        }
    })
    .await
}

/// Runs the task `work` makes of each item, as many at a time as there are cores, and gathers
/// their results (in the order they finish).
async fn on_every_core<I, F, T, R>(name: &str, items: I, work: F) -> Result<Vec<R>, LakeError>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> T,
    T: std::future::Future<Output = Result<R, LakeError>> + Send + 'static,
    R: Send + 'static,
{
    use futures_util::StreamExt;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut tasks = futures_util::stream::iter(items)
        .map(work)
        .map(tokio::spawn)
        .buffer_unordered(cores);
    let mut out = Vec::new();
    while let Some(done) = tasks.next().await {
        out.push(done.map_err(|e| storage_err(name, e))??);
    }
    Ok(out)
}

/// Every column of the live rows of `keys`, one batch per file (files written before a column
/// was added lack it), with the key index of each row.
pub async fn read_located(
    table: &DeltaTable,
    name: &str,
    located: &Located,
    keys: impl Iterator<Item = usize>,
) -> Result<Vec<(RecordBatch, Vec<usize>)>, LakeError> {
    let mut per_file: HashMap<usize, Vec<(u64, usize)>> = HashMap::new();
    for k in keys {
        for m in located.rows.get(&k).into_iter().flatten() {
            per_file.entry(m.file).or_default().push((m.row, k));
        }
    }
    read_files(table, name, &located.files, per_file, None).await
}

/// The rows a deletion vector removes (storage types `u`, `i` and `p` under the table root).
async fn read_deletion_vector(
    store: &dyn ObjectStore,
    d: &DeletionVectorDescriptor,
) -> Result<RoaringTreemap, String> {
    let bitmap = |bytes: &[u8]| -> Result<RoaringTreemap, String> {
        const MAGIC: u32 = 1681511377;
        let magic = bytes
            .get(..4)
            .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]))
            .ok_or("deletion vector shorter than its magic number")?;
        if magic != MAGIC {
            return Err(format!("deletion vector magic {magic} is not {MAGIC}"));
        }
        RoaringTreemap::deserialize_from(&bytes[4..]).map_err(|e| e.to_string())
    };
    let file = match d.storage_type {
        StorageType::Inline => {
            let bytes = z85::decode(&d.path_or_inline_dv).map_err(|e| e.to_string())?;
            return bitmap(&bytes);
        }
        StorageType::UuidRelativePath => {
            let s = &d.path_or_inline_dv;
            let split = s
                .len()
                .checked_sub(20)
                .ok_or_else(|| format!("deletion vector path {s} is shorter than a uuid"))?;
            let uuid = z85::decode(&s[split..]).map_err(|e| e.to_string())?;
            let uuid = uuid::Uuid::from_slice(&uuid).map_err(|e| e.to_string())?;
            let prefix = &s[..split];
            if prefix.is_empty() {
                format!("deletion_vector_{uuid}.bin")
            } else {
                format!("{prefix}/deletion_vector_{uuid}.bin")
            }
        }
        StorageType::AbsolutePath => {
            return Err(format!(
                "deletion vector at an absolute path ({}) is not supported",
                d.path_or_inline_dv
            ))
        }
    };
    let start = d.offset.unwrap_or(1) as u64;
    // Stored: size (4 bytes) | magic + bitmap (size bytes) | checksum (4 bytes).
    let end = start + 4 + d.size_in_bytes as u64;
    let bytes = store
        .get_range(&Path::from(file.as_str()), start..end)
        .await
        .map_err(|e| format!("{file}: {e}"))?;
    bitmap(&bytes[4..])
}

/// Deletes the live rows of `keys`: one deletion-vector file for all touched data files, and
/// for each a `remove` of the file as it was and an `add` of it with its new deletion vector
/// (a file left with no live row is only removed). Returns the actions to commit.
pub async fn delete_rows(
    table: &DeltaTable,
    name: &str,
    located: &Located,
    keys: impl Iterator<Item = usize>,
) -> Result<Vec<Action>, LakeError> {
    let mut per_file: HashMap<usize, RoaringTreemap> = HashMap::new();
    for k in keys {
        for m in located.rows.get(&k).into_iter().flatten() {
            per_file.entry(m.file).or_default().insert(m.row);
        }
    }
    if per_file.is_empty() {
        return Ok(Vec::new());
    }
    let mut files: Vec<(usize, RoaringTreemap)> = per_file.into_iter().collect();
    files.sort_by_key(|(f, _)| *f);
    let uuid = uuid::Uuid::new_v4();
    let mut buffer = Vec::new();
    let mut writer = StreamingDeletionVectorWriter::new(&mut buffer);
    let mut actions = Vec::new();
    let mut pending = Vec::new();
    for (file, rows) in files {
        let data = &located.files[file];
        let all = &data.deleted | &rows;
        actions.push(Action::Remove(remove_of(&data.add)));
        if all.len() >= data.num_records {
            continue;
        }
        let mut dv = KernelDeletionVector::new();
        dv.add_deleted_row_indexes(all.iter());
        let written = writer
            .write_deletion_vector(dv)
            .map_err(|e| storage_err(name, e))?;
        let mut add = data.add.clone();
        add.data_change = true;
        add.deletion_vector = Some(DeletionVectorDescriptor {
            storage_type: StorageType::UuidRelativePath,
            path_or_inline_dv: z85::encode(uuid.as_bytes()),
            offset: Some(written.offset),
            size_in_bytes: written.size_in_bytes,
            cardinality: written.cardinality,
        });
        pending.push(Action::Add(add));
    }
    writer.finalize().map_err(|e| storage_err(name, e))?;
    if !pending.is_empty() {
        let path = Path::from(format!("deletion_vector_{uuid}.bin"));
        table
            .object_store()
            .put(&path, PutPayload::from(buffer))
            .await
            .map_err(|e| storage_err(name, format!("{path}: {e}")))?;
    }
    actions.extend(pending);
    Ok(actions)
}

/// The `remove` of a file exactly as `add` holds it (deletion vector included).
fn remove_of(add: &Add) -> deltalake::kernel::Remove {
    deltalake::kernel::Remove {
        path: add.path.clone(),
        data_change: true,
        deletion_timestamp: Some(chrono::Utc::now().timestamp_millis()),
        extended_file_metadata: Some(true),
        partition_values: Some(add.partition_values.clone()),
        size: Some(add.size),
        tags: add.tags.clone(),
        deletion_vector: add.deletion_vector.clone(),
        base_row_id: add.base_row_id,
        default_row_commit_version: add.default_row_commit_version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::logstore::object_store::memory::InMemory;

    #[test]
    fn holds_any_finds_a_key_inside_the_bounds_only() {
        let sorted = [3, 10, 20];
        assert!(holds_any(&sorted, 10, 10));
        assert!(holds_any(&sorted, 4, 15));
        assert!(!holds_any(&sorted, 4, 9));
        assert!(!holds_any(&sorted, 21, 30));
        assert!(!holds_any(&[], 0, 100));
    }

    #[test]
    fn cached_keys_find_their_rows_in_any_file_order() {
        for keys in [vec![1i64, 3, 3, 7, 9], vec![9i64, 3, 1, 7, 3]] {
            let file = FileKeys::new(keys.clone());
            for value in [0i64, 1, 3, 7, 9, 10] {
                let mut found: Vec<u64> = file.rows_of(value).collect();
                found.sort_unstable();
                let expected: Vec<u64> = (0..keys.len() as u64)
                    .filter(|&r| keys[r as usize] == value)
                    .collect();
                assert_eq!(found, expected, "{keys:?} {value}");
            }
        }
    }

    #[tokio::test]
    async fn deletion_vectors_written_by_the_kernel_read_back_exactly() {
        let store = InMemory::new();
        let uuid = uuid::Uuid::new_v4();
        let mut buffer = Vec::new();
        let mut writer = StreamingDeletionVectorWriter::new(&mut buffer);
        let mut written = Vec::new();
        for rows in [vec![0u64, 5, 1 << 33], vec![7u64]] {
            let mut dv = KernelDeletionVector::new();
            dv.add_deleted_row_indexes(rows.iter().copied());
            written.push((rows, writer.write_deletion_vector(dv).unwrap()));
        }
        writer.finalize().unwrap();
        let path = Path::from(format!("deletion_vector_{uuid}.bin"));
        store.put(&path, PutPayload::from(buffer)).await.unwrap();
        for (rows, result) in written {
            let descriptor = DeletionVectorDescriptor {
                storage_type: StorageType::UuidRelativePath,
                path_or_inline_dv: z85::encode(uuid.as_bytes()),
                offset: Some(result.offset),
                size_in_bytes: result.size_in_bytes,
                cardinality: result.cardinality,
            };
            let read = read_deletion_vector(&store, &descriptor).await.unwrap();
            assert_eq!(read.iter().collect::<Vec<_>>(), rows);
        }
        // Inline: the magic number and the bitmap, z85 in the log.
        let bitmap: RoaringTreemap = [2u64, 4].into_iter().collect();
        let mut bytes = 1681511377u32.to_le_bytes().to_vec();
        bitmap.serialize_into(&mut bytes).unwrap();
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        let inline = DeletionVectorDescriptor {
            storage_type: StorageType::Inline,
            path_or_inline_dv: z85::encode(&bytes),
            offset: None,
            size_in_bytes: bytes.len() as i32,
            cardinality: 2,
        };
        let read = read_deletion_vector(&store, &inline).await.unwrap();
        assert_eq!(read.iter().collect::<Vec<_>>(), [2, 4]);
    }
}
