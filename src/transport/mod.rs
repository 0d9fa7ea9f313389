//! The transport stage: carries encoded change events from the source to the lake side.
//! `ndjson` appends Debezium JSON lines to a file (or stdout); [`kafka`] publishes them to
//! topics and consumes them back; `embedded` hands them over in-process through a bounded
//! channel. [`record`] is what all of them carry; [`config`] is `[transport]`.

pub mod config;
pub mod embedded;
pub mod kafka;
pub mod ndjson;
pub mod record;
