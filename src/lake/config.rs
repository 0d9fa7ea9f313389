//! `[lake]` and `[gold]`: where the Delta tables live, how often they are committed and
//! maintained, how silver drops replaced rows, and the gold models; validated here, read by the
//! writer as they are.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[lake]`: where the Delta tables live and how often they are committed and maintained.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// A path, `file:///...`, `az://container/path`, `abfss://container@account.dfs.core.windows.net/path`
    /// or `https://account.blob.core.windows.net/container/path`.
    pub url: String,
    /// Passed to object_store: `account_name`, `account_key` / `sas_token` (use `${ENV}`),
    /// `use_emulator`, ...
    #[serde(default)]
    pub storage: std::collections::BTreeMap<String, String>,
    /// A batch is committed when it holds this many records...
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// ...or this many bytes of record keys and values (what bounds the sink's memory when
    /// rows are wide or a batch spans many tables)...
    #[serde(default = "default_max_batch_bytes")]
    pub max_batch_bytes: usize,
    /// ...or when its first record is this old...
    #[serde(default = "default_max_latency_ms")]
    pub max_latency_ms: u64,
    /// ...or, sooner, this old when it is busy: when it holds at least
    /// `busy_changes_per_table` records for each table (topic) it touches, so that the storage
    /// calls of its commits are shared by that many changes.
    #[serde(default = "default_busy_latency_ms")]
    pub busy_latency_ms: u64,
    /// How many records per table make a batch busy (see `busy_latency_ms`).
    #[serde(default = "default_busy_changes_per_table")]
    pub busy_changes_per_table: usize,
    /// Decode a full batch's envelopes while the batch before is still being applied (more
    /// cores busy at once, one more decoded batch in memory); off, it is decoded after.
    #[serde(default)]
    pub decode_ahead: bool,
    /// Compact a table's small files every this many commits to it; 0 never.
    #[serde(default = "default_optimize_every")]
    pub optimize_every_commits: u64,
    /// Delete unreferenced files every this many commits to a table; 0 never.
    #[serde(default = "default_vacuum_every")]
    pub vacuum_every_commits: u64,
    /// Files a vacuum keeps for readers of older versions, and for writers still writing.
    #[serde(default = "default_vacuum_retention")]
    pub vacuum_retention_hours: u64,
    /// Which unreferenced files a vacuum deletes.
    #[serde(default)]
    pub vacuum_mode: VacuumMode,
    /// A Delta checkpoint every this many table versions.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: u64,
    /// The engines the tables must open in: which Delta table features binlake may turn on.
    #[serde(default)]
    pub readers: Readers,
    /// How silver drops the rows a batch replaces or deletes; unset, as `readers` allows.
    #[serde(default)]
    pub silver_deletes: Option<SilverDeletes>,
    /// What a change of a replicated table the lake cannot take (a value its column cannot
    /// hold) does: stop that table's apply, or go to `dead_letters`.
    #[serde(default)]
    pub on_unappliable: OnUnappliable,
    /// How silver and history follow the source's DDL (column type changes, drops, renames,
    /// primary-key changes).
    #[serde(default)]
    pub schema_changes: SchemaChanges,
    /// `db.table` → its own `schema_changes`.
    #[serde(default)]
    pub table_schema_changes: std::collections::BTreeMap<String, SchemaChanges>,
    /// `[[lake.route]]`: shards of one schema landed in one table (see [`super::route`]).
    #[serde(default, rename = "route")]
    pub routes: Vec<super::route::RouteConfig>,
}

/// `[lake] schema_changes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaChanges {
    /// Silver and history follow every change: columns change type (rewritten from their own
    /// rows) and are renamed, tables re-keyed; a dropped column stays, null from then on.
    #[default]
    Evolve,
    /// Dropped and renamed columns stay (a renamed one starts as a new column), and a column
    /// is never narrowed: a narrowing change keeps the wider type, widening ones are applied.
    Lenient,
    /// Any change but an added column stops the table, with the recovery.
    Stop,
}

/// `[lake] on_unappliable`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnappliable {
    /// The table stops at that change (the others go on), visibly, with the change unapplied:
    /// silver never silently differs from the source.
    #[default]
    Stop,
    /// The change goes to `dead_letters` and the table goes on without it.
    DeadLetter,
}

/// `[lake] vacuum_mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VacuumMode {
    /// Every file in the table's folder that no version within the retention refers to and
    /// that is older than the retention (Spark's `VACUUM`): also the files of commits that
    /// never happened (a refused batch, a compaction that lost or was cut short). Lists the
    /// table's folder.
    #[default]
    Full,
    /// Only the files a commit removed more than the retention ago, read from the log without
    /// listing storage; files of commits that never happened stay.
    Lite,
}

/// `[lake] readers`: a reader profile, the Delta table features binlake may turn on for new
/// tables and columns so that they open in the engines it names (docs/readers.md has which
/// engine reads which, with sources). Tables written before keep the features they have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Readers {
    /// Microsoft Fabric (SQL analytics endpoint, Direct Lake, Spark), Databricks, Synapse
    /// Spark: deletion vectors, and DATETIME as a UTC timestamp of the same wall-clock value
    /// (the SQL endpoint cannot read `timestampNtz`).
    #[default]
    #[serde(rename = "fabric")]
    Fabric,
    /// Readers of the newest protocol (Spark 3.5+/Delta 3, Databricks, DuckDB, Trino):
    /// deletion vectors and `timestampNtz` for DATETIME.
    #[serde(rename = "modern")]
    Modern,
    /// Delta reader version 1 (Synapse serverless SQL, Python `deltalake`'s
    /// `to_pyarrow_table()`/`to_pandas()`, Snowflake, older Spark): no reader features at all;
    /// silver and history merge by copy-on-write, DATETIME as a UTC timestamp.
    #[serde(rename = "delta-1")]
    Delta1,
}

impl Readers {
    pub fn name(self) -> &'static str {
        match self {
            Readers::Fabric => "fabric",
            Readers::Modern => "modern",
            Readers::Delta1 => "delta-1",
        }
    }

    /// Whether DATETIME may be stored as `timestamp_ntz` (the `timestampNtz` feature).
    pub fn timestamp_ntz(self) -> bool {
        self == Readers::Modern
    }

    /// Whether silver and history may carry deletion vectors.
    pub fn deletion_vectors(self) -> bool {
        self != Readers::Delta1
    }
}

/// `[lake] silver_deletes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SilverDeletes {
    /// Mark them in a deletion vector; only the new rows are written.
    #[default]
    DeletionVectors,
    /// Rewrite every file that holds one (a Delta MERGE); readers need no deletion-vector
    /// support (e.g. Python `deltalake`'s `to_pandas()`).
    CopyOnWrite,
}

fn default_max_rows() -> usize {
    50_000
}
/// 12 MiB: the bulk load's peak stays under 256 MB on jemalloc (16 MiB took it to ~260-275 MB),
/// at the same rate (see docs/decisions.md).
fn default_max_batch_bytes() -> usize {
    12 << 20
}
fn default_max_latency_ms() -> u64 {
    1000
}
/// A table's changes at 2,000/s or more commit four times a second, at most 12 storage calls
/// per 500 changes; quieter tables keep `max_latency_ms` (see docs/decisions.md).
fn default_busy_latency_ms() -> u64 {
    250
}
fn default_busy_changes_per_table() -> usize {
    500
}
fn default_optimize_every() -> u64 {
    100
}
fn default_vacuum_every() -> u64 {
    500
}
fn default_vacuum_retention() -> u64 {
    168
}
fn default_checkpoint_interval() -> u64 {
    100
}

impl Default for LakeConfig {
    /// The defaults of every key; `url` empty (the writer is handed its storage separately).
    fn default() -> Self {
        LakeConfig {
            url: String::new(),
            storage: Default::default(),
            max_rows: default_max_rows(),
            max_batch_bytes: default_max_batch_bytes(),
            max_latency_ms: default_max_latency_ms(),
            busy_latency_ms: default_busy_latency_ms(),
            busy_changes_per_table: default_busy_changes_per_table(),
            decode_ahead: false,
            optimize_every_commits: default_optimize_every(),
            vacuum_every_commits: default_vacuum_every(),
            vacuum_retention_hours: default_vacuum_retention(),
            vacuum_mode: VacuumMode::default(),
            checkpoint_interval: default_checkpoint_interval(),
            readers: Readers::default(),
            silver_deletes: None,
            on_unappliable: OnUnappliable::default(),
            schema_changes: SchemaChanges::default(),
            table_schema_changes: Default::default(),
            routes: Vec::new(),
        }
    }
}

impl LakeConfig {
    /// The oldest a batch's first record may get before the batch is committed.
    pub fn max_latency(&self) -> Duration {
        Duration::from_millis(self.max_latency_ms)
    }

    /// How old a busy batch's first record may get (never later than `max_latency`).
    pub fn busy_latency(&self) -> Duration {
        Duration::from_millis(self.busy_latency_ms.min(self.max_latency_ms))
    }

    /// How long a vacuum keeps unreferenced files for readers of older versions.
    pub fn vacuum_retention(&self) -> Duration {
        Duration::from_secs(self.vacuum_retention_hours * 3600)
    }

    /// Whether silver and history drop replaced rows by deletion vector.
    pub fn deletion_vectors(&self) -> bool {
        match self.silver_deletes {
            Some(mode) => mode == SilverDeletes::DeletionVectors,
            None => self.readers.deletion_vectors(),
        }
    }

    /// The `schema_changes` policy of `table` (`db.table`). A table a route lands shards in
    /// takes `evolve` as `lenient`: shards take a DDL one after another, so for a while one
    /// shard's changes come with the old schema, and a column it lacks or holds narrower must
    /// stay in the table for the shards that have it (see [`super::route`]).
    pub fn schema_changes_for(&self, table: &str) -> SchemaChanges {
        let policy = self
            .table_schema_changes
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(table))
            .map_or(self.schema_changes, |(_, p)| *p);
        let routed = self.routes.iter().any(|r| r.to.eq_ignore_ascii_case(table));
        match policy {
            SchemaChanges::Evolve if routed => SchemaChanges::Lenient,
            other => other,
        }
    }

    /// Checks the values serde cannot; the error is (key, reason).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_rows == 0 {
            return Err(("lake.max_rows", "must be at least 1".into()));
        }
        if self.max_batch_bytes == 0 {
            return Err(("lake.max_batch_bytes", "must be at least 1".into()));
        }
        if self.max_latency_ms == 0 {
            return Err(("lake.max_latency_ms", "must be at least 1".into()));
        }
        if self.busy_latency_ms == 0 {
            return Err(("lake.busy_latency_ms", "must be at least 1".into()));
        }
        if self.busy_changes_per_table == 0 {
            return Err((
                "lake.busy_changes_per_table",
                "must be at least 1 (to commit every batch sooner, lower max_latency_ms)".into(),
            ));
        }
        for route in &self.routes {
            super::route::Routes::check(route).map_err(|reason| ("lake.route", reason))?;
        }
        if self.silver_deletes == Some(SilverDeletes::DeletionVectors)
            && !self.readers.deletion_vectors()
        {
            return Err((
                "lake.silver_deletes",
                format!(
                    "\"deletion_vectors\" needs Delta reader version 3, which readers = \"{}\" rules out: leave silver_deletes unset (copy-on-write) or choose readers = \"fabric\" or \"modern\"",
                    self.readers.name()
                ),
            ));
        }
        Ok(())
    }
}

/// `[gold]`: SQL models over silver, materialized as `gold/<model>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldConfig {
    /// A folder of `<model>.sql` files (relative to the config's folder).
    pub models: PathBuf,
    /// `"on_commit"`: after each batch the sink commits; or an interval: `"30s"`, `"5m"`, `"1h"`.
    #[serde(default = "default_refresh")]
    pub refresh: String,
    /// Vacuum a model's table every N versions (a refresh makes one); 0 never.
    #[serde(default = "default_gold_vacuum_every")]
    pub vacuum_every_refreshes: u64,
    /// What a model's vacuum keeps: the files of the versions of this many last hours.
    #[serde(default = "default_gold_vacuum_retention_hours")]
    pub vacuum_retention_hours: u64,
}

fn default_refresh() -> String {
    "on_commit".into()
}
fn default_gold_vacuum_every() -> u64 {
    100
}
fn default_gold_vacuum_retention_hours() -> u64 {
    1
}

/// When gold models are refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoldRefresh {
    OnCommit,
    Every(std::time::Duration),
}

impl GoldConfig {
    pub fn refresh_policy(&self) -> Result<GoldRefresh, String> {
        let r = self.refresh.trim();
        if r == "on_commit" {
            return Ok(GoldRefresh::OnCommit);
        }
        let (number, unit) = r.split_at(r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len()));
        let n: u64 = number.parse().map_err(|_| {
            format!("{r:?}: use \"on_commit\" or an interval like \"30s\", \"5m\", \"1h\"")
        })?;
        let secs = match unit {
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            _ => return Err(format!("{r:?}: the unit must be s, m or h")),
        };
        if secs == 0 {
            return Err(format!("{r:?}: the interval must be positive"));
        }
        Ok(GoldRefresh::Every(std::time::Duration::from_secs(secs)))
    }
}
