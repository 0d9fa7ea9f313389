//! A row image as the lake reads it: one slot per column of the schema the message was written
//! with, in the schema's order, so every layer reads a column by its index instead of looking
//! its name up in a map of owned keys. A column the message did not carry is an empty slot.
//!
//! [`read_row`] decodes a message's `before` or `after` object straight into the slots.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value as Json;

use crate::event::TableSchema;

/// One row image: a value (or none) per column of its schema.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowImage {
    values: Vec<Option<Json>>,
}

impl RowImage {
    /// A row of `values`, one per column in the schema's order.
    pub fn new(values: Vec<Option<Json>>) -> RowImage {
        RowImage { values }
    }

    /// The value of the column at `index` (None: the message did not carry it, or no such
    /// column).
    pub fn get(&self, index: usize) -> Option<&Json> {
        self.values.get(index).and_then(Option::as_ref)
    }

    /// The value of the column `schema` names `name`.
    pub fn by_name(&self, schema: &TableSchema, name: &str) -> Option<&Json> {
        schema.column_index(name).and_then(|i| self.get(i))
    }

    /// Every slot, in the schema's order.
    pub fn slots(&self) -> impl Iterator<Item = Option<&Json>> {
        self.values.iter().map(Option::as_ref)
    }

    /// Puts `values` before the row's own (columns a route leads with).
    pub fn prepend(&mut self, values: impl IntoIterator<Item = Json>) {
        let mut row: Vec<Option<Json>> = values.into_iter().map(Some).collect();
        row.append(&mut self.values);
        self.values = row;
    }

    /// Adds a value after the row's own (a column appended to the schema).
    pub fn push(&mut self, value: Json) {
        self.values.push(Some(value));
    }

    /// The row as a JSON object of the columns it carries, named and ordered as `schema`.
    pub fn to_json(&self, schema: &TableSchema) -> String {
        serde_json::to_string(&Named { row: self, schema }).expect("JSON values serialize")
    }

    /// [`Self::to_json`], appended to `out` (a buffer used again for every row).
    pub fn write_json(&self, schema: &TableSchema, out: &mut Vec<u8>) {
        serde_json::to_writer(out, &Named { row: self, schema }).expect("JSON values serialize")
    }
}

struct Named<'a> {
    row: &'a RowImage,
    schema: &'a TableSchema,
}

impl Serialize for Named<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (column, value) in self.schema.columns.iter().zip(&self.row.values) {
            if let Some(value) = value {
                map.serialize_entry(&column.name, value)?;
            }
        }
        map.end()
    }
}

/// A `before`/`after` object read into a [`RowImage`] of `schema`.
pub struct ReadRow {
    pub row: RowImage,
    /// The first key that is not a column of the schema (the message is then a dead letter).
    pub unknown: Option<String>,
}

/// Reads a JSON object (the text of a message's `before` or `after`) into a row of `schema`.
/// Keys are matched to columns as [`TableSchema::column_index`] does (ignoring ASCII case); a
/// key given twice keeps its last value.
pub fn read_row(text: &str, schema: &TableSchema) -> serde_json::Result<ReadRow> {
    let mut de = serde_json::Deserializer::from_str(text);
    let read = RowSeed { schema }.deserialize(&mut de)?;
    de.end()?;
    Ok(read)
}

struct RowSeed<'s> {
    schema: &'s TableSchema,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ReadRow;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<ReadRow, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ReadRow;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ReadRow, A::Error> {
        let columns = &self.schema.columns;
        let mut values: Vec<Option<Json>> = vec![None; columns.len()];
        let mut unknown = None;
        let mut at = 0;
        while let Some(Key(key)) = map.next_key::<Key>()? {
            // Rows normally carry the columns in the schema's order: try the next place first.
            let index = match columns.get(at) {
                Some(c) if c.name == key => Some(at),
                _ => self.schema.column_index(&key),
            };
            match index {
                Some(i) => {
                    values[i] = Some(map.next_value::<Json>()?);
                    at = i + 1;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                    unknown.get_or_insert_with(|| key.into_owned());
                }
            }
        }
        Ok(ReadRow {
            row: RowImage { values },
            unknown,
        })
    }
}

/// An object key, borrowed from the message unless it has escapes.
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Column, ColumnType, TableId};

    fn orders() -> TableSchema {
        TableSchema {
            id: TableId::new("shop", "orders"),
            columns: vec![
                Column::new("id", ColumnType::Int),
                Column::new("note", ColumnType::VarChar { max_bytes: 80 }),
                Column::new("qty", ColumnType::Int),
            ],
            primary_key: vec![0],
            positional_names: false,
        }
    }

    #[test]
    fn reads_columns_into_the_schemas_order_whatever_the_messages() {
        let schema = orders();
        let read = read_row(r#"{"QTY":3,"id":1,"n\u006fte":"a\"b"}"#, &schema).unwrap();
        assert_eq!(read.unknown, None);
        assert_eq!(read.row.get(0), Some(&Json::from(1)));
        assert_eq!(read.row.get(1), Some(&Json::from("a\"b")));
        assert_eq!(read.row.get(2), Some(&Json::from(3)));
        assert_eq!(read.row.by_name(&schema, "Note"), Some(&Json::from("a\"b")));
        assert_eq!(
            read.row.to_json(&schema),
            r#"{"id":1,"note":"a\"b","qty":3}"#
        );
    }

    #[test]
    fn a_missing_column_is_an_empty_slot_and_null_is_a_value() {
        let schema = orders();
        let read = read_row(r#"{"id":1,"qty":null}"#, &schema).unwrap();
        let slots: Vec<_> = read.row.slots().collect();
        assert_eq!(slots, [Some(&Json::from(1)), None, Some(&Json::Null)]);
        assert_eq!(read.row.to_json(&schema), r#"{"id":1,"qty":null}"#);
        // Appended after what the buffer holds (bronze uses one buffer for every row).
        let mut text = b"[".to_vec();
        read.row.write_json(&schema, &mut text);
        assert_eq!(text, br#"[{"id":1,"qty":null}"#);
    }

    #[test]
    fn names_the_first_unknown_key_and_keeps_the_last_of_a_repeated_one() {
        let schema = orders();
        let read = read_row(r#"{"id":1,"colour":[1,{"a":2}],"size":2,"id":5}"#, &schema).unwrap();
        assert_eq!(read.unknown.as_deref(), Some("colour"));
        assert_eq!(read.row.get(0), Some(&Json::from(5)));
        assert!(read_row("[1,2]", &schema).is_err());
        assert!(read_row(r#"{"id":1} x"#, &schema).is_err());
    }

    #[test]
    fn a_route_prepends_and_a_row_id_appends() {
        let mut row = RowImage::new(vec![Some(Json::from(1))]);
        row.prepend([Json::from("s1"), Json::from("shop_01")]);
        row.push(Json::from("0001"));
        let slots: Vec<_> = row.slots().map(|v| v.cloned()).collect();
        assert_eq!(
            slots,
            [
                Some(Json::from("s1")),
                Some(Json::from("shop_01")),
                Some(Json::from(1)),
                Some(Json::from("0001"))
            ]
        );
    }
}
