//! The `binlake` command line: parses arguments, dispatches to the command's file under
//! `commands/`, maps errors to exit codes. Command output goes to stdout; logs (tracing) go to
//! stderr.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "binlake",
    version,
    about = "MySQL/MariaDB change data capture into Delta Lake"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "BINLAKE_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Decode binlog files offline (plain or .gz) and print one Debezium JSON object per row change.
    Replay(commands::replay::Args),
    /// Capture changes from a live MySQL/MariaDB server and publish them (`[transport]`).
    Source(commands::source::Args),
    /// Consume the Kafka topics `source` publishes and apply them to the lake (`[lake]`).
    Sink(commands::sink::Args),
    /// Capture and apply in one process: through Kafka, or in-process with
    /// `[transport] kind = "embedded"`.
    Run(commands::run::Args),
    /// Write a steady workload to the `[source]` server: orders placed, paid, shipped,
    /// cancelled and refunded, customers edited and deleted (load sql/online_store.sql first).
    Generate(commands::generate::Args),
    /// The whole path with no services: a bundled e-commerce binlog → in-process Kafka →
    /// bronze/silver/history → gold on a local lake; prints what it built.
    Demo(commands::demo::Args),
    /// Per table: the source position, what bronze and silver hold, lag in seconds and rows.
    Status(commands::ConfigFile),
    /// Ask the running source to snapshot a table again (or the rows `--where` selects) while
    /// it goes on streaming: backfills and repairs.
    Snapshot(commands::snapshot::Args),
    /// The gold layer.
    #[command(subcommand)]
    Gold(commands::gold::GoldCommand),
    /// Check that the server is ready for capture; exits 1 when something blocks it.
    Check(commands::ConfigFile),
    /// Benchmarks that print their figures.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
}

/// The log filter when `BINLAKE_LOG` is not set.
const DEFAULT_LOG: &str = "warn,binlake=info,deltalake_core=error,deltalake_core::kernel::transaction=off,buoyant_kernel=off";

/// Targets kept quiet whatever `BINLAKE_LOG` says, unless it names them: delta-rs's commit loop
/// logs an ERROR for every refused commit, and the Delta kernel one for every table opened
/// before its first commit; both return the case to binlake, which retries or reports it. A
/// `BINLAKE_LOG=debug` would otherwise show ERROR lines on every first start.
const QUIET_TARGETS: [&str; 2] = ["deltalake_core::kernel::transaction", "buoyant_kernel"];

/// The filter for `BINLAKE_LOG` (`user`): the user's directives, with [`QUIET_TARGETS`] turned
/// off where the user says nothing of them.
fn log_filter_spec(user: Option<&str>) -> String {
    let Some(user) = user.filter(|u| !u.trim().is_empty()) else {
        return DEFAULT_LOG.to_string();
    };
    let mut spec = user.to_string();
    for target in QUIET_TARGETS {
        if !user.contains(target) {
            spec.push_str(&format!(",{target}=off"));
        }
    }
    spec
}

fn init_logging(format: LogFormat) {
    let spec = log_filter_spec(std::env::var("BINLAKE_LOG").ok().as_deref());
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Replay(args) => commands::replay::run(args),
        Command::Source(args) => commands::source::run(args),
        Command::Sink(args) => commands::sink::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Demo(args) => commands::demo::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Snapshot(args) => commands::snapshot::run(args),
        Command::Gold(command) => commands::gold::run(command),
        Command::Check(args) => commands::check::run(args),
        Command::Bench(command) => commands::bench::run(command),
    }
}

/// jemalloc serves Rust's allocations: on the bulk load it took 5-25% less time than glibc's
/// malloc with the same or a lower peak (docs/decisions.md, 2026-12-03).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its first allocation (before `main`): two arenas as for glibc
/// below, and freed pages returned to the system within a quarter of a second by a thread of
/// its own, so that the peak of one batch is not kept for the next. `_RJEM_MALLOC_CONF` in the
/// environment overrides them.
#[cfg(feature = "jemalloc")]
#[export_name = "_rjem_malloc_conf"]
static JEMALLOC_CONF: &[u8; 69] =
    b"narenas:2,dirty_decay_ms:250,muzzy_decay_ms:0,background_thread:true\0";

/// glibc's malloc still serves the C libraries (librdkafka) and, without the `jemalloc`
/// feature, everything. It gives every thread that allocates its own arena, and arenas keep
/// freed memory: with a worker per core scanning and decoding parquet, the sink's peak RSS
/// grew by half (752 MB against 482 MB on the 10M-row lake benchmark, same speed). Two arenas,
/// unless the user set `MALLOC_ARENA_MAX` themselves.
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before any other thread
        // exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn main() -> ExitCode {
    cap_malloc_arenas();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed stdout (`binlake replay ... | head`) is not a failure of binlake.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_log_filter_keeps_the_libraries_handled_errors_quiet_unless_it_names_them() {
        assert_eq!(log_filter_spec(None), DEFAULT_LOG);
        assert_eq!(log_filter_spec(Some(" ")), DEFAULT_LOG);
        assert_eq!(
            log_filter_spec(Some("warn,binlake::commands=debug")),
            "warn,binlake::commands=debug,deltalake_core::kernel::transaction=off,buoyant_kernel=off"
        );
        assert_eq!(
            log_filter_spec(Some("debug,buoyant_kernel=debug")),
            "debug,buoyant_kernel=debug,deltalake_core::kernel::transaction=off"
        );
        for spec in [
            log_filter_spec(Some("warn,binlake=debug")),
            log_filter_spec(None),
        ] {
            assert!(EnvFilter::try_new(&spec).is_ok(), "{spec}");
        }
    }
}
