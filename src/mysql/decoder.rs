//! The binlog decoder: a state machine fed one raw event at a time (from a file or a live
//! replication stream) that keeps table maps, transaction and GTID state and the tracked schema,
//! and hands each row change, commit and DDL to a [`DecodeSink`] in binlog order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::binlog_file::{EventHeader, HEADER_LEN};
use super::charset::charset_of_collation;
use super::cursor::Cursor;
use super::events::{self, *};
use super::jsonb;
use super::rows::{decode_image, ColumnCodec, PartialJson};
use super::schema::{DdlEffect, SchemaTracker};
use super::table_map::{parse_table_map, types, TableMap};
use super::{BinlogError, Malformed};
use crate::event::{
    ChangeEvent, Column, ColumnType, Op, Position, Row, SourceInfo, TableId, TableSchema,
    TransactionInfo, Value,
};

/// A committed transaction: where the binlog continues after it, and its GTID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub file: Arc<str>,
    /// Offset of the event after the commit: where a reader resumes.
    pub next_pos: u64,
    pub gtid: Option<Arc<str>>,
    pub ts_ms: u64,
}

/// A table DDL statement met in the binlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ddl {
    pub db: String,
    pub sql: String,
    pub position: Position,
    /// Tables whose rows no insert carries and silver cannot have yet (renamed into their
    /// name, or just given a key).
    pub needs_snapshot: Vec<TableId>,
}

/// Receives what the decoder finds, in binlog order.
pub trait DecodeSink {
    type Error: From<BinlogError>;
    fn change(&mut self, event: &ChangeEvent<'_>) -> Result<(), Self::Error>;
    fn commit(&mut self, _commit: &Commit) -> Result<(), Self::Error> {
        Ok(())
    }
    fn ddl(&mut self, _ddl: &Ddl) -> Result<(), Self::Error> {
        Ok(())
    }
    /// MySQL's executed GTID set before the binlog file that starts here.
    fn previous_gtids(&mut self, _set: &super::gtid::GtidSet) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Says whether a table's rows are wanted.
type TableFilterFn = Box<dyn Fn(&TableId) -> bool + Send>;

/// A table as the decoder reads it: the schema events carry, and a codec per column.
#[derive(Debug)]
pub struct MappedTable {
    pub schema: Arc<TableSchema>,
    pub codecs: Vec<ColumnCodec>,
}

struct CachedMap {
    raw: Vec<u8>,
    table: Arc<MappedTable>,
}

#[derive(Default)]
struct Transaction {
    open: bool,
    gtid: Option<Arc<str>>,
    id: Option<Arc<str>>,
    thread: Option<u32>,
    query: Option<Arc<str>>,
    total: u64,
    per_table: HashMap<TableId, u64>,
}

/// Where rows inside a MySQL TRANSACTION_PAYLOAD are placed: at the payload event's offset,
/// numbered across all its inner events.
struct PayloadFrame {
    offset: u64,
    next_row: u32,
    /// Set when the transaction inside committed: its GTID, reported after the payload.
    committed: Option<Option<Arc<str>>>,
}

/// Where a reader resumes after this event.
fn resume_position(header: &EventHeader, offset: u64) -> u64 {
    if header.log_pos != 0 {
        header.log_pos as u64
    } else {
        offset + header.event_size as u64
    }
}

pub struct BinlogDecoder {
    file: Arc<str>,
    /// How the source is named in errors (the path given on the command line, or a server file).
    display: String,
    fde: FormatDescription,
    tables: HashMap<u64, CachedMap>,
    schemas: SchemaTracker,
    warned: HashSet<TableId>,
    txn: Transaction,
    payload: Option<PayloadFrame>,
    last_payload_events: usize,
    /// Tables whose rows are decoded; others are skipped without decoding.
    table_filter: Option<TableFilterFn>,
}

impl BinlogDecoder {
    pub fn new(file: Arc<str>, schemas: SchemaTracker) -> Self {
        BinlogDecoder {
            display: file.to_string(),
            file,
            fde: FormatDescription::default(),
            tables: HashMap::new(),
            schemas,
            warned: HashSet::new(),
            txn: Transaction::default(),
            payload: None,
            last_payload_events: 0,
            table_filter: None,
        }
    }

    /// Decodes rows only of tables for which `include` is true (DDL is tracked for all).
    pub fn set_table_filter(&mut self, include: impl Fn(&TableId) -> bool + Send + 'static) {
        self.table_filter = Some(Box::new(include));
    }

    /// Moves on to the next binlog file (after a ROTATE, or the next file of a replay).
    pub fn start_file(&mut self, file: Arc<str>, display: String) {
        self.file = file;
        self.display = display;
    }

    pub fn schemas(&self) -> &SchemaTracker {
        &self.schemas
    }

    /// The binlog file events are being read from.
    pub fn file(&self) -> &Arc<str> {
        &self.file
    }

    /// True between a transaction's start and its commit.
    pub fn in_transaction(&self) -> bool {
        self.txn.open
    }

    /// How many events the last TRANSACTION_PAYLOAD held (a replication stream that also
    /// delivers them one by one must skip that many).
    pub fn last_payload_event_count(&self) -> usize {
        self.last_payload_events
    }

    pub fn format(&self) -> &FormatDescription {
        &self.fde
    }

    fn malformed(&self, offset: u64, code: u8, m: Malformed) -> BinlogError {
        BinlogError::Malformed {
            file: self.display.clone(),
            offset,
            event: event_type_name(code),
            reason: m.0,
        }
    }

    /// Decodes one event whose body has no checksum; `offset` is its position in the file.
    pub fn decode<S: DecodeSink>(
        &mut self,
        header: &EventHeader,
        body: &[u8],
        offset: u64,
        sink: &mut S,
    ) -> Result<(), S::Error> {
        let code = header.type_code;
        let wrap = |d: &Self, m: Malformed| d.malformed(offset, code, m);
        match code {
            FORMAT_DESCRIPTION => {
                let fde = parse_format_description_stripped(body).map_err(|m| wrap(self, m))?;
                self.fde = fde;
                // A new FDE means the server (re)started: table ids are no longer valid.
                self.tables.clear();
            }
            ROTATE => {
                // The file reader or the live stream switches files; nothing to decode here.
                parse_rotate(body).map_err(|m| wrap(self, m))?;
            }
            QUERY | MARIADB_QUERY_COMPRESSED => {
                let ph = self.fde.post_header(QUERY, 13);
                let q = parse_query(body, ph, code == MARIADB_QUERY_COMPRESSED)
                    .map_err(|m| wrap(self, m))?;
                self.on_query(header, &q.db, &q.sql, q.thread_id, offset, sink)?;
            }
            XID => {
                parse_xid(body).map_err(|m| wrap(self, m))?;
                self.end_transaction(header, offset, sink)?;
            }
            GTID | ANONYMOUS_GTID => {
                let gtid = if code == GTID {
                    Some(parse_mysql_gtid(body).map_err(|m| wrap(self, m))?)
                } else {
                    None
                };
                self.begin_gtid(gtid, offset);
            }
            GTID_TAGGED => {
                let gtid = parse_tagged_gtid(body).map_err(|m| wrap(self, m))?;
                self.begin_gtid(Some(gtid), offset);
            }
            MARIADB_GTID => {
                let g = parse_mariadb_gtid(body).map_err(|m| wrap(self, m))?;
                let gtid = format!("{}-{}-{}", g.domain_id, header.server_id, g.seq_no);
                self.begin_gtid(Some(gtid), offset);
                // A non-standalone MariaDB GTID event replaces BEGIN.
                self.txn.open = !g.standalone;
            }
            PREVIOUS_GTIDS => {
                let set = super::gtid::parse_previous_gtids(body).map_err(|m| wrap(self, m))?;
                sink.previous_gtids(&set)?;
            }
            MARIADB_GTID_LIST => {
                parse_mariadb_gtid_list(body, header.server_id).map_err(|m| wrap(self, m))?;
            }
            ROWS_QUERY => {
                let mut c = Cursor::new(body);
                c.skip(1, "length").map_err(|m| wrap(self, m))?;
                self.txn.query = Some(String::from_utf8_lossy(c.rest()).into());
            }
            MARIADB_ANNOTATE_ROWS => {
                self.txn.query = Some(String::from_utf8_lossy(body).into());
            }
            TABLE_MAP => self.on_table_map(body, offset).map_err(|m| wrap(self, m))?,
            TRANSACTION_PAYLOAD => {
                let events = decompress_transaction_payload(body).map_err(|m| wrap(self, m))?;
                self.payload = Some(PayloadFrame {
                    offset,
                    next_row: 0,
                    committed: None,
                });
                let result = self.decode_payload(&events, header, offset, sink);
                let frame = self.payload.take();
                result?;
                if let Some(gtid) = frame.and_then(|f| f.committed) {
                    sink.commit(&Commit {
                        file: self.file.clone(),
                        next_pos: resume_position(header, offset),
                        gtid,
                        ts_ms: header.timestamp as u64 * 1000,
                    })?;
                }
            }
            MARIADB_START_ENCRYPTION => {
                return Err(wrap(
                    self,
                    Malformed::new(
                        "the binlog is encrypted (encrypt_binlog=ON); binlake reads only unencrypted binlogs",
                    ),
                )
                .into())
            }
            20..=22 => {
                return Err(wrap(
                    self,
                    Malformed::new("version 0 rows events (MySQL 5.1 betas) are not supported"),
                )
                .into())
            }
            _ => {
                if let Some((kind, v2, compressed)) = rows_kind(code) {
                    self.on_rows(header, body, offset, kind, v2, compressed, sink)?;
                } else if !is_known_passive(code) && header.flags & FLAG_IGNORABLE == 0 {
                    return Err(BinlogError::UnknownEvent {
                        file: self.display.clone(),
                        offset,
                        type_code: code,
                    }
                    .into());
                }
            }
        }
        Ok(())
    }

    fn decode_payload<S: DecodeSink>(
        &mut self,
        events: &[u8],
        outer: &EventHeader,
        offset: u64,
        sink: &mut S,
    ) -> Result<(), S::Error> {
        let mut at = 0usize;
        self.last_payload_events = 0;
        while at < events.len() {
            let bad =
                |d: &Self, why: String| d.malformed(offset, TRANSACTION_PAYLOAD, Malformed(why));
            if events.len() - at < HEADER_LEN {
                return Err(bad(
                    self,
                    format!("inner event at payload byte {at} is truncated"),
                )
                .into());
            }
            let header =
                EventHeader::parse(events[at..at + HEADER_LEN].try_into().expect("19 bytes"));
            let size = header.event_size as usize;
            if size < HEADER_LEN || at + size > events.len() {
                return Err(bad(
                    self,
                    format!("inner event at payload byte {at} claims {size} bytes"),
                )
                .into());
            }
            let mut inner = header;
            if inner.timestamp == 0 {
                inner.timestamp = outer.timestamp;
            }
            if header.type_code == TRANSACTION_PAYLOAD {
                return Err(bad(self, "nested transaction payload".into()).into());
            }
            self.decode(&inner, &events[at + HEADER_LEN..at + size], offset, sink)?;
            self.last_payload_events += 1;
            at += size;
        }
        Ok(())
    }

    fn begin_gtid(&mut self, gtid: Option<String>, offset: u64) {
        self.txn = Transaction {
            gtid: gtid.map(Arc::from),
            ..Default::default()
        };
        self.txn.id = Some(match &self.txn.gtid {
            Some(g) => g.clone(),
            None => format!("{}:{offset}", self.file).into(),
        });
    }

    fn on_query<S: DecodeSink>(
        &mut self,
        header: &EventHeader,
        db: &str,
        sql: &str,
        thread: u32,
        offset: u64,
        sink: &mut S,
    ) -> Result<(), S::Error> {
        let trimmed = sql.trim();
        if trimmed.eq_ignore_ascii_case("BEGIN") || trimmed.eq_ignore_ascii_case("XA START") {
            self.txn.open = true;
            self.txn.thread = Some(thread);
            if self.txn.id.is_none() {
                self.txn.id = Some(format!("{}:{offset}", self.file).into());
            }
            return Ok(());
        }
        if trimmed.eq_ignore_ascii_case("COMMIT")
            || trimmed.to_ascii_uppercase().starts_with("XA COMMIT")
        {
            return self.end_transaction(header, offset, sink);
        }
        if trimmed.eq_ignore_ascii_case("ROLLBACK") {
            self.txn = Transaction::default();
            return Ok(());
        }
        self.txn.thread = Some(thread);
        let position = Position {
            file: self.file.clone(),
            pos: offset,
            row: 0,
        };
        match self.schemas.apply(db, sql) {
            Ok(DdlEffect::None) => {}
            Ok(DdlEffect::Changed { needs_snapshot, .. }) => {
                // Cached table maps were resolved against the old schema.
                self.tables.clear();
                sink.ddl(&Ddl {
                    db: db.to_string(),
                    sql: sql.to_string(),
                    position,
                    needs_snapshot,
                })?;
            }
            Ok(DdlEffect::Truncated(tables)) => {
                sink.ddl(&Ddl {
                    db: db.to_string(),
                    sql: sql.to_string(),
                    position: position.clone(),
                    needs_snapshot: Vec::new(),
                })?;
                for (i, id) in tables.into_iter().enumerate() {
                    if self
                        .table_filter
                        .as_ref()
                        .is_some_and(|include| !include(&id))
                    {
                        continue;
                    }
                    let schema = Arc::new(self.declared_schema(&id));
                    let event = ChangeEvent {
                        table: schema,
                        op: Op::Truncate,
                        before: None,
                        after: None,
                        position: Position {
                            row: i as u32,
                            ..position.clone()
                        },
                        source: self.source(header, Some(sql.into())),
                        transaction: self.next_txn_info(&id),
                    };
                    sink.change(&event)?;
                }
            }
            Err(unparsed) => {
                tracing::warn!(file = %self.display, offset, "{unparsed}");
                self.tables.clear();
            }
        }
        // A DDL statement outside a transaction commits by itself.
        if !self.txn.open {
            self.end_transaction(header, offset, sink)?;
        }
        Ok(())
    }

    fn end_transaction<S: DecodeSink>(
        &mut self,
        header: &EventHeader,
        offset: u64,
        sink: &mut S,
    ) -> Result<(), S::Error> {
        let txn = std::mem::take(&mut self.txn);
        if let Some(frame) = self.payload.as_mut() {
            // Inside a payload the commit takes effect after the whole payload event.
            frame.committed = Some(txn.gtid);
            return Ok(());
        }
        sink.commit(&Commit {
            file: self.file.clone(),
            next_pos: resume_position(header, offset),
            gtid: txn.gtid,
            ts_ms: header.timestamp as u64 * 1000,
        })
    }

    fn source(&self, header: &EventHeader, query: Option<Arc<str>>) -> SourceInfo {
        SourceInfo {
            server_id: header.server_id,
            ts_ms: header.timestamp as u64 * 1000,
            gtid: self.txn.gtid.clone(),
            thread: self.txn.thread,
            query,
            snapshot: "false",
        }
    }

    fn next_txn_info(&mut self, table: &TableId) -> Option<TransactionInfo> {
        let id = self.txn.id.clone()?;
        self.txn.total += 1;
        // Look up before inserting: cloning the table name for every row is measurable.
        let per = match self.txn.per_table.get_mut(table) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                self.txn.per_table.insert(table.clone(), 1);
                1
            }
        };
        Some(TransactionInfo {
            id,
            total_order: self.txn.total,
            data_collection_order: per,
        })
    }

    /// A schema with only what DDL says (for TRUNCATE events, which carry no table map).
    fn declared_schema(&self, id: &TableId) -> TableSchema {
        let declared = self.schemas.get(id);
        let columns = declared
            .map(|d| {
                d.columns
                    .iter()
                    .map(|c| Column::new(c.name.clone(), ColumnType::Unknown(0)))
                    .collect()
            })
            .unwrap_or_default();
        TableSchema {
            id: id.clone(),
            columns,
            primary_key: Vec::new(),
            positional_names: declared.is_none(),
        }
    }

    fn on_table_map(&mut self, body: &[u8], offset: u64) -> Result<(), Malformed> {
        let ph = self.fde.post_header(TABLE_MAP, 8);
        let table_id_len = if ph == 6 { 4 } else { 6 };
        let id = Cursor::new(body).uint_le(table_id_len, "table id")?;
        if let Some(cached) = self.tables.get(&id) {
            if cached.raw == body {
                return Ok(());
            }
        }
        let tm = parse_table_map(body, ph)?;
        let mapped = self.map_table(&tm, offset);
        self.tables.insert(
            id,
            CachedMap {
                raw: body.to_vec(),
                table: Arc::new(mapped),
            },
        );
        Ok(())
    }

    fn map_table(&mut self, tm: &TableMap, offset: u64) -> MappedTable {
        let id = TableId::new(tm.db.clone(), tm.table.clone());
        let n = tm.columns.len();
        let declared = self.schemas.get(&id).filter(|d| d.columns.len() == n);
        if declared.is_none() && self.schemas.get(&id).is_some() && self.warned.insert(id.clone()) {
            tracing::warn!(
                table = %id, file = %self.display, offset,
                "the known schema of {id} has {} columns but the binlog has {n}; using the binlog's own metadata",
                self.schemas.get(&id).map(|d| d.columns.len()).unwrap_or(0)
            );
        }
        let names: Option<Vec<String>> = tm
            .optional
            .names
            .clone()
            .filter(|v| v.len() == n)
            .or_else(|| declared.map(|d| d.columns.iter().map(|c| c.name.clone()).collect()));
        let positional = names.is_none();
        if positional && self.warned.insert(id.clone()) {
            tracing::warn!(
                table = %id, file = %self.display, offset,
                "no column names for {id}: its table map carries none (the server did not run with binlog_row_metadata=FULL) and no CREATE TABLE for it is known (give one with --schema); naming columns _0, _1, ..."
            );
        }
        let mut unsigned_iter = tm.optional.unsigned.as_ref().map(|v| v.iter());
        let mut charset_iter = tm.optional.charsets.as_ref().map(|v| v.iter());
        let mut es_charset_iter = tm.optional.enum_set_charsets.as_ref().map(|v| v.iter());
        let mut enum_iter = tm.optional.enum_members.as_ref().map(|v| v.iter());
        let mut set_iter = tm.optional.set_members.as_ref().map(|v| v.iter());
        let mut columns = Vec::with_capacity(n);
        let mut codecs = Vec::with_capacity(n);
        for (i, mc) in tm.columns.iter().enumerate() {
            let decl = declared.map(|d| &d.columns[i]);
            let name = names
                .as_ref()
                .map(|v| v[i].clone())
                .unwrap_or_else(|| format!("_{i}"));
            let mut unsigned = decl.is_some_and(|d| d.unsigned);
            if mc.is_numeric() {
                if let Some(it) = unsigned_iter.as_mut() {
                    unsigned = it.next().copied().unwrap_or(unsigned);
                }
            }
            let mut charset = decl.and_then(|d| d.charset);
            if mc.is_character() {
                if let Some(cs) = charset_iter.as_mut().and_then(|it| it.next()) {
                    charset = Some(charset_of_collation(*cs));
                }
            } else if mc.is_enum_or_set() {
                if let Some(cs) = es_charset_iter.as_mut().and_then(|it| it.next()) {
                    charset = Some(charset_of_collation(*cs));
                }
            }
            let mut members = decl.map(|d| d.members.clone()).unwrap_or_default();
            if mc.real_type == types::ENUM {
                if let Some(m) = enum_iter.as_mut().and_then(|it| it.next()) {
                    members = m.clone();
                }
            } else if mc.real_type == types::SET {
                if let Some(m) = set_iter.as_mut().and_then(|it| it.next()) {
                    members = m.clone();
                }
            }
            let column_type = column_type_of(mc.real_type, mc.meta);
            codecs.push(ColumnCodec::from_map(mc, name.clone(), unsigned, charset));
            columns.push(Column {
                name,
                column_type,
                unsigned,
                nullable: mc.nullable,
                charset,
                members,
                default: decl.and_then(|d| d.default.clone()),
                renamed_from: decl.map(|d| d.renamed_from.clone()).unwrap_or_default(),
            });
        }
        let primary_key = match &tm.optional.primary_key {
            Some(pk) if !pk.is_empty() => pk.clone(),
            _ => declared
                .map(|d| {
                    d.row_key()
                        .iter()
                        .filter_map(|k| columns.iter().position(|c| c.name.eq_ignore_ascii_case(k)))
                        .collect()
                })
                .unwrap_or_default(),
        };
        MappedTable {
            schema: Arc::new(TableSchema {
                id,
                columns,
                primary_key,
                positional_names: positional,
            }),
            codecs,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_rows<S: DecodeSink>(
        &mut self,
        header: &EventHeader,
        body: &[u8],
        offset: u64,
        kind: RowsKind,
        v2: bool,
        compressed: bool,
        sink: &mut S,
    ) -> Result<(), S::Error> {
        let code = header.type_code;
        let ph = self.fde.post_header(code, if v2 { 10 } else { 8 });
        // v2 post headers include the 2-byte extra-data length, which the parser reads itself.
        let id_len_marker = if v2 { ph.saturating_sub(2) } else { ph };
        let rows = events::parse_rows_header(body, kind, v2, compressed, id_len_marker)
            .map_err(|m| self.malformed(offset, code, m))?;
        let Some(table) = self.tables.get(&rows.table_id).map(|c| c.table.clone()) else {
            return Err(self
                .malformed(
                    offset,
                    code,
                    Malformed::new(format!(
                        "rows for table id {} with no TABLE_MAP before them",
                        rows.table_id
                    )),
                )
                .into());
        };
        if self
            .table_filter
            .as_ref()
            .is_some_and(|include| !include(&table.schema.id))
        {
            return Ok(());
        }
        if rows.column_count != table.codecs.len() {
            return Err(self
                .malformed(
                    offset,
                    code,
                    Malformed::new(format!(
                        "rows event has {} columns, the table map of {} has {}",
                        rows.column_count,
                        table.schema.id,
                        table.codecs.len()
                    )),
                )
                .into());
        }
        let (op, pos) = match kind {
            RowsKind::Write => (Op::Create, offset),
            RowsKind::Delete => (Op::Delete, offset),
            RowsKind::Update | RowsKind::PartialUpdate => (Op::Update, offset),
        };
        let (pos, mut row_index) = match &self.payload {
            Some(frame) => (frame.offset, frame.next_row),
            None => (pos, 0),
        };
        let data: &[u8] = &rows.rows;
        let mut c = Cursor::new(data);
        // Row buffers are reused from row to row of the event.
        let mut before: Row<'_> = Vec::with_capacity(table.codecs.len());
        let mut after: Row<'_> = Vec::with_capacity(table.codecs.len());
        let mut partials: Vec<PartialJson<'_>> = Vec::new();
        let result = (|| -> Result<(), S::Error> {
            while !c.is_empty() {
                let row_start = c.position();
                let fail = |d: &Self, m: Malformed| {
                    d.malformed(
                        offset,
                        code,
                        Malformed::new(format!(
                            "table {}, row {row_index} (rows byte {row_start}): {m}",
                            table.schema.id
                        )),
                    )
                };
                let has_before = matches!(
                    kind,
                    RowsKind::Delete | RowsKind::Update | RowsKind::PartialUpdate
                );
                let has_after = !matches!(kind, RowsKind::Delete);
                if has_before {
                    decode_image(&table.codecs, rows.present, &mut c, None, &mut before)
                        .map_err(|m| fail(self, m))?;
                }
                if has_after {
                    let present = rows.present_after.unwrap_or(rows.present);
                    partials.clear();
                    let partial = (kind == RowsKind::PartialUpdate).then_some(&mut partials);
                    decode_image(&table.codecs, present, &mut c, partial, &mut after)
                        .map_err(|m| fail(self, m))?;
                    for p in partials.drain(..) {
                        let before_text = match before.get(p.column) {
                            Some(Some(Value::JsonBinary(b))) => jsonb::to_json_string(b),
                            Some(Some(Value::JsonText(t))) => Ok(t.to_string()),
                            Some(Some(_)) => Err(Malformed::new(format!(
                                "column `{}`: a partial JSON update of a NULL document",
                                table.codecs[p.column].name
                            ))),
                            _ => Err(Malformed::new(format!(
                                "column `{}` is updated with a partial JSON diff but the before image does not carry it (binlog_row_image=MINIMAL); binlake can apply partial JSON updates only with binlog_row_image=FULL, or without binlog_row_value_options=PARTIAL_JSON",
                                table.codecs[p.column].name
                            ))),
                        }
                        .map_err(|m| fail(self, m))?;
                        let new = jsonb::apply_json_diffs(&before_text, p.diffs).map_err(|m| {
                            fail(
                                self,
                                Malformed::new(format!(
                                    "column `{}`: {m}",
                                    table.codecs[p.column].name
                                )),
                            )
                        })?;
                        after[p.column] = Some(Value::JsonText(new.into()));
                    }
                }
                let source = self.source(header, self.txn.query.clone());
                let transaction = self.next_txn_info(&table.schema.id);
                let event = ChangeEvent {
                    table: table.schema.clone(),
                    op,
                    before: has_before.then(|| std::mem::take(&mut before)),
                    after: has_after.then(|| std::mem::take(&mut after)),
                    position: Position {
                        file: self.file.clone(),
                        pos,
                        row: row_index,
                    },
                    source,
                    transaction,
                };
                let r = sink.change(&event);
                // Hand the row buffers back for the next row.
                if let Some(b) = event.before {
                    before = b;
                }
                if let Some(a) = event.after {
                    after = a;
                }
                r?;
                row_index += 1;
            }
            Ok(())
        })();
        if let Some(frame) = self.payload.as_mut() {
            frame.next_row = row_index;
        }
        result
    }
}

/// The column type a binlog type code and its metadata describe.
pub fn column_type_of(real_type: u8, meta: u16) -> ColumnType {
    use types::*;
    let fsp = meta.min(6) as u8;
    match real_type {
        TINY => ColumnType::TinyInt,
        SHORT => ColumnType::SmallInt,
        INT24 => ColumnType::MediumInt,
        LONG => ColumnType::Int,
        LONGLONG => ColumnType::BigInt,
        FLOAT => ColumnType::Float,
        DOUBLE => ColumnType::Double,
        NEWDECIMAL => ColumnType::Decimal {
            precision: (meta >> 8) as u8,
            scale: (meta & 0xff) as u8,
        },
        BIT => ColumnType::Bit {
            bits: (meta & 0xff) * 8 + (meta >> 8),
        },
        DATE | NEWDATE => ColumnType::Date,
        DATETIME => ColumnType::DateTime { fsp: 0 },
        DATETIME2 => ColumnType::DateTime { fsp },
        TIMESTAMP => ColumnType::Timestamp { fsp: 0 },
        TIMESTAMP2 => ColumnType::Timestamp { fsp },
        TIME => ColumnType::Time { fsp: 0 },
        TIME2 => ColumnType::Time { fsp },
        YEAR => ColumnType::Year,
        STRING => ColumnType::Char {
            max_bytes: meta as u32,
        },
        VARCHAR | VAR_STRING => ColumnType::VarChar {
            max_bytes: meta as u32,
        },
        BLOB | TINY_BLOB | MEDIUM_BLOB | LONG_BLOB => ColumnType::Blob {
            pack_len: meta as u8,
        },
        ENUM => ColumnType::Enum,
        SET => ColumnType::Set,
        JSON => ColumnType::Json,
        GEOMETRY => ColumnType::Geometry,
        VECTOR => ColumnType::Vector,
        x => ColumnType::Unknown(x),
    }
}
