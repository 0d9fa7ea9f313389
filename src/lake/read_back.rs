//! Reading back the rows key location found: one column of them (the position guard's
//! `_cdc_position`, history's `__end_position`) or whole rows (history's open versions), files
//! read in parallel, each file as few pages as pay.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::logstore::object_store::{path::Path, ObjectStore};
use deltalake::logstore::parquet_reader::ParquetObjectReader;
use deltalake::parquet::arrow::arrow_reader::{ArrowReaderOptions, RowSelection};
use deltalake::parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::file::metadata::PageIndexPolicy;
use deltalake::DeltaTable;
use futures_util::TryStreamExt;

use super::keys::{
    text_values, DataFile, Located, FOOTER_READ_BYTES, KEYED_PAGE_ROWS, SCAN_BATCH_ROWS,
};
use super::parallel::on_every_core;
use super::LakeError;

impl Located {
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
    let reader = ParquetObjectReader::new(store, path)
        .with_file_size(size)
        .with_footer_size_hint(FOOTER_READ_BYTES);
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
        ranges = std::iter::once(0..num_records).collect();
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
                .map_err(|e| LakeError::storage(&table_name, format!("{path}: {e}")))?;
            Ok((batch, rows.into_iter().map(|r| r.1).collect()))
        }
    })
    .await
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
