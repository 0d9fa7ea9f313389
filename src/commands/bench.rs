//! `binlake bench ...`: benchmarks that print their figures (and the mock Kafka cluster they,
//! and people trying binlake, run against).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use binlake::config::Config;
use binlake::lake::storage::LakeStorage;
use binlake::replay::ReplayOptions;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Run librdkafka's mock Kafka cluster (a real broker protocol over loopback, in memory)
    /// until Ctrl-C; prints its bootstrap address. For trying binlake and for benchmarks.
    MockKafka {
        #[arg(long, default_value_t = 1)]
        brokers: i32,
    },
    /// Read a topic from the beginning; print messages/s and, with --latency-column, the
    /// commit-to-consumer latency (p50/p99) from a commit time in epoch ms each row carries.
    Consume {
        #[arg(long)]
        bootstrap_servers: String,
        #[arg(long)]
        topic: String,
        /// Stop after this many messages.
        #[arg(long)]
        expect: u64,
        #[arg(long)]
        latency_column: Option<String>,
        /// Stop after this many seconds without a message.
        #[arg(long, default_value_t = 10)]
        idle_secs: u64,
    },
    /// The lake's costs side by side: bronze append rows/s, 10k-change batches into silver vs
    /// the naive delta-rs MERGE (OLTP-like and uniform keys), peak RSS, files after many small
    /// commits with and without maintenance.
    Lake {
        /// Scratch directory (tables are removed at the end).
        #[arg(long)]
        dir: PathBuf,
        /// Table sizes in rows (repeatable).
        #[arg(long = "rows", default_values_t = [1_000_000u64])]
        rows: Vec<u64>,
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// Batches per case; the median is reported.
        #[arg(long, default_value_t = 5)]
        batches: usize,
        /// Small commits for the maintenance comparison (0 skips it).
        #[arg(long, default_value_t = 3600)]
        small_commits: usize,
    },
    /// What a column type change costs: silver and history of `--rows` rows rewritten for
    /// `qty INT → BIGINT`; prints seconds, rows/s, peak RSS.
    Rewrite {
        /// Scratch directory (the tables are removed at the end).
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 10_000_000)]
        rows: u64,
    },
    /// Silver freshness as a reader sees it: polls silver/<db>/<table> every 100 ms for the
    /// age of the newest row (`--column` holds each row's commit time in epoch ms); p50/p99.
    Freshness {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// `db.table` (silver), or `gold.<model>`.
        #[arg(long)]
        table: String,
        #[arg(long)]
        column: String,
        #[arg(long, default_value_t = 30)]
        duration: u64,
    },
    /// Replay binlog files into NDJSON (discarded) several times; print rows/s, MB/s, peak RSS.
    Replay {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long = "schema", value_name = "FILE.sql")]
        schema: Vec<PathBuf>,
        /// How many runs; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Lake {
            dir,
            rows,
            batch,
            batches,
            small_commits,
        } => {
            let options = binlake::bench::lake::LakeBenchOptions {
                dir: std::path::absolute(&dir).context("--dir")?,
                sizes: rows,
                batch,
                batches,
                small_commits,
            };
            let runtime = super::sink_runtime()?;
            let stdout = std::io::stdout();
            runtime.block_on(binlake::bench::lake::bench_lake(
                &options,
                &mut stdout.lock(),
            ))?;
            Ok(())
        }
        BenchCommand::Rewrite { dir, rows } => {
            let dir = std::path::absolute(&dir).context("--dir")?;
            let runtime = super::sink_runtime()?;
            let stdout = std::io::stdout();
            runtime.block_on(binlake::bench::rewrite::bench_rewrite(
                &dir,
                rows,
                &mut stdout.lock(),
            ))?;
            Ok(())
        }
        BenchCommand::Freshness {
            config,
            table,
            column,
            duration,
        } => {
            let config = Config::load(&config)?;
            let lake = config.lake("bench freshness")?;
            let storage = LakeStorage::new(&lake.url, &lake.storage, &config.base)?;
            let (db, table) = table
                .split_once('.')
                .ok_or_else(|| anyhow::anyhow!("--table must be db.table or gold.model"))?;
            let path = if db == "gold" {
                format!("gold/{table}")
            } else {
                format!("silver/{db}/{table}")
            };
            let runtime = super::sink_runtime()?;
            let r = runtime.block_on(binlake::bench::freshness::measure(
                &storage,
                &path,
                &column,
                std::time::Duration::from_secs(duration),
            ))?;
            println!(
                "{path} freshness over {} samples ({} rows at the end): p50 {} ms, p99 {} ms, max {} ms",
                r.samples, r.rows, r.p50_ms, r.p99_ms, r.max_ms
            );
            Ok(())
        }
        BenchCommand::MockKafka { brokers } => {
            let mock = rdkafka::mocking::MockCluster::new(brokers)
                .map_err(|e| anyhow::anyhow!("starting the mock Kafka cluster: {e}"))?;
            println!("{}", mock.bootstrap_servers());
            std::io::stdout().flush().ok();
            let runtime = super::current_thread_runtime()?;
            runtime.block_on(super::stop_signal());
            drop(mock);
            Ok(())
        }
        BenchCommand::Consume {
            bootstrap_servers,
            topic,
            expect,
            latency_column,
            idle_secs,
        } => {
            let result = binlake::bench::bench_consume(
                &bootstrap_servers,
                &topic,
                expect,
                latency_column.as_deref(),
                std::time::Duration::from_secs(idle_secs),
            )
            .map_err(anyhow::Error::msg)?;
            print!("{}", binlake::bench::format_consume_report(&result));
            Ok(())
        }
        BenchCommand::Replay {
            files,
            schema,
            runs,
        } => {
            let options = ReplayOptions {
                schema_files: schema,
                ..Default::default()
            };
            let result = binlake::bench::bench_replay(&files, &options, runs)
                .context("benchmark replay failed")?;
            print!("{}", binlake::bench::format_replay_report(&result));
            Ok(())
        }
    }
}
