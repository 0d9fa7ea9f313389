//! MySQL's binary JSON format (the JSON column type in row events): rendering it to compact
//! JSON text straight into an output buffer, and applying the JSON diffs of
//! PARTIAL_UPDATE_ROWS events to a before image.

use base64::Engine;

use super::cursor::Cursor;
use super::Malformed;

const SMALL_OBJECT: u8 = 0x00;
const LARGE_OBJECT: u8 = 0x01;
const SMALL_ARRAY: u8 = 0x02;
const LARGE_ARRAY: u8 = 0x03;
const LITERAL: u8 = 0x04;
const INT16: u8 = 0x05;
const UINT16: u8 = 0x06;
const INT32: u8 = 0x07;
const UINT32: u8 = 0x08;
const INT64: u8 = 0x09;
const UINT64: u8 = 0x0a;
const DOUBLE: u8 = 0x0b;
const STRING: u8 = 0x0c;
const OPAQUE: u8 = 0x0f;

/// MySQL refuses documents nested deeper than this; so does binlake, to bound recursion.
const MAX_DEPTH: usize = 100;

/// Renders a binary JSON document as compact JSON text. An empty value is JSON `null`, as
/// MySQL writes it for a JSON column set to a null literal.
pub fn write_json_text(bin: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    if bin.is_empty() {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    write_value(bin[0], &bin[1..], 0, out).map_err(|e| Malformed::new(format!("binary JSON: {e}")))
}

/// Renders a binary JSON document to a `String`.
pub fn to_json_string(bin: &[u8]) -> Result<String, Malformed> {
    let mut out = Vec::with_capacity(bin.len() * 2);
    write_json_text(bin, &mut out)?;
    Ok(String::from_utf8(out).expect("the JSON writer emits UTF-8"))
}

fn write_value(t: u8, data: &[u8], depth: usize, out: &mut Vec<u8>) -> Result<(), Malformed> {
    if depth > MAX_DEPTH {
        return Err(Malformed::new(format!("nested deeper than {MAX_DEPTH}")));
    }
    let mut c = Cursor::new(data);
    match t {
        SMALL_OBJECT | LARGE_OBJECT => write_container(data, t == LARGE_OBJECT, true, depth, out),
        SMALL_ARRAY | LARGE_ARRAY => write_container(data, t == LARGE_ARRAY, false, depth, out),
        LITERAL => write_literal(c.u8("literal")?, out),
        INT16 => write_int(c.uint_le(2, "int16")? as u16 as i16 as i64, out),
        UINT16 => write_uint(c.uint_le(2, "uint16")?, out),
        INT32 => write_int(c.uint_le(4, "int32")? as u32 as i32 as i64, out),
        UINT32 => write_uint(c.uint_le(4, "uint32")?, out),
        INT64 => write_int(c.u64_le("int64")? as i64, out),
        UINT64 => write_uint(c.u64_le("uint64")?, out),
        DOUBLE => {
            let v = f64::from_bits(c.u64_le("double")?);
            if !v.is_finite() {
                return Err(Malformed::new("non-finite double"));
            }
            out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
            Ok(())
        }
        STRING => {
            let len = read_varlen(&mut c)?;
            let s = c.take(len, "string")?;
            write_json_string(&String::from_utf8_lossy(s), out);
            Ok(())
        }
        OPAQUE => {
            let field_type = c.u8("opaque type")?;
            let len = read_varlen(&mut c)?;
            let payload = c.take(len, "opaque value")?;
            write_opaque(field_type, payload, out)
        }
        x => Err(Malformed::new(format!("unknown value type 0x{x:02x}"))),
    }
}

fn write_literal(v: u8, out: &mut Vec<u8>) -> Result<(), Malformed> {
    out.extend_from_slice(match v {
        0 => b"null".as_slice(),
        1 => b"true",
        2 => b"false",
        x => return Err(Malformed::new(format!("unknown literal 0x{x:02x}"))),
    });
    Ok(())
}

fn write_int(v: i64, out: &mut Vec<u8>) -> Result<(), Malformed> {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    Ok(())
}

fn write_uint(v: u64, out: &mut Vec<u8>) -> Result<(), Malformed> {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    Ok(())
}

/// The 7-bits-per-byte length used by strings and opaque values.
fn read_varlen(c: &mut Cursor<'_>) -> Result<usize, Malformed> {
    let mut len: u64 = 0;
    for i in 0..5 {
        let b = c.u8("length")?;
        len |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return usize::try_from(len).map_err(|_| Malformed::new("length too large"));
        }
    }
    Err(Malformed::new("length runs over 5 bytes"))
}

fn write_container(
    data: &[u8],
    large: bool,
    object: bool,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), Malformed> {
    let w = if large { 4 } else { 2 };
    let mut c = Cursor::new(data);
    let count = c.uint_le(w, "element count")? as usize;
    let size = c.uint_le(w, "size")? as usize;
    if size > data.len() {
        return Err(Malformed::new(format!(
            "container of {size} bytes in {} bytes",
            data.len()
        )));
    }
    let data = &data[..size];
    let header = 2 * w + count * if object { w + 2 } else { 0 } + count * (1 + w);
    if header > size {
        return Err(Malformed::new(format!(
            "{count} entries do not fit in a {size}-byte container"
        )));
    }
    out.push(if object { b'{' } else { b'[' });
    let key_entries = 2 * w;
    let value_entries = key_entries + if object { count * (w + 2) } else { 0 };
    for i in 0..count {
        if i > 0 {
            out.push(b',');
        }
        if object {
            let mut k = Cursor::new(&data[key_entries + i * (w + 2)..]);
            let off = k.uint_le(w, "key offset")? as usize;
            let len = k.uint_le(2, "key length")? as usize;
            let key = data
                .get(off..off + len)
                .ok_or_else(|| Malformed::new(format!("key {i} outside its object")))?;
            write_json_string(&String::from_utf8_lossy(key), out);
            out.push(b':');
        }
        let mut v = Cursor::new(&data[value_entries + i * (1 + w)..]);
        let t = v.u8("value type")?;
        let inlined =
            matches!(t, LITERAL | INT16 | UINT16) || (large && matches!(t, INT32 | UINT32));
        if inlined {
            write_value(t, v.take(w, "inlined value")?, depth + 1, out)?;
        } else {
            let off = v.uint_le(w, "value offset")? as usize;
            let value = data
                .get(off..)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Malformed::new(format!("value {i} outside its container")))?;
            write_value(t, value, depth + 1, out)?;
        }
    }
    out.push(if object { b'}' } else { b']' });
    Ok(())
}

/// Opaque values carry a MySQL column type; temporal and decimal ones print as MySQL prints
/// them, anything else as MySQL's `base64:typeN:...`.
fn write_opaque(field_type: u8, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    use super::table_map::types;
    let mut c = Cursor::new(payload);
    match field_type {
        types::NEWDECIMAL => {
            let precision = c.u8("decimal precision")?;
            let scale = c.u8("decimal scale")?;
            let dec = crate::event::DecimalBytes {
                precision,
                scale,
                bytes: std::borrow::Cow::Borrowed(c.rest()),
            };
            dec.validate().map_err(Malformed::new)?;
            dec.write_to(out);
            Ok(())
        }
        types::DATE | types::DATETIME | types::TIMESTAMP | types::TIME => {
            let packed = c.u64_le("packed temporal")? as i64;
            let text = packed_temporal_text(field_type, packed);
            write_json_string(&text, out);
            Ok(())
        }
        _ => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
            write_json_string(&format!("base64:type{field_type}:{b64}"), out);
            Ok(())
        }
    }
}

/// MySQL's packed in-memory temporal format (my_time_packed): 24 bits of microseconds under
/// the date/time bits, negative for negative TIME values.
fn packed_temporal_text(field_type: u8, packed: i64) -> String {
    use super::table_map::types;
    let negative = packed < 0;
    let v = packed.unsigned_abs();
    let micros = v % (1 << 24);
    let int_part = v >> 24;
    if field_type == types::TIME {
        let hour = (int_part >> 12) % (1 << 10);
        let minute = (int_part >> 6) % (1 << 6);
        let second = int_part % (1 << 6);
        let sign = if negative { "-" } else { "" };
        return format!("{sign}{hour:02}:{minute:02}:{second:02}.{micros:06}");
    }
    let ymd = int_part >> 17;
    let ym = ymd >> 5;
    let hms = int_part % (1 << 17);
    let (year, month, day) = (ym / 13, ym % 13, ymd % (1 << 5));
    if field_type == types::DATE {
        return format!("{year:04}-{month:02}-{day:02}");
    }
    let (hour, minute, second) = (hms >> 12, (hms >> 6) % (1 << 6), hms % (1 << 6));
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{micros:06}")
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// True when any of the 8 bytes of `w` is a control character, `"` or `\\` (SWAR test).
#[inline]
fn word_needs_escape(w: u64) -> bool {
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * b'"' as u64);
    let quote = q.wrapping_sub(ONES) & !q;
    let b = w ^ (ONES * b'\\' as u64);
    let backslash = b.wrapping_sub(ONES) & !b;
    (control | quote | backslash) & HIGHS != 0
}

/// Writes `s` as a JSON string literal. Scans 8 bytes at a time for bytes that need escaping,
/// copying clean runs whole: this is the hottest loop of replay.
pub fn write_json_string(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if i + 8 <= bytes.len() {
            let w = u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
            if !word_needs_escape(w) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 15) as usize],
                ]);
                i += 1;
                start = i;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// One step of a MySQL JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathLeg {
    Key(String),
    Index(usize),
}

fn parse_path(path: &str) -> Result<Vec<PathLeg>, Malformed> {
    let bad = |why: &str| Malformed::new(format!("JSON path {path:?}: {why}"));
    let rest = path
        .strip_prefix('$')
        .ok_or_else(|| bad("does not start with $"))?;
    let mut legs = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '.' => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    let mut key = String::new();
                    loop {
                        match chars.next() {
                            Some('\\') => {
                                key.push(chars.next().ok_or_else(|| bad("dangling escape"))?)
                            }
                            Some('"') => break,
                            Some(c) => key.push(c),
                            None => return Err(bad("unterminated quoted key")),
                        }
                    }
                    legs.push(PathLeg::Key(key));
                } else {
                    let mut key = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == '.' || c == '[' {
                            break;
                        }
                        key.push(c);
                        chars.next();
                    }
                    if key.is_empty() {
                        return Err(bad("empty key"));
                    }
                    legs.push(PathLeg::Key(key));
                }
            }
            '[' => {
                let mut n = String::new();
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    n.push(c);
                }
                let idx = n
                    .trim()
                    .parse()
                    .map_err(|_| bad("array index is not a number"))?;
                legs.push(PathLeg::Index(idx));
            }
            c if c.is_whitespace() => {}
            _ => return Err(bad("unexpected character")),
        }
    }
    Ok(legs)
}

/// Applies the JSON diffs of one partially updated column to the column's before image.
/// Any diff that cannot be applied exactly is an error: a guess would be a silently wrong row.
pub fn apply_json_diffs(before: &str, diffs: &[u8]) -> Result<String, Malformed> {
    let mut doc: serde_json::Value = serde_json::from_str(before)
        .map_err(|e| Malformed::new(format!("before image is not JSON: {e}")))?;
    let mut c = Cursor::new(diffs);
    while !c.is_empty() {
        let op = c.u8("JSON diff operation")?;
        let path = String::from_utf8_lossy(c.lenenc_bytes("JSON diff path")?).into_owned();
        let legs = parse_path(&path)?;
        let value = if op != 2 {
            let bin = c.lenenc_bytes("JSON diff value")?;
            let text = to_json_string(bin)?;
            Some(
                serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| Malformed::new(format!("JSON diff value at {path}: {e}")))?,
            )
        } else {
            None
        };
        let Some((last, parents)) = legs.split_last() else {
            match (op, value) {
                (0, Some(v)) => {
                    doc = v;
                    continue;
                }
                _ => return Err(Malformed::new(format!("JSON diff op {op} on the root"))),
            }
        };
        let mut target = &mut doc;
        for leg in parents {
            target = match (leg, target) {
                (PathLeg::Key(k), serde_json::Value::Object(m)) => m.get_mut(k),
                (PathLeg::Index(i), serde_json::Value::Array(a)) => a.get_mut(*i),
                _ => None,
            }
            .ok_or_else(|| {
                Malformed::new(format!(
                    "JSON diff path {path} does not exist in the before image"
                ))
            })?;
        }
        let missing = || {
            Malformed::new(format!(
                "JSON diff path {path} does not exist in the before image"
            ))
        };
        match (op, last, target, value) {
            (0, PathLeg::Key(k), serde_json::Value::Object(m), Some(v)) => {
                *m.get_mut(k).ok_or_else(missing)? = v;
            }
            (0, PathLeg::Index(i), serde_json::Value::Array(a), Some(v)) => {
                *a.get_mut(*i).ok_or_else(missing)? = v;
            }
            (1, PathLeg::Key(k), serde_json::Value::Object(m), Some(v)) => {
                m.insert(k.clone(), v);
            }
            (1, PathLeg::Index(i), serde_json::Value::Array(a), Some(v)) => {
                let at = (*i).min(a.len());
                a.insert(at, v);
            }
            (2, PathLeg::Key(k), serde_json::Value::Object(m), None) => {
                m.shift_remove(k).ok_or_else(missing)?;
            }
            (2, PathLeg::Index(i), serde_json::Value::Array(a), None) => {
                if *i >= a.len() {
                    return Err(missing());
                }
                a.remove(*i);
            }
            (op, ..) => {
                return Err(Malformed::new(format!(
                    "JSON diff operation {op} at {path} does not fit the before image"
                )))
            }
        }
    }
    let mut out = Vec::new();
    write_serde_sorted(&doc, &mut out);
    Ok(String::from_utf8(out).expect("UTF-8"))
}

/// Writes a serde value compactly with object keys in MySQL's order (shorter keys first, then
/// bytewise), so a partially updated document prints as the full document would.
fn write_serde_sorted(v: &serde_json::Value, out: &mut Vec<u8>) {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.len().cmp(&b.len()).then(a.as_bytes().cmp(b.as_bytes())));
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(k, out);
                out.push(b':');
                write_serde_sorted(&m[k], out);
            }
            out.push(b'}');
        }
        serde_json::Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_serde_sorted(x, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_object_with_inlined_and_offset_values() {
        // {"a": 1, "b": "xy"}: small object, 2 elements.
        let mut doc = vec![SMALL_OBJECT];
        let body: Vec<u8> = vec![
            2, 0, // count
            22, 0, // size
            18, 0, 1, 0, // key "a" at 18, len 1
            19, 0, 1, 0, // key "b" at 19, len 1
            INT16, 1, 0, // inlined 1
            STRING, 20, 0, // string at 20
            b'a', b'b', 2, b'x',
        ];
        let mut body = body;
        body.push(b'y');
        body[2] = body.len() as u8;
        doc.extend(body);
        assert_eq!(to_json_string(&doc).unwrap(), r#"{"a":1,"b":"xy"}"#);
    }

    #[test]
    fn json_strings_escape_exactly_what_json_requires() {
        let cases = [
            "plain ascii text longer than eight bytes",
            "quote\" in the middle of a long run of bytes",
            "back\\slash",
            "ctl \u{1}\u{1f} tab\t nl\n cr\r bs\u{8} ff\u{c}",
            "ünïcødé ✓ 𝄞 and \"quotes\" 12345678",
            "",
            "\"",
        ];
        for case in cases {
            let mut out = Vec::new();
            write_json_string(case, &mut out);
            let text = String::from_utf8(out).unwrap();
            assert_eq!(
                serde_json::from_str::<String>(&text).unwrap(),
                case,
                "{text}"
            );
            assert_eq!(text, serde_json::to_string(case).unwrap());
        }
    }

    #[test]
    fn corrupt_documents_are_errors_not_panics() {
        for doc in [
            vec![SMALL_OBJECT, 5, 0, 200, 0],
            vec![LARGE_ARRAY, 1],
            vec![STRING, 0x80, 0x80, 0x80, 0x80, 0x80],
            vec![0x42],
        ] {
            assert!(to_json_string(&doc).is_err(), "{doc:?}");
        }
    }

    #[test]
    fn packed_temporals_print_like_mysql() {
        use crate::mysql::table_map::types;
        // 2015-01-15 23:24:25.5: ym = 2015*13+1
        let ymd = ((2015u64 * 13 + 1) << 5) | 15;
        let hms = (23u64 << 12) | (24 << 6) | 25;
        let packed = ((((ymd << 17) | hms) << 24) | 500_000) as i64;
        assert_eq!(
            packed_temporal_text(types::DATETIME, packed),
            "2015-01-15 23:24:25.500000"
        );
        let t = -(((((1u64 << 12) | (2 << 6)) | 3) << 24) as i64);
        assert_eq!(packed_temporal_text(types::TIME, t), "-01:02:03.000000");
    }

    #[test]
    fn json_diffs_replace_insert_remove() {
        let string_value = |s: &str| {
            let mut v = vec![STRING, s.len() as u8];
            v.extend_from_slice(s.as_bytes());
            v
        };
        let mut diffs = Vec::new();
        let mut push = |op: u8, path: &str, value: Option<Vec<u8>>| {
            diffs.push(op);
            diffs.push(path.len() as u8);
            diffs.extend_from_slice(path.as_bytes());
            if let Some(v) = value {
                diffs.push(v.len() as u8);
                diffs.extend(v);
            }
        };
        push(0, "$.name", Some(string_value("new")));
        push(1, "$.tags[1]", Some(string_value("b")));
        push(2, "$.gone", None);
        let after =
            apply_json_diffs(r#"{"name":"old","tags":["a","c"],"gone":1}"#, &diffs).unwrap();
        assert_eq!(after, r#"{"name":"new","tags":["a","b","c"]}"#);
        assert!(apply_json_diffs(r#"{"a":1}"#, &[2, 4, b'$', b'.', b'z', b'z']).is_err());
    }
}
