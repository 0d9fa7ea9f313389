//! Integration tests: one test binary (so CI links once), a module per area. Shared set-up
//! (servers, the broker, scenario configs, running the binary) lives in `support`.

mod support;

mod bench_freshness;
mod boundaries;
mod cli;
mod ddl_torture;
mod debezium_consumer;
mod e2e;
mod fixtures;
mod kafka;
mod kubernetes;
mod lake;
mod lake_writer;
mod layout;
mod live;
mod many_tables;
mod mariadb_replay;
mod mutations;
mod mysql;
mod oracle;
mod pipelines;
mod readers;
mod routes;
mod sink_loop;
mod status_page;
mod tls;

pub use support::{fixture, read_checkpoint, replay, replay_ok, run_ok, KillOnDrop};
