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
