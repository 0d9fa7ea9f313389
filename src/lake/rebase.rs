//! Putting a refused append on top of what landed meanwhile. Every binlake commit goes in only
//! on the version its batch was computed from; when another commit won, the append's files
//! are already written, and some winners leave them as valid as before:
//!
//! - maintenance (a compaction or vacuum, by binlake or any engine), which records no binlake
//!   state and changes no data: the append goes on top with its own state;
//! - on bronze, another sink's append of other partitions (a group shares a table's partitions):
//!   the append goes on top with the two states merged, each writer's partitions as it left
//!   them ([`LayerState::rebased`]).
//!
//! Anything else, and another sink's append to silver or history, leaves the refusal to the
//! caller, who reloads the table's state and applies the batch again. Silver and history decide
//! a batch's rows from what they hold of its keys, so they read the other sink's rows first.

use deltalake::arrow::datatypes::SchemaRef;
use futures_util::StreamExt;

use super::layer::{delta_err, Layer};
use super::state::{is_blind_append, is_maintenance, state_of, LayerState};
use super::LakeError;

impl Layer {
    /// Reads the table on to its newest version and says with what state an append refused by
    /// the commits since the version it held goes on top of them (`ours` is the state it was
    /// to commit, `target` the schema its files were written in), or None when it cannot.
    pub(super) async fn rebase_append(
        &mut self,
        ours: &LayerState,
        target: &SchemaRef,
    ) -> Result<Option<LayerState>, LakeError> {
        let takes_other_appends = self.path.starts_with("bronze/");
        let table = self.table.as_mut().expect("a layer keeps its table");
        let read = table.version();
        table
            .update_incremental(None)
            .await
            .map_err(delta_err(&self.path))?;
        let newer = match (read, table.version()) {
            (Some(read), Some(now)) if now > read => (now - read) as usize,
            _ => return Ok(None),
        };
        // Newest first: the first state met is what the table holds now.
        let commits: Vec<_> = table.history(Some(newer)).collect().await;
        if commits.len() != newer {
            return Ok(None);
        }
        let mut theirs = None;
        for commit in commits {
            let commit = commit.map_err(delta_err(&self.path))?;
            if is_maintenance(&commit) {
                continue;
            }
            // Another binlake writer's append: it records its state. An append by anything
            // else is not known to be disjoint from the batch.
            let state = match state_of(&commit) {
                Some(state) if takes_other_appends && is_blind_append(&commit) => state,
                _ => return Ok(None),
            };
            theirs.get_or_insert(state);
        }
        let Some(theirs) = theirs else {
            tracing::debug!(table = %self.path, "a compaction or vacuum committed during the append: committing its files on top");
            return Ok(Some(ours.clone()));
        };
        if self.arrow_schema().as_ref() != Some(target) {
            return Ok(None);
        }
        let Some(merged) = self.state.rebased(ours, &theirs) else {
            return Ok(None);
        };
        tracing::debug!(table = %self.path, "another writer appended other partitions during the append: committing its files on top");
        // The state of the version the table is at now, which a next refusal starts from.
        self.state = theirs;
        Ok(Some(merged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::compaction;
    use crate::lake::config::LakeConfig;
    use crate::lake::state::load_state;
    use crate::lake::test_tables::{files, ids, rows, state_after, storage, three_files};

    /// `state` with partition 1 of the topic moved on to `next`.
    fn and_partition_1(mut state: LayerState, next: i64) -> LayerState {
        state.offsets.advance("binlake.shop:1", next);
        state
    }

    /// An append the writer computed before a compaction landed goes on top of the compaction
    /// as it is: no refusal for the caller, no batch applied again, no row lost, the state the
    /// append's.
    #[tokio::test]
    async fn an_append_goes_on_top_of_a_compaction_that_landed_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let mut layer = three_files(dir.path()).await;
        let compacted = compaction::compact(layer.existing().cloned().unwrap(), None)
            .await
            .unwrap();
        assert_eq!(compacted.version(), Some(3));
        assert_eq!(layer.existing().unwrap().version(), Some(2));
        layer
            .append(ids(30, 35), None, state_after(35), &LakeConfig::default())
            .await
            .unwrap();
        assert_eq!(
            (layer.existing().unwrap().version(), files(&layer)),
            (Some(4), 2)
        );
        assert_eq!(layer.rebases, 1);
        assert_eq!(rows(&layer).await, 35);
        assert_eq!(
            load_state(layer.existing().unwrap()).await.unwrap(),
            state_after(35)
        );
    }

    /// Another sink's commit in between is not maintenance: the append is refused, for the
    /// caller to reload the table's state and apply the batch again.
    #[tokio::test]
    async fn an_append_after_another_sinks_commit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut layer = three_files(dir.path()).await;
        compaction::compact(layer.existing().cloned().unwrap(), None)
            .await
            .unwrap();
        let mut other = Layer::open(&storage(dir.path()), "bronze/shop/t".into())
            .await
            .unwrap();
        other
            .append(ids(100, 101), None, state_after(31), &LakeConfig::default())
            .await
            .unwrap();
        let refused = layer
            .append(ids(30, 35), None, state_after(35), &LakeConfig::default())
            .await
            .unwrap_err();
        assert!(refused.is_concurrent_commit(), "{refused}");
        // Read on to the newest version, the refused append nowhere in it.
        assert_eq!(layer.existing().unwrap().version(), Some(4));
        assert_eq!(rows(&layer).await, 31);
    }

    /// Two sinks of a group append to one bronze table, each its own partitions: the one that
    /// lost puts its files on top, with both partitions' offsets, and applies nothing again.
    #[tokio::test]
    async fn a_bronze_append_goes_on_top_of_another_sinks_append_of_other_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let mut layer = three_files(dir.path()).await;
        let mut other = Layer::open(&storage(dir.path()), "bronze/shop/t".into())
            .await
            .unwrap();
        other
            .append(
                ids(100, 105),
                None,
                and_partition_1(state_after(30), 5),
                &LakeConfig::default(),
            )
            .await
            .unwrap();
        layer
            .append(ids(30, 35), None, state_after(35), &LakeConfig::default())
            .await
            .unwrap();
        assert_eq!(layer.rebases, 1);
        assert_eq!(layer.existing().unwrap().version(), Some(4));
        assert_eq!(rows(&layer).await, 40);
        let both = and_partition_1(state_after(35), 5);
        assert_eq!(layer.state, both);
        assert_eq!(load_state(layer.existing().unwrap()).await.unwrap(), both);

        // Refused again by the other sink's next append, it goes on top from there.
        other.reload(&storage(dir.path())).await.unwrap();
        other
            .append(
                ids(105, 107),
                None,
                and_partition_1(state_after(35), 7),
                &LakeConfig::default(),
            )
            .await
            .unwrap();
        let mut behind = Layer::open(&storage(dir.path()), "bronze/shop/t".into())
            .await
            .unwrap();
        behind
            .table
            .as_mut()
            .unwrap()
            .load_version(4)
            .await
            .unwrap();
        behind.state = both.clone();
        compaction::compact(other.existing().cloned().unwrap(), None)
            .await
            .unwrap();
        behind
            .append(
                ids(35, 38),
                None,
                and_partition_1(state_after(38), 5),
                &LakeConfig::default(),
            )
            .await
            .unwrap();
        assert_eq!(behind.rebases, 1);
        assert_eq!(rows(&behind).await, 45);
        assert_eq!(
            load_state(behind.existing().unwrap()).await.unwrap(),
            and_partition_1(state_after(38), 7)
        );
    }

    /// Silver and history decide a batch's rows from what they hold of its keys: another
    /// sink's rows must be read first, so its append refuses theirs.
    #[tokio::test]
    async fn a_silver_append_after_another_sinks_append_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lake = storage(dir.path());
        let mut layer = Layer::open(&lake, "silver/shop/t".into()).await.unwrap();
        layer
            .append(ids(0, 10), None, state_after(10), &LakeConfig::default())
            .await
            .unwrap();
        let mut other = Layer::open(&lake, "silver/shop/t".into()).await.unwrap();
        other
            .append(
                ids(100, 105),
                None,
                and_partition_1(state_after(10), 5),
                &LakeConfig::default(),
            )
            .await
            .unwrap();
        let refused = layer
            .append(ids(10, 15), None, state_after(15), &LakeConfig::default())
            .await
            .unwrap_err();
        assert!(refused.is_concurrent_commit(), "{refused}");
        assert_eq!(layer.rebases, 0);
        assert_eq!(files(&layer), 2);
    }
}
