//! Key location: finds the live rows of a batch's keys in a silver or history table by
//! reading only the key columns of the files whose Delta min/max statistics (and, for a signed
//! integer first key column, the parquet page index) can hold a wanted key, files scanned in
//! parallel. Rows already removed by a deletion vector are never matched. With a single integer
//! key the table's [`KeyCache`] answers for files read before.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Int64Type, UInt64Type};
use deltalake::arrow::row::{RowConverter, SortField};
use deltalake::kernel::Add;
use deltalake::logstore::object_store::{path::Path, ObjectStore};
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

use super::dv::{read_deletion_vector, FileDeletes};
use super::key_cache::{FileKeys, KeyCache};
use super::parallel::on_every_core;
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
pub(super) const SCAN_BATCH_ROWS: usize = 64 * 1024;

/// Bytes read from the end of a data file to find its footer: one request that usually holds
/// the footer's length, the footer and, for small files, the page index, where reading the
/// length first takes a request of its own (a paid call and a round trip per file, per batch,
/// on object storage).
pub(super) const FOOTER_READ_BYTES: usize = 64 * 1024;

/// One data file that holds some of the wanted keys.
pub(super) struct DataFile {
    pub(super) add: Add,
    /// Its Delta statistics (`minValues`, `maxValues`, ...).
    pub(super) stats: serde_json::Value,
    /// Rows its current deletion vector already removes.
    pub(super) deleted: RoaringTreemap,
    pub(super) num_records: u64,
}

/// One live row holding a wanted key.
pub(super) struct Match {
    pub(super) file: usize,
    pub(super) row: u64,
    /// Its value of the probed column, when one was asked for.
    pub(super) value: Option<String>,
}

/// Where a batch's keys live in a table.
#[derive(Default)]
pub struct Located {
    pub(super) files: Vec<DataFile>,
    /// Per wanted key (its index in the keys batch): its live rows.
    pub(super) rows: HashMap<usize, Vec<Match>>,
    /// Files whose key statistics could not rule them out, and rows of key columns read.
    pub files_scanned: usize,
    pub rows_scanned: u64,
}

impl Located {
    /// The rows of `keys` to delete, per file.
    pub(super) fn deletes(&self, keys: impl Iterator<Item = usize>) -> Vec<FileDeletes<'_>> {
        let mut per_file: HashMap<usize, RoaringTreemap> = HashMap::new();
        for k in keys {
            for m in self.rows.get(&k).into_iter().flatten() {
                per_file.entry(m.file).or_default().insert(m.row);
            }
        }
        let mut files: Vec<(usize, RoaringTreemap)> = per_file.into_iter().collect();
        files.sort_by_key(|(f, _)| *f);
        files
            .into_iter()
            .map(|(file, rows)| {
                let data = &self.files[file];
                FileDeletes {
                    add: &data.add,
                    deleted: &data.deleted,
                    num_records: data.num_records,
                    rows,
                }
            })
            .collect()
    }

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
pub(super) fn text_values(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
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
        .map_err(|e| LakeError::storage(name, e))?;
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
    let snapshot = table.snapshot().map_err(|e| LakeError::storage(name, e))?;
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
    let probe = Probe::new(keys).map_err(|e| LakeError::storage(name, e))?;
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
    let file_err =
        |e: &dyn std::fmt::Display| LakeError::storage(&context.table, format!("{path}: {e}"));
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
    let reader = ParquetObjectReader::new(Arc::clone(store), path.clone())
        .with_file_size(add.size as u64)
        .with_footer_size_hint(FOOTER_READ_BYTES);
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
            // A file written before a column was added reads as null in it (a key column
            // is never one: a keyless table's lookups match whole rows).
            let column = match batch.column_by_name(field.name()) {
                Some(column) => deltalake::arrow::compute::cast(column, field.data_type())
                    .map_err(|e| file_err(&e))?,
                None => {
                    deltalake::arrow::array::new_null_array(field.data_type(), batch.num_rows())
                }
            };
            columns.push(column);
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
                // A null wanted value (a keyless table's row) is matched by row encoding.
                if ints.null_count() == 0 && keys.column(0).null_count() == 0 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_any_finds_a_key_inside_the_bounds_only() {
        let sorted = [3, 10, 20];
        assert!(holds_any(&sorted, 10, 10));
        assert!(holds_any(&sorted, 4, 15));
        assert!(!holds_any(&sorted, 4, 9));
        assert!(!holds_any(&sorted, 21, 30));
        assert!(!holds_any(&[], 0, 100));
    }
}
