//! Small Delta tables for the lake's unit tests: a bronze layer of integer ids appended in
//! files of ten, with the Kafka offsets each append reached as its state.

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::arrow::array::{Int64Array, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Field, Schema};

use super::config::LakeConfig;
use super::layer::Layer;
use super::state::LayerState;
use super::storage::LakeStorage;

pub(super) fn ids(from: i64, to: i64) -> RecordBatch {
    let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(Int64Array::from_iter_values(from..to))],
    )
    .unwrap()
}

pub(super) fn state_after(offset: i64) -> LayerState {
    let mut state = LayerState::default();
    state.offsets.advance("binlake.shop:0", offset);
    state
}

/// The lake in the local folder `lake`.
pub(super) fn storage(lake: &std::path::Path) -> LakeStorage {
    LakeStorage::new(lake.to_str().unwrap(), &BTreeMap::new(), lake).unwrap()
}

/// A table of three appended files of 10 rows, its state at offset 30.
pub(super) async fn three_files(lake: &std::path::Path) -> Layer {
    let mut layer = Layer::open(&storage(lake), "bronze/shop/t".into())
        .await
        .unwrap();
    for i in 0..3 {
        let (from, to) = (i * 10, i * 10 + 10);
        layer
            .append(ids(from, to), None, state_after(to), &LakeConfig::default())
            .await
            .unwrap();
    }
    layer
}

pub(super) fn files(layer: &Layer) -> usize {
    layer
        .existing()
        .unwrap()
        .snapshot()
        .unwrap()
        .log_data()
        .num_files()
}

pub(super) async fn rows(layer: &Layer) -> usize {
    use deltalake::datafusion::prelude::SessionContext;
    let table = layer.existing().unwrap().clone();
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).unwrap();
    let provider = table.table_provider().await.unwrap();
    ctx.read_table(provider).unwrap().count().await.unwrap()
}
