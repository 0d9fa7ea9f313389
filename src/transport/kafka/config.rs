//! `[transport]` with `kind = "kafka"`: the brokers, the topics binlake creates, the consumer
//! group of the sink, and librdkafka settings passed through as they are.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[transport] kind = "kafka"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// The logical server name: `source.name` in events, the topic prefix.
    #[serde(default = "crate::transport::config::default_topic_prefix")]
    pub topic_prefix: String,
    /// `host:port[,host:port...]`.
    #[serde(default)]
    pub bootstrap_servers: Option<String>,
    /// The topic prefixes the sink reads, when one group of sinks applies several servers'
    /// topics (each server's `binlake source` with its own `topic_prefix`); `[topic_prefix]`
    /// when unset.
    #[serde(default)]
    pub sink_topic_prefixes: Vec<String>,
    /// The sink's consumer group; `binlake-<topic_prefix>` when unset.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Partitions of topics binlake creates.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Replication factor of topics binlake creates.
    #[serde(default = "default_replication")]
    pub replication_factor: i32,
    /// `none`, `gzip`, `snappy`, `lz4`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// A tombstone (key, no value) after each delete, as Debezium's `tombstones.on.delete`.
    #[serde(default = "default_true")]
    pub tombstones_on_delete: bool,
    /// BEGIN/END records on `<topic_prefix>.transaction` (Debezium's
    /// `provide.transaction.metadata`).
    #[serde(default)]
    pub transaction_topic: bool,
    /// Heartbeat messages on `__debezium-heartbeat.<topic_prefix>` while the binlog is idle.
    #[serde(default)]
    pub heartbeats: bool,
    /// Settings passed to librdkafka as they are (`security.protocol`, `sasl.*`, tuning).
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
}

fn default_partitions() -> i32 {
    1
}
fn default_replication() -> i32 {
    1
}
fn default_compression() -> String {
    "lz4".into()
}
fn default_true() -> bool {
    true
}

impl KafkaConfig {
    /// A config for `bootstrap_servers` with every other key at its default.
    pub fn new(bootstrap_servers: &str, topic_prefix: &str) -> KafkaConfig {
        KafkaConfig {
            topic_prefix: topic_prefix.to_string(),
            bootstrap_servers: Some(bootstrap_servers.to_string()),
            sink_topic_prefixes: Vec::new(),
            group_id: None,
            partitions: default_partitions(),
            replication_factor: default_replication(),
            compression: default_compression(),
            tombstones_on_delete: true,
            transaction_topic: false,
            heartbeats: false,
            librdkafka: BTreeMap::new(),
        }
    }

    /// The brokers (validated present).
    pub fn brokers(&self) -> &str {
        self.bootstrap_servers.as_deref().unwrap_or_default()
    }

    /// The prefixes of the topics the sink reads: `sink_topic_prefixes`, or `topic_prefix`.
    pub fn sink_prefixes(&self) -> Vec<&str> {
        if self.sink_topic_prefixes.is_empty() {
            vec![self.topic_prefix.as_str()]
        } else {
            self.sink_topic_prefixes
                .iter()
                .map(String::as_str)
                .collect()
        }
    }

    /// The group the sink consumes in: `group_id`, or `binlake-<topic_prefix>`.
    pub fn group_id(&self) -> String {
        self.group_id
            .clone()
            .unwrap_or_else(|| format!("binlake-{}", self.topic_prefix))
    }

    /// Checks the values serde cannot; the error is (key, reason).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.bootstrap_servers.is_none() {
            return Err((
                "transport.bootstrap_servers",
                "the kafka transport needs the brokers, host:port[,host:port...]".into(),
            ));
        }
        if !["none", "gzip", "snappy", "lz4"].contains(&self.compression.as_str()) {
            return Err((
                "transport.compression",
                format!("{:?}: use none, gzip, snappy or lz4", self.compression),
            ));
        }
        if let Some(p) = self
            .sink_topic_prefixes
            .iter()
            .find(|p| p.is_empty() || p.starts_with('.') || p.ends_with('.'))
        {
            return Err((
                "transport.sink_topic_prefixes",
                format!("{p:?}: a topic prefix is a non-empty name that neither starts nor ends with a dot"),
            ));
        }
        if self.partitions < 1 {
            return Err(("transport.partitions", "must be at least 1".into()));
        }
        Ok(())
    }
}
