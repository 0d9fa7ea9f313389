//! The lake: `binlake run` (embedded and through Kafka) and `binlake sink` against a private
//! MariaDB, with the Delta tables read back here through delta-rs and DataFusion and compared
//! with the server's own SELECT.

use std::path::Path;

use crate::support::lake::{azurite, lake_query, python, source_rows, table_url};
use crate::support::mariadb::MariaDb;
use crate::support::scenario::Scenario;
use crate::support::{binlake, unique_prefix};

pub const SHOP_WORKLOAD: &str = "
CREATE DATABASE shop;
CREATE TABLE shop.orders (id INT PRIMARY KEY, customer VARCHAR(40), amount DECIMAL(10,2),
  status ENUM('new','paid','shipped'), created DATETIME(3), note TEXT);
INSERT INTO shop.orders VALUES
  (1, 'ann', 10.50, 'new', '2024-01-01 10:00:00.123', 'first'),
  (2, 'bob', 20.00, 'new', '2024-01-02 11:00:00.000', NULL),
  (3, 'cy', 30.25, 'new', '2024-01-03 12:00:00.500', 'x'),
  (4, 'dee', 40.00, 'new', '2024-01-04 13:00:00.000', 'y'),
  (5, 'eve', 50.75, 'new', '2024-01-05 14:00:00.999', 'z');
UPDATE shop.orders SET status = 'paid' WHERE id IN (1, 2);
DELETE FROM shop.orders WHERE id = 3;
INSERT INTO shop.orders VALUES (3, 'cy2', 31.00, 'paid', '2024-02-03 12:00:00.000', 'again');
UPDATE shop.orders SET id = 50 WHERE id = 4;
INSERT INTO shop.orders VALUES (6, 'fay', 60.00, 'new', '2024-01-06 15:00:00.000', NULL);
DELETE FROM shop.orders WHERE id = 6;
INSERT INTO shop.orders VALUES (6, 'fay2', 61.00, 'shipped', '2024-03-06 15:00:00.000', 'back');
ALTER TABLE shop.orders ADD COLUMN coupon VARCHAR(10);
UPDATE shop.orders SET coupon = 'SAVE5' WHERE id = 1;
INSERT INTO shop.orders VALUES (7, 'gus', 70.00, 'new', '2024-01-07 16:00:00.000', NULL, 'NEW10');
CREATE TABLE shop.tmp (id INT PRIMARY KEY, v INT);
INSERT INTO shop.tmp VALUES (1, 1), (2, 2), (3, 3);
TRUNCATE shop.tmp;
INSERT INTO shop.tmp VALUES (10, 1);
";

/// Row changes of SHOP_WORKLOAD on shop.orders as messages (a key move is two).
pub const SHOP_ORDERS_CHANGES: usize = 16;
/// Versions history keeps for shop.orders: every change but the deletes.
pub const SHOP_ORDERS_VERSIONS: usize = 13;

pub const ORDERS_SELECT: &str = "SELECT id, customer, amount, status, \
    DATE_FORMAT(created, '%Y-%m-%dT%H:%i:%s.%f'), IFNULL(note, 'NULL'), IFNULL(coupon, 'NULL') \
    FROM shop.orders ORDER BY id";
pub const ORDERS_LAKE: &str = "SELECT id, customer, amount, status, \
    to_char(created, '%Y-%m-%dT%H:%M:%S.%6f'), note, coupon FROM t ORDER BY id";

/// A `run` config over the shop tables of `db`: `transport` and `lake` keys as TOML lines.
pub fn write_run_config(
    dir: &Path,
    db: &MariaDb,
    transport: &str,
    lake: &str,
) -> std::path::PathBuf {
    Scenario::source(db, 4601)
        .include("shop.*")
        .transport(transport)
        .lake(&format!("max_latency_ms = 200\n{lake}"))
        .write(dir, "run.toml")
}

/// Silver, history and bronze of the shop workload, checked against the server.
pub fn assert_shop_lake(db: &MariaDb, lake: &Path) {
    let at = |rel: &str| table_url(lake, rel);
    assert_shop_tables(db, &at, &[]);
}

/// The shop workload's tables, wherever `url` puts them (with storage `options`).
pub fn assert_shop_tables(db: &MariaDb, url: &dyn Fn(&str) -> String, options: &[(&str, &str)]) {
    let silver = url("silver/shop/orders");
    assert_eq!(
        lake_query(&silver, options, ORDERS_LAKE),
        source_rows(db, ORDERS_SELECT),
        "silver shop.orders equals the source"
    );
    assert_eq!(
        lake_query(
            &url("silver/shop/tmp"),
            options,
            "SELECT id, v FROM t ORDER BY id"
        ),
        source_rows(db, "SELECT id, v FROM shop.tmp ORDER BY id"),
        "TRUNCATE emptied silver before the later insert"
    );
    let bronze = url("bronze/shop/orders");
    let counts = lake_query(
        &bronze,
        options,
        "SELECT count(*), count(DISTINCT position) FROM t",
    );
    assert_eq!(
        counts,
        [format!("{SHOP_ORDERS_CHANGES}|{SHOP_ORDERS_CHANGES}")],
        "bronze holds every change once"
    );
    let history = url("silver/shop/orders__history");
    assert_eq!(
        lake_query(&history, options, "SELECT count(*) FROM t"),
        [SHOP_ORDERS_VERSIONS.to_string()]
    );
    // The open versions are exactly silver's rows.
    assert_eq!(
        lake_query(
            &history,
            options,
            &ORDERS_LAKE.replace("FROM t", "FROM t WHERE __end_at IS NULL")
        ),
        source_rows(db, ORDERS_SELECT)
    );
    // Key 3 was deleted and inserted again: two versions, the first closed by the delete.
    assert_eq!(
        lake_query(
            &history,
            options,
            "SELECT customer, _cdc_op, __end_at IS NULL FROM t WHERE id = 3 ORDER BY __start_position"
        ),
        ["cy|c|false", "cy2|c|true"]
    );
    // Key 4 moved to 50: its versions end, the new key's begins.
    assert_eq!(
        lake_query(
            &history,
            options,
            "SELECT id, __end_at IS NULL FROM t WHERE id IN (4, 50) ORDER BY id"
        ),
        ["4|false", "50|true"]
    );
}

/// MySQL's largest DATETIME, a common "never expires" value, at every precision reaches silver
/// (it went to dead letters: the bound checked was the millisecond one), held as a UTC
/// timestamp (the default profile) or as `timestamp_ntz` (`readers = "modern"`).
#[test]
fn the_largest_datetime_reaches_silver_at_every_precision() {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.expiry (id INT PRIMARY KEY, d0 DATETIME, \
         d3 DATETIME(3), d6 DATETIME(6)); INSERT INTO shop.expiry VALUES \
         (1, '9999-12-31 23:59:59', '9999-12-31 23:59:59.999', '9999-12-31 23:59:59.999999'), \
         (2, '1000-01-01 00:00:00', '1000-01-01 00:00:00.000', '1000-01-01 00:00:00.000000');",
    );
    for readers in ["fabric", "modern"] {
        let dir = tempfile::tempdir().unwrap();
        let config = write_run_config(
            dir.path(),
            &db,
            "kind = \"embedded\"",
            &format!("url = \"lake\"\nreaders = \"{readers}\""),
        );
        let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
        assert_eq!(code, Some(0), "{stderr}");
        let lake = dir.path().join("lake");
        // DataFusion's to_char takes a zoned timestamp through nanoseconds, which stop at
        // 2262: the wall clock is read without the zone first.
        let wall = |c: &str| format!("arrow_cast({c}, 'Timestamp(Microsecond, None)')");
        assert_eq!(
            lake_query(
                &table_url(&lake, "silver/shop/expiry"),
                &[],
                &format!(
                    "SELECT id, to_char({}, '%Y-%m-%d %H:%M:%S'), to_char({}, '%Y-%m-%d %H:%M:%S.%3f'), \
                     to_char({}, '%Y-%m-%d %H:%M:%S.%6f') FROM t ORDER BY id",
                    wall("d0"),
                    wall("d3"),
                    wall("d6")
                )
            ),
            [
                "1|9999-12-31 23:59:59|9999-12-31 23:59:59.999|9999-12-31 23:59:59.999999",
                "2|1000-01-01 00:00:00|1000-01-01 00:00:00.000|1000-01-01 00:00:00.000000",
            ],
            "{readers}"
        );
        assert!(
            !lake.join("dead_letters").exists(),
            "no change went to dead letters"
        );
    }
}

#[test]
fn embedded_run_builds_silver_history_and_bronze_exactly_once() {
    let db = MariaDb::start();
    db.sql(SHOP_WORKLOAD);
    let dir = tempfile::tempdir().unwrap();
    let config = write_run_config(dir.path(), &db, "kind = \"embedded\"", "url = \"lake\"");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let lake = dir.path().join("lake");
    assert_shop_lake(&db, &lake);

    // The source forgets its checkpoint and replays the whole binlog: every table already
    // holds those positions, so nothing is applied twice.
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert_shop_lake(&db, &lake);

    // More changes later: applied on top.
    db.sql("UPDATE shop.orders SET amount = amount + 1 WHERE id = 50; DELETE FROM shop.orders WHERE id = 1;");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let silver = table_url(&lake, "silver/shop/orders");
    assert_eq!(
        lake_query(&silver, &[], ORDERS_LAKE),
        source_rows(&db, ORDERS_SELECT)
    );
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/orders__history"),
            &[],
            "SELECT count(*) FROM t WHERE __end_at IS NULL"
        ),
        [source_rows(&db, "SELECT count(*) FROM shop.orders")[0].clone()]
    );
}

fn kafka_transport(broker: &crate::support::kafka::Broker, prefix: &str) -> String {
    format!(
        "kind = \"kafka\"\nbootstrap_servers = \"{}\"\ntopic_prefix = \"{prefix}\"\ngroup_id = \"{prefix}-sink\"",
        broker.bootstrap
    )
}

/// The shop workload on a private MariaDB, published to Kafka by `binlake source`, with a run
/// config whose lake is `lake/` beside it.
struct ShopInKafka {
    db: MariaDb,
    broker: crate::support::kafka::Broker,
    prefix: String,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

fn shop_in_kafka(label: &str) -> ShopInKafka {
    let db = MariaDb::start();
    db.sql(SHOP_WORKLOAD);
    let broker = crate::support::kafka::broker();
    let prefix = unique_prefix(label);
    let dir = tempfile::tempdir().unwrap();
    let config = write_run_config(
        dir.path(),
        &db,
        &kafka_transport(&broker, &prefix),
        "url = \"lake\"",
    );
    let (code, stderr) = binlake(&["source", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    ShopInKafka {
        db,
        broker,
        prefix,
        dir,
        config,
    }
}

/// Records Kafka deleted before the sink read them (retention; here librdkafka's mock cluster,
/// which keeps 5 MB a partition, or DeleteRecords on a real broker) are changes the lake would
/// lack: the sink stops, non-zero, naming the partition and the offsets, instead of jumping to
/// the oldest record left. (The mock cluster keeps 5 MB a partition, counted compressed: the
/// rows are hashes, which do not compress.)
#[test]
fn records_deleted_before_the_sink_read_them_stop_it_visibly() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.many (id INT PRIMARY KEY, v VARCHAR(256)); \
         USE shop; INSERT INTO many SELECT seq, CONCAT(SHA2(seq, 512), SHA2(seq + 1000000, 512)) \
         FROM seq_1_to_200000;",
    );
    let broker = crate::support::kafka::broker();
    let prefix = unique_prefix("gap");
    let dir = tempfile::tempdir().unwrap();
    let config = write_run_config(
        dir.path(),
        &db,
        &kafka_transport(&broker, &prefix),
        "url = \"lake\"",
    );
    let (code, stderr) = binlake(&["source", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    // A real broker keeps everything: delete the first records as retention would. (The mock
    // cluster has no DeleteRecords; its 5 MB limit already dropped the first records of each
    // of its four partitions.)
    let topic = format!("{prefix}.shop.many");
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .create()
        .unwrap();
    let mut upto = rdkafka::TopicPartitionList::new();
    for partition in 0..4 {
        upto.add_partition_offset(&topic, partition, rdkafka::Offset::Offset(100))
            .unwrap();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _ = runtime.block_on(admin.delete_records(&upto, &AdminOptions::new()));
    let (code, stderr) = binlake(&["sink", "--exit-when-caught-up"], &config);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("{topic} partition "))
            && stderr.contains(": the next record is at offset")
            && stderr.contains("but the lake has not applied offsets 0..")
            && stderr.contains("Kafka deleted them unread"),
        "{stderr}"
    );
}

#[test]
fn source_and_sink_processes_through_kafka_build_the_same_lake() {
    let ShopInKafka {
        db,
        // Kept to the end: the mock broker lives as long as this binding.
        broker: _broker,
        prefix,
        dir,
        config,
    } = shop_in_kafka("lake");
    let (code, stderr) = binlake(&["sink", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    // The sink says which partitions the group gave it.
    assert!(
        stderr.contains("the consumer group assigned this sink: ")
            && stderr.contains(&format!("{prefix}.shop.orders:0")),
        "{stderr}"
    );
    let lake = dir.path().join("lake");
    assert_shop_lake(&db, &lake);
    // Kafka coordinates are in bronze.
    let bronze = table_url(&lake, "bronze/shop/orders");
    assert_eq!(
        lake_query(
            &bronze,
            &[],
            "SELECT DISTINCT kafka_topic FROM t WHERE kafka_offset IS NOT NULL"
        ),
        [format!("{prefix}.shop.orders")]
    );
    // A second sink in the same group finds nothing new; a sink in a new group re-reads
    // every message, and the tables' own offsets keep them from being applied twice.
    let (code, stderr) = binlake(&["sink", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("group_id = \"{prefix}-sink\""),
        &format!("group_id = \"{prefix}-other\""),
    );
    std::fs::write(&config, text).unwrap();
    let (code, stderr) = binlake(&["sink", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert_shop_lake(&db, &lake);

    // `run` does both halves through Kafka.
    db.sql("UPDATE shop.orders SET amount = 99.99 WHERE id = 2;");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        lake_query(&table_url(&lake, "silver/shop/orders"), &[], ORDERS_LAKE),
        source_rows(&db, ORDERS_SELECT)
    );
}

/// A workload of `n` inserts, then updates, deletes and re-inserts, big enough for a sink to
/// commit many batches.
fn big_workload(db: &MariaDb, n: u64) {
    db.sql(&format!(
        "CREATE DATABASE shop; USE shop; CREATE TABLE shop.big (id INT PRIMARY KEY, v INT, s VARCHAR(20));
         INSERT INTO shop.big SELECT seq, seq % 97, CONCAT('row', seq) FROM seq_1_to_{n};
         UPDATE shop.big SET v = v + 1000 WHERE id % 4 = 0;
         DELETE FROM shop.big WHERE id % 10 = 3;
         INSERT INTO shop.big SELECT seq, -1, 'back' FROM seq_1_to_{n} WHERE seq % 20 = 3;
         UPDATE shop.big SET s = 'late' WHERE id % 7 = 0;"
    ));
}

const BIG_SELECT: &str = "SELECT id, v, s FROM shop.big ORDER BY id";
const BIG_LAKE: &str = "SELECT id, v, s FROM t ORDER BY id";

#[test]
fn sink_killed_anywhere_applies_every_change_exactly_once() {
    let db = MariaDb::start();
    big_workload(&db, 20_000);
    let b = crate::support::kafka::broker();
    let prefix = unique_prefix("kill");
    let dir = tempfile::tempdir().unwrap();
    let config = write_run_config(
        dir.path(),
        &db,
        &format!(
            "{}\n[transport.librdkafka]\n\"group.instance.id\" = \"sink-1\"",
            kafka_transport(&b, &prefix)
        ),
        "url = \"lake\"\nmax_rows = 1500",
    );
    let (code, stderr) = binlake(&["source", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let messages: usize = db
        .sql("SELECT 20000 + 5000 + 2000 + 1000 + (SELECT count(*) FROM shop.big WHERE id % 7 = 0)")
        .trim()
        .parse()
        .unwrap();
    // SIGKILL the sink at moments spread over its work.
    let mut rng = 0x2545F4914F6CDD1Du64;
    for round in 0..6 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = std::time::Duration::from_millis(300 + rng % 1500);
        let mut child = crate::KillOnDrop(
            std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
                .args(["sink", "--config"])
                .arg(&config)
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(delay);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: the sink was killed");
    }
    let (code, stderr) = binlake(&["sink", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let lake = dir.path().join("lake");
    assert_eq!(
        lake_query(&table_url(&lake, "silver/shop/big"), &[], BIG_LAKE),
        source_rows(&db, BIG_SELECT),
        "silver equals the source"
    );
    assert_eq!(
        lake_query(
            &table_url(&lake, "bronze/shop/big"),
            &[],
            "SELECT count(*), count(DISTINCT position) FROM t"
        ),
        [format!("{messages}|{messages}")],
        "every change in bronze exactly once"
    );
    let live: usize = source_rows(&db, "SELECT count(*) FROM shop.big")[0]
        .parse()
        .unwrap();
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/big__history"),
            &[],
            "SELECT count(*) FILTER (WHERE __end_at IS NULL), count(*) FROM t"
        ),
        [format!("{live}|{}", messages - 2000)],
        "one open version per live row; every change but the deletes is a version"
    );
}

#[test]
fn poison_messages_go_to_dead_letters_and_the_sink_goes_on() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let ShopInKafka {
        db,
        broker: b,
        prefix,
        dir,
        config,
    } = shop_in_kafka("poison");
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &b.bootstrap)
        .create()
        .unwrap();
    let topic = format!("{prefix}.shop.orders");
    for value in [
        "this is not json".to_string(),
        r#"{"op":"c","after":{"id":1},"source":{"db":"shop","table":"nowhere","file":"f.000001","pos":4}}"#.to_string(),
        r#"{"op":"x","source":{"db":"shop","table":"orders"}}"#.to_string(),
    ] {
        producer
            .send(BaseRecord::<str, str>::to(&topic).key("{}").payload(&value))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(std::time::Duration::from_secs(10)).unwrap();
    let (code, stderr) = binlake(&["sink", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let lake = dir.path().join("lake");
    assert_shop_lake(&db, &lake);
    let dead = lake_query(
        &table_url(&lake, "dead_letters"),
        &[],
        "SELECT topic, value, reason FROM t ORDER BY \"offset\"",
    );
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert!(
        dead.iter().all(|d| d.starts_with(&format!("{topic}|"))),
        "{dead:?}"
    );
    assert!(
        dead[0].ends_with("|this is not json|not JSON: expected ident at line 1 column 2"),
        "{dead:?}"
    );
    assert!(dead[1].contains("unknown table shop.nowhere"), "{dead:?}");
    assert!(dead[2].contains("`op` must be c, u, d, r or t"), "{dead:?}");
    assert!(stderr.contains("dead_letters=3"), "{stderr}");
}

/// A change of a replicated table whose value its column cannot hold (here an INT key of
/// 99999999999, produced with the table's real schema header) stops that table at the change,
/// visibly: the sink exits non-zero naming table, column, value and offset, the other tables
/// are applied, `binlake status` shows the stop, and the change is read again by the next run
/// (not acknowledged). With `on_unappliable = "dead_letter"` it goes to dead letters instead,
/// the table catches up with the source, and the stop is cleared.
#[test]
fn a_change_the_lake_cannot_take_stops_its_table_visibly_and_stays_unapplied() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let ShopInKafka {
        db,
        broker: b,
        prefix,
        dir,
        config,
    } = shop_in_kafka("unappliable");

    // The lake first takes everything the source published: which of the two partitions a
    // sink reads first is up to the broker, and the stop below holds back whatever of the
    // other partition comes after the bad change.
    let (code, stderr) = binlake(&["sink", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    // An insert of shop.orders as the source published it, with the schema header it carries.
    let topic = format!("{prefix}.shop.orders");
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &b.bootstrap)
        .set("group.id", format!("{prefix}-peek"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(&topic), std::time::Duration::from_secs(10))
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        assignment
            .add_partition_offset(&topic, p.id(), rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let (headers, value) = loop {
        let m = consumer
            .poll(std::time::Duration::from_secs(10))
            .expect("a record of shop.orders")
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        if value["op"] == "c" {
            let h = m.headers().unwrap().detach();
            break (h, value);
        }
    };
    // At the binlog's current end: after every change the lake has, before the next ones.
    let status = db.sql("SHOW BINLOG STATUS");
    let mut fields = status.split('\t');
    let (file, pos) = (fields.next().unwrap(), fields.next().unwrap());
    let mut poison = value.clone();
    poison["after"]["id"] = serde_json::json!(99_999_999_999i64);
    poison["source"]["file"] = serde_json::json!(file);
    poison["source"]["pos"] = serde_json::json!(pos.trim().parse::<u64>().unwrap());
    poison["source"]["row"] = serde_json::json!(0);
    let mut sent = OwnedHeaders::new();
    for h in headers.iter() {
        sent = sent.insert(h);
    }
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &b.bootstrap)
        .create()
        .unwrap();
    producer
        .send(
            BaseRecord::<str, [u8]>::to(&topic)
                .key("{\"id\":99999999999}")
                .payload(&serde_json::to_vec(&poison).unwrap()[..])
                .headers(sent),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(std::time::Duration::from_secs(10)).unwrap();
    // Later changes: one of the stopped table, one of another table.
    db.sql(
        "INSERT INTO shop.orders VALUES (8, 'hal', 80.00, 'new', '2024-04-01 09:00:00.000', NULL, NULL); \
         INSERT INTO shop.tmp VALUES (77, 77);",
    );
    let (code, stderr) = binlake(&["source", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");

    let lake = dir.path().join("lake");
    for run in ["first", "second"] {
        let (code, stderr) = binlake(&["sink", "--exit-when-caught-up"], &config);
        assert_ne!(
            code,
            Some(0),
            "{run} run: a stopped table fails the run\n{stderr}"
        );
        assert!(
            stderr
                .contains("shop.orders: stopped applying: column id: 99999999999 is out of range"),
            "{run} run: {stderr}"
        );
        assert!(
            stderr.contains(&format!("{topic} partition ")) && stderr.contains(" offset "),
            "{run} run: names the offset: {stderr}"
        );
        assert_eq!(
            lake_query(
                &table_url(&lake, "silver/shop/tmp"),
                &[],
                "SELECT id, v FROM t ORDER BY id"
            ),
            source_rows(&db, "SELECT id, v FROM shop.tmp ORDER BY id"),
            "{run} run: the other tables go on"
        );
        let ids = lake_query(
            &table_url(&lake, "silver/shop/orders"),
            &[],
            "SELECT id FROM t ORDER BY id",
        );
        // Changes of other keys (other partitions) may be applied, each key in order; the
        // bad change is not, nor anything after it in its partition.
        assert!(
            ids.starts_with(&["1", "2", "3", "5", "6"].map(String::from))
                && !ids.contains(&"99999999999".to_string()),
            "{run} run: {ids:?}"
        );
    }
    let (code, status) = crate::support::binlake_stdout(&["status"], &config);
    assert_eq!(code, Some(0), "{status}");
    assert!(
        status.contains(
            "STOPPED shop.orders: stopped applying: column id: 99999999999 is out of range"
        ),
        "{status}"
    );

    // The user chooses to skip such changes: the table catches up, the stop is over.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "url = \"lake\"",
        "url = \"lake\"\non_unappliable = \"dead_letter\"",
    );
    std::fs::write(&config, text).unwrap();
    let (code, stderr) = binlake(&["sink", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        lake_query(&table_url(&lake, "silver/shop/orders"), &[], ORDERS_LAKE),
        source_rows(&db, ORDERS_SELECT),
        "silver shop.orders equals the source"
    );
    let dead = lake_query(
        &table_url(&lake, "dead_letters"),
        &[],
        "SELECT topic, reason FROM t",
    );
    assert_eq!(
        dead,
        [format!("{topic}|column id: 99999999999 is out of range")]
    );
    let (_, status) = crate::support::binlake_stdout(&["status"], &config);
    assert!(!status.contains("STOPPED"), "{status}");
}

/// `exclude_columns` and `mask_columns`: the password hash never leaves the host and the e-mail
/// address leaves only as the salted SHA-256 the test computes, in the snapshot and in streamed
/// inserts and updates alike; neither appears in bronze, silver, history or the debug log.
#[test]
fn excluded_and_masked_columns_never_leave_the_host() {
    use sha2::Digest;
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.users (id INT PRIMARY KEY, \
         email VARCHAR(100), password_hash VARCHAR(100), name VARCHAR(40)); \
         INSERT INTO shop.users VALUES (1, 'ann@example.com', '$2y$10$annsecret', 'Ann');",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = Scenario::source(&db, 4611)
        .include("shop.*")
        .snapshot("initial")
        .source_keys(
            "exclude_columns = [\"shop.users.password_hash\"]\n\
             mask_columns = { \"shop.users.email\" = \"sha256\" }\n\
             mask_salt = \"${BINLAKE_MASK_SALT}\"",
        )
        .embedded_lake()
        .write(dir.path(), "run.toml");
    let run = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
            .args(["run", "--exit-when-caught-up", "--config"])
            .arg(&config)
            .env("BINLAKE_MASK_SALT", "pepper-42")
            .env("BINLAKE_LOG", "debug")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let mut logs = run();
    db.sql(
        "INSERT INTO shop.users VALUES (2, 'bob@example.com', '$2y$10$bobsecret', 'Bob'); \
         UPDATE shop.users SET email = 'ann@new.example.com', password_hash = '$2y$10$annsecret2' WHERE id = 1;",
    );
    logs.push_str(&run());

    let mask = |email: &str| {
        let mut h = sha2::Sha256::new();
        h.update(b"pepper-42");
        h.update(email.as_bytes());
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let lake = dir.path().join("lake");
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/users"),
            &[],
            "SELECT id, email, name FROM t ORDER BY id"
        ),
        [
            format!("1|{}|Ann", mask("ann@new.example.com")),
            format!("2|{}|Bob", mask("bob@example.com")),
        ]
    );
    let history = lake_query(
        &table_url(&lake, "silver/shop/users__history"),
        &[],
        "SELECT id, email FROM t ORDER BY id, __start_position",
    );
    assert_eq!(
        history,
        [
            format!("1|{}", mask("ann@example.com")),
            format!("1|{}", mask("ann@new.example.com")),
            format!("2|{}", mask("bob@example.com")),
        ]
    );
    for table in [
        "silver/shop/users",
        "silver/shop/users__history",
        "bronze/shop/users",
    ] {
        let everything = lake_query(&table_url(&lake, table), &[], "SELECT * FROM t").join("\n");
        for secret in ["secret", "example.com", "password_hash"] {
            assert!(
                !everything.contains(secret),
                "{table} holds {secret:?}: {everything}"
            );
        }
    }
    for secret in ["secret", "example.com"] {
        assert!(!logs.contains(secret), "the log holds {secret:?}");
    }
    assert!(logs.contains("shop.users"), "the debug log did run");
}

/// Column type changes the server makes without a row event (the key INT → BIGINT as ids run
/// out, INT → BIGINT, DECIMAL(10,2) → DECIMAL(14,2), FLOAT → DOUBLE, DATE → DATETIME, INT →
/// VARCHAR): silver and history are rewritten from their own rows, no re-snapshot, and the rows
/// after hold values only the new types can. Silver equals the server; history keeps every
/// version.
#[test]
fn column_type_changes_rewrite_silver_and_history_without_a_resnapshot() {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.widen (id INT PRIMARY KEY, n INT, \
         d DECIMAL(10,2), f FLOAT, day DATE, code INT); \
         INSERT INTO shop.widen VALUES (1, 100, 12345678.91, 1.5, '2024-01-02', 7), \
         (2, -5, -0.50, 2.25, '2024-02-03', 42); \
         UPDATE shop.widen SET n = 101 WHERE id = 1;",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_run_config(dir.path(), &db, "kind = \"embedded\"", "url = \"lake\"");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    db.sql(
        "ALTER TABLE shop.widen MODIFY id BIGINT, MODIFY n BIGINT, MODIFY d DECIMAL(14,2), \
         MODIFY f DOUBLE, MODIFY day DATETIME, MODIFY code VARCHAR(20); \
         INSERT INTO shop.widen VALUES (5000000000, 9000000000, 123456789012.34, 3.75, \
         '2024-03-04 05:06:07', 'abc'); \
         UPDATE shop.widen SET n = 8000000000 WHERE id = 1;",
    );
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("rewrote the table for id"), "{stderr}");
    let lake = dir.path().join("lake");
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/widen"),
            &[],
            "SELECT id, n, d, f, to_char(day, '%Y-%m-%dT%H:%M:%S'), code FROM t ORDER BY id"
        ),
        source_rows(
            &db,
            "SELECT id, n, d, f, DATE_FORMAT(day, '%Y-%m-%dT%H:%i:%s'), code FROM shop.widen ORDER BY id"
        ),
        "silver equals the server after the type changes"
    );
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/widen__history"),
            &[],
            "SELECT id, n, code, __end_position IS NULL FROM t ORDER BY id, __start_position"
        ),
        [
            "1|100|7|false",
            "1|101|7|false",
            "1|8000000000|7|true",
            "2|-5|42|true",
            "5000000000|9000000000|abc|true"
        ]
    );
    // The rewrite keeps the table's features: deletion vectors stay on.
    let mut commits: Vec<_> = std::fs::read_dir(lake.join("silver/shop/widen/_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    commits.sort();
    let log = commits
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let last = |action: &str| {
        log.lines()
            .rfind(|l| l.contains(action))
            .unwrap()
            .to_string()
    };
    let metadata = last("\"metaData\"");
    assert!(
        metadata.contains("\"name\\\":\\\"id\\\",\\\"type\\\":\\\"long\\\""),
        "{metadata}"
    );
    let protocol = last("\"protocol\"");
    assert!(protocol.contains("deletionVectors"), "{protocol}");
}

/// `key_columns` given later to a table with no key: silver, a multiset until then, is
/// refilled by the new key (the source reads the table again when the keys it is configured
/// with change, whatever `snapshot` says), and updates by the key apply.
#[test]
fn key_columns_given_later_refill_a_keyless_table_by_its_key() {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.ev (tenant INT NOT NULL, n INT NOT NULL, v INT); \
         USE shop; INSERT INTO ev SELECT seq % 3, seq, seq FROM seq_1_to_60;",
    );
    let dir = tempfile::tempdir().unwrap();
    let scenario = || {
        Scenario::source(&db, 4620)
            .include("shop.*")
            .embedded_lake()
    };
    let config = scenario().write(dir.path(), "run.toml");
    let silver = table_url(&dir.path().join("lake"), "silver/shop/ev");
    let select = "SELECT tenant, n, v FROM t ORDER BY tenant, n, v";
    let source = "SELECT tenant, n, v FROM shop.ev ORDER BY tenant, n, v";
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(lake_query(&silver, &[], select), source_rows(&db, source));
    let config = scenario()
        .source_keys("key_columns = { \"shop.ev\" = [\"tenant\", \"n\"] }")
        .write(dir.path(), "run.toml");
    db.sql("UPDATE shop.ev SET v = -1 WHERE tenant = 1 AND n = 4;");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("key_columns_changed"), "{stderr}");
    assert_eq!(lake_query(&silver, &[], select), source_rows(&db, source));
    assert_eq!(
        lake_query(
            &silver,
            &[],
            "SELECT count(DISTINCT tenant * 1000 + n), count(*) FROM t"
        ),
        ["60|60"],
        "keyed by (tenant, n)"
    );
}

/// DDL that rounds values without row events: a lower DECIMAL scale is cast as the server
/// rounds (half away from zero), and fewer fractional digits of a DATETIME (MariaDB truncates
/// them, MySQL rounds) read the table again. Silver equals the server after both.
#[test]
fn ddl_that_rounds_values_leaves_silver_equal_to_the_server() {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.r (id INT PRIMARY KEY, d DECIMAL(10,4), at DATETIME(6)); \
         INSERT INTO shop.r VALUES (1, 1.2350, '2024-01-01 10:00:00.700000'), \
         (2, -1.2350, '2024-01-01 10:00:00.300000'), (3, 1.2349, '2024-12-31 23:59:59.999999');",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_run_config(dir.path(), &db, "kind = \"embedded\"", "url = \"lake\"");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    db.sql(
        "ALTER TABLE shop.r MODIFY d DECIMAL(10,2), MODIFY at DATETIME(0); \
         UPDATE shop.r SET d = 5 WHERE id = 3;",
    );
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let lake = dir.path().join("lake");
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/r"),
            &[],
            "SELECT id, d, to_char(at, '%Y-%m-%d %H:%M:%S.%6f') FROM t ORDER BY id"
        ),
        source_rows(
            &db,
            "SELECT id, d, DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s.%f') FROM shop.r ORDER BY id"
        )
    );
    assert_eq!(
        source_rows(&db, "SELECT d FROM shop.r ORDER BY id"),
        ["1.24", "-1.24", "5.00"],
        "the server rounded"
    );
}

/// Tables without a primary key reach silver and history: one keyed by `key_columns`, one by
/// its NOT NULL unique key (declared at start, and one added later by CREATE UNIQUE INDEX);
/// updates and deletes by those columns apply as on any keyed table.
#[test]
fn key_columns_and_unique_keys_bring_tables_without_a_primary_key_to_silver() {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.events (tenant INT NOT NULL, event_id INT NOT NULL, v VARCHAR(10)); \
         INSERT INTO shop.events VALUES (1, 1, 'a'), (1, 2, 'b'), (2, 1, 'c'); \
         UPDATE shop.events SET v = 'b2' WHERE tenant = 1 AND event_id = 2; \
         DELETE FROM shop.events WHERE tenant = 2 AND event_id = 1; \
         INSERT INTO shop.events VALUES (2, 2, 'd'); \
         CREATE TABLE shop.skus (sku VARCHAR(10) NOT NULL, price INT, note VARCHAR(10) UNIQUE, UNIQUE KEY by_sku (sku)); \
         INSERT INTO shop.skus VALUES ('a', 1, NULL), ('b', 2, NULL), ('c', 3, 'x'); \
         UPDATE shop.skus SET price = 20 WHERE sku = 'b'; DELETE FROM shop.skus WHERE sku = 'a'; \
         CREATE TABLE shop.later (n INT NOT NULL, v INT); \
         CREATE UNIQUE INDEX by_n ON shop.later (n); \
         INSERT INTO shop.later VALUES (1, 1), (2, 2); UPDATE shop.later SET v = 22 WHERE n = 2; \
         DELETE FROM shop.later WHERE n = 1;",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = Scenario::source(&db, 4612)
        .include("shop.*")
        .source_keys("key_columns = { \"shop.events\" = [\"tenant\", \"event_id\"] }")
        .embedded_lake()
        .write(dir.path(), "run.toml");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let lake = dir.path().join("lake");
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/events"),
            &[],
            "SELECT tenant, event_id, v FROM t ORDER BY tenant, event_id"
        ),
        source_rows(
            &db,
            "SELECT tenant, event_id, v FROM shop.events ORDER BY tenant, event_id"
        )
    );
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/events__history"),
            &[],
            "SELECT count(*) FROM t"
        ),
        ["5"],
        "one version per insert and update"
    );
    for (table, select) in [
        ("skus", "SELECT sku, price FROM {} ORDER BY sku"),
        ("later", "SELECT n, v FROM {} ORDER BY n"),
    ] {
        assert_eq!(
            lake_query(
                &table_url(&lake, &format!("silver/shop/{table}")),
                &[],
                &select.replace("{}", "t")
            ),
            source_rows(&db, &select.replace("{}", &format!("shop.{table}"))),
            "{table}"
        );
    }
}

/// A table added to `include` on a pipeline that has run: the next start snapshots it by itself,
/// chunked and without a lock, while streaming of the other table goes on from the
/// checkpoint, with writes to both running the whole time: silver equals the server for both.
#[test]
fn a_table_added_to_include_later_is_snapshotted_while_streaming_goes_on() {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.a (id INT PRIMARY KEY, v INT); \
         CREATE TABLE shop.b (id INT PRIMARY KEY, v INT); \
         INSERT INTO shop.a VALUES (1, 1), (2, 2); \
         USE shop; INSERT INTO b SELECT seq, seq FROM seq_1_to_20000;",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = Scenario::source(&db, 4613)
        .include("shop.a")
        .snapshot("initial")
        .source_keys("snapshot_chunk_rows = 2000")
        .embedded_lake()
        .write(dir.path(), "run.toml");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let lake = dir.path().join("lake");
    assert!(
        !lake.join("silver/shop/b").exists(),
        "b is not included yet"
    );

    let text = std::fs::read_to_string(&config).unwrap().replace(
        "include = [\"shop.a\"]",
        "include = [\"shop.a\", \"shop.b\"]",
    );
    assert!(text.contains("\"shop.b\""), "{text}");
    std::fs::write(&config, text).unwrap();
    let mut script = String::from("USE shop;\n");
    for i in 0..150u64 {
        let k = 1 + (i * 131) % 20_000;
        script.push_str(&format!(
            "UPDATE b SET v = v + 100000 WHERE id BETWEEN {k} AND {k} + 20; DELETE FROM b WHERE id = {d}; \
             INSERT INTO b VALUES ({n}, {i}); UPDATE a SET v = v + 1 WHERE id = 1; SELECT SLEEP(0.01);\n",
            d = k + 30,
            n = 100_000 + i,
        ));
    }
    let writer = db.spawn_writer(script);
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("tables added to include: snapshotting them while streaming goes on"),
        "{stderr}"
    );
    writer.join().unwrap();
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    for table in ["a", "b"] {
        assert_eq!(
            lake_query(
                &table_url(&lake, &format!("silver/shop/{table}")),
                &[],
                "SELECT id, v FROM t ORDER BY id"
            ),
            source_rows(&db, &format!("SELECT id, v FROM shop.{table} ORDER BY id")),
            "silver shop.{table} equals the server"
        );
    }
}

/// `binlake snapshot` on a running pipeline: rows the binlog never had (written with
/// sql_log_bin = 0) are backfilled, first the slice `--where` selects through the signal table,
/// then the whole table through a file signal, while writes go on: silver ends equal to the
/// server, and signals are never published.
#[test]
fn binlake_snapshot_backfills_a_table_or_a_slice_while_streaming_goes_on() {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.r (id INT PRIMARY KEY, v INT); \
         USE shop; INSERT INTO r SELECT seq, seq FROM seq_1_to_1000; \
         SET sql_log_bin = 0; INSERT INTO r SELECT seq, seq FROM seq_1001_to_3000; SET sql_log_bin = 1;",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = Scenario::source(&db, 4614)
        .include("shop.*")
        .source_keys("snapshot_chunk_rows = 400")
        .embedded_lake()
        .write(dir.path(), "run.toml");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let lake = dir.path().join("lake");
    let silver = table_url(&lake, "silver/shop/r");
    assert_eq!(lake_query(&silver, &[], "SELECT count(*) FROM t"), ["1000"]);

    let (code, out) = crate::support::binlake_stdout(
        &["snapshot", "--table", "shop.r", "--where", "id <= 1500"],
        &config,
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with("asked for a snapshot of shop.r (signal snapshot-"),
        "{out}"
    );
    let mut script = String::from("USE shop;\n");
    for i in 0..100u64 {
        script.push_str(&format!(
            "UPDATE r SET v = v + 7 WHERE id = {k}; INSERT INTO r VALUES ({n}, {i}); SELECT SLEEP(0.005);\n",
            k = 1 + (i * 37) % 1400,
            n = 5_000 + i,
        ));
    }
    let writer = db.spawn_writer(script);
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("snapshot requested"), "{stderr}");
    writer.join().unwrap();
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        lake_query(&silver, &[], "SELECT id, v FROM t ORDER BY id"),
        source_rows(
            &db,
            "SELECT id, v FROM shop.r WHERE id <= 1500 OR id > 3000 ORDER BY id"
        ),
        "the slice is backfilled, the rest of the unlogged rows are not"
    );

    let (code, out) = crate::support::binlake_stdout(
        &["snapshot", "--table", "shop.r", "--via", "file"],
        &config,
    );
    assert_eq!(code, Some(0), "{out}");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    // The file signal is read between transactions; a commit makes sure one comes.
    db.sql("UPDATE shop.r SET v = v + 1 WHERE id = 1;");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        lake_query(&silver, &[], "SELECT id, v FROM t ORDER BY id"),
        source_rows(&db, "SELECT id, v FROM shop.r ORDER BY id"),
        "the whole table is backfilled"
    );
    assert!(
        !lake.join("silver/binlake").exists() && !lake.join("bronze/binlake").exists(),
        "signals are never published"
    );
}

/// A table with no key at all reaches silver as a multiset of whole rows: identical rows are
/// kept apart, a delete or an update takes one copy, NULL matches NULL, rows written before an
/// ADD COLUMN are found after it. Given a primary key (an AUTO_INCREMENT column the server
/// fills without row events) silver is refilled by the new key; with the key dropped it is a
/// multiset again, re-keyed in place, and given a key on a column it holds, re-keyed in place
/// by it. Silver equals the server after every step, and history
/// has one open version per row.
#[test]
fn a_table_without_any_key_reaches_silver_as_a_multiset() {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.log (at INT NOT NULL, what VARCHAR(20), n DECIMAL(6,2)); \
         USE shop; INSERT INTO log SELECT seq % 50, IF(seq % 7 = 0, NULL, CONCAT('w', seq % 3)), \
         IF(seq % 5 = 0, NULL, seq % 4) FROM seq_1_to_300;",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = Scenario::source(&db, 4619)
        .include("shop.*")
        .snapshot("initial")
        .embedded_lake()
        .write(dir.path(), "run.toml");
    let lake = dir.path().join("lake");
    let silver = table_url(&lake, "silver/shop/log");
    let history = table_url(&lake, "silver/shop/log__history");
    let run_and_compare = |columns: &str, step: &str| {
        let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
        assert_eq!(code, Some(0), "{step}: {stderr}");
        let list = columns
            .split(", ")
            .map(|c| format!("IFNULL({c}, 'NULL')"))
            .collect::<Vec<_>>()
            .join(", ");
        let lake_list = columns
            .split(", ")
            .map(|c| format!("COALESCE(CAST({c} AS VARCHAR), 'NULL')"))
            .collect::<Vec<_>>()
            .join(", ");
        let order = (1..=columns.split(", ").count())
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let expected = source_rows(
            &db,
            &format!("SELECT {list} FROM shop.log ORDER BY {order}"),
        );
        assert_eq!(
            lake_query(
                &silver,
                &[],
                &format!("SELECT {lake_list} FROM t ORDER BY {order}")
            ),
            expected,
            "{step}: silver holds the server's rows, each copy once"
        );
        assert_eq!(
            lake_query(
                &history,
                &[],
                "SELECT count(*) FROM t WHERE __end_at IS NULL"
            ),
            [expected.len().to_string()],
            "{step}: one open version per row"
        );
    };
    run_and_compare("at, what, n", "snapshot");
    let copies = |at: i32| db.sql(&format!("SELECT count(*) FROM shop.log WHERE at = {at}"));
    assert_eq!(copies(1).trim(), "6", "the workload has identical rows");
    db.sql(
        "USE shop; INSERT INTO log VALUES (1, 'w1', 1), (1, 'w1', 1), (60, NULL, NULL); \
         DELETE FROM log WHERE at = 2 LIMIT 1; \
         DELETE FROM log WHERE what IS NULL AND n IS NULL LIMIT 2; \
         UPDATE log SET n = 9 WHERE at = 3 LIMIT 2; \
         UPDATE log SET what = 'x' WHERE at = 4; \
         DELETE FROM log WHERE at = 77;",
    );
    run_and_compare("at, what, n", "inserts, deletes and updates of copies");
    // Read again, the table replaces what silver held (no row counted twice); a slice of a
    // multiset is refused.
    let (code, stderr) = binlake(
        &[
            "snapshot", "--table", "shop.log", "--where", "at = 1", "--via", "file",
        ],
        &config,
    );
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("--where: shop.log has no primary key"),
        "{stderr}"
    );
    let (code, stderr) = binlake(
        &["snapshot", "--table", "shop.log", "--via", "file"],
        &config,
    );
    assert_eq!(code, Some(0), "{stderr}");
    db.sql("INSERT INTO shop.log VALUES (61, 'after', 1);");
    run_and_compare("at, what, n", "read again");
    db.sql(
        "USE shop; ALTER TABLE log ADD COLUMN note VARCHAR(10) NULL; \
         DELETE FROM log WHERE at = 5 LIMIT 1; UPDATE log SET note = 'hi' WHERE at = 6 LIMIT 1; \
         INSERT INTO log VALUES (6, 'w0', NULL, NULL);",
    );
    run_and_compare("at, what, n, note", "after ADD COLUMN");
    db.sql(
        "USE shop; ALTER TABLE log ADD COLUMN id INT NOT NULL AUTO_INCREMENT PRIMARY KEY FIRST; \
         UPDATE log SET n = -1 WHERE id = 3; DELETE FROM log WHERE id = 4;",
    );
    run_and_compare("id, at, what, n", "given a key");
    db.sql(
        "USE shop; ALTER TABLE log MODIFY id INT NOT NULL, DROP PRIMARY KEY; \
         INSERT INTO log VALUES (7, 7, 'w7', NULL, NULL), (7, 7, 'w7', NULL, NULL); \
         DELETE FROM log WHERE id = 7 LIMIT 1; UPDATE log SET what = 'y' WHERE id = 8;",
    );
    run_and_compare("id, at, what, n", "the key dropped again");
    // A key on a column silver holds: re-keyed from its own rows.
    db.sql(
        "USE shop; DELETE FROM log WHERE id = 7 LIMIT 1; ALTER TABLE log ADD PRIMARY KEY (id); \
         UPDATE log SET n = 1 WHERE id = 9;",
    );
    run_and_compare("id, at, what, n", "given a key on a column it holds");
}

/// A table renamed into the capture (RENAME TABLE staging TO live, the usual swap of a table
/// rebuilt offline) holds rows no insert carries: it is snapshotted by itself while streaming
/// goes on, and silver equals the server.
#[test]
fn a_table_renamed_into_the_capture_is_snapshotted() {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.staging (id INT PRIMARY KEY, v INT); \
         USE shop; INSERT INTO staging SELECT seq, seq FROM seq_1_to_500;",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = Scenario::source(&db, 4615)
        .include("shop.live")
        .embedded_lake()
        .write(dir.path(), "run.toml");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    db.sql(
        "RENAME TABLE shop.staging TO shop.live; \
         INSERT INTO shop.live VALUES (1000, 1000); UPDATE shop.live SET v = 7 WHERE id = 7;",
    );
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        lake_query(
            &table_url(&dir.path().join("lake"), "silver/shop/live"),
            &[],
            "SELECT count(*), sum(v) FROM t"
        ),
        source_rows(&db, "SELECT count(*), sum(v) FROM shop.live")
    );
}

/// Through Kafka too: no message, key or published schema of a table with excluded and masked
/// columns holds their values or the excluded column's name.
#[test]
fn excluded_and_masked_columns_never_reach_kafka() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.users (id INT PRIMARY KEY, \
         email VARCHAR(100), password_hash VARCHAR(100)); \
         INSERT INTO shop.users VALUES (1, 'ann@example.com', '$2y$10$annsecret'); \
         UPDATE shop.users SET email = 'ann@new.example.com' WHERE id = 1;",
    );
    let b = crate::support::kafka::broker();
    let prefix = unique_prefix("masked");
    let dir = tempfile::tempdir().unwrap();
    let config = Scenario::source(&db, 4616)
        .include("shop.*")
        .source_keys(
            "exclude_columns = [\"shop.users.password_hash\"]\n\
             mask_columns = { \"shop.users.email\" = \"sha256\" }\n\
             mask_salt = \"${BINLAKE_MASK_SALT}\"",
        )
        .transport(&kafka_transport(&b, &prefix))
        .write(dir.path(), "source.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
        .args(["source", "--exit-when-caught-up", "--config"])
        .arg(&config)
        .env("BINLAKE_MASK_SALT", "pepper-42")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen = Vec::new();
    for topic in [
        format!("{prefix}.shop.users"),
        format!("__binlake-schemas.{prefix}"),
    ] {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &b.bootstrap)
            .set("group.id", format!("{prefix}-peek-{topic}"))
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some(&topic), std::time::Duration::from_secs(10))
            .unwrap();
        let mut assignment = rdkafka::TopicPartitionList::new();
        for p in metadata.topics()[0].partitions() {
            let (low, high) = consumer
                .fetch_watermarks(&topic, p.id(), std::time::Duration::from_secs(10))
                .unwrap();
            if high > low {
                assignment
                    .add_partition_offset(&topic, p.id(), rdkafka::Offset::Beginning)
                    .unwrap();
            }
        }
        consumer.assign(&assignment).unwrap();
        let before = seen.len();
        while let Some(m) = consumer.poll(std::time::Duration::from_secs(5)) {
            let m = m.unwrap();
            seen.push(format!(
                "{} {}",
                String::from_utf8_lossy(m.key().unwrap_or_default()),
                String::from_utf8_lossy(m.payload().unwrap_or_default())
            ));
        }
        assert!(seen.len() > before, "{topic} has messages");
    }
    let all = seen.join("\n");
    for secret in ["secret", "example.com", "password_hash"] {
        assert!(!all.contains(secret), "Kafka holds {secret:?}: {all}");
    }
    assert!(
        all.contains("\"email\""),
        "the masked column is there: {all}"
    );
}

#[test]
fn sink_survives_broker_errors_without_loss_or_doubles() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let b = crate::support::kafka::broker();
    let Some(mock) = &b.mock else {
        // Error injection needs the mock cluster; the other tests cover a real broker.
        return;
    };
    let db = MariaDb::start();
    big_workload(&db, 3_000);
    let prefix = unique_prefix("faults");
    let dir = tempfile::tempdir().unwrap();
    let config = write_run_config(
        dir.path(),
        &db,
        &kafka_transport(&b, &prefix),
        "url = \"lake\"\nmax_rows = 500",
    );
    let (code, stderr) = binlake(&["source", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    // Fetches and offset commits fail for a while: the consumer retries fetches, a failed
    // group commit only means re-reading.
    let errors = [
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
    ];
    mock.request_errors(RDKafkaApiKey::Fetch, &errors);
    mock.request_errors(RDKafkaApiKey::OffsetCommit, &errors);
    let (code, stderr) = binlake(&["sink", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let lake = dir.path().join("lake");
    assert_eq!(
        lake_query(&table_url(&lake, "silver/shop/big"), &[], BIG_LAKE),
        source_rows(&db, BIG_SELECT)
    );
    let messages = lake_query(
        &table_url(&lake, "bronze/shop/big"),
        &[],
        "SELECT count(*), count(DISTINCT position) FROM t",
    );
    let parts: Vec<&str> = messages[0].split('|').collect();
    assert_eq!(parts[0], parts[1], "no change twice in bronze");
}

#[test]
fn every_documented_lake_url_form_works_on_azurite_and_local_disk() {
    let _ = azurite();
    let db = MariaDb::start();
    db.sql(SHOP_WORKLOAD);
    let forms = |c: &str, dir: &Path| {
        vec![
            format!("az://{c}/lake"),
            format!("abfs://{c}@devstoreaccount1.dfs.core.windows.net/lake"),
            format!("abfss://{c}@devstoreaccount1.dfs.core.windows.net/lake"),
            format!("https://devstoreaccount1.blob.core.windows.net/{c}/lake"),
            format!("file://{}/lake", dir.display()),
        ]
    };
    for (i, name) in ["az", "abfs", "abfss", "https", "file"].iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let container = unique_prefix(name);
        let url = forms(&container, dir.path())[i].clone();
        let storage = if *name == "file" {
            ""
        } else {
            "[lake.storage]\nuse_emulator = \"true\""
        };
        let config = write_run_config(
            dir.path(),
            &db,
            "kind = \"embedded\"",
            &format!("url = \"{url}\"\n{storage}"),
        );
        let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
        assert_eq!(code, Some(0), "{url}: {stderr}");
        let options: &[(&str, &str)] = if *name == "file" {
            &[]
        } else {
            &[("use_emulator", "true")]
        };
        let option_map = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let storage =
            binlake::lake::storage::LakeStorage::new(&url, &option_map, dir.path()).unwrap();
        let table = |rel: &str| storage.table_url(rel).unwrap().to_string();
        assert_shop_tables(&db, &table, storage_options(&storage).as_slice());
    }
}

fn storage_options(storage: &binlake::lake::storage::LakeStorage) -> Vec<(&str, &str)> {
    storage
        .options()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Python's deltalake reads every layer value by value: deletion-vector silver through
/// `scan()` (its pyarrow-dataset readers refuse the feature), copy-on-write silver through
/// `to_pyarrow_table()` as well.
#[test]
fn python_deltalake_reads_what_binlake_wrote() {
    let python = python();
    let db = MariaDb::start();
    db.sql(SHOP_WORKLOAD);
    for (mode, reader) in [
        ("deletion_vectors", "scan"),
        ("copy_on_write", "to_pyarrow_table"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        // Small batches, so that later ones replace and delete rows earlier ones wrote.
        let config = write_run_config(
            dir.path(),
            &db,
            "kind = \"embedded\"",
            &format!("url = \"lake\"\nmax_rows = 3\nsilver_deletes = \"{mode}\""),
        );
        let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
        assert_eq!(code, Some(0), "{stderr}");
        let lake = dir.path().join("lake");
        // Python prints, per table, its reader features and its rows in a canonical text
        // form; the same query here.
        let script = r#"
import sys
import pyarrow as pa
from deltalake import DeltaTable
lake, reader = sys.argv[1], sys.argv[2]
def show(v):
    if v is None: return "NULL"
    if hasattr(v, "isoformat"): return v.isoformat()
    return str(v)
for rel, cols, order in [
    ("silver/shop/orders", ["id", "customer", "amount", "status", "note", "coupon", "_cdc_op"], "id"),
    ("silver/shop/orders__history", ["id", "customer", "_cdc_op", "__start_position", "__end_position"], "__start_position"),
    ("bronze/shop/orders", ["op", "position", "after"], "position"),
]:
    dt = DeltaTable(f"{lake}/{rel}")
    print("features|" + rel + "|" + ",".join(sorted(dt.protocol().reader_features or [])))
    if reader == "scan":
        t = pa.table(dt.scan()).to_pylist()
    else:
        t = dt.to_pyarrow_table().to_pylist()
    t.sort(key=lambda r: (r[order], str(r.get("id"))))
    for r in t:
        print(rel + "|" + "|".join(show(r[c]) for c in cols))
# deltalake's runtime threads can abort the interpreter's teardown ("terminate called without
# an active exception") on a busy machine; the output is complete here, so leave at once.
sys.stdout.flush()
import os
os._exit(0)
"#;
        let out = crate::run_ok(
            std::process::Command::new(&python)
                .args(["-c", script])
                .arg(&lake)
                .arg(reader),
        );
        let (features, python_rows): (Vec<String>, Vec<String>) = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .partition(|l| l.starts_with("features|"));
        let silver_features = features
            .iter()
            .find(|f| f.starts_with("features|silver/shop/orders|"))
            .unwrap();
        assert_eq!(
            silver_features.contains("deletionVectors"),
            mode == "deletion_vectors",
            "{features:?}"
        );
        let mut ours = Vec::new();
        for (rel, sql) in [
            ("silver/shop/orders", "SELECT id, customer, amount, status, note, coupon, _cdc_op FROM t ORDER BY id"),
            ("silver/shop/orders__history", "SELECT id, customer, _cdc_op, __start_position, __end_position FROM t ORDER BY __start_position, CAST(id AS VARCHAR)"),
            ("bronze/shop/orders", "SELECT op, position, after FROM t ORDER BY position"),
        ] {
            for row in lake_query(&table_url(&lake, rel), &[], sql) {
                ours.push(format!("{rel}|{row}"));
            }
        }
        assert_eq!(python_rows, ours, "{mode}");
        // Silver is the source's current rows.
        let silver_ids: Vec<&str> = python_rows
            .iter()
            .filter_map(|r| r.strip_prefix("silver/shop/orders|"))
            .map(|r| r.split('|').next().unwrap())
            .collect();
        assert_eq!(silver_ids, ["1", "2", "3", "5", "6", "7", "50"], "{mode}");
        assert_eq!(
            python_rows
                .iter()
                .filter(|r| r.starts_with("bronze/"))
                .count(),
            SHOP_ORDERS_CHANGES
        );
    }
}

#[test]
fn schema_changes_evolve_a_new_key_rekeys_and_a_dropped_key_makes_a_multiset() {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.s (id INT PRIMARY KEY, a VARCHAR(10), b INT, c INT);
         INSERT INTO shop.s VALUES (1, 'x', 10, 100), (2, 'y', 20, 200);
         ALTER TABLE shop.s DROP COLUMN c;
         INSERT INTO shop.s VALUES (3, 'z', 30);
         UPDATE shop.s SET b = 21 WHERE id = 2;
         ALTER TABLE shop.s RENAME COLUMN a TO label;
         INSERT INTO shop.s VALUES (4, 'w', 40);",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_run_config(
        dir.path(),
        &db,
        "kind = \"embedded\"",
        "url = \"lake\"\ntable_schema_changes = { \"shop.s\" = \"lenient\" }",
    );
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let silver = table_url(&dir.path().join("lake"), "silver/shop/s");
    // Lenient: the dropped column keeps what it had; the renamed one continues under its new
    // name.
    assert_eq!(
        lake_query(&silver, &[], "SELECT id, a, label, b, c FROM t ORDER BY id"),
        [
            "1|x|NULL|10|100",
            "2|y|NULL|21|200",
            "3|z|NULL|30|NULL",
            "4|NULL|w|40|NULL"
        ]
    );

    // A type change that changes the Delta type rewrites the table, and the run goes on.
    db.sql("ALTER TABLE shop.s MODIFY b BIGINT; INSERT INTO shop.s VALUES (5, 'v', 5000000000);");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        lake_query(&silver, &[], "SELECT id, b FROM t ORDER BY id"),
        ["1|10", "2|21", "3|30", "4|40", "5|5000000000"]
    );
    // Lenient never narrows: BIGINT → INT keeps the column BIGINT.
    db.sql("UPDATE shop.s SET b = 50 WHERE id = 5; ALTER TABLE shop.s MODIFY b INT; INSERT INTO shop.s VALUES (6, 'u', 60);");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("rewrote the table"), "{stderr}");
    assert_eq!(
        lake_query(
            &silver,
            &[],
            "SELECT id, b, arrow_typeof(b) FROM t WHERE id >= 5 ORDER BY id"
        ),
        ["5|50|Int64", "6|60|Int64"]
    );

    // Evolve (the default), on a table binlake sees the DDL of: a rename keeps the values under
    // the new name, a CHANGE renames and widens at once.
    db.sql(
        "CREATE TABLE shop.e (id INT PRIMARY KEY, a VARCHAR(10), b INT);
         INSERT INTO shop.e VALUES (1, 'x', 10), (2, 'y', 20);",
    );
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    db.sql(
        "ALTER TABLE shop.e RENAME COLUMN a TO label; ALTER TABLE shop.e CHANGE b bb BIGINT;
         INSERT INTO shop.e VALUES (3, 'z', 5000000000); UPDATE shop.e SET label = 'y2' WHERE id = 2;",
    );
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("a renamed label"), "{stderr}");
    let evolved = table_url(&dir.path().join("lake"), "silver/shop/e");
    assert_eq!(
        lake_query(&evolved, &[], "SELECT id, label, bb FROM t ORDER BY id"),
        source_rows(&db, "SELECT id, label, bb FROM shop.e ORDER BY id")
    );
    assert_eq!(
        lake_query(
            &table_url(&dir.path().join("lake"), "silver/shop/e__history"),
            &[],
            "SELECT id, label, bb FROM t ORDER BY id, __start_position"
        ),
        ["1|x|10", "2|y|20", "2|y2|20", "3|z|5000000000"]
    );

    // Stop, for one table: its type change stops it, naming the change and the recovery.
    db.sql("CREATE TABLE shop.st (id INT PRIMARY KEY, v INT); INSERT INTO shop.st VALUES (1, 1);");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "{ \"shop.s\" = \"lenient\" }",
        "{ \"shop.s\" = \"lenient\", \"shop.st\" = \"stop\" }",
    );
    std::fs::write(&config, text).unwrap();
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    db.sql("ALTER TABLE shop.st MODIFY v BIGINT; INSERT INTO shop.st VALUES (2, 2);");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("shop.st: stopped applying: column v: schema_changes = \"stop\" for this table, and its DDL changed: v Int32 → Int64"),
        "{stderr}"
    );

    // A primary-key change, on another table, re-keys silver and history in place; dropping
    // the key makes it a multiset of whole rows.
    let db2 = MariaDb::start();
    db2.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.k (id INT PRIMARY KEY, v INT, code VARCHAR(5) NOT NULL);
         INSERT INTO shop.k VALUES (1, 1, 'a'), (2, 2, 'b');",
    );
    let dir2 = tempfile::tempdir().unwrap();
    let config2 = write_run_config(dir2.path(), &db2, "kind = \"embedded\"", "url = \"lake\"");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config2);
    assert_eq!(code, Some(0), "{stderr}");
    db2.sql(
        "ALTER TABLE shop.k DROP PRIMARY KEY, ADD PRIMARY KEY (code);
         UPDATE shop.k SET id = 10 WHERE code = 'a';
         INSERT INTO shop.k VALUES (3, 3, 'c');
         DELETE FROM shop.k WHERE code = 'b';",
    );
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config2);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("rewrote the table for primary key (id) → (code)"),
        "{stderr}"
    );
    let lake2 = dir2.path().join("lake");
    assert_eq!(
        lake_query(
            &table_url(&lake2, "silver/shop/k"),
            &[],
            "SELECT code, id, v FROM t ORDER BY code"
        ),
        source_rows(&db2, "SELECT code, id, v FROM shop.k ORDER BY code")
    );
    assert_eq!(
        lake_query(
            &table_url(&lake2, "silver/shop/k__history"),
            &[],
            "SELECT code, id, __end_position IS NULL FROM t ORDER BY code, __start_position"
        ),
        ["a|1|false", "a|10|true", "b|2|false", "c|3|true"]
    );
    // With no key left the table is a multiset of whole rows, re-keyed in place by row ids.
    db2.sql(
        "ALTER TABLE shop.k DROP PRIMARY KEY; INSERT INTO shop.k VALUES (4, 4, 'd'), (4, 4, 'd');
         DELETE FROM shop.k WHERE code = 'c'; UPDATE shop.k SET v = 11 WHERE code = 'a';",
    );
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config2);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("rewrote the table for primary key (code) → (_cdc_row_id)"),
        "{stderr}"
    );
    assert_eq!(
        lake_query(
            &table_url(&lake2, "silver/shop/k"),
            &[],
            "SELECT code, id, v FROM t ORDER BY code"
        ),
        source_rows(&db2, "SELECT code, id, v FROM shop.k ORDER BY code")
    );
    assert_eq!(
        lake_query(
            &table_url(&lake2, "silver/shop/k__history"),
            &[],
            "SELECT count(*) FROM t WHERE __end_at IS NULL"
        ),
        ["3"]
    );
}

#[test]
fn add_column_with_default_gives_earlier_rows_the_default_as_the_server_does() {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.d (id INT PRIMARY KEY, v INT);
         INSERT INTO shop.d VALUES (1, 1), (2, 2);
         UPDATE shop.d SET v = 20 WHERE id = 2;",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_run_config(dir.path(), &db, "kind = \"embedded\"", "url = \"lake\"");
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    // The server fills rows 1 and 2 without writing any row event.
    db.sql(
        "ALTER TABLE shop.d ADD COLUMN n INT NOT NULL DEFAULT 7, ADD COLUMN s VARCHAR(5) DEFAULT 'zz', \
           ADD COLUMN p DECIMAL(6,2) DEFAULT -1.50, ADD COLUMN t DATETIME DEFAULT CURRENT_TIMESTAMP;
         INSERT INTO shop.d (id, v, n, s, p) VALUES (3, 3, 30, NULL, 9.99);
         UPDATE shop.d SET v = 21 WHERE id = 2;",
    );
    let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let lake = dir.path().join("lake");
    let select = "SELECT id, v, n, s, p FROM t ORDER BY id";
    assert_eq!(
        lake_query(&table_url(&lake, "silver/shop/d"), &[], select),
        source_rows(
            &db,
            "SELECT id, v, n, IFNULL(s, 'NULL'), p FROM shop.d ORDER BY id"
        )
    );
    // The versions open at the ALTER got the default (row 2's then-current version too, closed
    // by the later update); the one closed before the ALTER predates the column.
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/d__history"),
            &[],
            "SELECT id, v, n, s, __end_at IS NULL FROM t ORDER BY id, __start_position"
        ),
        [
            "1|1|7|zz|true",
            "2|2|NULL|NULL|false",
            "2|20|7|zz|false",
            "2|21|7|zz|true",
            "3|3|30|NULL|true"
        ]
    );
}
