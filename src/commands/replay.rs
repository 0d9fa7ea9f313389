//! `binlake replay FILE...`: decodes binlog files offline and prints one Debezium JSON object
//! per row change (NDJSON) on stdout.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use binlake::envelope::EnvelopeOptions;
use binlake::replay::{replay_files, ReplayOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Binlog files, replayed in the order given.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// CREATE TABLE statements for tables whose table maps carry no column names (repeatable).
    #[arg(long = "schema", value_name = "FILE.sql")]
    schema: Vec<PathBuf>,
    /// Logical server name reported in `source.name`.
    #[arg(long, default_value = "binlake")]
    name: String,
    /// Do not verify CRC32 event checksums.
    #[arg(long)]
    no_verify_checksum: bool,
    /// Print a summary (files, events, changes, MB/s) on stderr at the end.
    #[arg(long)]
    stats: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let options = ReplayOptions {
        schema_files: args.schema,
        envelope: EnvelopeOptions { name: args.name },
        no_verify_checksums: args.no_verify_checksum,
    };
    let started = std::time::Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let s = replay_files(&args.files, &options, &mut out).context("replay failed")?;
    out.flush().context("writing stdout")?;
    if args.stats {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "replayed {} file(s): {} events, {} row changes, {} commits, {} DDL in {:.3} s ({:.0} changes/s, {:.1} MB/s)",
            s.files,
            s.events,
            s.changes,
            s.commits,
            s.ddl,
            secs,
            s.changes as f64 / secs,
            s.bytes as f64 / secs / 1e6
        );
    }
    Ok(())
}
