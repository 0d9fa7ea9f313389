//! The lake stage: Delta tables under one root (local disk or Azure Blob Storage): per source
//! table `bronze/<db>/<table>` (every change), `silver/<db>/<table>` (current rows) and
//! `silver/<db>/<table>__history` (SCD type 2), plus `dead_letters`. It owns the storage URL
//! forms, the MySQL → Arrow mapping and exactly-once application of transport records.

pub mod change;
pub mod deletion;
pub mod gold;
pub mod storage;
pub mod types;
pub mod writer;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("config key `{key}`: {reason}")]
    Config { key: String, reason: String },
    #[error("lake table {table}: {reason}")]
    Storage { table: String, reason: String },
    #[error("lake table {table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error("{table}: {reason}")]
    Schema { table: String, reason: String },
    #[error("{table}, column {column}: {reason}")]
    Value {
        table: String,
        column: String,
        reason: String,
    },
}
