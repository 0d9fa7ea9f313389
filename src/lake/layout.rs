//! The lake layout, a contract readers rely on: where each source table's Delta tables live
//! under the lake root, and the columns binlake adds to the source's own.

use crate::event::TableId;

/// Every change, appended: `bronze/<db>/<table>`.
pub fn bronze_path(id: &TableId) -> String {
    format!("bronze/{}/{}", id.db, id.table)
}

/// The current rows: `silver/<db>/<table>`.
pub fn silver_path(id: &TableId) -> String {
    format!("silver/{}/{}", id.db, id.table)
}

/// SCD type 2 history: `silver/<db>/<table>__history`.
pub fn history_path(id: &TableId) -> String {
    format!("silver/{}/{}__history", id.db, id.table)
}

/// Records that are not binlake change events, with the reason.
pub const DEAD_LETTERS: &str = "dead_letters";

/// Silver and history: the operation of the change that wrote the row (`c`, `u`, `r`; silver
/// never holds `d`).
pub const CDC_OP: &str = "_cdc_op";
/// Silver: the binlog order key of the change that wrote the row; the position guard
/// compares against it.
pub const CDC_POSITION: &str = "_cdc_position";
/// Silver: the source commit time of that change.
pub const CDC_TS: &str = "_cdc_ts";
/// Silver and history of a table with no key at all: the row's id, the order key of the change
/// that wrote it, which keys both tables (see [`super::multiset`]).
pub const ROW_ID: &str = "_cdc_row_id";
/// The prefix of every column binlake adds to silver.
pub const CDC_PREFIX: &str = "_cdc_";
/// History: when a version became current (source commit time).
pub const START_AT: &str = "__start_at";
/// History: when a version stopped being current; null while it is open.
pub const END_AT: &str = "__end_at";
/// History: the order key of the change that opened the version.
pub const START_POSITION: &str = "__start_position";
/// History: the order key of the change that closed the version; null while it is open.
pub const END_POSITION: &str = "__end_position";
/// Bronze: the partition column (the day a change was ingested).
pub const INGEST_DATE: &str = "ingest_date";
