//! The change event: what one row change is, where it came from, and the typed column values
//! and table schema it is read with. Every stage after capture speaks these types.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// What happened to the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Row inserted (`c`).
    Create,
    /// Row updated (`u`), primary-key changes included.
    Update,
    /// Row deleted (`d`).
    Delete,
    /// Row read by a snapshot (`r`).
    Read,
    /// Table truncated (`t`); carries no row.
    Truncate,
}

impl Op {
    /// The one-letter code Debezium uses.
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        }
    }
}

/// Where a row change sits in the binlog: the file, the byte offset of the event that carried
/// it, and the row's index within that event. Totally ordered within one server's binlog.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    pub file: Arc<str>,
    pub pos: u64,
    pub row: u32,
}

impl Position {
    /// The numeric suffix of a binlog file name (`mysql-bin.000042` → 42), which orders files.
    pub fn file_sequence(&self) -> Option<u64> {
        self.file.rsplit('.').next()?.parse().ok()
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> Ordering {
        let files = match (self.file_sequence(), other.file_sequence()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self.file.cmp(&other.file),
        };
        files
            .then(self.pos.cmp(&other.pos))
            .then(self.row.cmp(&other.row))
    }
}

impl Position {
    /// A string that sorts like the position itself (file sequence, byte offset and row index
    /// zero-padded), so a lake table can compare positions as plain strings.
    pub fn sort_key(&self) -> String {
        match self.file_sequence() {
            Some(seq) => format!("{seq:010}:{:012}:{:08}", self.pos, self.row),
            None => format!("{}:{:012}:{:08}", self.file, self.pos, self.row),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.pos, self.row)
    }
}

/// A fully qualified table name.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TableId {
    pub db: String,
    pub table: String,
}

impl TableId {
    pub fn new(db: impl Into<String>, table: impl Into<String>) -> Self {
        TableId {
            db: db.into(),
            table: table.into(),
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.db, self.table)
    }
}

/// The MySQL column types binlake distinguishes. Binlog type codes map onto these together with
/// their metadata (length, precision, fractional seconds, charset).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ColumnType {
    TinyInt,
    SmallInt,
    MediumInt,
    Int,
    BigInt,
    Float,
    Double,
    /// DECIMAL(precision, scale).
    Decimal {
        precision: u8,
        scale: u8,
    },
    /// BIT(bits).
    Bit {
        bits: u16,
    },
    Date,
    /// DATETIME(fsp).
    DateTime {
        fsp: u8,
    },
    /// TIMESTAMP(fsp); stored in UTC.
    Timestamp {
        fsp: u8,
    },
    /// TIME(fsp).
    Time {
        fsp: u8,
    },
    Year,
    /// CHAR(n) / BINARY(n) (binary when the charset is `binary`).
    Char {
        max_bytes: u32,
    },
    /// VARCHAR(n) / VARBINARY(n).
    VarChar {
        max_bytes: u32,
    },
    /// TEXT / BLOB of any size; `pack_len` is the byte width of the length prefix.
    Blob {
        pack_len: u8,
    },
    Enum,
    Set,
    Json,
    Geometry,
    /// VECTOR (MySQL 9): little-endian float32 array.
    Vector,
    /// A type this binlake build does not know; the binlog type code is kept.
    Unknown(u8),
}

impl ColumnType {
    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            ColumnType::TinyInt
                | ColumnType::SmallInt
                | ColumnType::MediumInt
                | ColumnType::Int
                | ColumnType::BigInt
        )
    }
}

/// How the bytes of a character column are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Charset {
    Utf8,
    /// MySQL's latin1, which is Windows-1252.
    Latin1,
    Binary,
    Utf16,
    Utf16Le,
    Utf32,
    Ucs2,
}

/// One column of a table schema.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    pub name: String,
    pub column_type: ColumnType,
    pub unsigned: bool,
    pub nullable: bool,
    /// None when neither the binlog nor a schema said; character data is then read as UTF-8.
    pub charset: Option<Charset>,
    /// ENUM / SET member names, 1-based in MySQL (index 0 of this vector is member 1).
    pub members: Vec<String>,
    /// A literal `DEFAULT` from the DDL, as text: the lake gives it to rows that existed
    /// before an ADD COLUMN (the server fills them without any row event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Earlier names of the column (RENAME / CHANGE COLUMN), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renamed_from: Vec<String>,
}

impl Column {
    pub fn new(name: impl Into<String>, column_type: ColumnType) -> Self {
        Column {
            name: name.into(),
            column_type,
            unsigned: false,
            nullable: true,
            charset: None,
            members: Vec::new(),
            default: None,
            renamed_from: Vec::new(),
        }
    }

    /// True when the column holds raw bytes (BINARY, VARBINARY, BLOB) rather than text.
    pub fn is_binary(&self) -> bool {
        match self.column_type {
            ColumnType::Char { .. } | ColumnType::VarChar { .. } => {
                self.charset == Some(Charset::Binary)
            }
            // A BLOB-type column is TEXT only when a charset other than binary is known.
            ColumnType::Blob { .. } => !matches!(self.charset, Some(c) if c != Charset::Binary),
            _ => false,
        }
    }
}

/// The columns of a table as binlake decodes it: from the binlog's table map, completed with
/// names and details from the tracked schema when the table map does not carry them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableSchema {
    pub id: TableId,
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the primary key, in key order; empty when there is none.
    pub primary_key: Vec<usize>,
    /// True when column names are only positions (`_0`, `_1`, ...) because nothing better was known.
    pub positional_names: bool,
}

impl TableSchema {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// A MySQL DECIMAL in its binary row format; rendered exactly (up to 65 digits) on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalBytes<'a> {
    pub precision: u8,
    pub scale: u8,
    pub bytes: Cow<'a, [u8]>,
}

const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

impl DecimalBytes<'_> {
    /// Bytes a DECIMAL(precision, scale) takes in a row image.
    pub fn binary_size(precision: u8, scale: u8) -> Option<usize> {
        if precision == 0 || precision > 65 || scale > 30 || scale > precision {
            return None;
        }
        let intg = (precision - scale) as usize;
        let frac = scale as usize;
        Some(intg / 9 * 4 + DIG2BYTES[intg % 9] + frac / 9 * 4 + DIG2BYTES[frac % 9])
    }

    /// Calls `f(value, digits, is_integer_part)` for each base-10^9 digit group, most
    /// significant first, without allocating. Returns whether the number is negative, or None
    /// when the bytes are not a DECIMAL of this precision and scale.
    fn for_each_group(&self, mut f: impl FnMut(u32, usize, bool)) -> Option<bool> {
        let size = Self::binary_size(self.precision, self.scale)?;
        if self.bytes.len() != size {
            return None;
        }
        let negative = self.bytes[0] & 0x80 == 0;
        let mask = if negative { 0xff } else { 0 };
        let intg = (self.precision - self.scale) as usize;
        let frac = self.scale as usize;
        let mut at = 0;
        let mut group = |digits: usize, integer: bool| -> Option<()> {
            let mut v: u32 = 0;
            for i in at..at + DIG2BYTES[digits] {
                let mut b = self.bytes[i] ^ mask;
                if i == 0 {
                    b ^= 0x80;
                }
                v = (v << 8) | b as u32;
            }
            at += DIG2BYTES[digits];
            if v >= 10u32.pow(digits as u32) {
                return None;
            }
            f(v, digits, integer);
            Some(())
        };
        if intg % 9 > 0 {
            group(intg % 9, true)?;
        }
        for _ in 0..intg / 9 {
            group(9, true)?;
        }
        for _ in 0..frac / 9 {
            group(9, false)?;
        }
        if frac % 9 > 0 {
            group(frac % 9, false)?;
        }
        Some(negative)
    }

    /// Checks that the bytes are a well-formed DECIMAL of this precision and scale.
    pub fn validate(&self) -> Result<(), String> {
        self.for_each_group(|_, _, _| {})
            .map(|_| ())
            .ok_or_else(|| {
                format!(
                    "invalid DECIMAL({},{}) bytes {:02x?}",
                    self.precision, self.scale, self.bytes
                )
            })
    }

    /// Writes the exact decimal text (`-123.4500`), no rounding, all `scale` digits kept.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(b'-');
        let digits_start = out.len();
        let mut leading = true;
        let mut point = false;
        let negative = self.for_each_group(|v, digits, integer| {
            if integer {
                if leading {
                    if v != 0 {
                        out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
                        leading = false;
                    }
                    return;
                }
            } else if !point {
                if leading {
                    out.push(b'0');
                    leading = false;
                }
                out.push(b'.');
                point = true;
            }
            let mut buf = [b'0'; 9];
            let mut x = v;
            for slot in buf[..digits].iter_mut().rev() {
                *slot = b'0' + (x % 10) as u8;
                x /= 10;
            }
            out.extend_from_slice(&buf[..digits]);
        });
        match negative {
            None => {
                out.truncate(start);
                out.extend_from_slice(b"NaN");
            }
            Some(negative) => {
                if leading {
                    out.push(b'0');
                }
                // "-0.00" is zero: no sign.
                let zero = out[digits_start..].iter().all(|&b| b == b'0' || b == b'.');
                if !negative || zero {
                    out.remove(start);
                }
            }
        }
    }
}

impl fmt::Display for DecimalBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.write_to(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

/// A MySQL TIME value: sign, hours (may exceed 24), minutes, seconds, microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeValue {
    pub negative: bool,
    pub hours: u32,
    pub minutes: u8,
    pub seconds: u8,
    pub micros: u32,
}

impl TimeValue {
    /// Signed microseconds, Debezium's `MicroTime`.
    pub fn total_micros(&self) -> i64 {
        let m = ((self.hours as i64 * 60 + self.minutes as i64) * 60 + self.seconds as i64)
            * 1_000_000
            + self.micros as i64;
        if self.negative {
            -m
        } else {
            m
        }
    }
}

/// A calendar date and wall-clock time without a zone (DATE, DATETIME). Zero parts are kept:
/// MySQL allows `0000-00-00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTimeValue {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
}

impl DateTimeValue {
    /// True for dates MySQL stores but no calendar has (`0000-00-00`, a zero month or day).
    pub fn is_zero_date(&self) -> bool {
        self.month == 0 || self.day == 0
    }

    /// Days since 1970-01-01 (proleptic Gregorian), or None for a zero date.
    pub fn days_since_epoch(&self) -> Option<i64> {
        if self.is_zero_date() || self.month > 12 || self.day > 31 {
            return None;
        }
        Some(days_from_civil(
            self.year as i64,
            self.month as i64,
            self.day as i64,
        ))
    }

    /// Microseconds since the epoch, reading the wall-clock time as UTC (as Debezium does).
    pub fn micros_since_epoch(&self) -> Option<i64> {
        let days = self.days_since_epoch()?;
        let secs =
            days * 86_400 + self.hour as i64 * 3_600 + self.minute as i64 * 60 + self.second as i64;
        Some(secs * 1_000_000 + self.micros as i64)
    }
}

/// Wall-clock milliseconds since the epoch: processing times (`ts_ms`) and checkpoint stamps.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Howard Hinnant's days_from_civil: days since 1970-01-01 for a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// One column value. Borrowed from the binlog event bytes where it can be, so decoding a row
/// costs no heap allocation per column; [`Value::into_owned`] detaches it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    Decimal(DecimalBytes<'a>),
    /// DECIMAL as exact text (from a snapshot's SELECT).
    DecimalText(Cow<'a, str>),
    /// BIT value, right-aligned.
    Bit(u64),
    Date(DateTimeValue),
    DateTime(DateTimeValue),
    /// TIMESTAMP: seconds and microseconds since the epoch, UTC. (0, 0) is MySQL's zero timestamp.
    Timestamp {
        secs: i64,
        micros: u32,
    },
    Time(TimeValue),
    /// YEAR; 0 is MySQL's zero year.
    Year(u16),
    /// Text already decoded to UTF-8.
    Text(Cow<'a, str>),
    /// Raw bytes (binary strings, BLOB).
    Bytes(Cow<'a, [u8]>),
    /// ENUM member index, 1-based; 0 is MySQL's empty-string error value.
    Enum(u16),
    /// SET members as a bitmask (bit 0 = first member).
    Set(u64),
    /// JSON in MySQL's binary format.
    JsonBinary(Cow<'a, [u8]>),
    /// JSON as text (after a partial update was applied, or from a snapshot).
    JsonText(Cow<'a, str>),
    /// GEOMETRY: 4-byte SRID followed by WKB, as MySQL stores it.
    Geometry(Cow<'a, [u8]>),
    /// VECTOR: little-endian float32s.
    Vector(Cow<'a, [u8]>),
}

impl Value<'_> {
    /// The value as text that is the same whichever way it was read (a binlog row image or a
    /// snapshot's SELECT), for telling whether two reads hold the same key: integers by value
    /// whatever their signedness form, DECIMAL by its digits, strings by their bytes.
    pub fn comparable(&self) -> String {
        match self {
            Value::Null => "NULL".into(),
            Value::Int(v) => v.to_string(),
            Value::UInt(v) => v.to_string(),
            Value::Float(v) => v.to_string(),
            Value::Double(v) => v.to_string(),
            Value::Decimal(d) => d.to_string(),
            Value::DecimalText(t) => t.to_string(),
            Value::Text(t) => format!("{:?}", t.as_bytes()),
            Value::Bytes(b) | Value::JsonBinary(b) | Value::Geometry(b) | Value::Vector(b) => {
                format!("{:?}", b.as_ref())
            }
            Value::JsonText(t) => format!("{:?}", t.as_bytes()),
            other => format!("{other:?}"),
        }
    }

    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Int(v) => Value::Int(v),
            Value::UInt(v) => Value::UInt(v),
            Value::Float(v) => Value::Float(v),
            Value::Double(v) => Value::Double(v),
            Value::Decimal(d) => Value::Decimal(DecimalBytes {
                precision: d.precision,
                scale: d.scale,
                bytes: Cow::Owned(d.bytes.into_owned()),
            }),
            Value::DecimalText(v) => Value::DecimalText(Cow::Owned(v.into_owned())),
            Value::Bit(v) => Value::Bit(v),
            Value::Date(v) => Value::Date(v),
            Value::DateTime(v) => Value::DateTime(v),
            Value::Timestamp { secs, micros } => Value::Timestamp { secs, micros },
            Value::Time(v) => Value::Time(v),
            Value::Year(v) => Value::Year(v),
            Value::Text(v) => Value::Text(Cow::Owned(v.into_owned())),
            Value::Bytes(v) => Value::Bytes(Cow::Owned(v.into_owned())),
            Value::Enum(v) => Value::Enum(v),
            Value::Set(v) => Value::Set(v),
            Value::JsonBinary(v) => Value::JsonBinary(Cow::Owned(v.into_owned())),
            Value::JsonText(v) => Value::JsonText(Cow::Owned(v.into_owned())),
            Value::Geometry(v) => Value::Geometry(Cow::Owned(v.into_owned())),
            Value::Vector(v) => Value::Vector(Cow::Owned(v.into_owned())),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// One row image: a value per column of the table schema. A column the binlog did not carry
/// (a MINIMAL row image) is `None`.
pub type Row<'a> = Vec<Option<Value<'a>>>;

/// The source coordinates of a change, as Debezium's `source` block reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    pub server_id: u32,
    /// Event time in milliseconds since the epoch (the binlog event header's timestamp).
    pub ts_ms: u64,
    /// GTID of the transaction: `uuid:n` (MySQL, `uuid:tag:n` when tagged) or `d-s-n` (MariaDB).
    pub gtid: Option<Arc<str>>,
    /// Thread (connection) id of the statement, from the transaction's BEGIN query event.
    pub thread: Option<u32>,
    /// The statement text, when the binlog carries it (ROWS_QUERY / ANNOTATE_ROWS).
    pub query: Option<Arc<str>>,
    /// "false" for streamed changes; "true" / "last" for snapshot rows.
    pub snapshot: &'static str,
}

impl SourceInfo {
    /// The source block of a snapshot row read now from server `server_id`.
    pub fn snapshot_read(server_id: u32) -> SourceInfo {
        SourceInfo {
            server_id,
            ts_ms: now_ms(),
            gtid: None,
            thread: None,
            query: None,
            snapshot: "true",
        }
    }
}

/// The transaction a change belongs to, for Debezium's `transaction` block.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionInfo {
    /// The GTID when there is one, else `file:pos` of the transaction's first event.
    pub id: Arc<str>,
    /// 1-based order of this change among all changes of the transaction.
    pub total_order: u64,
    /// 1-based order of this change among the transaction's changes to the same table.
    pub data_collection_order: u64,
}

/// One ordered row change.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent<'a> {
    pub table: Arc<TableSchema>,
    pub op: Op,
    pub before: Option<Row<'a>>,
    pub after: Option<Row<'a>>,
    pub position: Position,
    pub source: SourceInfo,
    pub transaction: Option<TransactionInfo>,
}

impl ChangeEvent<'_> {
    pub fn into_owned(self) -> ChangeEvent<'static> {
        let own = |row: Option<Row<'_>>| {
            row.map(|r| {
                r.into_iter()
                    .map(|v| v.map(Value::into_owned))
                    .collect::<Vec<_>>()
            })
        };
        ChangeEvent {
            table: self.table,
            op: self.op,
            before: own(self.before),
            after: own(self.after),
            position: self.position,
            source: self.source,
            transaction: self.transaction,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_file_number_then_offset_then_row() {
        let p = |f: &str, pos, row| Position {
            file: f.into(),
            pos,
            row,
        };
        assert!(p("mysql-bin.000002", 4, 0) > p("mysql-bin.000001", 900, 7));
        assert!(p("mysql-bin.000010", 4, 0) > p("mysql-bin.000009", 4, 0));
        assert!(p("b.000001", 120, 1) > p("b.000001", 120, 0));
        assert!(p("b.000001", 121, 0) > p("b.000001", 120, 5));
    }

    fn decimal(precision: u8, scale: u8, bytes: &[u8]) -> String {
        DecimalBytes {
            precision,
            scale,
            bytes: Cow::Borrowed(bytes),
        }
        .to_string()
    }

    #[test]
    fn decimals_render_exactly() {
        // MySQL's documented example: 1234567890.1234 as DECIMAL(14,4).
        assert_eq!(
            decimal(14, 4, &[0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2]),
            "1234567890.1234"
        );
        assert_eq!(
            decimal(14, 4, &[0x7E, 0xF2, 0x04, 0xC7, 0x2D, 0xFB, 0x2D]),
            "-1234567890.1234"
        );
        assert_eq!(decimal(5, 2, &[0x80, 0x00, 0x00]), "0.00");
        assert_eq!(decimal(5, 2, &[0x7f, 0xff, 0xff]), "0.00");
        assert_eq!(DecimalBytes::binary_size(65, 30), Some(30));
        let bad = DecimalBytes {
            precision: 5,
            scale: 2,
            bytes: Cow::Borrowed(&[0xff, 0xff, 0xff]),
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1, 1, 1), -719_162);
        for d in [-719_162, -1, 0, 59, 11_017, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m as i64, dd as i64), d);
        }
    }

    #[test]
    fn time_values_keep_sign_and_long_hours() {
        let t = TimeValue {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 500_000,
        };
        assert_eq!(t.total_micros(), -3_020_399_500_000);
    }
}
