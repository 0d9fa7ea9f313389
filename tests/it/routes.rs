//! `[[lake.route]]`: four databases of one MariaDB as shards of one schema (`shop_01.orders`
//! … `shop_04.orders`, the same ids in each) routed into `shop.orders` through Kafka, with the
//! source and the sink SIGKILLed while the shards are written. Silver equals the union of the
//! shards, told apart by `_source_server` and `_source_db`; history holds every version and
//! bronze every change once; a TRUNCATE of one shard stops the routed table visibly.

use std::time::Duration;

use binlake::workload::Rng;

use crate::support::lake::{lake_query, source_rows, table_url};
use crate::support::mariadb::MariaDb;
use crate::support::scenario::Scenario;
use crate::support::{binlake, unique_prefix};

const SHARDS: [&str; 4] = ["shop_01", "shop_02", "shop_03", "shop_04"];

/// `n` statements over the shards: inserts, updates and deletes of ids 1..=60 in each.
fn shard_statements(rng: &mut Rng, n: usize) -> String {
    let mut sql = String::new();
    for _ in 0..n {
        let shard = SHARDS[rng.below(SHARDS.len())];
        let id = 1 + rng.below(60);
        let amount = rng.below(100_000) as f64 / 100.0;
        sql += &match rng.below(4) {
            0 | 1 => format!(
                "INSERT INTO {shard}.orders VALUES ({id}, {amount}, 'n{id}') \
                 ON DUPLICATE KEY UPDATE amount = {amount}, note = CONCAT(note, '+');\n"
            ),
            2 => format!("UPDATE {shard}.orders SET amount = {amount} WHERE id = {id};\n"),
            _ => format!("DELETE FROM {shard}.orders WHERE id = {id};\n"),
        };
    }
    sql
}

#[test]
fn four_shards_routed_into_one_table_equal_their_union_through_kills() {
    let db = MariaDb::start();
    for shard in SHARDS {
        db.sql(&format!(
            "CREATE DATABASE {shard}; CREATE TABLE {shard}.orders \
             (id INT PRIMARY KEY, amount DECIMAL(10,2) NOT NULL, note VARCHAR(200));"
        ));
    }
    let broker = crate::support::kafka::broker();
    let prefix = unique_prefix("route");
    let dir = tempfile::tempdir().unwrap();
    let config = Scenario::source(&db, 4801)
        .include("shop_*.orders")
        .transport(&format!(
            "kind = \"kafka\"\nbootstrap_servers = \"{}\"\ntopic_prefix = \"{prefix}\"\ngroup_id = \"{prefix}-sink\"\npartitions = 2",
            broker.bootstrap
        ))
        .lake("url = \"lake\"\nmax_latency_ms = 200")
        .section("[[lake.route]]\nfrom = \"shop_*.orders\"\nto = \"shop.orders\"")
        .write(dir.path(), "routes.toml");
    let spawn = |command: &str| {
        crate::support::spawn_binlake(command, &config, std::process::Stdio::null())
    };
    let mut rng = Rng(0x0007_0C7E);
    let mut source = spawn("source");
    let mut sink = spawn("sink");
    for round in 0..8 {
        db.sql(&shard_statements(&mut rng, 150));
        std::thread::sleep(Duration::from_millis(300 + rng.below_u64(700)));
        if round % 2 == 0 {
            crate::support::restart(&mut sink, || spawn("sink"));
        } else {
            crate::support::restart(&mut source, || spawn("source"));
        }
    }
    source.kill().unwrap();
    sink.kill().unwrap();
    crate::support::catch_up(&config);

    let lake = dir.path().join("lake");
    let union: Vec<String> = SHARDS
        .iter()
        .map(|shard| format!("SELECT '{prefix}', '{shard}', id, amount, note FROM {shard}.orders"))
        .collect();
    let expected = source_rows(
        &db,
        &format!(
            "SELECT * FROM ({}) u ORDER BY 2, 3",
            union.join(" UNION ALL ")
        ),
    );
    assert!(expected.len() > 100, "{}", expected.len());
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/orders"),
            &[],
            "SELECT _source_server, _source_db, id, amount, note FROM t ORDER BY 2, 3"
        ),
        expected,
        "silver shop.orders is the union of the shards"
    );
    // Every change once: the binlog's row changes of the four tables.
    let replayed = crate::run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
            .arg("replay")
            .args(db.binlogs()),
    );
    let changes = String::from_utf8(replayed.stdout)
        .unwrap()
        .lines()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["source"]["table"] == "orders"
        })
        .count();
    assert_eq!(
        lake_query(
            &table_url(&lake, "bronze/shop/orders"),
            &[],
            "SELECT count(*), count(DISTINCT kafka_topic || ':' || kafka_partition || ':' || kafka_offset) FROM t"
        ),
        [format!("{changes}|{changes}")]
    );
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/orders__history"),
            &[],
            "SELECT count(*) FILTER (WHERE __end_at IS NULL) FROM t"
        ),
        [expected.len().to_string()],
        "history's open versions are silver's rows"
    );

    // A TRUNCATE of one shard would empty them all: the routed table stops, named.
    db.sql("TRUNCATE TABLE shop_02.orders; INSERT INTO shop_02.orders VALUES (999, 1, 'after');");
    let (code, stderr) = binlake(&["source", "--exit-when-caught-up"], &config);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = binlake(&["sink", "--exit-when-caught-up"], &config);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("TRUNCATE of shop_02.orders at")
            && stderr.contains("it would empty the rows of every shard in shop.orders"),
        "{stderr}"
    );
    // Nothing of the stopped change or after it is applied: shop_02's rows are all still
    // there, its insert after the TRUNCATE is not. (Other shards' changes are not ordered
    // against it: one in the same batch may have been applied before the stop.)
    let shop_02 = expected.iter().filter(|r| r.contains("|shop_02|")).count();
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/orders"),
            &[],
            "SELECT count(*) FILTER (WHERE _source_db = 'shop_02'), count(*) FILTER (WHERE id = 999) FROM t"
        ),
        [format!("{shop_02}|0")]
    );
}

/// A DDL taken by the shards one after another (`shop_01` first, `shop_02` a while later):
/// for a while the routed table gets changes of the new schema from one shard and of the old
/// from the other, in one batch and across batches. The column one shard lacks stays in the
/// table (null in that shard's rows) and one shard's narrower type never narrows it back;
/// silver equals the union of the shards at every step.
#[test]
fn a_ddl_rolled_over_the_shards_keeps_the_routed_table_equal_to_their_union() {
    let db = MariaDb::start();
    for shard in &SHARDS[..2] {
        db.sql(&format!(
            "CREATE DATABASE {shard}; CREATE TABLE {shard}.orders \
             (id INT PRIMARY KEY, amount DECIMAL(10,2) NOT NULL, note VARCHAR(200)); \
             INSERT INTO {shard}.orders VALUES (1, 10.50, 'a'), (2, 20.25, 'b');"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = Scenario::source(&db, 4802)
        .include("shop_*.orders")
        .embedded_lake()
        .section("[[lake.route]]\nfrom = \"shop_*.orders\"\nto = \"shop.orders\"")
        .write(dir.path(), "rolling.toml");
    let lake = dir.path().join("lake");
    let expected = |db: &MariaDb, channel: [bool; 2]| {
        let union: Vec<String> = SHARDS[..2]
            .iter()
            .zip(channel)
            .map(|(shard, has)| {
                let channel = if has { "IFNULL(channel, 'NULL')" } else { "'NULL'" };
                format!("SELECT '{shard}', id, amount, IFNULL(note, 'NULL'), {channel} FROM {shard}.orders")
            })
            .collect();
        source_rows(
            db,
            &format!(
                "SELECT * FROM ({}) u ORDER BY 1, 2",
                union.join(" UNION ALL ")
            ),
        )
    };
    let silver = || {
        lake_query(
            &table_url(&lake, "silver/shop/orders"),
            &[],
            "SELECT _source_db, id, CAST(amount AS VARCHAR), note, channel FROM t ORDER BY 1, 2",
        )
    };
    let run = || {
        let (code, stderr) = binlake(&["run", "--exit-when-caught-up"], &config);
        assert_eq!(code, Some(0), "{stderr}");
    };
    // shop_01 takes the ALTERs; shop_02 goes on writing under the old schema, interleaved.
    db.sql(
        "ALTER TABLE shop_01.orders ADD COLUMN channel VARCHAR(20); \
         INSERT INTO shop_01.orders VALUES (3, 30.00, 'c', 'web'); \
         INSERT INTO shop_02.orders VALUES (3, 31.00, 'c'); \
         UPDATE shop_01.orders SET channel = 'app' WHERE id = 1; \
         UPDATE shop_02.orders SET amount = 21.00 WHERE id = 2; \
         ALTER TABLE shop_01.orders MODIFY amount DECIMAL(14,2) NOT NULL; \
         INSERT INTO shop_01.orders VALUES (4, 123456789.99, 'd', 'web'); \
         INSERT INTO shop_02.orders VALUES (4, 40.00, 'd'); \
         UPDATE shop_02.orders SET note = 'b2' WHERE id = 2;",
    );
    run();
    assert_eq!(
        silver(),
        expected(&db, [true, false]),
        "after shop_01's DDL"
    );
    // shop_02 still on the old schema in a batch of its own: the table keeps the column and
    // the wider type.
    db.sql("INSERT INTO shop_02.orders VALUES (5, 50.00, 'e'); DELETE FROM shop_02.orders WHERE id = 1;");
    run();
    assert_eq!(
        silver(),
        expected(&db, [true, false]),
        "shop_02 alone, old schema"
    );
    // shop_02 catches up with the DDL.
    db.sql(
        "ALTER TABLE shop_02.orders ADD COLUMN channel VARCHAR(20); \
         ALTER TABLE shop_02.orders MODIFY amount DECIMAL(14,2) NOT NULL; \
         INSERT INTO shop_02.orders VALUES (6, 987654321.50, 'f', 'store'); \
         UPDATE shop_02.orders SET channel = 'web' WHERE id = 3; \
         UPDATE shop_01.orders SET amount = 99999999.01 WHERE id = 2;",
    );
    run();
    assert_eq!(
        silver(),
        expected(&db, [true, true]),
        "both shards on the new schema"
    );
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/orders"),
            &[],
            "SELECT arrow_typeof(amount) FROM t LIMIT 1"
        ),
        ["Decimal128(14, 2)"]
    );
}

/// Two servers' sources (here two `binlake source` processes on one MariaDB, each with its own
/// `topic_prefix`, replica id and checkpoint) read by one group of sinks through
/// `sink_topic_prefixes`: the routed table holds each server's rows apart, under its own
/// `_source_server`; a table both servers publish and no route takes stops, naming both
/// topics, rather than mixing two servers' rows under one key.
#[test]
fn one_sink_group_reads_two_servers_prefixes() {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop_01; CREATE TABLE shop_01.orders \
         (id INT PRIMARY KEY, amount DECIMAL(10,2) NOT NULL, note VARCHAR(200)); \
         CREATE DATABASE plain; CREATE TABLE plain.items (id INT PRIMARY KEY, name TEXT);",
    );
    let mut rng = Rng(0x0016_2BFE);
    let mut writes = String::new();
    for _ in 0..200 {
        let id = 1 + rng.below(40);
        writes += &format!(
            "INSERT INTO shop_01.orders VALUES ({id}, {}, 'n') ON DUPLICATE KEY UPDATE note = CONCAT(note, '+');\n",
            rng.below(10_000)
        );
        if rng.below(5) == 0 {
            writes += &format!(
                "DELETE FROM shop_01.orders WHERE id = {};\n",
                1 + rng.below(40)
            );
        }
    }
    db.sql(&writes);
    db.sql("INSERT INTO plain.items VALUES (1, 'one'), (2, 'two');");
    let broker = crate::support::kafka::broker();
    let base = unique_prefix("servers");
    let (eu, us) = (format!("{base}-eu"), format!("{base}-us"));
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake_keys = format!("url = \"{}\"\nmax_latency_ms = 200", lake.display());
    let route = "[[lake.route]]\nfrom = \"shop_*.orders\"\nto = \"shop.orders\"";
    let source = |prefix: &str, server_id: u32| {
        let sub = dir.path().join(prefix);
        std::fs::create_dir_all(&sub).unwrap();
        let config = Scenario::source(&db, server_id)
            .source_keys("include = [\"shop_*.orders\", \"plain.items\"]")
            .kafka(&broker, prefix, "partitions = 2")
            .lake(&lake_keys)
            .section(route)
            .write(&sub, "source.toml");
        let (code, stderr) = binlake(&["source", "--exit-when-caught-up"], &config);
        assert_eq!(code, Some(0), "{stderr}");
    };
    source(&eu, 4803);
    source(&us, 4804);
    let sink = Scenario::source(&db, 4805)
        .kafka(
            &broker,
            &eu,
            &format!("sink_topic_prefixes = [\"{eu}\", \"{us}\"]\ngroup_id = \"{base}-sinks\""),
        )
        .lake(&lake_keys)
        .section(route)
        .write(dir.path(), "sink.toml");
    let (code, stderr) = binlake(&["sink", "--exit-when-caught-up"], &sink);
    assert_ne!(
        code,
        Some(0),
        "plain.items from two servers must stop: {stderr}"
    );
    let (eu_items, us_items) = (format!("{eu}.plain.items"), format!("{us}.plain.items"));
    assert!(
        stderr.contains("plain.items: stopped applying: plain.items: changes from topic ")
            && stderr.contains("two servers' tables of one name would mix their rows")
            && stderr.contains(&eu_items)
            && stderr.contains(&us_items),
        "{stderr}"
    );
    let expected = source_rows(
        &db,
        &format!(
            "SELECT * FROM (SELECT '{eu}' s, id, amount, note FROM shop_01.orders \
             UNION ALL SELECT '{us}', id, amount, note FROM shop_01.orders) u ORDER BY 1, 2"
        ),
    );
    assert!(expected.len() > 40, "{}", expected.len());
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/orders"),
            &[],
            "SELECT _source_server, id, amount, note FROM t ORDER BY 1, 2"
        ),
        expected,
        "each server's rows, apart"
    );
    // `binlake status` counts every prefix's records against the table they land in: none
    // left for the routed table, the other server's two inserts for the stopped one.
    let (code, status) = crate::support::binlake_stdout(&["status"], &sink);
    assert_eq!(code, Some(0), "{status}");
    let lag_rows = |table: &str| {
        status
            .lines()
            .find(|l| l.starts_with(&format!("{table} ")))
            .and_then(|l| l.split_whitespace().nth(3))
            .map(str::to_string)
    };
    assert_eq!(lag_rows("shop.orders").as_deref(), Some("0"), "{status}");
    assert_eq!(lag_rows("plain.items").as_deref(), Some("2"), "{status}");
    // The stopped table holds one server's rows only, and stays stopped on a restart.
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/plain/items"),
            &[],
            "SELECT count(*) FROM t"
        ),
        ["2"]
    );
    let (code, stderr) = binlake(&["sink", "--exit-when-caught-up"], &sink);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("two servers' tables of one name"),
        "{stderr}"
    );
}
