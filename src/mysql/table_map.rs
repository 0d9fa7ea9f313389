//! TABLE_MAP events: the binlog's description of a table for the rows events that follow it —
//! column types and their metadata, nullability, and the optional metadata (names, signedness,
//! charsets, ENUM/SET members, primary key, visibility) that MySQL 8 and MariaDB 10.5+ add.

use super::cursor::Cursor;
use super::Malformed;

/// Binlog column type codes.
pub mod types {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const TYPED_ARRAY: u8 = 20;
    pub const VECTOR: u8 = 242;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

use types::*;

/// One column as the table map describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapColumn {
    /// The type code as it appears in the rows event (STRING for CHAR, ENUM and SET).
    pub type_code: u8,
    /// The real type: ENUM/SET/STRING for STRING columns, otherwise `type_code`.
    pub real_type: u8,
    /// Type metadata, decoded: length, precision<<8|scale, fsp, pack length, bits...
    pub meta: u16,
    pub nullable: bool,
}

impl MapColumn {
    pub fn is_numeric(&self) -> bool {
        matches!(
            self.real_type,
            TINY | SHORT | INT24 | LONG | LONGLONG | DECIMAL | NEWDECIMAL | FLOAT | DOUBLE | YEAR
        )
    }

    pub fn is_character(&self) -> bool {
        matches!(self.real_type, STRING | VAR_STRING | VARCHAR | BLOB)
    }

    pub fn is_enum_or_set(&self) -> bool {
        matches!(self.real_type, ENUM | SET)
    }
}

/// The optional metadata block (binlog_row_metadata=MINIMAL or FULL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionalMetadata {
    /// Per numeric column, in column order: true when UNSIGNED.
    pub unsigned: Option<Vec<bool>>,
    /// Per character column, in column order: collation id.
    pub charsets: Option<Vec<u16>>,
    /// Per ENUM/SET column, in column order: collation id.
    pub enum_set_charsets: Option<Vec<u16>>,
    pub names: Option<Vec<String>>,
    /// Per ENUM column, in column order: member names.
    pub enum_members: Option<Vec<Vec<String>>>,
    /// Per SET column, in column order: member names.
    pub set_members: Option<Vec<Vec<String>>>,
    pub primary_key: Option<Vec<usize>>,
    /// Per column: false for INVISIBLE columns.
    pub visible: Option<Vec<bool>>,
}

/// A parsed TABLE_MAP event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMap {
    pub table_id: u64,
    pub db: String,
    pub table: String,
    pub columns: Vec<MapColumn>,
    pub optional: OptionalMetadata,
}

fn column_meta(type_code: u8, c: &mut Cursor<'_>) -> Result<(u8, u16), Malformed> {
    Ok(match type_code {
        FLOAT | DOUBLE | BLOB | TINY_BLOB | MEDIUM_BLOB | LONG_BLOB | GEOMETRY | JSON
        | TIMESTAMP2 | DATETIME2 | TIME2 | VECTOR => (type_code, c.u8("column metadata")? as u16),
        VARCHAR | VAR_STRING => (type_code, c.u16_le("column metadata")?),
        // precision, scale / bits, bytes: kept as first<<8 | second.
        NEWDECIMAL | BIT => {
            let a = c.u8("column metadata")? as u16;
            let b = c.u8("column metadata")? as u16;
            (type_code, (a << 8) | b)
        }
        ENUM | SET => {
            let _real = c.u8("column metadata")?;
            (type_code, c.u8("column metadata")? as u16)
        }
        STRING => {
            let b0 = c.u8("column metadata")?;
            let b1 = c.u8("column metadata")?;
            if b0 == ENUM || b0 == SET {
                (b0, b1 as u16)
            } else if b0 & 0x30 != 0x30 {
                // CHAR longer than 255 bytes: two high bits of the length live in byte 0.
                let len = ((((b0 & 0x30) ^ 0x30) as u16) << 4) | b1 as u16;
                (b0 | 0x30, len)
            } else {
                (b0, b1 as u16)
            }
        }
        _ => (type_code, 0),
    })
}

/// Parses a TABLE_MAP body; `post_header_len` 6 means a 4-byte table id (MySQL 5.0).
pub fn parse_table_map(body: &[u8], post_header_len: u8) -> Result<TableMap, Malformed> {
    let mut c = Cursor::new(body);
    let table_id = if post_header_len == 6 {
        c.uint_le(4, "table id")?
    } else {
        c.uint_le(6, "table id")?
    };
    c.skip(2, "flags")?;
    let db_len = c.u8("schema name length")? as usize;
    let db = String::from_utf8_lossy(c.take(db_len, "schema name")?).into_owned();
    c.skip(1, "schema name terminator")?;
    let table_len = c.u8("table name length")? as usize;
    let table = String::from_utf8_lossy(c.take(table_len, "table name")?).into_owned();
    c.skip(1, "table name terminator")?;
    let count = c.lenenc("column count")?;
    if count == 0 || count > 4096 {
        return Err(Malformed::new(format!(
            "column count {count} is outside 1..4096"
        )));
    }
    let count = count as usize;
    let type_codes = c.take(count, "column types")?;
    let mut meta = Cursor::new(c.lenenc_bytes("column metadata")?);
    let mut columns = Vec::with_capacity(count);
    for (i, &type_code) in type_codes.iter().enumerate() {
        let (real_type, m) = column_meta(type_code, &mut meta)
            .map_err(|e| Malformed::new(format!("column {i}: {e}")))?;
        columns.push(MapColumn {
            type_code,
            real_type,
            meta: m,
            nullable: false,
        });
    }
    let nulls = c.take(count.div_ceil(8), "null bitmap")?;
    for (i, col) in columns.iter_mut().enumerate() {
        col.nullable = nulls[i / 8] & (1 << (i % 8)) != 0;
    }
    let optional = parse_optional(&mut c, &columns)?;
    Ok(TableMap {
        table_id,
        db,
        table,
        columns,
        optional,
    })
}

fn bits_msb_first(bytes: &[u8], n: usize) -> Vec<bool> {
    (0..n)
        .map(|i| bytes.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0))
        .collect()
}

/// DEFAULT_CHARSET layout: the default collation, then (column index, collation) for the
/// columns that differ, where the index counts only columns of the kind in question.
fn default_charset(value: &[u8], kind_count: usize) -> Result<Vec<u16>, Malformed> {
    let mut c = Cursor::new(value);
    let default = c.lenenc("default charset")? as u16;
    let mut out = vec![default; kind_count];
    while !c.is_empty() {
        let idx = c.lenenc("charset column index")? as usize;
        let cs = c.lenenc("charset")? as u16;
        if let Some(slot) = out.get_mut(idx) {
            *slot = cs;
        }
    }
    Ok(out)
}

fn charset_list(value: &[u8]) -> Result<Vec<u16>, Malformed> {
    let mut c = Cursor::new(value);
    let mut out = Vec::new();
    while !c.is_empty() {
        out.push(c.lenenc("column charset")? as u16);
    }
    Ok(out)
}

fn string_list(value: &[u8]) -> Result<Vec<String>, Malformed> {
    let mut c = Cursor::new(value);
    let mut out = Vec::new();
    while !c.is_empty() {
        out.push(String::from_utf8_lossy(c.lenenc_bytes("column name")?).into_owned());
    }
    Ok(out)
}

fn member_lists(value: &[u8]) -> Result<Vec<Vec<String>>, Malformed> {
    let mut c = Cursor::new(value);
    let mut out = Vec::new();
    while !c.is_empty() {
        let n = c.lenenc("member count")?;
        let mut members = Vec::new();
        for _ in 0..n {
            members.push(String::from_utf8_lossy(c.lenenc_bytes("member name")?).into_owned());
        }
        out.push(members);
    }
    Ok(out)
}

fn parse_optional(
    c: &mut Cursor<'_>,
    columns: &[MapColumn],
) -> Result<OptionalMetadata, Malformed> {
    let numeric = columns.iter().filter(|c| c.is_numeric()).count();
    let character = columns.iter().filter(|c| c.is_character()).count();
    let enum_set = columns.iter().filter(|c| c.is_enum_or_set()).count();
    let mut m = OptionalMetadata::default();
    while !c.is_empty() {
        let field = c.u8("optional metadata type")?;
        let value = c.lenenc_bytes("optional metadata")?;
        let wrap = |e: Malformed| Malformed::new(format!("optional metadata field {field}: {e}"));
        match field {
            1 => m.unsigned = Some(bits_msb_first(value, numeric)),
            2 => m.charsets = Some(default_charset(value, character).map_err(wrap)?),
            3 => m.charsets = Some(charset_list(value).map_err(wrap)?),
            4 => m.names = Some(string_list(value).map_err(wrap)?),
            5 => m.set_members = Some(member_lists(value).map_err(wrap)?),
            6 => m.enum_members = Some(member_lists(value).map_err(wrap)?),
            8 => {
                let mut k = Cursor::new(value);
                let mut pk = Vec::new();
                while !k.is_empty() {
                    pk.push(k.lenenc("primary key column").map_err(wrap)? as usize);
                }
                m.primary_key = Some(pk);
            }
            9 => {
                let mut k = Cursor::new(value);
                let mut pk = Vec::new();
                while !k.is_empty() {
                    pk.push(k.lenenc("primary key column").map_err(wrap)? as usize);
                    k.lenenc("primary key prefix").map_err(wrap)?;
                }
                m.primary_key = Some(pk);
            }
            10 => m.enum_set_charsets = Some(default_charset(value, enum_set).map_err(wrap)?),
            11 => m.enum_set_charsets = Some(charset_list(value).map_err(wrap)?),
            12 => m.visible = Some(bits_msb_first(value, columns.len())),
            // 7 geometry types, 13 vector dimensions and later fields: not needed to decode.
            _ => {}
        }
    }
    if let Some(pk) = &m.primary_key {
        if let Some(bad) = pk.iter().find(|&&i| i >= columns.len()) {
            return Err(Malformed::new(format!(
                "primary key names column {bad} of a {}-column table",
                columns.len()
            )));
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_char_length_is_recovered_from_the_type_byte() {
        // CHAR(100) in utf8mb4 = 400 bytes: 0xfe ^ 0x10 carries bit 8 of the length.
        let mut c = Cursor::new(&[0xee, 0x90]);
        assert_eq!(column_meta(STRING, &mut c).unwrap(), (STRING, 400));
        let mut c = Cursor::new(&[ENUM, 1]);
        assert_eq!(column_meta(STRING, &mut c).unwrap(), (ENUM, 1));
    }

    #[test]
    fn signedness_bits_are_msb_first() {
        assert_eq!(bits_msb_first(&[0b1010_0000], 3), vec![true, false, true]);
    }
}
