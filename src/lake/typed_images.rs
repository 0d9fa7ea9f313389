//! A segment's row images typed once, shared by history and silver. The two tables mostly
//! write the same images (an insert is a new version in history and the key's row in silver;
//! an update's new image is both), and turning JSON values into Arrow arrays is the costliest
//! step of each. Each table takes its rows out of the shared arrays by index, or, when its rows
//! are the typed images in order (a batch of inserts), the arrays themselves.

use std::collections::HashMap;

use deltalake::arrow::array::{ArrayRef, UInt32Array};
use deltalake::arrow::datatypes::{Field, SchemaRef};

use super::config::Readers;
use super::layer::df_err;
use super::types::{column_type_in, typed_columns};
use super::LakeError;
use crate::envelope::row::RowImage;
use crate::event::TableSchema;

/// A table's typed source columns: their fields and arrays.
type Columns = (Vec<Field>, Vec<ArrayRef>);

/// Row images typed as the columns of one schema, in the types one table holds them.
pub(super) struct TypedImages {
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
    /// An image, by its address → its row in `arrays`.
    row_of: HashMap<usize, u32>,
}

fn address(image: &RowImage) -> usize {
    image as *const RowImage as usize
}

impl TypedImages {
    /// Types `images` (each once, in the order first given) as `schema`'s columns, in the
    /// types the table `existing` holds them (see [`typed_columns`]).
    pub(super) fn build<'a>(
        schema: &TableSchema,
        images: impl IntoIterator<Item = &'a RowImage>,
        existing: Option<&SchemaRef>,
        readers: Readers,
    ) -> Result<TypedImages, LakeError> {
        let mut row_of = HashMap::new();
        let mut rows: Vec<Option<&RowImage>> = Vec::new();
        for image in images {
            if let std::collections::hash_map::Entry::Vacant(e) = row_of.entry(address(image)) {
                e.insert(rows.len() as u32);
                rows.push(Some(image));
            }
        }
        let (fields, arrays) = typed_columns(schema, &rows, existing, readers)?;
        Ok(TypedImages {
            fields,
            arrays,
            row_of,
        })
    }

    /// Whether the columns are typed as the table `existing` would hold them (history and
    /// silver can hold a column in different types: a DATETIME created under another readers
    /// profile, a column widened in one only).
    fn fits(&self, schema: &TableSchema, existing: Option<&SchemaRef>, readers: Readers) -> bool {
        schema
            .columns
            .iter()
            .zip(&self.fields)
            .all(|(column, field)| column_type_in(column, existing, readers) == *field.data_type())
    }

    /// The typed columns of `rows` (None: a row of nulls) for the table `existing`: taken
    /// from the shared arrays, or typed afresh when the table holds a column in another type
    /// or a row's image was not typed here.
    pub(super) fn columns_for(
        &self,
        schema: &TableSchema,
        rows: &[Option<&RowImage>],
        existing: Option<&SchemaRef>,
        readers: Readers,
    ) -> Result<Columns, LakeError> {
        if self.fits(schema, existing, readers) {
            if let Some(shared) = self.columns(schema, rows)? {
                return Ok(shared);
            }
        }
        typed_columns(schema, rows, existing, readers)
    }

    /// The typed columns of `rows` (None: a row of nulls), or None when a row's image was not
    /// typed here.
    fn columns(
        &self,
        schema: &TableSchema,
        rows: &[Option<&RowImage>],
    ) -> Result<Option<Columns>, LakeError> {
        let mut indices = Vec::with_capacity(rows.len());
        for row in rows {
            match row {
                None => indices.push(None),
                Some(image) => match self.row_of.get(&address(image)) {
                    Some(&i) => indices.push(Some(i)),
                    None => return Ok(None),
                },
            }
        }
        let in_order = indices.len() == self.row_of.len()
            && indices
                .iter()
                .enumerate()
                .all(|(i, at)| *at == Some(i as u32));
        if in_order {
            return Ok(Some((self.fields.clone(), self.arrays.clone())));
        }
        let indices = UInt32Array::from(indices);
        let arrays = self
            .arrays
            .iter()
            .map(|a| deltalake::arrow::compute::take(a, &indices, None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| df_err(&schema.id, e))?;
        Ok(Some((self.fields.clone(), arrays)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Column, ColumnType, TableId};
    use deltalake::arrow::array::{Array, Int32Array, StringArray};
    use deltalake::arrow::datatypes::{DataType, Schema};
    use serde_json::json;
    use std::sync::Arc;

    fn schema() -> TableSchema {
        TableSchema {
            columns: vec![
                Column::new("id", ColumnType::Int),
                Column::new("name", ColumnType::VarChar { max_bytes: 80 }),
            ],
            primary_key: vec![0],
            id: TableId::new("db", "t"),
            positional_names: false,
        }
    }

    fn image(id: i64, name: &str) -> RowImage {
        RowImage::new(vec![Some(json!(id)), Some(json!(name))])
    }

    fn ints(a: &ArrayRef) -> Vec<Option<i32>> {
        a.as_any()
            .downcast_ref::<Int32Array>()
            .unwrap()
            .iter()
            .collect()
    }

    #[test]
    fn rows_are_taken_by_image_and_the_typed_order_is_shared_as_it_is() {
        let schema = schema();
        let (a, b, c) = (image(1, "a"), image(2, "b"), image(3, "c"));
        // `a` twice: typed once.
        let typed =
            TypedImages::build(&schema, [&a, &b, &a, &c], None, Readers::default()).unwrap();
        let (fields, same) = typed
            .columns(&schema, &[Some(&a), Some(&b), Some(&c)])
            .unwrap()
            .unwrap();
        assert_eq!(fields[0].name(), "id");
        assert!(Arc::ptr_eq(&same[0], &typed.arrays[0]), "in order: shared");
        let (_, taken) = typed
            .columns(&schema, &[Some(&c), None, Some(&a), Some(&a)])
            .unwrap()
            .unwrap();
        assert_eq!(ints(&taken[0]), vec![Some(3), None, Some(1), Some(1)]);
        let names = taken[1].as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(names.value(0), "c");
        assert!(names.is_null(1));
        assert_eq!(names.value(3), "a");
        // An image equal to a typed one but not typed itself: typed afresh.
        let copy = image(1, "a");
        assert!(typed.columns(&schema, &[Some(&copy)]).unwrap().is_none());
        let (_, own) = typed
            .columns_for(&schema, &[Some(&copy), Some(&b)], None, Readers::default())
            .unwrap();
        assert_eq!(ints(&own[0]), vec![Some(1), Some(2)]);
    }

    #[test]
    fn columns_fit_only_a_table_that_holds_them_in_the_same_types() {
        let schema = schema();
        let a = image(1, "a");
        let typed = TypedImages::build(&schema, [&a], None, Readers::default()).unwrap();
        assert!(typed.fits(&schema, None, Readers::default()));
        let same: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        assert!(typed.fits(&schema, Some(&same), Readers::default()));
        let widened: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        assert!(!typed.fits(&schema, Some(&widened), Readers::default()));
        // Typed again in the table's wider type.
        let (fields, arrays) = typed
            .columns_for(&schema, &[Some(&a)], Some(&widened), Readers::default())
            .unwrap();
        assert_eq!(*fields[0].data_type(), DataType::Int64);
        let ids = arrays[0]
            .as_any()
            .downcast_ref::<deltalake::arrow::array::Int64Array>()
            .unwrap();
        assert_eq!(ids.value(0), 1);
    }
}
