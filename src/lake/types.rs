//! The MySQL → Arrow/Delta type mapping of silver and history columns, and the conversion of
//! Debezium-encoded JSON values (what travels through Kafka) into Arrow arrays.

use std::sync::Arc;

use base64::Engine;
use deltalake::arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder,
    ListBuilder, StringBuilder, StructArray, TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::{DataType, Field, Fields, SchemaRef, TimeUnit};
use serde_json::Value as Json;

use super::config::Readers;
use super::LakeError;
use crate::envelope::row::RowImage;
use crate::event::{Column, ColumnType, TableSchema};

/// Arrow's largest decimal precision; wider MySQL DECIMALs are kept as exact strings.
pub const MAX_DECIMAL_PRECISION: u8 = 38;

pub fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn geometry_fields() -> Fields {
    Fields::from(vec![
        Field::new("wkb", DataType::Binary, true),
        Field::new("srid", DataType::Int32, true),
    ])
}

/// The Arrow type a MySQL column lands as in silver and history (README has the table).
pub fn arrow_type(column: &Column) -> DataType {
    let unsigned = column.unsigned;
    match &column.column_type {
        ColumnType::TinyInt if unsigned => DataType::Int16,
        ColumnType::TinyInt => DataType::Int8,
        ColumnType::SmallInt if unsigned => DataType::Int32,
        ColumnType::SmallInt => DataType::Int16,
        ColumnType::MediumInt => DataType::Int32,
        ColumnType::Int if unsigned => DataType::Int64,
        ColumnType::Int => DataType::Int32,
        ColumnType::BigInt if unsigned => DataType::Decimal128(20, 0),
        ColumnType::BigInt => DataType::Int64,
        ColumnType::Float => DataType::Float32,
        ColumnType::Double => DataType::Float64,
        ColumnType::Decimal { precision, scale } if *precision <= MAX_DECIMAL_PRECISION => {
            DataType::Decimal128(*precision, *scale as i8)
        }
        ColumnType::Decimal { .. } => DataType::Utf8,
        ColumnType::Bit { bits: 1 } => DataType::Boolean,
        ColumnType::Bit { .. } => DataType::Binary,
        ColumnType::Date => DataType::Date32,
        ColumnType::DateTime { .. } => DataType::Timestamp(TimeUnit::Microsecond, None),
        ColumnType::Timestamp { .. } => utc_micros(),
        ColumnType::Time { .. } => DataType::Int64,
        ColumnType::Year => DataType::Int32,
        ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Blob { .. } => {
            if column.is_binary() {
                DataType::Binary
            } else {
                DataType::Utf8
            }
        }
        ColumnType::Enum | ColumnType::Set | ColumnType::Json => DataType::Utf8,
        ColumnType::Geometry => DataType::Struct(geometry_fields()),
        ColumnType::Vector => {
            DataType::List(Arc::new(Field::new("element", DataType::Float32, true)))
        }
        ColumnType::Unknown(_) => DataType::Utf8,
    }
}

fn int(v: &Json, min: i64, max: i64) -> Result<i64, String> {
    let i = v
        .as_i64()
        .ok_or_else(|| format!("expected an integer, got {v}"))?;
    if i < min || i > max {
        return Err(format!("{i} is out of range"));
    }
    Ok(i)
}

fn base64_bytes(v: &Json) -> Result<Vec<u8>, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected base64 bytes, got {v}"))?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("bad base64 {s:?}: {e}"))
}

/// Parses an exact decimal string into the unscaled i128 of DECIMAL(_, scale).
fn decimal(v: &Json, scale: i8) -> Result<i128, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected a decimal string, got {v}"))?;
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if frac_part.len() > scale as usize
        || int_part.is_empty()
        || !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(format!("{s:?} is not a decimal with scale {scale}"));
    }
    let mut unscaled: i128 = 0;
    for b in int_part
        .bytes()
        .chain(frac_part.bytes())
        .chain(std::iter::repeat_n(b'0', scale as usize - frac_part.len()))
    {
        unscaled = unscaled
            .checked_mul(10)
            .and_then(|u| u.checked_add((b - b'0') as i128))
            .ok_or_else(|| format!("{s:?} overflows"))?;
    }
    Ok(if neg { -unscaled } else { unscaled })
}

/// Microseconds since the epoch of Debezium's ISO-8601 UTC string (`2038-01-19T03:14:07.999999Z`).
fn iso_micros(v: &Json) -> Result<i64, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected an ISO-8601 timestamp, got {v}"))?;
    let bad = || format!("{s:?} is not an ISO-8601 UTC timestamp");
    let body = s.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = body.split_once('T').ok_or_else(bad)?;
    let mut d = date.splitn(3, '-');
    let num = |p: Option<&str>| p.and_then(|x| x.parse::<i64>().ok()).ok_or_else(bad);
    let (y, m, day) = (num(d.next())?, num(d.next())?, num(d.next())?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':');
    let (h, mi, sec) = (num(t.next())?, num(t.next())?, num(t.next())?);
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let micros = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().map_err(|_| bad())? * 10i64.pow(6 - frac.len() as u32)
    };
    let days = crate::event::days_from_civil(y, m, day);
    Ok(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1_000_000) + micros)
}

/// Builds the Arrow array of `column` (typed as `data_type`) from Debezium JSON values;
/// a missing or null value is null. The error names the row index and the problem.
pub fn build_array(
    column: &Column,
    data_type: &DataType,
    values: &[Option<&Json>],
) -> Result<ArrayRef, String> {
    macro_rules! fill {
        ($builder:expr, $convert:expr) => {{
            let mut b = $builder;
            for (i, v) in values.iter().enumerate() {
                match v {
                    None | Some(Json::Null) => b.append_null(),
                    Some(v) => {
                        let converted =
                            ($convert)(*v).map_err(|e: String| format!("row {i}: {e}"))?;
                        b.append_value(converted)
                    }
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    let n = values.len();
    let datetime_scale = match column.column_type {
        // Debezium: io.debezium.time.Timestamp (ms) up to fsp 3, MicroTimestamp beyond.
        ColumnType::DateTime { fsp } if fsp <= 3 => 1000,
        _ => 1,
    };
    Ok(match data_type {
        DataType::Int8 => fill!(Int8Builder::with_capacity(n), |v| int(
            v,
            i8::MIN as i64,
            i8::MAX as i64
        )
        .map(|i| i as i8)),
        DataType::Int16 => fill!(Int16Builder::with_capacity(n), |v| int(
            v,
            i16::MIN as i64,
            i16::MAX as i64
        )
        .map(|i| i as i16)),
        DataType::Int32 => fill!(Int32Builder::with_capacity(n), |v| int(
            v,
            i32::MIN as i64,
            i32::MAX as i64
        )
        .map(|i| i as i32)),
        DataType::Int64 => fill!(Int64Builder::with_capacity(n), |v| int(
            v,
            i64::MIN,
            i64::MAX
        )),
        DataType::Float32 => fill!(Float32Builder::with_capacity(n), |v: &Json| v
            .as_f64()
            .map(|f| f as f32)
            .ok_or_else(|| format!("expected a number, got {v}"))),
        DataType::Float64 => fill!(Float64Builder::with_capacity(n), |v: &Json| v
            .as_f64()
            .ok_or_else(|| format!("expected a number, got {v}"))),
        DataType::Decimal128(p, s) => {
            let s = *s;
            let array = fill!(Decimal128Builder::with_capacity(n), |v: &Json| {
                // BIGINT UNSIGNED arrives as a JSON number.
                match v.as_u64() {
                    Some(u) if s == 0 => Ok(u as i128),
                    _ => decimal(v, s),
                }
            });
            let array = array
                .as_any()
                .downcast_ref::<deltalake::arrow::array::Decimal128Array>()
                .expect("decimal")
                .clone()
                .with_precision_and_scale(*p, s)
                .map_err(|e| e.to_string())?;
            Arc::new(array) as ArrayRef
        }
        DataType::Boolean => fill!(BooleanBuilder::with_capacity(n), |v: &Json| v
            .as_bool()
            .ok_or_else(|| format!("expected true/false, got {v}"))),
        DataType::Binary => fill!(BinaryBuilder::with_capacity(n, n * 16), base64_bytes),
        DataType::Utf8 => {
            // Strings are copied into the array once, not through a String of their own.
            let mut b = StringBuilder::with_capacity(n, n * 16);
            for v in values {
                match v {
                    None | Some(Json::Null) => b.append_null(),
                    Some(Json::String(s)) => b.append_value(s),
                    Some(other) => b.append_value(other.to_string()),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }
        DataType::Date32 => fill!(Date32Builder::with_capacity(n), |v| int(
            v,
            i32::MIN as i64,
            i32::MAX as i64
        )
        .map(|i| i as i32)),
        DataType::Timestamp(TimeUnit::Microsecond, None) => fill!(
            TimestampMicrosecondBuilder::with_capacity(n),
            // The bound is the scale's: milliseconds (fsp 0-3) become microseconds, and
            // microseconds (fsp 4-6) are taken as they are, up to MySQL's 9999-12-31.
            |v| int(v, i64::MIN / datetime_scale, i64::MAX / datetime_scale)
                .map(|i| i * datetime_scale)
        ),
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) => {
            fill!(
                TimestampMicrosecondBuilder::with_capacity(n).with_timezone(tz.clone()),
                iso_micros
            )
        }
        DataType::Struct(fields) => {
            let mut wkb = BinaryBuilder::with_capacity(n, n * 32);
            let mut srid = Int32Builder::with_capacity(n);
            let mut validity = Vec::with_capacity(n);
            for (i, v) in values.iter().enumerate() {
                match v {
                    None | Some(Json::Null) => {
                        wkb.append_null();
                        srid.append_null();
                        validity.push(false);
                    }
                    Some(v) => {
                        let bytes = v
                            .get("wkb")
                            .map(base64_bytes)
                            .transpose()
                            .map_err(|e| format!("row {i}: {e}"))?
                            .ok_or_else(|| format!("row {i}: a geometry needs wkb, got {v}"))?;
                        wkb.append_value(bytes);
                        match v.get("srid").and_then(Json::as_i64) {
                            Some(s) => srid.append_value(s as i32),
                            None => srid.append_null(),
                        }
                        validity.push(true);
                    }
                }
            }
            Arc::new(StructArray::new(
                fields.clone(),
                vec![Arc::new(wkb.finish()), Arc::new(srid.finish())],
                Some(validity.into()),
            ))
        }
        DataType::List(_) => {
            let mut b = ListBuilder::new(Float32Builder::new()).with_field(Arc::new(Field::new(
                "element",
                DataType::Float32,
                true,
            )));
            for (i, v) in values.iter().enumerate() {
                match v {
                    None | Some(Json::Null) => b.append_null(),
                    Some(Json::Array(items)) => {
                        for item in items {
                            let f = item.as_f64().ok_or_else(|| {
                                format!("row {i}: a vector holds numbers, got {item}")
                            })?;
                            b.values().append_value(f as f32);
                        }
                        b.append(true);
                    }
                    Some(other) => {
                        return Err(format!("row {i}: expected a vector array, got {other}"))
                    }
                }
            }
            Arc::new(b.finish())
        }
        other => return Err(format!("no conversion into {other}")),
    })
}

/// The Arrow type a column takes in a new table or as a new column under `readers`: DATETIME
/// is a UTC timestamp of the same wall-clock value where the readers cannot read
/// `timestamp_ntz`.
pub fn lake_type(column: &Column, readers: Readers) -> DataType {
    match arrow_type(column) {
        DataType::Timestamp(unit, None) if !readers.timestamp_ntz() => {
            DataType::Timestamp(unit, Some(Arc::from("UTC")))
        }
        other => other,
    }
}

/// Whether a table column of type `held` already holds `column` as `readers` would write it:
/// a DATETIME is held as either timestamp (a table keeps the type it was created with when
/// the profile changes).
pub fn holds_as_is(held: &DataType, column: &Column, readers: Readers) -> bool {
    let new = lake_type(column, readers);
    *held == new
        || (matches!(column.column_type, ColumnType::DateTime { .. })
            && matches!(
                (held, &new),
                (DataType::Timestamp(a, _), DataType::Timestamp(b, _)) if a == b
            ))
}

/// The type a table `existing` holds `column` in, or for a column it does not have yet (or a
/// table not created yet), the type `readers` allow.
pub fn column_type_in(column: &Column, existing: Option<&SchemaRef>, readers: Readers) -> DataType {
    existing
        .and_then(|e| e.field_with_name(&column.name).ok())
        .map(|f| f.data_type().clone())
        .unwrap_or_else(|| lake_type(column, readers))
}

/// Each column's values over `rows`, the column at `slots[i]` of each row for `i`.
fn values_by_column<'r>(
    slots: &[usize],
    rows: &[Option<&'r RowImage>],
) -> Vec<Vec<Option<&'r Json>>> {
    let mut out: Vec<Vec<Option<&Json>>> = slots
        .iter()
        .map(|_| Vec::with_capacity(rows.len()))
        .collect();
    for row in rows {
        for (values, &slot) in out.iter_mut().zip(slots) {
            values.push(row.and_then(|r| r.get(slot)));
        }
    }
    out
}

/// The typed source columns of `schema` for `rows` (rows of `schema`; None: all null), in the
/// types the table `existing` holds them, or for columns it does not have yet, those `readers`
/// allow.
pub fn typed_columns(
    schema: &TableSchema,
    rows: &[Option<&RowImage>],
    existing: Option<&SchemaRef>,
    readers: Readers,
) -> Result<(Vec<Field>, Vec<ArrayRef>), LakeError> {
    let slots: Vec<usize> = (0..schema.columns.len()).collect();
    typed_columns_from(schema, &slots, rows, existing, readers)
}

/// [`typed_columns`] of `schema`, whose column `i` is read from slot `slots[i]` of `rows`
/// (rows of a wider schema: the key columns of whole rows).
pub fn typed_columns_from(
    schema: &TableSchema,
    slots: &[usize],
    rows: &[Option<&RowImage>],
    existing: Option<&SchemaRef>,
    readers: Readers,
) -> Result<(Vec<Field>, Vec<ArrayRef>), LakeError> {
    let mut fields = Vec::with_capacity(schema.columns.len());
    let mut arrays = Vec::with_capacity(schema.columns.len());
    let mut by_column = values_by_column(slots, rows).into_iter();
    for column in &schema.columns {
        let data_type = arrow_type(column);
        // The table may hold the column under a wider type than the source now declares
        // (`schema_changes = "lenient"` never narrows): values are written in the table's type.
        let held = Some(column_type_in(column, existing, readers)).filter(|t| *t != data_type);
        let values = by_column.next().expect("one per column");
        let value_error = |reason: String| LakeError::Value {
            table: schema.id.to_string(),
            column: column.name.clone(),
            reason,
        };
        let array = build_array(column, &data_type, &values).map_err(value_error)?;
        let (array, data_type) = match held {
            Some(held) => {
                let options = deltalake::arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                };
                let cast = deltalake::arrow::compute::cast_with_options(&array, &held, &options)
                    .map_err(|e| {
                        value_error(format!(
                            "a {data_type} value does not fit the table's {held} column: {e}"
                        ))
                    })?;
                (cast, held)
            }
            None => (array, data_type),
        };
        fields.push(Field::new(&column.name, data_type, true));
        arrays.push(array);
    }
    Ok((fields, arrays))
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{
        Decimal128Array, Int16Array, StringArray, TimestampMicrosecondArray,
    };
    use serde_json::json;

    #[test]
    fn datetime_keeps_mysqls_largest_value_at_every_precision() {
        // '9999-12-31 23:59:59.999999' and '9999-12-31 23:59:59': a common "never expires".
        let micros: i64 = 253_402_300_799_999_999;
        for (fsp, value, expected) in [
            (6u8, json!(micros), micros),
            (3u8, json!(253_402_300_799_999i64), 253_402_300_799_999_000),
            (0u8, json!(253_402_300_799_000i64), 253_402_300_799_000_000),
            (
                6u8,
                json!(-62_135_596_800_000_000i64),
                -62_135_596_800_000_000,
            ),
        ] {
            let column = col(ColumnType::DateTime { fsp }, false);
            let array = build_array(&column, &arrow_type(&column), &[Some(&value)])
                .unwrap_or_else(|e| panic!("DATETIME({fsp}) {value}: {e}"));
            let array = array
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .unwrap();
            assert_eq!(array.value(0), expected, "DATETIME({fsp}) {value}");
        }
    }

    fn col(t: ColumnType, unsigned: bool) -> Column {
        Column {
            unsigned,
            ..Column::new("c", t)
        }
    }

    #[test]
    fn mapping_keeps_every_value_exact() {
        assert_eq!(
            arrow_type(&col(ColumnType::BigInt, true)),
            DataType::Decimal128(20, 0)
        );
        assert_eq!(arrow_type(&col(ColumnType::TinyInt, true)), DataType::Int16);
        assert_eq!(
            arrow_type(&col(
                ColumnType::Decimal {
                    precision: 65,
                    scale: 30
                },
                false
            )),
            DataType::Utf8
        );
        assert_eq!(
            arrow_type(&col(
                ColumnType::Decimal {
                    precision: 38,
                    scale: 10
                },
                false
            )),
            DataType::Decimal128(38, 10)
        );

        let big = col(ColumnType::BigInt, true);
        let v = json!(18446744073709551615u64);
        let a = build_array(&big, &arrow_type(&big), &[Some(&v), None]).unwrap();
        let a = a.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!(a.value(0), 18446744073709551615i128);
        assert!(a.is_null(1));

        let d = col(
            ColumnType::Decimal {
                precision: 10,
                scale: 2,
            },
            false,
        );
        let (x, y) = (json!("-12345678.90"), json!("5"));
        let a = build_array(&d, &arrow_type(&d), &[Some(&x), Some(&y)]).unwrap();
        let a = a.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!((a.value(0), a.value(1)), (-1234567890, 500));
        let bad = json!("1.234");
        let err = build_array(&d, &arrow_type(&d), &[Some(&bad)]).unwrap_err();
        assert!(err.contains("row 0") && err.contains("scale 2"), "{err}");

        let ts = col(ColumnType::Timestamp { fsp: 6 }, false);
        let v = json!("2038-01-19T03:14:07.999999Z");
        let a = build_array(&ts, &arrow_type(&ts), &[Some(&v)]).unwrap();
        let a = a
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(a.value(0), 2_147_483_647_999_999);

        let dt = col(ColumnType::DateTime { fsp: 3 }, false);
        let v = json!(1709211907123i64);
        let a = build_array(&dt, &arrow_type(&dt), &[Some(&v)]).unwrap();
        let a = a
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(a.value(0), 1_709_211_907_123_000);

        let tiny = col(ColumnType::TinyInt, true);
        let v = json!(255);
        let a = build_array(&tiny, &arrow_type(&tiny), &[Some(&v)]).unwrap();
        assert_eq!(
            a.as_any().downcast_ref::<Int16Array>().unwrap().value(0),
            255
        );

        let j = col(ColumnType::Json, false);
        let v = json!("{\"a\":1}");
        let a = build_array(&j, &arrow_type(&j), &[Some(&v)]).unwrap();
        assert_eq!(
            a.as_any().downcast_ref::<StringArray>().unwrap().value(0),
            "{\"a\":1}"
        );
    }
}
