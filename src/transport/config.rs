//! `[transport]`: how change events leave the source, one shape per `kind`. Each kind accepts
//! only its own keys: a key another kind has (`bootstrap_servers` with `kind = "ndjson"`) is an
//! error that names the key, not a silently ignored setting.

use serde::Deserialize;

use super::kafka::KafkaConfig;

/// `[transport]`, tagged by `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TransportConfig {
    /// Debezium JSON lines appended to a file (fsynced before each checkpoint).
    Ndjson(NdjsonConfig),
    /// Kafka topics, one per table.
    Kafka(KafkaConfig),
    /// An in-process channel from capture to apply (`binlake run` only).
    Embedded(EmbeddedConfig),
}

/// `[transport] kind = "ndjson"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NdjsonConfig {
    /// The file change events are appended to; `-` is stdout.
    #[serde(default)]
    pub path: Option<String>,
    /// The logical server name: `source.name` in events.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
}

/// `[transport] kind = "embedded"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// The logical server name: `source.name` in events, the prefix of the in-process topics.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
}

pub(crate) fn default_topic_prefix() -> String {
    "binlake".into()
}

/// The kinds, as `kind` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Ndjson,
    Kafka,
    Embedded,
}

impl TransportKind {
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Ndjson => "ndjson",
            TransportKind::Kafka => "kafka",
            TransportKind::Embedded => "embedded",
        }
    }

    /// The keys of `[transport]` this kind takes (besides `kind`).
    fn keys(self) -> &'static [&'static str] {
        match self {
            TransportKind::Ndjson => &["path", "topic_prefix"],
            TransportKind::Embedded => &["topic_prefix"],
            TransportKind::Kafka => &[
                "topic_prefix",
                "sink_topic_prefixes",
                "bootstrap_servers",
                "group_id",
                "partitions",
                "replication_factor",
                "compression",
                "tombstones_on_delete",
                "transaction_topic",
                "heartbeats",
                "librdkafka",
            ],
        }
    }
}

impl TransportConfig {
    pub fn kind(&self) -> TransportKind {
        match self {
            TransportConfig::Ndjson(_) => TransportKind::Ndjson,
            TransportConfig::Kafka(_) => TransportKind::Kafka,
            TransportConfig::Embedded(_) => TransportKind::Embedded,
        }
    }

    /// The logical server name: `source.name` in events, the topic prefix.
    pub fn topic_prefix(&self) -> &str {
        match self {
            TransportConfig::Ndjson(c) => &c.topic_prefix,
            TransportConfig::Kafka(c) => &c.topic_prefix,
            TransportConfig::Embedded(c) => &c.topic_prefix,
        }
    }

    /// The Kafka settings, when the kind is `kafka`.
    pub fn kafka(&self) -> Option<&KafkaConfig> {
        match self {
            TransportConfig::Kafka(c) => Some(c),
            _ => None,
        }
    }

    /// Names the first key of the `[transport]` table its `kind` does not take; the error is
    /// (key, reason). Run before deserializing, so the error names the key and the kind.
    pub fn check_keys(table: &toml::Table) -> Result<(), (String, String)> {
        let kind = match table.get("kind").and_then(toml::Value::as_str) {
            Some("ndjson") => TransportKind::Ndjson,
            Some("kafka") => TransportKind::Kafka,
            Some("embedded") => TransportKind::Embedded,
            Some(other) => {
                return Err((
                    "transport.kind".into(),
                    format!("{other:?}: use \"kafka\", \"embedded\" or \"ndjson\""),
                ))
            }
            None => {
                return Err((
                    "transport.kind".into(),
                    "missing: use \"kafka\", \"embedded\" or \"ndjson\"".into(),
                ))
            }
        };
        for key in table.keys().filter(|k| k.as_str() != "kind") {
            if !kind.keys().contains(&key.as_str()) {
                return Err((
                    format!("transport.{key}"),
                    format!(
                        "not a key of kind = \"{}\" (its keys: {})",
                        kind.name(),
                        kind.keys().join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks the values serde cannot; the error is (key, reason).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match self {
            TransportConfig::Kafka(k) => k.validate(),
            TransportConfig::Ndjson(n) if n.path.is_none() => Err((
                "transport.path",
                "the ndjson transport needs a file to append to (or \"-\" for stdout)".into(),
            )),
            _ => Ok(()),
        }
    }
}
