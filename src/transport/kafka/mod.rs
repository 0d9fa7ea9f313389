//! The Kafka transport: [`producer`] publishes change events (the source side), [`consumer`]
//! reads them back for the lake (the sink side), both configured by [`config`].

pub mod config;
pub mod consumer;
pub mod producer;

pub use config::KafkaConfig;
pub use consumer::KafkaInput;
pub use producer::KafkaOutput;
