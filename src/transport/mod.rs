//! The transport stage: carries encoded change events from the source to the lake side.
//! `ndjson` appends Debezium JSON lines to a file (or stdout); `kafka` publishes them to
//! topics. (The consuming side and the embedded channel come with the transport issue.)

pub mod kafka;
pub mod ndjson;
