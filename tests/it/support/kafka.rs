//! The Kafka broker of a test: librdkafka's mock cluster over loopback TCP in this test process,
//! or the real broker in KAFKA_BOOTSTRAP_SERVERS when it is set; and a consumer that reads a
//! topic back.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::Message;
use serde_json::Value;

pub struct Broker {
    pub mock: Option<MockCluster<'static, DefaultProducerContext>>,
    pub bootstrap: String,
}

pub fn broker() -> Broker {
    match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(b) if !b.is_empty() => Broker {
            mock: None,
            bootstrap: b,
        },
        _ => {
            let mock = MockCluster::new(1).unwrap();
            let bootstrap = mock.bootstrap_servers();
            Broker {
                mock: Some(mock),
                bootstrap,
            }
        }
    }
}

/// Whether the tests' Kafka is librdkafka's mock cluster (KAFKA_BOOTSTRAP_SERVERS unset).
pub fn uses_mock() -> bool {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS").map_or(true, |b| b.is_empty())
}

/// A config's TOML as binlake must be given it for the tests' broker. The mock cluster has no
/// CreateTopics (it answers with a timeout) and makes a topic when asked about it, which binlake
/// allows only when told to (`"allow.auto.create.topics" = "true"` in `[transport.librdkafka]`):
/// against the mock, kafka configs say so. A real broker gets binlake's own CreateTopics.
pub fn for_the_broker(toml: &str) -> String {
    if !uses_mock() || !toml.contains("kind = \"kafka\"") {
        return toml.to_string();
    }
    const LINE: &str = "\"allow.auto.create.topics\" = \"true\"\n";
    const HEADER: &str = "[transport.librdkafka]\n";
    match toml.find(HEADER) {
        Some(at) => {
            let mut out = toml.to_string();
            out.insert_str(at + HEADER.len(), LINE);
            out
        }
        None => format!("{toml}\n{HEADER}{LINE}"),
    }
}

/// The mock cluster makes topics with several partitions when it auto-creates them; tests
/// that check the order across keys use one partition (Kafka orders per partition).
pub fn one_partition(b: &Broker, topic: &str) {
    if let Some(mock) = &b.mock {
        mock.create_topic(topic, 1, 1).unwrap();
    }
}

/// Every message of `topic`: reads until nothing new arrives for 3 s after the first one
/// (30 s at most).
pub fn consume_all(broker: &Broker, topic: &str) -> Vec<(Value, Value)> {
    let consumer = consumer_for(broker, topic);
    let mut out = Vec::new();
    let started = Instant::now();
    let mut last = Instant::now();
    // Joining the consumer group takes a moment: the 3 s of quiet count from the first message.
    while (out.is_empty() || last.elapsed() < Duration::from_secs(3))
        && started.elapsed() < Duration::from_secs(30)
    {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            out.push(key_value(&m.unwrap()));
            last = Instant::now();
        }
    }
    out
}

pub fn consumer_for(broker: &Broker, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", format!("test-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

fn key_value(m: &rdkafka::message::BorrowedMessage<'_>) -> (Value, Value) {
    let key = m
        .key()
        .map(|k| serde_json::from_slice(k).unwrap())
        .unwrap_or(Value::Null);
    let value = m
        .payload()
        .map(|v| serde_json::from_slice(v).unwrap())
        .unwrap_or(Value::Null);
    (key, value)
}

/// (key, value) of every message of `topic` from the beginning, `count` of them or fewer
/// after 30 s.
pub fn consume(broker: &Broker, topic: &str, count: usize) -> Vec<(Value, Value)> {
    let consumer = consumer_for(broker, topic);
    let mut out = Vec::new();
    let started = Instant::now();
    while out.len() < count && started.elapsed() < Duration::from_secs(30) {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            out.push(key_value(&m.unwrap()));
        }
    }
    out
}
