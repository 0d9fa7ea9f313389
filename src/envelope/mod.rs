//! Debezium's JSON envelope, both ways: [`encode`] writes change events as Debezium's MySQL
//! connector would (schemas off), [`decode`] reads such envelopes back for the lake.

pub mod decode;
pub mod encode;
pub mod row;

pub use encode::{write_value, Envelope, EnvelopeOptions};
