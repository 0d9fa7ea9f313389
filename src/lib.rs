//! binlake: MySQL/MariaDB change data capture into Delta Lake medallion tables.
//!
//! Data flows one way: [`mysql`] reads binlogs and decodes row changes into [`event`]s,
//! [`envelope`] encodes them as Debezium JSON, [`transport`] carries them (Kafka or an
//! in-process channel), and [`lake`] applies them to Delta tables; [`pipeline`] wires the
//! stages together for the `source`, `sink` and `run` commands.

pub mod bench;
pub mod config;
pub mod demo;
pub mod envelope;
pub mod event;
pub mod lake;
pub mod metrics;
pub mod mysql;
pub mod pipeline;
pub mod replay;
pub mod status;
pub mod transport;
pub mod workload;
