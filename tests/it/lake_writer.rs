//! The lake writer in this process, fed records directly (no server, no binary): the order and
//! exactly-once rules of silver and history, and deletion-vector tables through maintenance.

use std::path::Path;

use crate::support::lake::{k_record, lake_query, table_url, writer};

/// Silver of `shop.k` as `id|v`, by id.
fn silver_k(lake: &Path) -> Vec<String> {
    lake_query(
        &table_url(lake, "silver/shop/k"),
        &[],
        "SELECT id, v FROM t ORDER BY id",
    )
}

/// History of `shop.k` as `id|v|open`, each key's versions in order.
fn history_k(lake: &Path) -> Vec<String> {
    lake_query(
        &table_url(lake, "silver/shop/k__history"),
        &[],
        "SELECT id, v, __end_position IS NULL FROM t ORDER BY id, __start_position",
    )
}

/// `r` as consumed from Kafka partition `partition`.
fn on(
    partition: i32,
    mut r: binlake::transport::record::Record,
) -> binlake::transport::record::Record {
    r.partition = partition;
    r
}

/// A change at or before the position already applied to its key is ignored, whatever path
/// it comes by: replayed through another source partition, an older insert does not bring a
/// deleted row back and an older update does not overwrite a newer one; history keeps one
/// version per applied change. Both silver delete modes.
#[test]
fn replayed_older_changes_neither_resurrect_nor_overwrite() {
    for deletion_vectors in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let mut writer = writer(&lake, deletion_vectors);
            writer
                .apply(&[
                    k_record("c", 1, "one", 100, None),
                    k_record("c", 2, "two", 110, None),
                ])
                .await
                .unwrap();
            writer
                .apply(&[
                    k_record("u", 1, "one-new", 200, None),
                    k_record("d", 2, "two", 210, None),
                ])
                .await
                .unwrap();
            // The same source, replayed through Kafka: older changes, and one new.
            writer
                .apply(&[
                    k_record("c", 2, "two", 110, Some(0)),
                    k_record("u", 1, "one-stale", 150, Some(1)),
                    k_record("c", 3, "three", 300, Some(2)),
                ])
                .await
                .unwrap();
        });
        let mode = if deletion_vectors {
            "deletion vectors"
        } else {
            "copy-on-write"
        };
        assert_eq!(silver_k(&lake), ["1|one-new", "3|three"], "{mode}");
        assert_eq!(
            history_k(&lake),
            [
                "1|one|false",
                "1|one-new|true",
                "2|two|false",
                "3|three|true"
            ],
            "{mode}"
        );
    }
}

/// A sink killed between a batch's history commit and its silver commit: history holds the
/// batch, silver does not. Applied again by a restarted writer, silver takes the batch's rows,
/// the ones inserted and then updated in it too: history closed their first version at the
/// update's position, which must not hide that update from silver. (Found as rows missing
/// from silver, bronze and history complete, after SIGKILLs in the e2e test.)
#[test]
fn silver_catches_up_with_history_after_a_crash_between_their_commits() {
    for deletion_vectors in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let batch = [
            k_record("c", 2, "two", 300, Some(2)),
            k_record("u", 2, "two-paid", 400, Some(3)),
            k_record("u", 1, "one-paid", 410, Some(4)),
        ];
        runtime.block_on(async {
            let mut first = writer(&lake, deletion_vectors);
            first
                .apply(&[
                    k_record("c", 1, "one", 100, Some(0)),
                    k_record("u", 1, "one-placed", 200, Some(1)),
                ])
                .await
                .unwrap();
            first.apply(&batch).await.unwrap();
        });
        // The crash: silver's commit of the second batch never happened.
        let log = lake.join("silver/shop/k/_delta_log");
        let newest = std::fs::read_dir(&log)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .max()
            .unwrap();
        std::fs::remove_file(newest).unwrap();
        runtime.block_on(async {
            writer(&lake, deletion_vectors).apply(&batch).await.unwrap();
        });
        let mode = if deletion_vectors {
            "deletion vectors"
        } else {
            "copy-on-write"
        };
        assert_eq!(silver_k(&lake), ["1|one-paid", "2|two-paid"], "{mode}");
        assert_eq!(
            history_k(&lake),
            [
                "1|one|false",
                "1|one-placed|false",
                "1|one-paid|true",
                "2|two|false",
                "2|two-paid|true"
            ],
            "{mode}: history applied once"
        );
    }
}

/// Two sinks of one consumer group on one table: the partitions split between them (key 1 on
/// partition 0, key 2 on partition 1), then partition 0 handed over with a batch the first
/// writer already committed. Each writer's table is stale when it commits after the other's:
/// the commit is refused, the writer reloads, skips what the other applied and commits the
/// rest. Every change lands once and the table records both partitions.
#[test]
fn two_writers_on_one_table_take_turns_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (first, second) = runtime.block_on(async {
        let mut first = writer(&lake, true);
        let mut second = writer(&lake, true);
        first
            .apply(&[on(0, k_record("c", 1, "one", 100, Some(0)))])
            .await
            .unwrap();
        second
            .apply(&[on(1, k_record("c", 2, "two", 110, Some(0)))])
            .await
            .unwrap();
        // The first writer's tables are older than the second's commit.
        let handed_over = [
            on(0, k_record("u", 1, "one-paid", 200, Some(1))),
            on(0, k_record("u", 1, "one-shipped", 300, Some(2))),
        ];
        first.apply(&handed_over).await.unwrap();
        second
            .apply(&[on(1, k_record("u", 2, "two-paid", 210, Some(1)))])
            .await
            .unwrap();
        // A rebalance gives partition 0 to the second writer, which reads it from the group's
        // older offset: the first writer's batch comes again, then a new change.
        let mut again = handed_over.to_vec();
        again.push(on(0, k_record("d", 1, "one-shipped", 400, Some(3))));
        second.apply(&again).await.unwrap();
        let tables = [binlake::event::TableId {
            db: "shop".into(),
            table: "k".into(),
        }];
        let resume = second.resume_offsets(&tables).await.unwrap();
        assert_eq!(resume.get("t.shop.k:0"), Some(4));
        assert_eq!(resume.get("t.shop.k:1"), Some(2));
        (first.metrics, second.metrics)
    });
    assert!(first.concurrent_commits >= 1, "{first:?}");
    assert!(second.concurrent_commits >= 1, "{second:?}");
    // Each counts the changes it took in: the batch read again is the first writer's.
    assert_eq!((first.changes_applied, second.changes_applied), (3, 3));
    assert_eq!(second.tables.get("shop.k").map(|t| t.0), Some(3));
    assert_eq!(silver_k(&lake), ["2|two-paid"]);
    assert_eq!(
        history_k(&lake),
        [
            "1|one|false",
            "1|one-paid|false",
            "1|one-shipped|false",
            "2|two|false",
            "2|two-paid|true"
        ]
    );
    assert_eq!(
        lake_query(
            &table_url(&lake, "bronze/shop/k"),
            &[],
            "SELECT count(*), count(DISTINCT kafka_partition || ':' || kafka_offset) FROM t"
        ),
        ["6|6"]
    );
}

/// A batch that takes longer to apply than another writer of the same table takes between
/// commits (a restarted member catching up beside a live one) loses every race as a whole. It
/// still goes in: after two refusals it is applied in shrinking leading portions, each held
/// and skipped by the next try. Every change lands once.
#[test]
fn a_big_batch_racing_a_writer_of_small_ones_goes_in_by_portions() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    const BIG: i64 = 20_000;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (big_metrics, small_batches) = runtime.block_on(async {
        let mut big = writer(&lake, true);
        let mut small = writer(&lake, true);
        big.apply(&[on(0, k_record("c", 1, "big", 1, Some(0)))])
            .await
            .unwrap();
        small
            .apply(&[on(1, k_record("c", 1_000_000, "small", 1, Some(0)))])
            .await
            .unwrap();
        // The small writer commits one change at a time until the big batch is in (bounded).
        let done = Arc::new(AtomicBool::new(false));
        let small_done = done.clone();
        let small_loop = tokio::spawn(async move {
            let mut offset = 1;
            while !small_done.load(Ordering::Relaxed) && offset < 5_000 {
                let id = 1_000_000 + offset;
                small
                    .apply(&[on(
                        1,
                        k_record("c", id, "small", 1 + offset as u64, Some(offset)),
                    )])
                    .await
                    .unwrap();
                offset += 1;
                // A live member commits once per `max_latency_ms`; this one more often.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            offset
        });
        let batch: Vec<_> = (1..=BIG)
            .map(|i| on(0, k_record("c", 1 + i, "big", 1 + i as u64, Some(i))))
            .collect();
        big.apply(&batch).await.unwrap();
        done.store(true, Ordering::Relaxed);
        let small_batches = small_loop.await.unwrap();
        (big.metrics, small_batches)
    });
    assert!(
        big_metrics.portions_committed >= 1,
        "the small writer committed {small_batches} times: {big_metrics:?}"
    );
    let total = 1 + BIG + small_batches;
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/k"),
            &[],
            "SELECT count(*), count(DISTINCT id), sum(CASE WHEN v = 'big' THEN 1 ELSE 0 END) FROM t"
        ),
        [format!("{total}|{total}|{}", 1 + BIG)]
    );
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/k__history"),
            &[],
            "SELECT count(*), count(DISTINCT id) FROM t"
        ),
        [format!("{total}|{total}")]
    );
    assert_eq!(
        lake_query(
            &table_url(&lake, "bronze/shop/k"),
            &[],
            "SELECT count(*), count(DISTINCT kafka_partition || ':' || kafka_offset) FROM t"
        ),
        [format!("{total}|{total}")]
    );
}

/// Deletion-vector silver and history through compaction, vacuum and checkpoints, and a
/// restarted writer reading its state back from a checkpoint: no row lost, none revived.
#[test]
fn maintenance_keeps_deletion_vector_tables_exact() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let settings = binlake::lake::config::LakeConfig {
        optimize_every_commits: 3,
        vacuum_every_commits: 4,
        vacuum_retention_hours: 0,
        checkpoint_interval: 2,
        ..Default::default()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Keys 1..=20; each round updates every key, deletes the round's key and re-inserts the
    // previous round's.
    let mut expected: std::collections::BTreeMap<i64, String> = Default::default();
    let mut pos = 100;
    let mut writer = None;
    for round in 0..8i64 {
        let mut batch = Vec::new();
        for id in 1..=20i64 {
            pos += 10;
            let v = format!("r{round}-{id}");
            let op = if round == 0 || !expected.contains_key(&id) {
                "c"
            } else {
                "u"
            };
            batch.push(k_record(op, id, &v, pos, None));
            expected.insert(id, v);
        }
        pos += 10;
        let gone = round + 1;
        batch.push(k_record("d", gone, "", pos, None));
        expected.remove(&gone);
        // A new writer every other round: it resumes from what the tables record.
        if round % 2 == 0 {
            let storage = binlake::lake::storage::LakeStorage::new(
                lake.to_str().unwrap(),
                &Default::default(),
                Path::new("/"),
            )
            .unwrap();
            writer = Some(binlake::lake::writer::LakeWriter::new(
                storage,
                settings.clone(),
            ));
        }
        let writer = writer.as_mut().unwrap();
        runtime.block_on(async {
            let (first, second) = batch.split_at(10);
            writer.apply(first).await.unwrap();
            writer.apply(second).await.unwrap();
        });
    }
    let silver = table_url(&lake, "silver/shop/k");
    let want: Vec<String> = expected.iter().map(|(k, v)| format!("{k}|{v}")).collect();
    assert_eq!(
        lake_query(&silver, &[], "SELECT id, v FROM t ORDER BY id"),
        want
    );
    let history = table_url(&lake, "silver/shop/k__history");
    let open: Vec<String> = lake_query(
        &history,
        &[],
        "SELECT id, v FROM t WHERE __end_position IS NULL ORDER BY id",
    );
    assert_eq!(open, want);
    // One version per applied insert or update: 8 rounds of 20.
    assert_eq!(lake_query(&history, &[], "SELECT count(*) FROM t"), ["160"]);
    // Maintenance ran and deletion vectors were in use.
    let log = std::fs::read_dir(lake.join("silver/shop/k/_delta_log")).unwrap();
    let names: Vec<String> = log
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with(".checkpoint.parquet")),
        "{names:?}"
    );
    let mut commits = String::new();
    for n in names.iter().filter(|n| n.ends_with(".json")) {
        commits.push_str(
            &std::fs::read_to_string(lake.join("silver/shop/k/_delta_log").join(n)).unwrap(),
        );
    }
    assert!(
        commits.contains("\"deletionVector\""),
        "no deletion vector written"
    );
    assert!(commits.contains("\"OPTIMIZE\""), "no compaction");
    assert!(commits.contains("VACUUM"), "no vacuum");
    // The last writer made four commits to each of the three tables: each was compacted at its
    // third and vacuumed at its fourth, and counted.
    let metrics = &writer.as_ref().unwrap().metrics;
    assert_eq!((metrics.optimizes, metrics.vacuums), (3, 3));
    for table in ["bronze/shop/k", "silver/shop/k__history"] {
        let log = lake.join(table).join("_delta_log");
        let text: String = std::fs::read_dir(&log)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        assert!(text.contains("\"OPTIMIZE\""), "{table}: no compaction");
    }
}

/// A change whose value its column cannot hold stops its table there, in this process too: the
/// changes before it are applied, it and the table's later batches are not, the lake's own
/// resume offset stays at it, and the stop is recorded for `binlake status`. Another table in
/// the same batch is applied.
#[test]
fn a_stopped_table_keeps_its_bad_change_and_everything_after_unapplied() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bad = || {
        let mut r = k_record("c", 3, "three", 300, Some(2));
        let mut v: serde_json::Value = serde_json::from_slice(r.value.as_ref().unwrap()).unwrap();
        v["after"]["id"] = serde_json::json!("not a number");
        r.value = Some(serde_json::to_vec(&v).unwrap());
        r
    };
    let other = {
        let mut r = k_record("c", 1, "elsewhere", 100, Some(0));
        r.topic = "t.shop.other".into();
        let mut v: serde_json::Value = serde_json::from_slice(r.value.as_ref().unwrap()).unwrap();
        v["source"]["table"] = serde_json::json!("other");
        r.value = Some(serde_json::to_vec(&v).unwrap());
        let mut schema = (**r.schema.as_ref().unwrap()).clone();
        schema.id.table = "other".into();
        r.schema = Some(std::sync::Arc::new(schema));
        r
    };
    let (stopped, topics, resume) = runtime.block_on(async {
        let storage = binlake::lake::storage::LakeStorage::new(
            lake.to_str().unwrap(),
            &Default::default(),
            Path::new("/"),
        )
        .unwrap();
        let mut writer =
            binlake::lake::writer::LakeWriter::new(storage.clone(), Default::default());
        writer
            .apply(&[
                k_record("c", 1, "one", 100, Some(0)),
                k_record("c", 2, "two", 200, Some(1)),
                bad(),
                k_record("c", 4, "four", 400, Some(3)),
                other,
            ])
            .await
            .unwrap();
        writer
            .apply(&[k_record("c", 5, "five", 500, Some(4))])
            .await
            .unwrap();
        let stopped = writer.stopped();
        let topics = writer.stopped_topics();
        let mut fresh = binlake::lake::writer::LakeWriter::new(storage.clone(), Default::default());
        let resume = fresh
            .resume_offsets(&[binlake::event::TableId {
                db: "shop".into(),
                table: "k".into(),
            }])
            .await
            .unwrap();
        let recorded = binlake::lake::stopped::list(&storage).await.unwrap();
        assert_eq!(recorded, stopped, "the stop is recorded in the lake");
        (stopped, topics, resume)
    });
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert_eq!(stopped[0].table, "shop.k");
    assert_eq!(
        stopped[0].reason,
        "column id: expected an integer, got \"not a number\""
    );
    assert_eq!(
        stopped[0].position,
        "binlog mysql-bin.000001:300 row 0, t.shop.k partition 0 offset 2"
    );
    assert_eq!(topics, ["t.shop.k".to_string()].into_iter().collect());
    assert_eq!(
        resume.iter().collect::<Vec<_>>(),
        [("t.shop.k:0", 2)],
        "the lake resumes at the bad change"
    );
    assert_eq!(
        silver_k(&lake),
        ["1|one", "2|two"],
        "the changes before it, and none after"
    );
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/other"),
            &[],
            "SELECT id, v FROM t"
        ),
        ["1|elsewhere"],
        "the other table is applied"
    );
}

/// A change of `shop.k` with a second column `w` (after `ALTER TABLE shop.k ADD COLUMN w`), or
/// without it, from Kafka `partition` at `offset`.
fn k_record_on(
    partition: i32,
    offset: i64,
    pos: u64,
    id: i64,
    w: Option<&str>,
) -> binlake::transport::record::Record {
    let mut record = k_record("c", id, &format!("v{id}"), pos, Some(offset));
    record.partition = partition;
    if let Some(w) = w {
        let mut schema = (**record.schema.as_ref().unwrap()).clone();
        schema.columns.push(binlake::event::Column::new(
            "w",
            binlake::event::ColumnType::VarChar { max_bytes: 40 },
        ));
        record.schema = Some(std::sync::Arc::new(schema));
        let mut value: serde_json::Value =
            serde_json::from_slice(record.value.as_ref().unwrap()).unwrap();
        value["after"]["w"] = w.into();
        record.value = Some(serde_json::to_vec(&value).unwrap());
    }
    record
}

/// An ALTER inside a batch of a topic with two partitions: each partition turns to the new
/// schema at its own offset, so the records come with the two schemas alternating. The batch
/// is applied in one run per schema (a commit each for history and silver), not one per
/// alternation: that was a sink catching up over an ALTER applying a change or two a second.
#[test]
fn an_alter_inside_a_batch_of_two_partitions_costs_one_segment_per_schema() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    // Binlog positions: ids 1..=20 written in order, the ALTER between id 10 and id 11; odd
    // ids go to partition 1, even ones to partition 0. Consumed alternating partitions, with
    // partition 1 read ahead by three records.
    let record = |id: i64, offset: i64| {
        let w = (id > 10).then(|| format!("w{id}"));
        k_record_on((id % 2) as i32, offset, 100 * id as u64, id, w.as_deref())
    };
    let odd: Vec<_> = (1..=20).filter(|i| i % 2 == 1).collect();
    let even: Vec<_> = (1..=20).filter(|i| i % 2 == 0).collect();
    let mut batch: Vec<_> = (0..3).map(|i| record(odd[i], i as i64)).collect();
    for i in 0..10 {
        batch.push(record(even[i], i as i64));
        if i + 3 < 10 {
            batch.push(record(odd[i + 3], (i + 3) as i64));
        }
    }
    assert_eq!(batch.len(), 20);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        writer(&lake, true).apply(&batch).await.unwrap();
    });
    let expected: Vec<String> = (1..=20)
        .map(|id| {
            let w = if id > 10 {
                format!("w{id}")
            } else {
                "NULL".into()
            };
            format!("{id}|v{id}|{w}")
        })
        .collect();
    assert_eq!(
        lake_query(
            &table_url(&lake, "silver/shop/k"),
            &[],
            "SELECT id, v, w FROM t ORDER BY id"
        ),
        expected
    );
    // Silver: created by the old schema's run, then the new schema's run.
    let commits = crate::support::lake::commit_writers(&table_url(&lake, "silver/shop/k"), &[]);
    assert_eq!(commits.len(), 2, "{commits:?}");
}

/// A TRUNCATE of `shop.k` at binlog `pos`, from Kafka `partition` at `offset`.
fn k_truncate(partition: i32, offset: i64, pos: u64) -> binlake::transport::record::Record {
    let mut record = k_record("c", 0, "", pos, Some(offset));
    record.partition = partition;
    let value = serde_json::json!({
        "before": null, "after": null, "op": "t", "ts_ms": 1_700_000_000_000i64,
        "source": {"db": "shop", "table": "k", "file": "mysql-bin.000001", "pos": pos, "row": 0,
                   "ts_ms": 1_700_000_000_000i64, "snapshot": "false"},
    });
    record.value = Some(serde_json::to_vec(&value).unwrap());
    record
}

/// A change written after a TRUNCATE but consumed before it (another partition read ahead)
/// survives the truncate in history as in silver: the truncate closes only the versions that
/// started before it. It used to close every open version, so history said the row was gone
/// while silver held it.
#[test]
fn a_truncate_leaves_open_the_versions_written_after_it_on_another_partition() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    // Binlog: id 1 at 100, TRUNCATE at 200, id 2 at 300, id 4 at 400. Partition 1 (id 2) is
    // consumed ahead of partition 0 (id 1, the truncate, id 4).
    let mut on_one = k_record("c", 2, "after", 300, Some(0));
    on_one.partition = 1;
    let batch = vec![
        on_one,
        k_record("c", 1, "before", 100, Some(0)),
        k_truncate(0, 1, 200),
        k_record("c", 4, "after", 400, Some(2)),
    ];
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        writer(&lake, true).apply(&batch).await.unwrap();
    });
    assert_eq!(silver_k(&lake), ["2|after", "4|after"]);
    assert_eq!(
        history_k(&lake),
        ["1|before|false", "2|after|true", "4|after|true"],
        "only the version from before the truncate is closed"
    );
}
