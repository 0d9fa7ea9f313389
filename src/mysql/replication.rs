//! Live capture: binlake connects to MySQL/MariaDB as a replica (mysql_async), streams the
//! binlog from its checkpoint through the decoder into a [`SourceOutput`], and reconnects when
//! the connection drops.
//!
//! # Progress tracking
//! The unit of progress is the transaction. The position binlake tracks (`Resume`) is the
//! event *after* the last COMMIT it decoded: a binlog file and offset, plus the GTID state
//! there (MariaDB: the last `domain-server-seq` per domain; MySQL: the executed GTID set, begun
//! from the file's PREVIOUS_GTIDS event and extended by every committed GTID). Changes of a
//! transaction reach the output before its commit moves the position, so the position never
//! runs ahead of what the output was given.
//!
//! # Checkpoints
//! A checkpoint is written only after [`SourceOutput::make_durable`] returned: the output
//! (Kafka acknowledged, the NDJSON file fsynced, the lake committed for `embedded`) holds every
//! change before the position first. It is written between transactions, at most once per
//! `checkpoint_interval` (1 s by default) while changes flow, and once more on every stop,
//! clean or fatal, so a restart never skips a change and re-sends at most the last interval,
//! which the lake skips by position. The checkpoint also carries the schema of every table as
//! of its position: the events after it decode with the schema they were written under.
//!
//! # Resumption
//! A restart reads the checkpoint and asks the server for the binlog from there: by file and
//! offset (`resume_by = "position"`, the same server), or by GTID (`resume_by = "gtid"`:
//! COM_BINLOG_DUMP_GTID with the executed set on MySQL, `@slave_connect_state` on MariaDB),
//! which survives a failover to another server of the same replication topology. A first
//! start without a checkpoint takes the snapshot (see [`super::snapshot`]) and streams from
//! the position it recorded, or, with `snapshot = "never"`, from the oldest binlog left.
//! A requested binlog or GTID range the server no longer has is error 1236: that is fatal and
//! names the recovery, since the changes in between are lost to binlog capture.
//!
//! # Reconnects
//! A dropped connection, a server restart or `read_timeout_secs` without any event (the server
//! sends a heartbeat every `heartbeat_secs` while idle) ends one `stream_once`; the loop in
//! [`LiveSource::run`] reconnects with exponential backoff (250 ms doubling to 30 s, reset once
//! a commit gets through) and resumes from the last decoded commit, not from the checkpoint:
//! nothing the output already has is decoded twice within one run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::BinlogStreamRequest;

use super::binlog_file::EventHeader;
use super::checkpoint::{CheckpointStore, Selection, SnapshotState};
use super::column_policy::Guarded;
use super::config::{
    ResumeBy, SnapshotLocking, SnapshotMode, SnapshotPositions, SourceConfig, TableFilter,
};
use super::decoder::BinlogDecoder;
use super::events::{parse_rotate, HEARTBEAT, ROTATE, TRANSACTION_PAYLOAD};
use super::flavor::ServerInfo;
use super::gtid::GtidSet;
pub use super::progress::SourceStats;
use super::progress::{parse_mariadb_gtid, Resume, Tracker};
use super::reconcile::Reconciler;
use super::server::Server;
use super::signals;
use super::snapshot::{run_snapshot, SnapshotTarget};
use super::{BinlogError, SourceError, SourceOutput};
use crate::event::TableId;

/// Options of one run of the source.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop once everything up to the server's binlog position at start is captured.
    pub exit_when_caught_up: bool,
    /// How often a checkpoint is written while changes flow.
    pub checkpoint_interval: Option<Duration>,
    /// Where the progress of a snapshot taken while streaming is shown.
    pub snapshot_board: Option<super::checkpoint::SnapshotBoard>,
}

/// The live source: configuration, the server, where it keeps checkpoints, and its filter.
pub struct LiveSource {
    pub(super) config: SourceConfig,
    pub(super) server: Server,
    pub(super) filter: TableFilter,
    pub(super) store: CheckpointStore,
}

impl LiveSource {
    pub fn new(config: SourceConfig) -> Result<Self, SourceError> {
        let server = Server::new(&config)?;
        let filter =
            TableFilter::new(&config.include, &config.exclude).map_err(SourceError::Unsupported)?;
        let store = CheckpointStore::new(&config.checkpoint).with_selection(Selection {
            include: config.include.clone(),
            exclude: config.exclude.clone(),
            key_columns: Some(config.key_columns.clone()),
        });
        Ok(LiveSource {
            config,
            server,
            filter,
            store,
        })
    }

    pub fn store(&self) -> &CheckpointStore {
        &self.store
    }

    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Runs the source until stopped, caught up (with the option), or a fatal error.
    pub async fn run<O: SourceOutput>(
        &self,
        output: &mut O,
        options: &RunOptions,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<SourceStats, SourceError> {
        // Excluded and masked columns never get past this point (see [`super::column_policy`]).
        let mut guarded = Guarded {
            inner: output,
            policy: self.config.column_policy(),
        };
        let output = &mut guarded;
        let mut conn = self.server.connect().await?;
        let info = self.server.server_info(&mut conn).await?;
        let target = if options.exit_when_caught_up {
            Some(self.server.current_position(&mut conn, &info).await?)
        } else {
            None
        };
        let loaded = self.store.load()?;
        let (mut resume, mut schema, mut pending) = match loaded.clone() {
            Some(cp) => {
                let mut domains = BTreeMap::new();
                for g in cp.gtid.split(',').filter(|g| !g.is_empty()) {
                    if let Some(d) = parse_mariadb_gtid(g) {
                        domains.insert(d, g.to_string());
                    }
                }
                let executed = if info.is_mariadb {
                    GtidSet::default()
                } else {
                    GtidSet::parse(&cp.gtid).map_err(|e| {
                        SourceError::Unsupported(format!(
                            "{}: the GTID set in the checkpoint: {e}",
                            self.store.path().display()
                        ))
                    })?
                };
                let pending = if cp.snapshot_done {
                    tracing::info!(file = %cp.file, pos = cp.pos, gtid = %cp.gtid, "resuming from checkpoint");
                    None
                } else {
                    tracing::info!("resuming the snapshot after its last finished chunk");
                    cp.snapshot.clone()
                };
                (
                    Resume {
                        file: cp.file.clone(),
                        pos: cp.pos,
                        domains,
                        executed,
                    },
                    cp.schema_tracker(),
                    pending,
                )
            }
            None => {
                let schema = self.server.load_schema(&mut conn, &self.filter).await?;
                match self.config.snapshot {
                    SnapshotMode::Never => {
                        let file = self.server.oldest_binlog(&mut conn).await?;
                        tracing::info!(%file, "first start without snapshot: streaming from the oldest binlog");
                        let resume = Resume {
                            file,
                            pos: 4,
                            domains: BTreeMap::new(),
                            executed: GtidSet::default(),
                        };
                        // The baseline: schema and position are durable before the first change.
                        self.store.save(&resume.checkpoint(&schema, None))?;
                        (resume, schema, None)
                    }
                    SnapshotMode::Initial | SnapshotMode::Only => {
                        let state = SnapshotState::new(&schema, &self.filter);
                        let resume = Resume {
                            file: String::new(),
                            pos: 0,
                            domains: BTreeMap::new(),
                            executed: GtidSet::default(),
                        };
                        (resume, schema, Some(state))
                    }
                }
            }
        };
        if let Some(cp) = &loaded {
            self.snapshot_added_tables(&mut conn, cp, &mut schema, &mut pending)
                .await?;
        }
        let mut snapshot_rows = 0;
        let watermarks = self.config.uses_watermarks(info.is_mariadb).then(|| {
            let (db, table) = self.config.watermark_table_id();
            TableId::new(db, table)
        });
        let read_only = self.config.snapshot_positions == SnapshotPositions::ReadOnly;
        let mut reconciler = None;
        if let Some(state) = pending
            .as_mut()
            .filter(|s| watermarks.is_some() || read_only || s.alongside_stream)
        {
            reconciler = Some(
                self.start_lock_free_snapshot(
                    &mut conn,
                    &info,
                    state,
                    &schema,
                    watermarks.as_ref(),
                    &mut resume,
                )
                .await?,
            );
        } else if let Some(state) = pending.as_mut() {
            if !info.has_snapshot_position()
                && self.config.snapshot_locking == SnapshotLocking::None
            {
                return Err(SourceError::Unsupported(format!(
                    "{}: {} reports no binlog position for a consistent read without the global read lock: keep snapshot_positions = \"auto\" (or \"watermark\"), or allow the lock with snapshot_locking = \"global\"",
                    self.server.display_url, info.version
                )));
            }
            let server_id: u32 = conn
                .query_first("SELECT @@server_id")
                .await
                .map_err(self.server.server_err("SELECT @@server_id"))?
                .unwrap_or(0);
            snapshot_rows = run_snapshot(
                SnapshotTarget {
                    conn: &mut conn,
                    url: &self.server.display_url,
                    info: &info,
                    server_id,
                    chunk_rows: self.config.snapshot_chunk_rows,
                },
                &schema,
                state,
                output,
                &self.store,
            )
            .await?;
            if let Some((file, pos)) = state.start.clone() {
                resume.file = file;
                resume.pos = pos;
                if let Ok(set) = GtidSet::parse(&state.start_gtid) {
                    resume.executed = set;
                }
            } else {
                // No table to snapshot: stream from where the server is now.
                let (file, pos) = self.server.current_position(&mut conn, &info).await?;
                resume.file = file;
                resume.pos = pos;
            }
            self.store.save(&resume.checkpoint(&schema, None))?;
            tracing::info!(rows = snapshot_rows, file = %resume.file, pos = resume.pos, "snapshot done");
            if self.config.snapshot == SnapshotMode::Only {
                return Ok(SourceStats {
                    changes: snapshot_rows,
                    checkpoints: 1,
                    ..Default::default()
                });
            }
        }
        drop(conn);

        let mut decoder = BinlogDecoder::new(Arc::from(resume.file.as_str()), schema);
        let filter = self.filter.clone();
        let watermark_table = watermarks.clone();
        let signal_table = self.config.signal_table_id();
        let signals = signal_table.clone();
        decoder.set_table_filter(move |id| {
            filter.matches(&id.db, &id.table)
                || watermark_table.as_ref() == Some(id)
                || *id == signals
        });
        let mut tracker = Tracker {
            output,
            store: &self.store,
            committed: resume,
            last_checkpoint: Instant::now(),
            interval: options
                .checkpoint_interval
                .unwrap_or(Duration::from_secs(1)),
            stats: SourceStats {
                changes: snapshot_rows,
                ..Default::default()
            },
            dirty: false,
            stop_after_snapshot: reconciler.is_some() && self.config.snapshot == SnapshotMode::Only,
            reconciler,
            watermarks,
            signal_table,
            board: options.snapshot_board.clone(),
            requests: Vec::new(),
            in_flight: Default::default(),
            // Look for file signals at the first chance.
            signals_checked: Instant::now()
                .checked_sub(Duration::from_secs(1))
                .unwrap_or_else(Instant::now),
        };
        let mut backoff = Duration::from_millis(250);
        let already_there = !tracker.snapshot_running()
            && target.as_ref().is_some_and(|(file, pos)| {
                (tracker.committed.file.as_str(), tracker.committed.pos) >= (file.as_str(), *pos)
            });
        loop {
            if *stop.borrow() || already_there {
                break;
            }
            let commits_before = tracker.stats.commits;
            let outcome = self
                .stream_once(
                    &mut decoder,
                    &mut tracker,
                    target.as_ref(),
                    &info,
                    &mut stop,
                )
                .await;
            if tracker.stats.commits > commits_before {
                backoff = Duration::from_millis(250);
            }
            match outcome {
                Ok(StreamEnd::Stopped) | Ok(StreamEnd::CaughtUp) => break,
                Err(Retry::Fatal(e)) => {
                    // Keep what is durable: checkpoint the last commit before failing.
                    let _ = tracker.checkpoint(decoder.schemas());
                    return Err(e);
                }
                Err(Retry::Again(reason)) => {
                    tracing::warn!(url = %self.server.display_url, "replication connection lost: {reason}; reconnecting in {} ms", backoff.as_millis());
                }
            }
            tracker.stats.reconnects += 1;
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
        tracker.checkpoint(decoder.schemas())?;
        Ok(tracker.stats)
    }

    /// One replication connection: from the last commit until it ends.
    async fn stream_once<O: SourceOutput>(
        &self,
        decoder: &mut BinlogDecoder,
        tracker: &mut Tracker<'_, O>,
        target: Option<&(String, u64)>,
        info: &ServerInfo,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<StreamEnd, Retry> {
        let again = |e: SourceError| Retry::Again(e.to_string());
        let mut conn = self.server.connect().await.map_err(again)?;
        let heartbeat_ns = self.config.heartbeat_secs * 1_000_000_000;
        let mut setup = info.replication_session(heartbeat_ns);
        let resume = tracker.committed.clone();
        let mysql_gtid = self.config.resume_by == ResumeBy::Gtid
            && !info.is_mariadb
            && !resume.executed.is_empty();
        let by_gtid = self.config.resume_by == ResumeBy::Gtid && !resume.domains.is_empty();
        if by_gtid {
            setup.push(format!(
                "SET @slave_connect_state = '{}'",
                resume.gtid_text().replace('\'', "")
            ));
            setup.push("SET @slave_gtid_strict_mode = 0".into());
        }
        for q in &setup {
            conn.query_drop(q)
                .await
                .map_err(|e| Retry::Again(format!("{q}: {e}")))?;
        }
        let (file, pos) = if by_gtid || mysql_gtid {
            (String::new(), 4)
        } else {
            (resume.file.clone(), resume.pos)
        };
        let mut request = BinlogStreamRequest::new(self.config.server_id)
            .with_filename(file.as_bytes())
            .with_pos(pos);
        if mysql_gtid {
            // COM_BINLOG_DUMP_GTID: the server sends what is not in the executed set.
            let sids = resume.executed.to_request().map_err(|e| {
                Retry::Fatal(SourceError::Unsupported(format!(
                    "{}: {e}",
                    self.server.display_url
                )))
            })?;
            request = request.with_gtid().with_gtid_set(sids);
        }
        let by_gtid = by_gtid || mysql_gtid;
        let mut stream = match conn.get_binlog_stream(request).await {
            Ok(s) => s,
            Err(e) => return Err(self.classify(e, &resume)),
        };
        tracing::info!(file = %resume.file, pos = resume.pos, by_gtid, "streaming the binlog");
        decoder.start_file(Arc::from(resume.file.as_str()), resume.file.clone());
        let read_timeout = Duration::from_secs(self.config.read_timeout_secs);
        let mut skip_inner = 0usize;
        loop {
            let next = tokio::select! {
                n = tokio::time::timeout(read_timeout, stream.next()) => n,
                _ = stop.changed() => return Ok(StreamEnd::Stopped),
                chunk = next_chunk(&mut tracker.reconciler) => {
                    let Some(chunk) = chunk else {
                        let failure = tracker.reconciler.as_ref().and_then(Reconciler::failure);
                        return Err(Retry::Fatal(SourceError::Unsupported(format!(
                            "snapshot: {}",
                            failure.unwrap_or_else(|| "the reader stopped before the last chunk".into())
                        ))));
                    };
                    tracker
                        .place_chunk(chunk, decoder.in_transaction())
                        .map_err(|e| Retry::Fatal(e.into()))?;
                    if tracker.stop_after_snapshot && !tracker.snapshot_running() {
                        return Ok(StreamEnd::CaughtUp);
                    }
                    continue;
                }
            };
            let event = match next {
                Err(_) => {
                    return Err(Retry::Again(format!(
                        "no event or heartbeat for {} s",
                        read_timeout.as_secs()
                    )))
                }
                Ok(None) => return Err(Retry::Again("the server closed the stream".into())),
                Ok(Some(Err(e))) => return Err(self.classify(e, &tracker.committed)),
                Ok(Some(Ok(ev))) => ev,
            };
            let h = event.header();
            let header = EventHeader {
                timestamp: h.timestamp(),
                type_code: h.event_type_raw(),
                server_id: h.server_id(),
                event_size: h.event_size(),
                log_pos: h.log_pos(),
                flags: h.flags_raw(),
            };
            if skip_inner > 0 {
                // mysql_async also yields a payload's inner events; the decoder already read them.
                skip_inner -= 1;
                continue;
            }
            let data = strip_unverified_checksum(&header, event.data());
            if header.type_code == ROTATE {
                let (pos, name) = parse_rotate(data).map_err(|m| {
                    Retry::Fatal(SourceError::Binlog(BinlogError::Malformed {
                        file: resume.file.clone(),
                        offset: 0,
                        event: "ROTATE".into(),
                        reason: m.0,
                    }))
                })?;
                decoder.start_file(Arc::from(name.as_str()), name.clone());
                if header.log_pos == 0 || tracker.committed.file.is_empty() || by_gtid {
                    // The server's announcement of where the stream starts.
                    tracker.committed.file = name;
                    tracker.committed.pos = pos;
                }
                continue;
            }
            if header.type_code == HEARTBEAT {
                tracker
                    .output
                    .heartbeat(decoder.file(), header.log_pos as u64)
                    .map_err(|e| Retry::Fatal(SourceError::Output(e)))?;
            }
            let offset = (header.log_pos as u64).saturating_sub(header.event_size as u64);
            decoder
                .decode(&header, data, offset, tracker)
                .map_err(|e| Retry::Fatal(e.into()))?;
            if header.type_code == TRANSACTION_PAYLOAD {
                skip_inner = decoder.last_payload_event_count();
            }
            let idle = !decoder.in_transaction();
            if idle && tracker.dirty && tracker.last_checkpoint.elapsed() >= tracker.interval {
                tracker
                    .checkpoint_in_passing(decoder.schemas())
                    .map_err(|e| Retry::Fatal(e.into()))?;
            } else if !tracker.in_flight.is_empty() {
                // Answers that came since (the server's heartbeat, every `heartbeat_secs`, wakes
                // this loop when the binlog is idle).
                tracker
                    .save_answered()
                    .map_err(|e| Retry::Fatal(e.into()))?;
            }
            if idle && !tracker.snapshot_running() {
                if tracker.signals_checked.elapsed() >= Duration::from_secs(1) {
                    tracker.signals_checked = Instant::now();
                    for taken in signals::take_files(&signals::folder(&self.config.checkpoint)) {
                        match taken {
                            Ok(requests) => tracker.requests.extend(requests),
                            Err(e) => tracing::error!("{e}; the signal is ignored"),
                        }
                    }
                }
                if !tracker.requests.is_empty() {
                    self.start_requested_snapshot(tracker, decoder, info)
                        .await
                        .map_err(Retry::Fatal)?;
                }
            }
            if idle && tracker.snapshot_running() {
                if let Some(failure) = tracker.reconciler.as_ref().and_then(Reconciler::failure) {
                    return Err(Retry::Fatal(SourceError::Unsupported(format!(
                        "snapshot: {failure}"
                    ))));
                }
                continue;
            }
            if idle && tracker.stop_after_snapshot && tracker.reconciler.is_some() {
                // `snapshot = "only"` with watermarks: the last chunk is out.
                return Ok(StreamEnd::CaughtUp);
            }
            if let Some((tfile, tpos)) = target {
                let here = (decoder.file().to_string(), header.log_pos as u64);
                if idle
                    && header.log_pos != 0
                    && (here.0.as_str(), here.1) >= (tfile.as_str(), *tpos)
                {
                    return Ok(StreamEnd::CaughtUp);
                }
            }
        }
    }

    fn classify(&self, e: mysql_async::Error, at: &Resume) -> Retry {
        match &e {
            mysql_async::Error::Server(s) if s.code == 1236 => Retry::Fatal(SourceError::Purged {
                url: self.server.display_url.clone(),
                position: if at.domains.is_empty() {
                    format!("{}:{}", at.file, at.pos)
                } else {
                    format!("{}:{} (GTID {})", at.file, at.pos, at.gtid_text())
                },
                message: s.message.clone(),
                checkpoint: self.store.path().display().to_string(),
            }),
            mysql_async::Error::Server(s) if matches!(s.code, 1045 | 1227 | 1044) => {
                Retry::Fatal(SourceError::Server {
                    url: self.server.display_url.clone(),
                    what: "starting replication".into(),
                    reason: format!(
                        "{} (binlake check lists the privileges it needs)",
                        s.message
                    ),
                })
            }
            _ => Retry::Again(e.to_string()),
        }
    }
}

/// The server sends a ROTATE before the FORMAT_DESCRIPTION that announces the checksum
/// algorithm, so mysql_common cannot strip that event's CRC32 (mysql_async issue 189). The last
/// four bytes are dropped exactly when they are the CRC32 of the event.
fn strip_unverified_checksum<'a>(header: &EventHeader, data: &'a [u8]) -> &'a [u8] {
    if header.type_code != ROTATE || data.len() < 12 {
        return data;
    }
    let (body, crc) = data.split_at(data.len() - 4);
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(&header.timestamp.to_le_bytes());
    h.push(header.type_code);
    h.extend_from_slice(&header.server_id.to_le_bytes());
    h.extend_from_slice(&header.event_size.to_le_bytes());
    h.extend_from_slice(&header.log_pos.to_le_bytes());
    h.extend_from_slice(&header.flags.to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&h);
    hasher.update(body);
    if hasher.finalize().to_le_bytes() == crc {
        body
    } else {
        data
    }
}

/// The read-only snapshot's next chunk; never, without a read-only snapshot running.
async fn next_chunk(reconciler: &mut Option<Reconciler>) -> Option<super::snapshot_chunk::Chunk> {
    match reconciler {
        Some(r) => r.next_chunk().await,
        None => std::future::pending().await,
    }
}

enum StreamEnd {
    Stopped,
    CaughtUp,
}

enum Retry {
    Again(String),
    Fatal(SourceError),
}
