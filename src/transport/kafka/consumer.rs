//! The Kafka transport's consuming side: a consumer group on every `<prefix>.<db>.<table>`
//! topic, records with their partition and offset, schemas resolved from
//! `__binlake-schemas.<prefix>`, and offsets committed to the group only after the lake holds
//! the records (the lake's own record of offsets is what resuming trusts).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaConfig;
use crate::event::{TableId, TableSchema};
use crate::transport::record::{
    schema_topic, table_of_topic, Offsets, Record, SourcePartition, SCHEMA_HEADER,
};

pub struct KafkaInput {
    consumer: BaseConsumer<RebalanceLog>,
    settings: KafkaConfig,
    group_id: String,
    schemas: HashMap<String, Arc<TableSchema>>,
}

/// Logs each change of this sink's share of the group's partitions: with several sinks in one
/// group, which member applies what, and how often the group rebalances, is read here.
pub struct RebalanceLog;

impl ClientContext for RebalanceLog {}

impl ConsumerContext for RebalanceLog {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |list: &TopicPartitionList| {
            list.elements()
                .iter()
                .map(|e| format!("{}:{}", e.topic(), e.partition()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match rebalance {
            Rebalance::Assign(list) => tracing::info!(
                count = list.count(),
                "the consumer group assigned this sink: {}",
                partitions(list)
            ),
            Rebalance::Revoke(list) => tracing::info!(
                count = list.count(),
                "the consumer group took back from this sink: {}",
                partitions(list)
            ),
            Rebalance::Error(e) => tracing::warn!("consumer group rebalance: {e}"),
        }
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if "\\.+*?()|[]{}^$".contains(ch) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

impl KafkaInput {
    /// A member of the sink group, subscribed to the table topics of every prefix.
    pub fn new(settings: &KafkaConfig) -> Result<KafkaInput, String> {
        let input = Self::observer(settings)?;
        let prefixes = input.settings.sink_prefixes();
        let patterns: Vec<String> = prefixes.iter().map(|p| Self::pattern(p)).collect();
        let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
        input.consumer.subscribe(&patterns).map_err(|e| {
            format!(
                "transport: subscribing to the topics of {}: {e}",
                prefixes.join(", ")
            )
        })?;
        Ok(input)
    }

    /// Reads topics' ends and the group's offsets without joining the group: `binlake status`
    /// must not make the running sinks rebalance.
    pub fn observer(settings: &KafkaConfig) -> Result<KafkaInput, String> {
        let settings = settings.clone();
        let group_id = settings.group_id();
        let consumer: BaseConsumer<RebalanceLog> = Self::config(&settings)
            .set("group.id", &group_id)
            .create_with_context(RebalanceLog)
            .map_err(|e| format!("transport: creating the Kafka consumer: {e}"))?;
        Ok(KafkaInput {
            consumer,
            settings,
            group_id,
            schemas: HashMap::new(),
        })
    }

    fn config(settings: &KafkaConfig) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", settings.brokers())
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // New tables' topics join the subscription within seconds.
            .set("topic.metadata.refresh.interval.ms", "5000")
            .set("isolation.level", "read_committed")
            // A restarted sink gets its partitions back after this long at most (Kafka's
            // default is 45 s); `group.instance.id` in [transport.librdkafka] makes it instant
            // (one id per sink process: two with one id fence each other).
            .set("session.timeout.ms", "10000");
        for (k, v) in &settings.librdkafka {
            config.set(k, v);
        }
        config
    }

    /// `^<prefix>\.[^.]+\.[^.]+$`: the table topics, not the transaction or schema topics.
    fn pattern(prefix: &str) -> String {
        format!("^{}\\.[^.]+\\.[^.]+$", regex_escape(prefix))
    }

    /// The table a table topic of one of the prefixes carries (None: not a table topic).
    fn table_of_topic(&self, topic: &str) -> Option<TableId> {
        self.settings
            .sink_prefixes()
            .into_iter()
            .find_map(|prefix| {
                table_of_topic(prefix, topic)
                    .filter(|(db, table)| {
                        !db.is_empty() && !table.is_empty() && !table.contains('.')
                    })
                    .map(|(db, table)| TableId { db, table })
            })
    }

    fn is_table_topic(&self, topic: &str) -> bool {
        self.table_of_topic(topic).is_some()
    }

    /// The table a `topic:partition` carries.
    pub fn table_of(&self, source_partition: &str) -> Option<TableId> {
        let partition = SourcePartition::parse(source_partition)?;
        self.table_of_topic(partition.topic()?)
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The end offset of every partition of every table topic now: what "caught up" means.
    pub fn end_offsets(&self, timeout: Duration) -> Result<Offsets, String> {
        let metadata = self.consumer.fetch_metadata(None, timeout).map_err(|e| {
            format!(
                "reading Kafka metadata from {}: {e}",
                self.settings.brokers()
            )
        })?;
        let mut out = Offsets::default();
        for topic in metadata.topics() {
            if !self.is_table_topic(topic.name()) {
                continue;
            }
            for p in topic.partitions() {
                let (_, high) = self
                    .consumer
                    .fetch_watermarks(topic.name(), p.id(), timeout)
                    .map_err(|e| format!("reading the end of {}:{}: {e}", topic.name(), p.id()))?;
                if high > 0 {
                    out.insert(SourcePartition::kafka(topic.name(), p.id()), high);
                }
            }
        }
        Ok(out)
    }

    /// The next record, or None when none arrived within `timeout`.
    pub fn poll(&mut self, timeout: Duration) -> Result<Option<Record>, String> {
        let Some(result) = self.consumer.poll(timeout) else {
            return Ok(None);
        };
        let m = match result {
            Ok(m) => m,
            Err(e @ rdkafka::error::KafkaError::MessageConsumptionFatal(_)) => {
                return Err(format!("consuming from Kafka: {e}"))
            }
            // Fetch errors, rebalances, broker restarts: librdkafka retries by itself.
            Err(e) => {
                tracing::warn!("consuming from Kafka: {e}; retrying");
                return Ok(None);
            }
        };
        let schema_id = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == SCHEMA_HEADER)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        });
        Ok(Some(Record {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: Some(m.offset()),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            schema: None,
            schema_id,
        }))
    }

    /// Fills in each record's schema; an id not seen yet reloads the schema topic once.
    pub fn resolve_schemas(&mut self, records: &mut [Record]) -> Result<(), String> {
        let missing = records.iter().any(|r| {
            r.schema_id
                .as_ref()
                .is_some_and(|id| !self.schemas.contains_key(id))
        });
        if missing {
            self.load_schemas()?;
        }
        for r in records.iter_mut() {
            if let Some(id) = &r.schema_id {
                r.schema = self.schemas.get(id).cloned();
            }
        }
        Ok(())
    }

    /// Reads the schema topic of every prefix.
    fn load_schemas(&mut self) -> Result<(), String> {
        let topics: Vec<String> = self
            .settings
            .sink_prefixes()
            .into_iter()
            .map(schema_topic)
            .collect();
        for topic in topics {
            self.load_schema_topic(&topic)?;
        }
        Ok(())
    }

    /// Reads a whole schema topic (small: one record per table schema version; a schema's id
    /// is its fingerprint, so two servers' topics never give one id two schemas).
    fn load_schema_topic(&mut self, topic: &str) -> Result<(), String> {
        let topic = topic.to_string();
        let reader: BaseConsumer = Self::config(&self.settings)
            .set("group.id", format!("{}-schemas", self.group_id))
            .create()
            .map_err(|e| format!("creating the schema reader: {e}"))?;
        let timeout = Duration::from_secs(10);
        let metadata = reader
            .fetch_metadata(Some(&topic), timeout)
            .map_err(|e| format!("reading the metadata of {topic}: {e}"))?;
        let mut ends = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        for t in metadata.topics().iter().filter(|t| t.name() == topic) {
            for p in t.partitions() {
                let (low, high) = reader
                    .fetch_watermarks(&topic, p.id(), timeout)
                    .map_err(|e| format!("reading the end of {topic}: {e}"))?;
                if high > low {
                    ends.insert(p.id(), high);
                    assignment
                        .add_partition_offset(&topic, p.id(), Offset::Beginning)
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        if ends.is_empty() {
            return Ok(());
        }
        reader
            .assign(&assignment)
            .map_err(|e| format!("reading {topic}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ends.is_empty() {
            if Instant::now() > deadline {
                return Err(format!("reading {topic}: no end after 30 s"));
            }
            let Some(m) = reader.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = m.map_err(|e| format!("reading {topic}: {e}"))?;
            if let Some(payload) = m.payload() {
                #[derive(serde::Deserialize)]
                struct Published {
                    id: String,
                    table: TableSchema,
                }
                match serde_json::from_slice::<Published>(payload) {
                    Ok(p) => {
                        self.schemas.insert(p.id, Arc::new(p.table));
                    }
                    Err(e) => {
                        tracing::warn!(topic = %topic, offset = m.offset(), "unreadable schema record: {e}")
                    }
                }
            }
            if ends
                .get(&m.partition())
                .is_some_and(|end| m.offset() + 1 >= *end)
            {
                ends.remove(&m.partition());
            }
        }
        Ok(())
    }

    /// The group's committed offsets for the partitions of `targets` (absent: none yet).
    pub fn committed(&self, targets: &Offsets, timeout: Duration) -> Result<Offsets, String> {
        let mut list = TopicPartitionList::new();
        for (sp, _) in targets.iter() {
            if let Some(SourcePartition::Kafka { topic, partition }) = SourcePartition::parse(sp) {
                list.add_partition(&topic, partition);
            }
        }
        let committed = self
            .consumer
            .committed_offsets(list, timeout)
            .map_err(|e| format!("reading the offsets of group {}: {e}", self.group_id))?;
        let mut out = Offsets::default();
        for e in committed.elements() {
            if let Offset::Offset(o) = e.offset() {
                out.insert(SourcePartition::kafka(e.topic(), e.partition()), o);
            }
        }
        Ok(out)
    }

    /// Commits `offsets` (next offset per `topic:partition`) to the consumer group.
    pub fn commit(&self, offsets: &Offsets) -> Result<(), String> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for (sp, next) in offsets.iter() {
            let Some(SourcePartition::Kafka { topic, partition }) = SourcePartition::parse(sp)
            else {
                continue;
            };
            list.add_partition_offset(&topic, partition, Offset::Offset(next))
                .map_err(|e| e.to_string())?;
        }
        self.consumer
            .commit(&list, CommitMode::Sync)
            .map_err(|e| format!("committing offsets to group {}: {e}", self.group_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_takes_table_topics_only() {
        assert_eq!(
            KafkaInput::pattern("shop.v1"),
            "^shop\\.v1\\.[^.]+\\.[^.]+$"
        );
        let input = KafkaInput::new(&KafkaConfig::new("127.0.0.1:9", "binlake")).unwrap();
        assert!(input.is_table_topic("binlake.shop.orders"));
        assert!(!input.is_table_topic("binlake.transaction"));
        assert!(!input.is_table_topic("__binlake-schemas.binlake"));
        assert!(!input.is_table_topic("other.shop.orders"));
    }

    #[test]
    fn several_prefixes_name_their_tables() {
        let mut settings = KafkaConfig::new("127.0.0.1:9", "eu");
        settings.sink_topic_prefixes = vec!["eu".into(), "us.east".into()];
        let input = KafkaInput::new(&settings).unwrap();
        assert_eq!(
            input.table_of("eu.shop.orders:3"),
            Some(TableId::new("shop", "orders"))
        );
        assert_eq!(
            input.table_of("us.east.shop.orders:0"),
            Some(TableId::new("shop", "orders"))
        );
        assert_eq!(input.table_of("us.shop.orders:0"), None);
        assert_eq!(input.table_of("eu.transaction:0"), None);
        assert_eq!(input.table_of("us.east.transaction:0"), None);
    }
}
