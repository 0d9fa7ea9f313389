//! `binlake source` publishing to Kafka: librdkafka's mock cluster over loopback TCP in this
//! test process, or the real broker in KAFKA_BOOTSTRAP_SERVERS when it is set. The source is
//! the real binary in its own process; a consumer here reads the topics back.

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::{json, Value};

use crate::support::kafka::{broker, consume, one_partition, Broker};
use crate::support::mariadb::MariaDb;
use crate::support::scenario::Scenario;
use crate::support::unique_prefix;

fn write_config(
    dir: &std::path::Path,
    db: &MariaDb,
    broker: &Broker,
    prefix: &str,
    extra: &str,
) -> std::path::PathBuf {
    write_config_for(dir, db, broker, prefix, "shop.*", extra)
}

fn write_config_for(
    dir: &std::path::Path,
    db: &MariaDb,
    broker: &Broker,
    prefix: &str,
    include: &str,
    extra: &str,
) -> std::path::PathBuf {
    Scenario::source(db, 4501)
        .include(include)
        .kafka(broker, prefix, extra)
        .write(dir, "source.toml")
}

fn run_source(config: &std::path::Path) -> (Option<i32>, String) {
    crate::support::binlake(&["source", "--exit-when-caught-up"], config)
}

/// Runs `binlake source --exit-when-caught-up` into Kafka for the tables `include` matches.
pub fn run_source_with(
    db: &MariaDb,
    broker: &Broker,
    dir: &std::path::Path,
    prefix: &str,
    include: &str,
    extra: &str,
) -> (Option<i32>, String) {
    run_source(&write_config_for(dir, db, broker, prefix, include, extra))
}

#[test]
fn kafka_topics_keys_tombstones_and_primary_key_moves() {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(10)); \
         INSERT INTO shop.t VALUES (1, 'a'), (2, 'b'), (3, 'c'); UPDATE shop.t SET v = 'A' WHERE id = 1; \
         UPDATE shop.t SET id = 20 WHERE id = 2; DELETE FROM shop.t WHERE id = 3;",
    );
    let b = broker();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("keys");
    let config = write_config(dir.path(), &db, &b, &prefix, "");
    one_partition(&b, &format!("{prefix}.shop.t"));
    let (code, stderr) = run_source(&config);
    assert_eq!(code, Some(0), "{stderr}");
    let messages = consume(&b, &format!("{prefix}.shop.t"), 9);
    let summary: Vec<(Value, Value, Value, Value)> = messages
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v["op"].clone(),
                v["before"].clone(),
                v["after"].clone(),
            )
        })
        .collect();
    let n = Value::Null;
    assert_eq!(
        summary,
        vec![
            (
                json!({"id": 1}),
                json!("c"),
                n.clone(),
                json!({"id": 1, "v": "a"})
            ),
            (
                json!({"id": 2}),
                json!("c"),
                n.clone(),
                json!({"id": 2, "v": "b"})
            ),
            (
                json!({"id": 3}),
                json!("c"),
                n.clone(),
                json!({"id": 3, "v": "c"})
            ),
            (
                json!({"id": 1}),
                json!("u"),
                json!({"id": 1, "v": "a"}),
                json!({"id": 1, "v": "A"})
            ),
            // The key moves: delete + tombstone under the old key, create under the new.
            (
                json!({"id": 2}),
                json!("d"),
                json!({"id": 2, "v": "b"}),
                n.clone()
            ),
            (json!({"id": 2}), n.clone(), n.clone(), n.clone()),
            (
                json!({"id": 20}),
                json!("c"),
                n.clone(),
                json!({"id": 20, "v": "b"})
            ),
            (
                json!({"id": 3}),
                json!("d"),
                json!({"id": 3, "v": "c"}),
                n.clone()
            ),
            (json!({"id": 3}), n.clone(), n.clone(), n.clone()),
        ]
    );
    assert_eq!(messages[0].1["source"]["name"], prefix);
    assert_eq!(messages[0].1["source"]["db"], "shop");
}

#[test]
fn transient_broker_errors_lose_and_double_nothing() {
    let b = broker();
    let Some(mock) = &b.mock else {
        // Error injection needs the mock cluster; a real broker runs the other tests.
        return;
    };
    let db = MariaDb::start();
    let mut sql = String::from("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY);");
    for i in 1..=200 {
        sql.push_str(&format!("INSERT INTO shop.t VALUES ({i});"));
    }
    db.sql(&sql);
    // Retriable produce errors: the idempotent producer retries without reordering or doubling.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("retry");
    let config = write_config(dir.path(), &db, &b, &prefix, "");
    one_partition(&b, &format!("{prefix}.shop.t"));
    let (code, stderr) = run_source(&config);
    assert_eq!(code, Some(0), "{stderr}");
    let ids: Vec<u64> = consume(&b, &format!("{prefix}.shop.t"), 201)
        .iter()
        .map(|(k, _)| k["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (1..=200).collect::<Vec<u64>>());
}

#[test]
fn delivery_failure_and_broker_outage_stop_capture_without_advancing_the_checkpoint() {
    let b = broker();
    let Some(mock) = &b.mock else {
        return;
    };
    let db = MariaDb::start();
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY); INSERT INTO shop.t VALUES (1), (2), (3);");
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("outage");
    let topic = format!("{prefix}.shop.t");
    one_partition(&b, &topic);
    let config = write_config(
        dir.path(),
        &db,
        &b,
        &prefix,
        "[transport.librdkafka]\n\"message.timeout.ms\" = \"3000\"\n",
    );
    let checkpoint_pos = || -> Value { crate::read_checkpoint(dir.path()).unwrap()["pos"].clone() };

    // A permanent produce error: the delivery report fails, capture stops, nothing is skipped.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 20],
    );
    let (code, stderr) = run_source(&config);
    assert_eq!(code, Some(1), "{stderr}");
    // The first message is the table's schema (on __binlake-schemas.<prefix>), then its data.
    assert!(
        stderr.contains(&format!("delivery to topic {topic} failed"))
            || stderr.contains(&format!(
                "delivery to topic __binlake-schemas.{prefix} failed"
            )),
        "{stderr}"
    );
    assert!(stderr.contains("the change was not dropped"), "{stderr}");
    let after_failure = checkpoint_pos().as_u64().unwrap();
    mock.clear_request_errors(RDKafkaApiKey::Produce);

    // The broker is down: a clear error naming it, and still no checkpoint movement.
    mock.broker_down(1).unwrap();
    let (code, stderr) = run_source(&config);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&b.bootstrap), "{stderr}");
    let after_outage = checkpoint_pos().as_u64().unwrap();
    mock.broker_up(1).unwrap();

    // Back up: everything arrives, in order, once.
    let (code, stderr) = run_source(&config);
    assert_eq!(code, Some(0), "{stderr}");
    let messages = consume(&b, &topic, 3);
    let ids: Vec<u64> = messages
        .iter()
        .map(|(k, _)| k["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    // The failed runs' checkpoint never passed the first change Kafka had not acknowledged
    // (it may pass the DDL transactions before it, which carry no message).
    let first_change = messages[0].1["source"]["pos"].as_u64().unwrap();
    for checkpoint in [after_failure, after_outage] {
        assert!(
            checkpoint <= first_change,
            "checkpoint {checkpoint} passed the change at {first_change}"
        );
    }
}

#[test]
fn transaction_metadata_topic_and_heartbeats() {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.a (id INT PRIMARY KEY); CREATE TABLE shop.b (id INT PRIMARY KEY); \
         START TRANSACTION; INSERT INTO shop.a VALUES (1), (2); INSERT INTO shop.b VALUES (1); COMMIT; \
         INSERT INTO shop.a VALUES (3);",
    );
    let b = broker();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("txn");
    for topic in ["transaction", "shop.a", "shop.b"] {
        one_partition(&b, &format!("{prefix}.{topic}"));
    }
    one_partition(&b, &format!("__debezium-heartbeat.{prefix}"));
    let config = write_config(
        dir.path(),
        &db,
        &b,
        &prefix,
        "transaction_topic = true\nheartbeats = true",
    );
    // Run until the idle binlog has produced a heartbeat, then stop with Ctrl-C.
    let mut source = crate::KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
            .args(["source", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let heartbeats = consume(&b, &format!("__debezium-heartbeat.{prefix}"), 1);
    std::process::Command::new("kill")
        .args(["-INT", &source.id().to_string()])
        .status()
        .unwrap();
    assert!(source.wait().unwrap().success());
    assert_eq!(heartbeats.len(), 1);
    assert_eq!(heartbeats[0].0, json!({"serverName": prefix}));
    assert!(heartbeats[0].1["ts_ms"].as_u64().unwrap() > 1_700_000_000_000);

    let records = consume(&b, &format!("{prefix}.transaction"), 4);
    let status: Vec<&str> = records
        .iter()
        .map(|(_, v)| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["BEGIN", "END", "BEGIN", "END"]);
    let first_id = records[0].1["id"].clone();
    assert_eq!(records[0].0, json!({"id": first_id}));
    assert_eq!(records[1].1["id"], first_id);
    assert_eq!(records[1].1["event_count"], 3);
    assert_eq!(
        records[1].1["data_collections"],
        json!([{"data_collection": "shop.a", "event_count": 2}, {"data_collection": "shop.b", "event_count": 1}])
    );
    assert_eq!(records[3].1["event_count"], 1);
    // The change events name the same transaction.
    let a = consume(&b, &format!("{prefix}.shop.a"), 3);
    assert_eq!(a[0].1["transaction"]["id"], first_id);
    assert_eq!(a[2].1["transaction"]["id"], records[2].1["id"]);
}

/// `[transport] partitions` is what binlake's topics get: its metadata check no longer lets a
/// broker that creates topics on request (Kafka with `auto.create.topics.enable`, the mock
/// cluster) make them first with its own defaults. On a real broker (KAFKA_BOOTSTRAP_SERVERS)
/// the topic has the configured 3 partitions. The mock cluster has no CreateTopics: there
/// capture stops, naming the topic and the two ways out, unless the config lets the broker
/// create topics (`"allow.auto.create.topics" = "true"`).
#[test]
fn topics_get_the_configured_partitions_or_capture_says_why_not() {
    use rdkafka::consumer::Consumer as _;
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY); \
         INSERT INTO shop.t VALUES (1), (2), (3);",
    );
    let b = broker();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("parts");
    let scenario =
        Scenario::source(&db, 4501)
            .include("shop.*")
            .kafka(&b, &prefix, "partitions = 3");
    let topic = format!("{prefix}.shop.t");
    if b.mock.is_some() {
        // As the config is written, without the opt-in the tests add for the mock.
        let raw = dir.path().join("raw.toml");
        std::fs::write(&raw, scenario.text()).unwrap();
        let (code, stderr) = run_source(&raw);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("creating topic {prefix}.")) // the schema topic comes first
                && stderr.contains("create the topics beforehand")
                && stderr.contains("\"allow.auto.create.topics\" = \"true\" in [transport.librdkafka]"),
            "{stderr}"
        );
    }
    let (code, stderr) = run_source(&scenario.write(dir.path(), "source.toml"));
    assert_eq!(code, Some(0), "{stderr}");
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &b.bootstrap)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(&topic), std::time::Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len();
    if b.mock.is_none() {
        assert_eq!(partitions, 3, "{topic}");
    } else {
        // The mock's own default, as the opt-in allows.
        assert_eq!(partitions, 4, "{topic}");
    }
    assert_eq!(consume(&b, &topic, 3).len(), 3);
}
