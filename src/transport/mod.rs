//! The transport stage: carries encoded change events from the source to the lake side.
//! `ndjson` appends Debezium JSON lines to a file (or stdout); `kafka` publishes them to
//! topics and `kafka_input` consumes them; `embedded` hands them over in-process through a
//! bounded channel. `record` is what all of them carry.

pub mod embedded;
pub mod kafka;
pub mod kafka_input;
pub mod ndjson;
pub mod record;
