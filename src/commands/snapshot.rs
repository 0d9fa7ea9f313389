//! `binlake snapshot --config FILE --table db.t [--where SQL] [--via table|file]`: asks the
//! running source to snapshot a table again, or the rows an SQL predicate selects (backfills,
//! repairs), while it goes on streaming. The request goes through the source's signal table
//! (`[source] signal_table`), or for a source that may not write to its server, a file in its
//! checkpoint folder (run this on the source's host).
//!
//! A table with no key at all is read whole (its silver, a multiset of whole rows, is replaced
//! by what the read saw): a `--where` slice of it is refused, as a slice of a multiset cannot
//! say which of its copies it replaces.

use binlake::event::{now_ms, TableId};
use binlake::mysql::config::TableFilter;
use binlake::mysql::server::Server;
use binlake::mysql::signals;

/// How the request reaches the running source.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Via {
    /// A row in the signal table on the server (needs INSERT there; the source sees it in its
    /// binlog stream).
    Table,
    /// A file in the source's checkpoint folder (`signals/`), for read-only sources.
    File,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigFile,
    /// The table, as `db.table`.
    #[arg(long)]
    table: String,
    /// Only the rows this SQL predicate selects, e.g. "updated_at >= '2026-11-01'".
    #[arg(long = "where", value_name = "PREDICATE")]
    filter: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    via: Via,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let source = config.source("snapshot")?;
    let Some((db, table)) = args.table.split_once('.') else {
        anyhow::bail!("--table {:?}: give it as `db.table`", args.table);
    };
    let table = TableId::new(db, table);
    let id = format!("snapshot-{}", now_ms());
    let data = signals::snapshot_data(&table, args.filter.as_deref());
    let runtime = super::current_thread_runtime()?;
    if args.filter.is_some() && !source.key_columns.contains_key(&table.to_string()) {
        let keyed = runtime.block_on(async {
            let server = Server::new(source)?;
            let mut conn = server.connect().await?;
            let filter = TableFilter::new(&[table.to_string()], &[])
                .map_err(|e| anyhow::anyhow!("--table {table}: {e}"))?;
            let tracker = server.load_schema(&mut conn, &filter).await?;
            let _ = conn.disconnect().await;
            let Some(declared) = tracker.get(&table) else {
                anyhow::bail!("{}: no table {table}", server.display_url());
            };
            anyhow::Ok(!declared.row_key().is_empty())
        })?;
        if !keyed {
            anyhow::bail!(
                "--where: {table} has no primary key, no NOT NULL unique key and no [source] key_columns; silver holds it as a multiset of whole rows, and a slice cannot say which copies it replaces. Snapshot the whole table (no --where), or give it a key (key_columns)"
            );
        }
    }
    match args.via {
        Via::Table => {
            let signal_table = source.signal_table_id();
            runtime.block_on(async {
                let server = Server::new(source)?;
                let mut conn = server.connect().await?;
                signals::insert(&mut conn, &signal_table, &id, &data)
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "{}: writing the signal to {signal_table}: {e} (a source that may not write there takes --via file)",
                            server.display_url()
                        )
                    })?;
                anyhow::Ok(())
            })?;
            println!("asked for a snapshot of {table} (signal {id} in {signal_table})");
        }
        Via::File => {
            let folder = signals::folder(&source.checkpoint);
            let path = signals::write_file(&folder, &id, &data)
                .map_err(|e| anyhow::anyhow!("{}: {e}", folder.display()))?;
            println!(
                "asked for a snapshot of {table} (signal {})",
                path.display()
            );
        }
    }
    Ok(())
}
