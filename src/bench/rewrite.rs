//! `binlake bench rewrite`: what a column type change costs. Builds silver and history of the
//! bench table (`rows` rows each), then applies one change whose schema widens `qty` from INT
//! to BIGINT, as `ALTER TABLE ... MODIFY qty BIGINT` does: the writer rewrites both tables
//! (see `lake/retype.rs`) before the change. Prints the seconds, rows/s and peak RSS.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::lake::{build_base, mb, records, reset_peak_rss, schema, writer, Change};
use crate::event::{ColumnType, TableSchema};
use crate::lake::LakeError;

/// Builds the tables under `dir`, rewrites them, prints the figures, removes the tables.
pub async fn bench_rewrite(dir: &Path, rows: u64, out: &mut dyn Write) -> Result<(), LakeError> {
    let lake = dir.join(format!("rewrite-{rows}"));
    let _ = std::fs::remove_dir_all(&lake);
    let built = Instant::now();
    build_base(&lake, rows).await?;
    let _ = writeln!(
        out,
        "built silver and history of {rows} rows each in {:.1} s",
        built.elapsed().as_secs_f64()
    );
    let mut widened: TableSchema = (*schema()).clone();
    let qty = widened
        .columns
        .iter_mut()
        .find(|c| c.name == "qty")
        .expect("the bench table has qty");
    qty.column_type = ColumnType::BigInt;
    let change = records(
        &[Change {
            op: "u",
            id: 1,
            pos: 4 + rows + 1,
        }],
        &Arc::new(widened),
    );
    let mut writer = writer(&lake, false)?;
    reset_peak_rss();
    let started = Instant::now();
    writer.apply(&change).await?;
    let seconds = started.elapsed().as_secs_f64();
    let _ = writeln!(
        out,
        "qty INT → BIGINT on {rows} rows: silver and history rewritten (plus the change) in {seconds:.1} s = {:.0} rows/s over both tables; peak RSS {}",
        (2 * rows) as f64 / seconds,
        mb(super::peak_rss_bytes())
    );
    let _ = std::fs::remove_dir_all(&lake);
    Ok(())
}
