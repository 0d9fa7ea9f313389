//! Tables whose apply stopped (`[lake] on_unappliable = "stop"`, the default): a change of a
//! replicated table the lake cannot take (a value its column cannot hold) stops that table at
//! the change, which stays unapplied, while the other tables go on. Each stop is written to
//! `_binlake/stopped/<db>.<table>.json` under the lake's root, so `binlake status` shows it from
//! another process, and removed once the table applies again (a fixed binlake restarted).

use serde::{Deserialize, Serialize};

use super::change::LakeChange;
use super::storage::LakeStorage;
use super::LakeError;
use crate::event::TableId;

/// Where stop records live under the lake's root.
pub const STOPPED_DIR: &str = "_binlake/stopped";

/// One stopped table, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoppedTable {
    pub table: String,
    /// The Kafka topic (or embedded stream) its records come on.
    pub topic: String,
    /// What was wrong: column and value.
    pub reason: String,
    /// Where the change is: binlog file and offset, and the transport offset.
    pub position: String,
    pub since_ms: u64,
}

impl StoppedTable {
    pub fn new(table: &TableId, change: &LakeChange, reason: String) -> StoppedTable {
        StoppedTable {
            table: table.to_string(),
            topic: change.topic.clone(),
            reason,
            position: format!(
                "binlog {}:{} row {}{}",
                change.file,
                change.pos,
                change.row,
                match change.offset {
                    Some(o) => format!(
                        ", {} partition {} offset {o}",
                        change.topic, change.partition
                    ),
                    None => String::new(),
                }
            ),
            since_ms: crate::event::now_ms(),
        }
    }

    /// The message a user reads in logs, errors and status.
    pub fn message(&self) -> String {
        format!(
            "{}: stopped applying: {} (change at {}). This change and every later one of the table stay unapplied; the other tables go on. Fix the cause and restart binlake: it applies from this change. To skip such changes instead, set [lake] on_unappliable = \"dead_letter\"",
            self.table, self.reason, self.position
        )
    }
}

fn path_of(table: &str) -> String {
    format!("{STOPPED_DIR}/{table}.json")
}

/// Records a stop.
pub async fn record(storage: &LakeStorage, stop: &StoppedTable) -> Result<(), LakeError> {
    let bytes = serde_json::to_vec_pretty(stop).expect("serialisable");
    storage.put(&path_of(&stop.table), bytes).await
}

/// Removes a table's stop record, if any.
pub async fn clear(storage: &LakeStorage, table: &TableId) -> Result<(), LakeError> {
    storage.delete(&path_of(&table.to_string())).await
}

/// Every recorded stop.
pub async fn list(storage: &LakeStorage) -> Result<Vec<StoppedTable>, LakeError> {
    let mut out = Vec::new();
    for (path, bytes) in storage.read_all(STOPPED_DIR).await? {
        let stop = serde_json::from_slice(&bytes).map_err(|e| LakeError::Storage {
            table: path.clone(),
            reason: format!("not a stop record: {e}"),
        })?;
        out.push(stop);
    }
    Ok(out)
}
