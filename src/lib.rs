//! binlake: MySQL/MariaDB change data capture into Delta Lake medallion tables.
//!
//! Data flows one way: [`mysql`] reads binlogs and decodes row changes into [`event`]s,
//! [`envelope`] encodes them as Debezium JSON, and later stages carry them to the lake.

pub mod bench;
pub mod config;
pub mod envelope;
pub mod event;
pub mod mysql;
pub mod replay;
pub mod transport;
