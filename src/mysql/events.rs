//! Parsing the bodies of the binlog events binlake acts on, MySQL's and MariaDB's: format
//! description, query, rotate, XID, GTIDs (MySQL, tagged MySQL, MariaDB), rows-event headers,
//! MySQL transaction payloads (zstd) and MariaDB's compressed events (zlib).

use std::borrow::Cow;
use std::io::Read;

use super::cursor::Cursor;
use super::Malformed;

pub const QUERY: u8 = 2;
pub const STOP: u8 = 3;
pub const ROTATE: u8 = 4;
pub const FORMAT_DESCRIPTION: u8 = 15;
pub const XID: u8 = 16;
pub const TABLE_MAP: u8 = 19;
pub const WRITE_ROWS_V1: u8 = 23;
pub const UPDATE_ROWS_V1: u8 = 24;
pub const DELETE_ROWS_V1: u8 = 25;
pub const HEARTBEAT: u8 = 27;
pub const ROWS_QUERY: u8 = 29;
pub const WRITE_ROWS_V2: u8 = 30;
pub const UPDATE_ROWS_V2: u8 = 31;
pub const DELETE_ROWS_V2: u8 = 32;
pub const GTID: u8 = 33;
pub const ANONYMOUS_GTID: u8 = 34;
pub const PREVIOUS_GTIDS: u8 = 35;
pub const PARTIAL_UPDATE_ROWS: u8 = 39;
pub const TRANSACTION_PAYLOAD: u8 = 40;
pub const GTID_TAGGED: u8 = 42;
pub const MARIADB_ANNOTATE_ROWS: u8 = 160;
pub const MARIADB_BINLOG_CHECKPOINT: u8 = 161;
pub const MARIADB_GTID: u8 = 162;
pub const MARIADB_GTID_LIST: u8 = 163;
pub const MARIADB_START_ENCRYPTION: u8 = 164;
pub const MARIADB_QUERY_COMPRESSED: u8 = 165;
pub const MARIADB_WRITE_ROWS_COMPRESSED_V1: u8 = 166;
pub const MARIADB_UPDATE_ROWS_COMPRESSED_V1: u8 = 167;
pub const MARIADB_DELETE_ROWS_COMPRESSED_V1: u8 = 168;
pub const MARIADB_WRITE_ROWS_COMPRESSED: u8 = 169;
pub const MARIADB_UPDATE_ROWS_COMPRESSED: u8 = 170;
pub const MARIADB_DELETE_ROWS_COMPRESSED: u8 = 171;

/// LOG_EVENT_IGNORABLE_F: a reader that does not know the event may skip it.
pub const FLAG_IGNORABLE: u16 = 0x80;

/// Decompressed events bigger than this are refused rather than exhausting memory.
const MAX_DECOMPRESSED: u64 = 1 << 30;

/// A readable name for an event type code, for messages.
pub fn event_type_name(code: u8) -> String {
    let name = match code {
        1 => "START_V3",
        QUERY => "QUERY",
        STOP => "STOP",
        ROTATE => "ROTATE",
        5 => "INTVAR",
        13 => "RAND",
        14 => "USER_VAR",
        FORMAT_DESCRIPTION => "FORMAT_DESCRIPTION",
        XID => "XID",
        17 => "BEGIN_LOAD_QUERY",
        18 => "EXECUTE_LOAD_QUERY",
        TABLE_MAP => "TABLE_MAP",
        20 => "WRITE_ROWS_V0",
        21 => "UPDATE_ROWS_V0",
        22 => "DELETE_ROWS_V0",
        WRITE_ROWS_V1 => "WRITE_ROWS_V1",
        UPDATE_ROWS_V1 => "UPDATE_ROWS_V1",
        DELETE_ROWS_V1 => "DELETE_ROWS_V1",
        26 => "INCIDENT",
        HEARTBEAT => "HEARTBEAT",
        28 => "IGNORABLE",
        ROWS_QUERY => "ROWS_QUERY",
        WRITE_ROWS_V2 => "WRITE_ROWS",
        UPDATE_ROWS_V2 => "UPDATE_ROWS",
        DELETE_ROWS_V2 => "DELETE_ROWS",
        GTID => "GTID",
        ANONYMOUS_GTID => "ANONYMOUS_GTID",
        PREVIOUS_GTIDS => "PREVIOUS_GTIDS",
        36 => "TRANSACTION_CONTEXT",
        37 => "VIEW_CHANGE",
        38 => "XA_PREPARE",
        PARTIAL_UPDATE_ROWS => "PARTIAL_UPDATE_ROWS",
        TRANSACTION_PAYLOAD => "TRANSACTION_PAYLOAD",
        41 => "HEARTBEAT_V2",
        GTID_TAGGED => "GTID_TAGGED",
        MARIADB_ANNOTATE_ROWS => "ANNOTATE_ROWS",
        MARIADB_BINLOG_CHECKPOINT => "BINLOG_CHECKPOINT",
        MARIADB_GTID => "MARIADB_GTID",
        MARIADB_GTID_LIST => "GTID_LIST",
        MARIADB_START_ENCRYPTION => "START_ENCRYPTION",
        MARIADB_QUERY_COMPRESSED => "QUERY_COMPRESSED",
        MARIADB_WRITE_ROWS_COMPRESSED_V1 => "WRITE_ROWS_COMPRESSED_V1",
        MARIADB_UPDATE_ROWS_COMPRESSED_V1 => "UPDATE_ROWS_COMPRESSED_V1",
        MARIADB_DELETE_ROWS_COMPRESSED_V1 => "DELETE_ROWS_COMPRESSED_V1",
        MARIADB_WRITE_ROWS_COMPRESSED => "WRITE_ROWS_COMPRESSED",
        MARIADB_UPDATE_ROWS_COMPRESSED => "UPDATE_ROWS_COMPRESSED",
        MARIADB_DELETE_ROWS_COMPRESSED => "DELETE_ROWS_COMPRESSED",
        _ => return format!("type {code}"),
    };
    format!("{name} (type {code})")
}

/// Event types binlake knows and deliberately does nothing with.
pub fn is_known_passive(code: u8) -> bool {
    matches!(
        code,
        1 | STOP
            | 5
            | 13
            | 14
            | 17
            | 18
            | 26
            | HEARTBEAT
            | 28
            | PREVIOUS_GTIDS
            | 36
            | 37
            | 38
            | 41
            | MARIADB_BINLOG_CHECKPOINT
            | MARIADB_GTID_LIST
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlg {
    Off,
    Crc32,
}

/// The FORMAT_DESCRIPTION event: server version, and the post-header length of each event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatDescription {
    pub binlog_version: u16,
    pub server_version: String,
    pub header_len: u8,
    /// Post-header lengths indexed by event type code - 1.
    pub post_header_len: Vec<u8>,
    pub checksum: ChecksumAlg,
    /// True from MySQL 5.6.1 (and MariaDB 5.3) on: the event ends with the algorithm byte and
    /// four checksum bytes, whatever the algorithm.
    pub has_checksum_footer: bool,
    pub is_mariadb: bool,
}

impl FormatDescription {
    /// The post-header length of an event type, with the v4 default when the FDE has no entry.
    pub fn post_header(&self, code: u8, default: u8) -> u8 {
        self.post_header_len
            .get(code as usize - 1)
            .copied()
            .unwrap_or(default)
    }
}

impl Default for FormatDescription {
    fn default() -> Self {
        FormatDescription {
            binlog_version: 4,
            server_version: String::new(),
            header_len: 19,
            post_header_len: Vec::new(),
            checksum: ChecksumAlg::Off,
            has_checksum_footer: false,
            is_mariadb: false,
        }
    }
}

fn version_triple(v: &str) -> (u32, u32, u32) {
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty());
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (next(), next(), next())
}

/// Parses a FORMAT_DESCRIPTION body as it is in the file (the checksum footer included).
pub fn parse_format_description(body: &[u8]) -> Result<FormatDescription, Malformed> {
    parse_fde(body, true)
}

/// Parses a FORMAT_DESCRIPTION body whose checksum footer was already removed (as the file
/// reader and the replication stream hand it on); the checksum algorithm is then unknown here.
pub fn parse_format_description_stripped(body: &[u8]) -> Result<FormatDescription, Malformed> {
    parse_fde(body, false)
}

fn parse_fde(body: &[u8], footer_included: bool) -> Result<FormatDescription, Malformed> {
    let mut c = Cursor::new(body);
    let binlog_version = c.u16_le("binlog version")?;
    if binlog_version != 4 {
        return Err(Malformed::new(format!(
            "binlog format version {binlog_version} is not supported (only v4, MySQL 5.0 and later)"
        )));
    }
    let version_bytes = c.take(50, "server version")?;
    let end = version_bytes.iter().position(|&b| b == 0).unwrap_or(50);
    let server_version = String::from_utf8_lossy(&version_bytes[..end]).into_owned();
    c.skip(4, "create timestamp")?;
    let header_len = c.u8("header length")?;
    if header_len != 19 {
        return Err(Malformed::new(format!(
            "event header length {header_len}, expected 19"
        )));
    }
    let is_mariadb = server_version.to_ascii_lowercase().contains("mariadb");
    let min_checksum_version = if is_mariadb { (5, 3, 0) } else { (5, 6, 1) };
    let has_checksum_footer = version_triple(&server_version) >= min_checksum_version;
    let rest = c.rest();
    if footer_included {
        // Cross-check the version against the event-type table: servers without checksum
        // support list at most 30 event types, servers with it at least 35. A damaged version
        // string must not silently switch checksum verification off.
        let types_if_footer = rest.len().saturating_sub(5);
        let consistent = if has_checksum_footer {
            types_if_footer >= 35
        } else {
            rest.len() <= 30
        };
        if !consistent {
            return Err(Malformed::new(format!(
                "server version {server_version:?} does not fit its table of {} event types; the event is damaged",
                rest.len()
            )));
        }
    }
    let (post_header_len, checksum) = if has_checksum_footer && footer_included {
        if rest.len() < 5 {
            return Err(Malformed::new("too short for its checksum footer"));
        }
        let alg = rest[rest.len() - 5];
        let checksum = match alg {
            0 => ChecksumAlg::Off,
            1 => ChecksumAlg::Crc32,
            x => {
                return Err(Malformed::new(format!(
                    "unknown checksum algorithm {x} (known: 0 none, 1 CRC32)"
                )))
            }
        };
        (rest[..rest.len() - 5].to_vec(), checksum)
    } else {
        (rest.to_vec(), ChecksumAlg::Off)
    };
    Ok(FormatDescription {
        binlog_version,
        is_mariadb,
        server_version,
        header_len,
        post_header_len,
        checksum,
        has_checksum_footer,
    })
}

/// A QUERY event: DDL, BEGIN/COMMIT, or statements in STATEMENT format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryEvent<'a> {
    pub thread_id: u32,
    pub error_code: u16,
    pub db: Cow<'a, str>,
    pub sql: Cow<'a, str>,
}

/// Parses QUERY (2) and MariaDB's QUERY_COMPRESSED (165).
pub fn parse_query<'a>(
    body: &'a [u8],
    post_header_len: u8,
    compressed: bool,
) -> Result<QueryEvent<'a>, Malformed> {
    let mut c = Cursor::new(body);
    let thread_id = c.u32_le("thread id")?;
    c.skip(4, "execution time")?;
    let db_len = c.u8("schema length")? as usize;
    let error_code = c.u16_le("error code")?;
    let status_len = if post_header_len >= 13 {
        c.u16_le("status variables length")? as usize
    } else {
        0
    };
    // Newer servers may extend the post header; skip what we do not know.
    if post_header_len > 13 {
        c.skip(post_header_len as usize - 13, "post header")?;
    }
    c.skip(status_len, "status variables")?;
    let db = String::from_utf8_lossy(c.take(db_len, "schema name")?);
    c.skip(1, "schema name terminator")?;
    let sql_bytes = c.rest();
    let sql = if compressed {
        Cow::Owned(String::from_utf8_lossy(&mariadb_uncompress(sql_bytes)?).into_owned())
    } else {
        String::from_utf8_lossy(sql_bytes)
    };
    Ok(QueryEvent {
        thread_id,
        error_code,
        db,
        sql,
    })
}

/// ROTATE: the next binlog file and the position to read it from.
pub fn parse_rotate(body: &[u8]) -> Result<(u64, String), Malformed> {
    let mut c = Cursor::new(body);
    let pos = c.u64_le("position")?;
    let name = String::from_utf8_lossy(c.rest()).into_owned();
    if name.is_empty() {
        return Err(Malformed::new("empty next file name"));
    }
    Ok((pos, name))
}

/// XID: the commit of an XA-capable (InnoDB) transaction.
pub fn parse_xid(body: &[u8]) -> Result<u64, Malformed> {
    Cursor::new(body).u64_le("xid")
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` for a 16-byte server uuid.
pub(crate) fn format_uuid(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// MySQL's GTID event (33): `uuid:gno`. Returns None for an ANONYMOUS_GTID.
pub fn parse_mysql_gtid(body: &[u8]) -> Result<String, Malformed> {
    let mut c = Cursor::new(body);
    c.skip(1, "GTID flags")?;
    let sid = c.take(16, "source uuid")?;
    let gno = c.u64_le("transaction number")?;
    Ok(format!("{}:{gno}", format_uuid(sid)))
}

/// Reads one unsigned integer of MySQL's serialization library (a 1-9 byte varlen whose first
/// byte's trailing one-bits count the extra bytes).
pub(crate) fn read_varlen_u64(c: &mut Cursor<'_>, what: &str) -> Result<u64, Malformed> {
    let first = c.u8(what)?;
    let extra = first.trailing_ones() as usize;
    if extra >= 8 {
        return c.u64_le(what);
    }
    let mut v = first as u64;
    for (i, b) in c.take(extra, what)?.iter().enumerate() {
        v |= (*b as u64) << (8 * (i + 1));
    }
    Ok(v >> (extra + 1))
}

fn read_varlen_i64(c: &mut Cursor<'_>, what: &str) -> Result<i64, Malformed> {
    let u = read_varlen_u64(c, what)?;
    // Sign in the lowest bit, magnitude above it.
    Ok(if u & 1 == 1 {
        -((u >> 1) as i64) - 1
    } else {
        (u >> 1) as i64
    })
}

/// MySQL 8.3+'s tagged GTID event (42), encoded with the serialization library:
/// `uuid:tag:gno`, or `uuid:gno` when the tag is empty.
pub fn parse_tagged_gtid(body: &[u8]) -> Result<String, Malformed> {
    let mut c = Cursor::new(body);
    // Message header: format version, serializable size, last non-ignorable field id.
    for what in ["message format", "message size", "last field id"] {
        read_varlen_u64(&mut c, what)?;
    }
    let mut uuid = None;
    let mut gno = None;
    let mut tag = String::new();
    while !c.is_empty() {
        let field = read_varlen_u64(&mut c, "field id")?;
        match field {
            0 => {
                read_varlen_u64(&mut c, "GTID flags")?;
            }
            1 => {
                let mut b = [0u8; 16];
                for x in b.iter_mut() {
                    *x = read_varlen_u64(&mut c, "source uuid")? as u8;
                }
                uuid = Some(b);
            }
            2 => gno = Some(read_varlen_i64(&mut c, "transaction number")?),
            3 => {
                let n = read_varlen_u64(&mut c, "tag length")? as usize;
                tag = String::from_utf8_lossy(c.take(n, "tag")?).into_owned();
            }
            4..=11 => {
                read_varlen_u64(&mut c, "GTID field")?;
            }
            // Fields past what binlake knows come last; uuid, tag and gno are already read.
            _ => break,
        }
    }
    let (Some(uuid), Some(gno)) = (uuid, gno) else {
        return Err(Malformed::new(
            "tagged GTID without uuid or transaction number",
        ));
    };
    let uuid = format_uuid(&uuid);
    Ok(if tag.is_empty() {
        format!("{uuid}:{gno}")
    } else {
        format!("{uuid}:{tag}:{gno}")
    })
}

/// MariaDB's GTID event (162).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariadbGtid {
    pub domain_id: u32,
    pub seq_no: u64,
    /// FL_STANDALONE: a DDL or other statement with no BEGIN/COMMIT around it.
    pub standalone: bool,
}

pub fn parse_mariadb_gtid(body: &[u8]) -> Result<MariadbGtid, Malformed> {
    let mut c = Cursor::new(body);
    let seq_no = c.u64_le("sequence number")?;
    let domain_id = c.u32_le("domain id")?;
    let flags = c.u8("flags")?;
    Ok(MariadbGtid {
        domain_id,
        seq_no,
        standalone: flags & 1 != 0,
    })
}

/// MariaDB's GTID_LIST (163): the last GTID of each replication domain at the file's start.
pub fn parse_mariadb_gtid_list(body: &[u8], server: u32) -> Result<Vec<String>, Malformed> {
    let _ = server;
    let mut c = Cursor::new(body);
    let count = c.u32_le("GTID count")? & 0x0fff_ffff;
    let mut out = Vec::new();
    for _ in 0..count {
        let domain = c.u32_le("domain id")?;
        let server = c.u32_le("server id")?;
        let seq = c.u64_le("sequence number")?;
        out.push(format!("{domain}-{server}-{seq}"));
    }
    Ok(out)
}

/// The fixed part of a rows event: which table, which columns the images carry, and the
/// images' bytes (decompressed for MariaDB's compressed rows events).
#[derive(Debug, Clone)]
pub struct RowsEventHeader<'a> {
    pub table_id: u64,
    pub flags: u16,
    pub column_count: usize,
    /// Columns present in the before image (delete, update) or the only image (write).
    pub present: &'a [u8],
    /// Columns present in the after image of an update.
    pub present_after: Option<&'a [u8]>,
    pub rows: Cow<'a, [u8]>,
}

/// What a rows event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsKind {
    Write,
    Update,
    PartialUpdate,
    Delete,
}

/// The rows event kinds, or None when the type is not a rows event.
pub fn rows_kind(code: u8) -> Option<(RowsKind, bool /* v2 */, bool /* compressed */)> {
    Some(match code {
        WRITE_ROWS_V1 => (RowsKind::Write, false, false),
        UPDATE_ROWS_V1 => (RowsKind::Update, false, false),
        DELETE_ROWS_V1 => (RowsKind::Delete, false, false),
        WRITE_ROWS_V2 => (RowsKind::Write, true, false),
        UPDATE_ROWS_V2 => (RowsKind::Update, true, false),
        DELETE_ROWS_V2 => (RowsKind::Delete, true, false),
        PARTIAL_UPDATE_ROWS => (RowsKind::PartialUpdate, true, false),
        MARIADB_WRITE_ROWS_COMPRESSED_V1 => (RowsKind::Write, false, true),
        MARIADB_UPDATE_ROWS_COMPRESSED_V1 => (RowsKind::Update, false, true),
        MARIADB_DELETE_ROWS_COMPRESSED_V1 => (RowsKind::Delete, false, true),
        MARIADB_WRITE_ROWS_COMPRESSED => (RowsKind::Write, true, true),
        MARIADB_UPDATE_ROWS_COMPRESSED => (RowsKind::Update, true, true),
        MARIADB_DELETE_ROWS_COMPRESSED => (RowsKind::Delete, true, true),
        _ => return None,
    })
}

pub fn parse_rows_header<'a>(
    body: &'a [u8],
    kind: RowsKind,
    v2: bool,
    compressed: bool,
    post_header_len: u8,
) -> Result<RowsEventHeader<'a>, Malformed> {
    let mut c = Cursor::new(body);
    let table_id = if post_header_len == 6 {
        c.uint_le(4, "table id")?
    } else {
        c.uint_le(6, "table id")?
    };
    let flags = c.u16_le("flags")?;
    if v2 {
        let extra_len = c.u16_le("extra data length")? as usize;
        if extra_len < 2 {
            return Err(Malformed::new(format!(
                "extra data length {extra_len} is below its own 2 bytes"
            )));
        }
        c.skip(extra_len - 2, "extra data")?;
    }
    let column_count = c.lenenc("column count")?;
    if column_count == 0 || column_count > 4096 {
        return Err(Malformed::new(format!(
            "column count {column_count} is outside 1..4096"
        )));
    }
    let column_count = column_count as usize;
    let bitmap_len = column_count.div_ceil(8);
    let present = c.take(bitmap_len, "columns-present bitmap")?;
    let present_after = if matches!(kind, RowsKind::Update | RowsKind::PartialUpdate) {
        Some(c.take(bitmap_len, "after-image columns-present bitmap")?)
    } else {
        None
    };
    let rest = c.rest();
    let rows = if compressed {
        Cow::Owned(mariadb_uncompress(rest)?)
    } else {
        Cow::Borrowed(rest)
    };
    Ok(RowsEventHeader {
        table_id,
        flags,
        column_count,
        present,
        present_after,
        rows,
    })
}

/// MariaDB's compressed-event payload: a header byte (0x80 | width of the length), the
/// uncompressed length big-endian, then a zlib stream.
pub fn mariadb_uncompress(data: &[u8]) -> Result<Vec<u8>, Malformed> {
    let mut c = Cursor::new(data);
    let head = c.u8("compression header")?;
    if head & 0x80 == 0 {
        return Err(Malformed::new(format!(
            "compression header 0x{head:02x} lacks the compressed flag 0x80"
        )));
    }
    let width = (head & 0x07) as usize;
    if !(1..=4).contains(&width) {
        return Err(Malformed::new(format!(
            "compressed length width {width} is outside 1..4"
        )));
    }
    let len = c.uint_be(width, "uncompressed length")?;
    let mut out = Vec::with_capacity(len.min(1 << 24) as usize);
    flate2::read::ZlibDecoder::new(c.rest())
        .take(len + 1)
        .read_to_end(&mut out)
        .map_err(|e| Malformed::new(format!("zlib stream: {e}")))?;
    if out.len() as u64 != len {
        return Err(Malformed::new(format!(
            "zlib stream gave {} bytes, the header promised {len}",
            out.len()
        )));
    }
    Ok(out)
}

/// MySQL's TRANSACTION_PAYLOAD (40): the transaction's events, zstd-compressed or not.
pub fn decompress_transaction_payload(body: &[u8]) -> Result<Vec<u8>, Malformed> {
    let mut c = Cursor::new(body);
    let mut compression = None;
    let mut uncompressed_size = None;
    let mut payload_size = None;
    loop {
        let field = c.lenenc("payload header field type")?;
        if field == 0 {
            break;
        }
        let len = c.lenenc("payload header field length")? as usize;
        let mut value = Cursor::new(c.take(len, "payload header field")?);
        let v = value.lenenc("payload header field value")?;
        match field {
            1 => payload_size = Some(v),
            2 => compression = Some(v),
            3 => uncompressed_size = Some(v),
            _ => {}
        }
    }
    let payload = c.rest();
    if let Some(size) = payload_size {
        if size != payload.len() as u64 {
            return Err(Malformed::new(format!(
                "payload is {} bytes, its header says {size}",
                payload.len()
            )));
        }
    }
    match compression {
        Some(0) => {
            let limit = uncompressed_size
                .unwrap_or(MAX_DECOMPRESSED)
                .min(MAX_DECOMPRESSED);
            let mut out = Vec::with_capacity(limit.min(1 << 24) as usize);
            zstd::stream::read::Decoder::new(payload)
                .map_err(|e| Malformed::new(format!("zstd: {e}")))?
                .take(limit + 1)
                .read_to_end(&mut out)
                .map_err(|e| Malformed::new(format!("zstd stream: {e}")))?;
            if let Some(expected) = uncompressed_size {
                if out.len() as u64 != expected {
                    return Err(Malformed::new(format!(
                        "zstd stream gave {} bytes, the header promised {expected}",
                        out.len()
                    )));
                }
            }
            Ok(out)
        }
        Some(255) | None => Ok(payload.to_vec()),
        Some(x) => Err(Malformed::new(format!("unknown compression type {x}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varlen_integers_decode_as_mysql_serialization_writes_them() {
        let mut c = Cursor::new(&[0x02, 0x25, 0x02, 0x43, 0x0f, 0x0b]);
        assert_eq!(read_varlen_u64(&mut c, "x").unwrap(), 1);
        assert_eq!(read_varlen_u64(&mut c, "x").unwrap(), 0x89);
        assert_eq!(read_varlen_u64(&mut c, "x").unwrap(), 90600);
        let mut c = Cursor::new(&[0x0c, 0x02]);
        assert_eq!(read_varlen_i64(&mut c, "x").unwrap(), 3);
        assert_eq!(read_varlen_i64(&mut c, "x").unwrap(), -1);
    }

    #[test]
    fn mariadb_compression_header_is_checked() {
        assert!(mariadb_uncompress(&[0x01, 0x00]).is_err());
        assert!(mariadb_uncompress(&[0x81, 0x05, 0x00]).is_err());
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, b"hello").unwrap();
        let mut data = vec![0x81, 5];
        data.extend(z.finish().unwrap());
        assert_eq!(mariadb_uncompress(&data).unwrap(), b"hello");
    }
}
