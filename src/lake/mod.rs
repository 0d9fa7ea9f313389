//! The lake stage: Delta tables under one root (local disk or Azure Blob Storage): per source
//! table `bronze/<db>/<table>` (every change), `silver/<db>/<table>` (current rows) and
//! `silver/<db>/<table>__history` (SCD type 2), plus `dead_letters`. It owns the storage URL
//! forms, the MySQL → Arrow mapping and exactly-once application of transport records.
//!
//! [`writer`] routes a batch; [`table_apply`] applies one table's share of it; [`layer`] is one
//! table and its exactly-once [`state`], and [`rebase`] puts a refused append on top of what
//! landed first; [`bronze`], [`silver`] and [`history`] write their
//! layers, the last two from rows typed once ([`typed_images`]); [`guard`] says what a key
//! already holds, located by [`keys`] and read by [`read_back`]; [`dv`] writes deletion
//! vectors; [`evolution`] and [`maintenance`] keep tables in shape (compacting in the
//! background, [`compaction`]); [`route`] lands shards in
//! one table; [`gold`] runs the SQL models.

mod bronze;
pub mod change;
mod compaction;
pub mod config;
mod dead_letters;
mod dv;
mod evolution;
pub mod gold;
pub mod gold_schedule;
mod gold_vacuum;
mod guard;
mod history;
mod key_cache;
pub mod keys;
mod layer;
pub mod layout;
mod maintenance;
pub mod metrics;
mod multiset;
mod parallel;
mod read_back;
mod rebase;
mod retype;
pub mod route;
mod schema_runs;
mod silver;
pub mod state;
pub mod stopped;
pub mod storage;
mod table_apply;
#[cfg(test)]
mod test_tables;
mod typed_images;
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

impl LakeError {
    /// Another writer committed to the table since this one read it (binlake commits without
    /// retries, see [`state::LayerState::commit_properties`]): reload it and apply again.
    pub fn is_concurrent_commit(&self) -> bool {
        use deltalake::kernel::transaction::TransactionError;
        matches!(
            self,
            LakeError::Delta { source, .. } if matches!(
                source.as_ref(),
                deltalake::DeltaTableError::VersionAlreadyExists(_)
                    | deltalake::DeltaTableError::Transaction {
                        source: TransactionError::MaxCommitAttempts(_)
                            | TransactionError::CommitConflict(_)
                    }
            )
        )
    }

    /// A storage or Arrow failure on table `table`.
    pub fn storage(table: &str, reason: impl std::fmt::Display) -> LakeError {
        LakeError::Storage {
            table: table.to_string(),
            reason: reason.to_string(),
        }
    }
}
