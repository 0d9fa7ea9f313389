//! Decoding row images: the bytes of WRITE/UPDATE/DELETE rows events, read column by column
//! with the table map's types and metadata into typed [`Value`]s that borrow from the event.

use std::borrow::Cow;

use super::charset::decode_text;
use super::cursor::Cursor;
use super::table_map::{types::*, MapColumn};
use super::Malformed;
use crate::event::{Charset, DateTimeValue, DecimalBytes, Row, TimeValue, Value};

/// How to read one column of a row image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnCodec {
    /// The real type (ENUM/SET resolved out of STRING).
    pub real_type: u8,
    pub meta: u16,
    pub unsigned: bool,
    /// Character set for character columns; None when unknown.
    pub charset: Option<Charset>,
    pub name: String,
}

impl ColumnCodec {
    pub fn from_map(
        col: &MapColumn,
        name: String,
        unsigned: bool,
        charset: Option<Charset>,
    ) -> Self {
        ColumnCodec {
            real_type: col.real_type,
            meta: col.meta,
            unsigned,
            charset,
            name,
        }
    }
}

fn int_value(v: u64, bytes: usize, unsigned: bool) -> Value<'static> {
    if unsigned {
        Value::UInt(v)
    } else {
        let shift = 64 - 8 * bytes as u32;
        Value::Int(((v << shift) as i64) >> shift)
    }
}

/// Fractional seconds stored after TIME2/DATETIME2/TIMESTAMP2, as microseconds.
fn read_fraction(c: &mut Cursor<'_>, fsp: u16) -> Result<u32, Malformed> {
    Ok(match fsp {
        0 => 0,
        1 | 2 => c.uint_be(1, "fractional seconds")? as u32 * 10_000,
        3 | 4 => c.uint_be(2, "fractional seconds")? as u32 * 100,
        5 | 6 => c.uint_be(3, "fractional seconds")? as u32,
        x => {
            return Err(Malformed::new(format!(
                "fractional second precision {x} > 6"
            )))
        }
    })
}

fn datetime_from_packed(int_part: u64, micros: u32) -> DateTimeValue {
    let ymd = int_part >> 17;
    let ym = ymd >> 5;
    let hms = int_part % (1 << 17);
    DateTimeValue {
        year: (ym / 13) as u16,
        month: (ym % 13) as u8,
        day: (ymd % (1 << 5)) as u8,
        hour: (hms >> 12) as u8,
        minute: ((hms >> 6) % (1 << 6)) as u8,
        second: (hms % (1 << 6)) as u8,
        micros,
    }
}

/// TIME2: MySQL's my_time_packed_from_binary then TIME_from_longlong_time_packed.
fn read_time2(c: &mut Cursor<'_>, fsp: u16) -> Result<TimeValue, Malformed> {
    const INT_OFS: i64 = 0x80_0000;
    let packed: i64 = match fsp {
        0 => (c.uint_be(3, "TIME")? as i64 - INT_OFS) << 24,
        1 | 2 => {
            let mut int_part = c.uint_be(3, "TIME")? as i64 - INT_OFS;
            let mut frac = c.uint_be(1, "TIME fraction")? as i64;
            if int_part < 0 && frac != 0 {
                int_part += 1;
                frac -= 0x100;
            }
            (int_part << 24) + frac * 10_000
        }
        3 | 4 => {
            let mut int_part = c.uint_be(3, "TIME")? as i64 - INT_OFS;
            let mut frac = c.uint_be(2, "TIME fraction")? as i64;
            if int_part < 0 && frac != 0 {
                int_part += 1;
                frac -= 0x10000;
            }
            (int_part << 24) + frac * 100
        }
        5 | 6 => c.uint_be(6, "TIME")? as i64 - 0x8000_0000_0000,
        x => return Err(Malformed::new(format!("TIME fractional precision {x} > 6"))),
    };
    let negative = packed < 0;
    let v = packed.unsigned_abs();
    let hms = v >> 24;
    Ok(TimeValue {
        negative,
        hours: ((hms >> 12) % (1 << 10)) as u32,
        minutes: ((hms >> 6) % (1 << 6)) as u8,
        seconds: (hms % (1 << 6)) as u8,
        micros: (v % (1 << 24)) as u32,
    })
}

fn length_prefixed<'a>(
    c: &mut Cursor<'a>,
    width: usize,
    what: &str,
) -> Result<&'a [u8], Malformed> {
    let len = c.uint_le(width, what)? as usize;
    c.take(len, what)
}

/// Decodes one non-null value.
pub fn decode_value<'a>(col: &ColumnCodec, c: &mut Cursor<'a>) -> Result<Value<'a>, Malformed> {
    let meta = col.meta;
    Ok(match col.real_type {
        TINY => int_value(c.uint_le(1, "TINYINT")?, 1, col.unsigned),
        SHORT => int_value(c.uint_le(2, "SMALLINT")?, 2, col.unsigned),
        INT24 => int_value(c.uint_le(3, "MEDIUMINT")?, 3, col.unsigned),
        LONG => int_value(c.uint_le(4, "INT")?, 4, col.unsigned),
        LONGLONG => int_value(c.u64_le("BIGINT")?, 8, col.unsigned),
        FLOAT => Value::Float(f32::from_bits(c.u32_le("FLOAT")?)),
        DOUBLE => Value::Double(f64::from_bits(c.u64_le("DOUBLE")?)),
        NEWDECIMAL => {
            let (precision, scale) = ((meta >> 8) as u8, (meta & 0xff) as u8);
            let size = DecimalBytes::binary_size(precision, scale).ok_or_else(|| {
                Malformed::new(format!("DECIMAL({precision},{scale}) is not a valid type"))
            })?;
            let dec = DecimalBytes {
                precision,
                scale,
                bytes: Cow::Borrowed(c.take(size, "DECIMAL")?),
            };
            dec.validate().map_err(Malformed::new)?;
            Value::Decimal(dec)
        }
        YEAR => {
            let y = c.u8("YEAR")? as u16;
            Value::Year(if y == 0 { 0 } else { 1900 + y })
        }
        DATE | NEWDATE => {
            let v = c.uint_le(3, "DATE")?;
            Value::Date(DateTimeValue {
                year: (v >> 9) as u16,
                month: ((v >> 5) & 15) as u8,
                day: (v & 31) as u8,
                hour: 0,
                minute: 0,
                second: 0,
                micros: 0,
            })
        }
        TIME => {
            let raw = c.uint_le(3, "TIME")?;
            let v = ((raw << 40) as i64) >> 40;
            let a = v.unsigned_abs();
            Value::Time(TimeValue {
                negative: v < 0,
                hours: (a / 10_000) as u32,
                minutes: (a / 100 % 100) as u8,
                seconds: (a % 100) as u8,
                micros: 0,
            })
        }
        TIME2 => Value::Time(read_time2(c, meta)?),
        DATETIME => {
            let v = c.u64_le("DATETIME")?;
            let (d, t) = (v / 1_000_000, v % 1_000_000);
            Value::DateTime(DateTimeValue {
                year: (d / 10_000) as u16,
                month: (d / 100 % 100) as u8,
                day: (d % 100) as u8,
                hour: (t / 10_000) as u8,
                minute: (t / 100 % 100) as u8,
                second: (t % 100) as u8,
                micros: 0,
            })
        }
        DATETIME2 => {
            let int_part = c.uint_be(5, "DATETIME")?;
            let micros = read_fraction(c, meta)?;
            let int_part = int_part.checked_sub(0x80_0000_0000).ok_or_else(|| {
                Malformed::new("negative DATETIME (below the 0x8000000000 offset)")
            })?;
            Value::DateTime(datetime_from_packed(int_part, micros))
        }
        TIMESTAMP => Value::Timestamp {
            secs: c.u32_le("TIMESTAMP")? as i64,
            micros: 0,
        },
        TIMESTAMP2 => {
            let secs = c.uint_be(4, "TIMESTAMP")? as i64;
            let micros = read_fraction(c, meta)?;
            Value::Timestamp { secs, micros }
        }
        VARCHAR | VAR_STRING => {
            let width = if meta < 256 { 1 } else { 2 };
            text_or_bytes(col, length_prefixed(c, width, "VARCHAR")?)
        }
        STRING => {
            let width = if meta < 256 { 1 } else { 2 };
            text_or_bytes(col, length_prefixed(c, width, "CHAR")?)
        }
        ENUM => match meta {
            1 => Value::Enum(c.u8("ENUM")? as u16),
            2 => Value::Enum(c.u16_le("ENUM")?),
            x => return Err(Malformed::new(format!("ENUM of {x} bytes"))),
        },
        SET => {
            if !(1..=8).contains(&meta) {
                return Err(Malformed::new(format!("SET of {meta} bytes")));
            }
            Value::Set(c.uint_le(meta as usize, "SET")?)
        }
        BIT => {
            let (bits, bytes) = ((meta >> 8) as usize, (meta & 0xff) as usize);
            let len = bytes + usize::from(bits > 0);
            if len > 8 {
                return Err(Malformed::new(format!("BIT of {len} bytes")));
            }
            Value::Bit(c.uint_be(len, "BIT")?)
        }
        BLOB | TINY_BLOB | MEDIUM_BLOB | LONG_BLOB => {
            let data = blob(c, meta, "BLOB/TEXT")?;
            text_or_bytes(col, data)
        }
        JSON => Value::JsonBinary(Cow::Borrowed(blob(c, meta, "JSON")?)),
        GEOMETRY => Value::Geometry(Cow::Borrowed(blob(c, meta, "GEOMETRY")?)),
        VECTOR => {
            let data = blob(c, meta, "VECTOR")?;
            if data.len() % 4 != 0 {
                return Err(Malformed::new(format!(
                    "VECTOR of {} bytes is not a whole number of float32s",
                    data.len()
                )));
            }
            Value::Vector(Cow::Borrowed(data))
        }
        NULL => Value::Null,
        x => {
            return Err(Malformed::new(format!(
                "column `{}` has binlog type {x}, which binlake does not decode",
                col.name
            )))
        }
    })
}

fn blob<'a>(c: &mut Cursor<'a>, pack_len: u16, what: &str) -> Result<&'a [u8], Malformed> {
    if !(1..=4).contains(&pack_len) {
        return Err(Malformed::new(format!(
            "{what} length prefix of {pack_len} bytes"
        )));
    }
    length_prefixed(c, pack_len as usize, what)
}

fn text_or_bytes<'a>(col: &ColumnCodec, data: &'a [u8]) -> Value<'a> {
    let binary = match col.real_type {
        BLOB | TINY_BLOB | MEDIUM_BLOB | LONG_BLOB => {
            !matches!(col.charset, Some(c) if c != Charset::Binary)
        }
        _ => col.charset == Some(Charset::Binary),
    };
    if binary {
        // The server strips trailing zero bytes of BINARY(n) values in row images; the stored
        // (and SELECTed) value is padded back to n bytes.
        if col.real_type == STRING && data.len() < col.meta as usize {
            let mut padded = data.to_vec();
            padded.resize(col.meta as usize, 0);
            return Value::Bytes(Cow::Owned(padded));
        }
        Value::Bytes(Cow::Borrowed(data))
    } else {
        Value::Text(decode_text(data, col.charset.unwrap_or(Charset::Utf8)))
    }
}

/// True when bit `i` of a columns bitmap is set.
pub fn bit(bitmap: &[u8], i: usize) -> bool {
    bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

/// A JSON column of an after image that holds diffs rather than a document.
pub struct PartialJson<'a> {
    pub column: usize,
    pub diffs: &'a [u8],
}

/// Decodes one row image at the cursor into `row` (one slot per table column; columns absent
/// from the image stay `None`). With `partial_json`, the image starts with the value options of
/// a PARTIAL_UPDATE_ROWS after image, and partially updated JSON columns are returned as diffs.
pub fn decode_image<'a>(
    codecs: &[ColumnCodec],
    present: &[u8],
    c: &mut Cursor<'a>,
    partial_json: Option<&mut Vec<PartialJson<'a>>>,
    row: &mut Row<'a>,
) -> Result<(), Malformed> {
    row.clear();
    row.resize(codecs.len(), None);
    let mut partial_bits: Option<&[u8]> = None;
    if partial_json.is_some() {
        let options = c.lenenc("value options")?;
        if options & 1 != 0 {
            let json_columns = codecs.iter().filter(|k| k.real_type == JSON).count();
            partial_bits = Some(c.take(json_columns.div_ceil(8), "partial JSON bitmap")?);
        }
    }
    let n_present = (0..codecs.len()).filter(|&i| bit(present, i)).count();
    if n_present == 0 {
        // A row image always carries at least one column; an empty one would repeat forever.
        return Err(Malformed::new("row image with no columns present"));
    }
    let nulls = c.take(n_present.div_ceil(8), "null bitmap")?;
    let mut image_idx = 0;
    let mut json_idx = 0;
    let mut partial_out = partial_json;
    for (i, codec) in codecs.iter().enumerate() {
        let is_json = codec.real_type == JSON;
        let partial = is_json && partial_bits.is_some_and(|b| bit(b, json_idx));
        if is_json {
            json_idx += 1;
        }
        if !bit(present, i) {
            continue;
        }
        let is_null = bit(nulls, image_idx);
        image_idx += 1;
        if is_null {
            row[i] = Some(Value::Null);
            continue;
        }
        if partial {
            let diffs = blob(c, codec.meta, "JSON diff")
                .map_err(|e| Malformed::new(format!("column `{}`: {e}", codec.name)))?;
            if let Some(out) = partial_out.as_deref_mut() {
                out.push(PartialJson { column: i, diffs });
            }
            continue;
        }
        let v = decode_value(codec, c)
            .map_err(|e| Malformed::new(format!("column `{}`: {e}", codec.name)))?;
        row[i] = Some(v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(real_type: u8, meta: u16, unsigned: bool) -> ColumnCodec {
        ColumnCodec {
            real_type,
            meta,
            unsigned,
            charset: Some(Charset::Utf8),
            name: "c".into(),
        }
    }

    fn one(real_type: u8, meta: u16, unsigned: bool, bytes: &[u8]) -> Value<'static> {
        let mut c = Cursor::new(bytes);
        let v = decode_value(&codec(real_type, meta, unsigned), &mut c)
            .unwrap()
            .into_owned();
        assert!(c.is_empty(), "left {} bytes", c.remaining());
        v
    }

    #[test]
    fn integers_by_width_and_sign() {
        assert_eq!(one(TINY, 0, false, &[0xff]), Value::Int(-1));
        assert_eq!(one(TINY, 0, true, &[0xff]), Value::UInt(255));
        assert_eq!(
            one(INT24, 0, false, &[0xff, 0xff, 0x7f]),
            Value::Int(8_388_607)
        );
        assert_eq!(
            one(INT24, 0, false, &[0x00, 0x00, 0x80]),
            Value::Int(-8_388_608)
        );
        assert_eq!(one(LONGLONG, 0, true, &[0xff; 8]), Value::UInt(u64::MAX));
        assert_eq!(
            one(LONG, 0, true, &3_230_202_323u32.to_le_bytes()),
            Value::UInt(3_230_202_323)
        );
    }

    #[test]
    fn negative_time2_with_fraction() {
        // -00:00:01.5 at fsp 1: int part -1 → stored 0x7fffff, frac byte 0xce (−50 → 0x100−50).
        let v = one(TIME2, 1, false, &[0x7f, 0xff, 0xff, 0xce]);
        assert_eq!(
            v,
            Value::Time(TimeValue {
                negative: true,
                hours: 0,
                minutes: 0,
                seconds: 0,
                micros: 500_000
            })
        );
        // 838:59:59 at fsp 0.
        let int_part: u32 = 0x80_0000 + ((838 << 12) | (59 << 6) | 59);
        let b = int_part.to_be_bytes();
        let v = one(TIME2, 0, false, &b[1..]);
        assert_eq!(
            v,
            Value::Time(TimeValue {
                negative: false,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 0
            })
        );
    }

    #[test]
    fn datetime2_and_timestamp2() {
        let ym = 2024u64 * 13 + 2;
        let int_part = 0x80_0000_0000u64 + ((((ym << 5) | 29) << 17) | (13 << 12) | (5 << 6) | 7);
        let mut bytes = int_part.to_be_bytes()[3..].to_vec();
        bytes.extend_from_slice(&[0x01, 0xe2, 0x40]); // 123456 µs at fsp 6
        assert_eq!(
            one(DATETIME2, 6, false, &bytes),
            Value::DateTime(DateTimeValue {
                year: 2024,
                month: 2,
                day: 29,
                hour: 13,
                minute: 5,
                second: 7,
                micros: 123_456
            })
        );
        assert_eq!(
            one(TIMESTAMP2, 2, false, &[0x5e, 0x0b, 0xe1, 0x00, 0x32]),
            Value::Timestamp {
                secs: 1_577_836_800,
                micros: 500_000
            }
        );
    }

    #[test]
    fn strings_bits_enums_sets() {
        assert_eq!(
            one(VARCHAR, 300, false, &[3, 0, b'a', b'b', b'c']),
            Value::Text("abc".into())
        );
        assert_eq!(
            one(BIT, (3 << 8) | 1, false, &[0x05, 0x01]),
            Value::Bit(0x0501)
        );
        assert_eq!(one(ENUM, 1, false, &[2]), Value::Enum(2));
        assert_eq!(one(SET, 1, false, &[0b101]), Value::Set(5));
        let mut binary = codec(BLOB, 2, false);
        binary.charset = Some(Charset::Binary);
        let mut c = Cursor::new(&[2, 0, 0xde, 0xad]);
        assert_eq!(
            decode_value(&binary, &mut c).unwrap(),
            Value::Bytes(Cow::Borrowed(&[0xde, 0xad]))
        );
    }

    #[test]
    fn short_or_bad_input_is_an_error() {
        let mut c = Cursor::new(&[5, b'a']);
        assert!(decode_value(&codec(VARCHAR, 10, false), &mut c).is_err());
        let mut c = Cursor::new(&[0u8; 4]);
        assert!(decode_value(&codec(NEWDECIMAL, (70 << 8) | 2, false), &mut c).is_err());
        let mut c = Cursor::new(&[0u8; 4]);
        assert!(decode_value(&codec(20, 0, false), &mut c).is_err());
    }
}
