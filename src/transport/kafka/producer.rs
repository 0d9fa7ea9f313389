//! The Kafka transport's producing side: change events to topics `<prefix>.<db>.<table>`
//! (created when missing), keyed by the primary key as JSON, valued by the Debezium envelope,
//! with a header naming the table schema, which is published once to
//! `__binlake-schemas.<prefix>`.
//! The producer is idempotent with acks=all; making the output durable flushes it and fails on
//! any delivery error, so the source's checkpoint never passes an unacknowledged change.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use rdkafka::message::{Header, OwnedHeaders};

use super::KafkaConfig;
use crate::event::now_ms;
use crate::event::{ChangeEvent, TableSchema};
use crate::mysql::SourceOutput;
use crate::transport::record::{
    schema_fingerprint, schema_topic, table_topic, RecordEncoder, SCHEMA_HEADER,
};

/// How long making the output durable may wait for acknowledgements.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// The transaction being published, for the transaction-metadata topic.
struct OpenTransaction {
    id: String,
    ts_ms: u64,
    /// Events per `db.table`, in first-seen order.
    counts: Vec<(String, u64)>,
}

/// Records the first delivery failure, reported at the next send or flush.
#[derive(Default)]
struct DeliveryReport {
    first_failure: Mutex<Option<String>>,
}

impl ClientContext for DeliveryReport {}

impl ProducerContext for DeliveryReport {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, message)) = result {
            use rdkafka::message::Message;
            let mut failure = self.first_failure.lock().expect("lock");
            if failure.is_none() {
                *failure = Some(format!("delivery to topic {} failed: {e}", message.topic()));
            }
        }
    }
}

pub struct KafkaOutput {
    producer: BaseProducer<DeliveryReport>,
    admin: AdminClient<DefaultClientContext>,
    settings: KafkaConfig,
    encoder: RecordEncoder,
    known_topics: HashSet<String>,
    /// Schemas already on the schema topic, by the address of the `Arc` the decoder shares
    /// (kept alive here, so an address is never reused for another schema).
    published_schemas: HashMap<usize, (Arc<TableSchema>, String)>,
    now_ms: u64,
    changes_since_clock: u32,
    open_transaction: Option<OpenTransaction>,
}

impl KafkaOutput {
    pub fn new(settings: &KafkaConfig) -> Result<KafkaOutput, String> {
        let settings = settings.clone();
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", settings.brokers())
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", &settings.compression)
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "200000")
            .set("queue.buffering.max.kbytes", "262144")
            // Asking a broker with `auto.create.topics.enable` about a topic must not create
            // it with the broker's `num.partitions` and `default.replication.factor`:
            // `ensure_topic` creates it with `[transport] partitions` and
            // `replication_factor`. A broker without CreateTopics needs "true" here, set in
            // `[transport.librdkafka]`.
            .set("allow.auto.create.topics", "false");
        for (k, v) in &settings.librdkafka {
            config.set(k, v);
        }
        let producer: BaseProducer<DeliveryReport> = config
            .create_with_context(DeliveryReport::default())
            .map_err(|e| format!("transport: creating the Kafka producer: {e}"))?;
        let admin: AdminClient<DefaultClientContext> = config
            .create()
            .map_err(|e| format!("transport: creating the Kafka admin client: {e}"))?;
        Ok(KafkaOutput {
            producer,
            admin,
            encoder: RecordEncoder::new(&settings.topic_prefix, settings.tombstones_on_delete),
            settings,
            known_topics: HashSet::new(),
            published_schemas: HashMap::new(),
            now_ms: now_ms(),
            changes_since_clock: 0,
            open_transaction: None,
        })
    }

    fn transaction_topic(&self) -> String {
        format!("{}.transaction", self.settings.topic_prefix)
    }

    /// `{"id": ...}`: the key of transaction-metadata records.
    fn transaction_record(&mut self, t: &OpenTransaction, end: bool) -> Result<(), String> {
        let key = serde_json::json!({ "id": t.id }).to_string();
        let value = if end {
            serde_json::json!({
                "status": "END",
                "id": t.id,
                "ts_ms": self.now_ms,
                "event_count": t.counts.iter().map(|(_, n)| n).sum::<u64>(),
                "data_collections": t.counts.iter().map(|(c, n)| serde_json::json!({"data_collection": c, "event_count": n})).collect::<Vec<_>>(),
            })
        } else {
            serde_json::json!({
                "status": "BEGIN",
                "id": t.id,
                "ts_ms": t.ts_ms,
                "event_count": null,
                "data_collections": null,
            })
        }
        .to_string();
        let topic = self.transaction_topic();
        self.ensure_topic(&topic)?;
        Self::send(
            &self.producer,
            &topic,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            None,
        )
    }

    /// Counts `event` in its transaction, publishing BEGIN when a new transaction starts.
    fn track_transaction(&mut self, event: &ChangeEvent<'_>) -> Result<(), String> {
        let Some(t) = &event.transaction else {
            return Ok(());
        };
        if self
            .open_transaction
            .as_ref()
            .is_some_and(|open| open.id != *t.id)
        {
            // A transaction without a commit we saw (a rollback cannot reach the binlog):
            // close it before the next one opens.
            let open = self.open_transaction.take().expect("checked");
            self.transaction_record(&open, true)?;
        }
        if self.open_transaction.is_none() {
            let open = OpenTransaction {
                id: t.id.to_string(),
                ts_ms: event.source.ts_ms,
                counts: Vec::new(),
            };
            self.transaction_record(&open, false)?;
            self.open_transaction = Some(open);
        }
        let collection = format!("{}.{}", event.table.id.db, event.table.id.table);
        let open = self.open_transaction.as_mut().expect("just opened");
        match open.counts.iter_mut().find(|(c, _)| *c == collection) {
            Some((_, n)) => *n += 1,
            None => open.counts.push((collection, 1)),
        }
        Ok(())
    }

    /// Creates the topic when it is new to this process; an existing topic is fine.
    const CREATE_HINT: &'static str = " (binlake creates its topics with [transport] partitions and replication_factor; where the broker does not allow that, create the topics beforehand, or let the broker create them with its own defaults: \"allow.auto.create.topics\" = \"true\" in [transport.librdkafka])";

    fn ensure_topic(&mut self, topic: &str) -> Result<(), String> {
        if self.known_topics.contains(topic) {
            return Ok(());
        }
        let exists = self
            .producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .map(|m| {
                m.topics()
                    .iter()
                    .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            })
            .unwrap_or(false);
        if exists {
            self.known_topics.insert(topic.to_string());
            return Ok(());
        }
        let new = NewTopic::new(
            topic,
            self.settings.partitions,
            TopicReplication::Fixed(self.settings.replication_factor),
        );
        let options = AdminOptions::new()
            .request_timeout(Some(Duration::from_secs(10)))
            .operation_timeout(Some(Duration::from_secs(10)));
        let brokers = self.settings.brokers();
        let results = futures_executor::block_on(self.admin.create_topics([&new], &options))
            .map_err(|e| {
                format!(
                    "creating topic {topic} on Kafka at {brokers}: {e}{}",
                    Self::CREATE_HINT
                )
            })?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => {
                    return Err(format!(
                        "creating topic {t} on Kafka at {brokers}: {code}{}",
                        Self::CREATE_HINT
                    ))
                }
            }
        }
        self.known_topics.insert(topic.to_string());
        Ok(())
    }

    fn check_deliveries(&self) -> Result<(), String> {
        match self.producer.context().first_failure.lock().expect("lock").clone() {
            Some(f) => Err(format!("{f}; the change was not dropped: capture stops here and resumes from the last checkpoint")),
            None => Ok(()),
        }
    }

    /// Produces one message, waiting (and serving delivery reports) while the local queue is
    /// full: that is the backpressure that slows capture down to Kafka's pace.
    fn send(
        producer: &BaseProducer<DeliveryReport>,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        schema_id: Option<&str>,
    ) -> Result<(), String> {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic);
        if let Some(id) = schema_id {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: SCHEMA_HEADER,
                value: Some(id),
            }));
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    producer.poll(Duration::from_millis(50));
                    record = back;
                }
                Err((e, _)) => return Err(format!("producing to {topic}: {e}")),
            }
        }
        producer.poll(Duration::ZERO);
        Ok(())
    }

    /// The schema id of `table`, publishing the schema (and waiting for its acknowledgement)
    /// the first time, so a sink never sees a data message whose schema it cannot find.
    fn schema_id(&mut self, table: &Arc<TableSchema>) -> Result<String, String> {
        let address = Arc::as_ptr(table) as usize;
        if let Some((_, id)) = self.published_schemas.get(&address) {
            return Ok(id.clone());
        }
        let id = schema_fingerprint(table);
        let topic = schema_topic(&self.settings.topic_prefix);
        self.ensure_topic(&topic)?;
        let value = serde_json::json!({ "id": id, "table": &**table }).to_string();
        Self::send(
            &self.producer,
            &topic,
            Some(id.as_bytes()),
            Some(value.as_bytes()),
            None,
        )?;
        self.make_durable()?;
        self.published_schemas
            .insert(address, (Arc::clone(table), id.clone()));
        Ok(id)
    }
}

impl SourceOutput for KafkaOutput {
    fn change(&mut self, event: &ChangeEvent<'_>) -> Result<(), String> {
        self.check_deliveries()?;
        if self.changes_since_clock >= 256 {
            self.now_ms = now_ms();
            self.changes_since_clock = 0;
        }
        self.changes_since_clock += 1;
        if self.settings.transaction_topic {
            self.track_transaction(event)?;
        }
        let topic = table_topic(&self.settings.topic_prefix, &event.table.id);
        self.ensure_topic(&topic)?;
        let schema_id = self.schema_id(&event.table)?;
        let producer = &self.producer;
        self.encoder.encode(event, self.now_ms, &mut |key, value| {
            Self::send(producer, &topic, key, value, Some(&schema_id))
        })
    }

    fn commit(&mut self, _commit: &crate::mysql::decoder::Commit) -> Result<(), String> {
        if let Some(open) = self.open_transaction.take() {
            self.transaction_record(&open, true)?;
        }
        Ok(())
    }

    fn heartbeat(&mut self, _file: &str, _pos: u64) -> Result<(), String> {
        if !self.settings.heartbeats {
            return Ok(());
        }
        let topic = format!("__debezium-heartbeat.{}", self.settings.topic_prefix);
        self.ensure_topic(&topic)?;
        let key = serde_json::json!({ "serverName": self.settings.topic_prefix }).to_string();
        let value = serde_json::json!({ "ts_ms": now_ms() }).to_string();
        Self::send(
            &self.producer,
            &topic,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            None,
        )
    }

    fn make_durable(&mut self) -> Result<(), String> {
        self.producer
            .flush(FLUSH_TIMEOUT)
            .map_err(|e| format!("waiting for Kafka to acknowledge: {e}"))?;
        self.check_deliveries()?;
        self.changes_since_clock = u32::MAX;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(librdkafka: &[(&str, &str)]) -> KafkaConfig {
        let mut config = KafkaConfig::new("127.0.0.1:9", "t");
        config.librdkafka = librdkafka
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        config
    }

    #[test]
    fn sasl_ssl_as_azure_event_hubs_wants_it_is_built_in() {
        // Event Hubs' Kafka endpoint: SASL_SSL with PLAIN and the connection string.
        let output = KafkaOutput::new(&settings(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.username", "$ConnectionString"),
            ("sasl.password", "Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v"),
        ]));
        assert!(output.is_ok(), "{:?}", output.err());
        let bad = KafkaOutput::new(&settings(&[("security.protocol", "CARRIER_PIGEON")]));
        let err = bad.err().expect("an unknown protocol is refused");
        assert!(err.contains("security.protocol"), "{err}");
    }
}
