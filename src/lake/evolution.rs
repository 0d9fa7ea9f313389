//! Schema evolution of silver and history as the source's schema moves: columns the source
//! added are added to the Delta table (nullable), and a column added with a literal DEFAULT
//! gets that default on the rows that existed before, as the server gave it to them.

use deltalake::arrow::datatypes::{DataType, Field, SchemaRef};
use deltalake::datafusion::prelude::{col, lit};
use serde_json::Value as Json;

use super::config::Readers;
use super::layer::{delta_err, quote, Layer};
use super::layout::END_POSITION;
use super::types::{arrow_type, build_array, lake_type};
use super::LakeError;
use crate::event::TableSchema;

impl Layer {
    /// Adds the columns of `batch` the table lacks (nullable; earlier rows read null).
    pub(super) async fn add_missing_columns(
        &mut self,
        schema: &TableSchema,
        batch: &SchemaRef,
    ) -> Result<(), LakeError> {
        use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
        let existing = self.arrow_schema().expect("the table exists");
        let mut added = Vec::new();
        for field in batch.fields() {
            if existing.field_with_name(field.name()).is_ok() {
                continue;
            }
            let field = field.as_ref().clone().with_nullable(true);
            let delta_field: deltalake::kernel::StructField =
                (&field).try_into_kernel().map_err(|e| LakeError::Schema {
                    table: schema.id.to_string(),
                    reason: format!("column {}: {e}", field.name()),
                })?;
            added.push(delta_field);
        }
        if added.is_empty() {
            return Ok(());
        }
        let properties = self.state.commit_properties();
        let table = self.table.take().expect("a layer keeps its table");
        let table = table
            .add_columns()
            .with_fields(added)
            .with_commit_properties(properties)
            .await
            .map_err(delta_err(&self.path))?;
        self.table = Some(table);
        Ok(())
    }
}

/// A column added with a literal DEFAULT: the server gave the default to every existing row
/// without a row event, so the lake does the same, in two commits (add the column, marking it
/// pending; fill the rows that existed, clearing the mark) before any later change. In
/// history only the open versions get it: the closed ones predate the column.
pub(super) async fn apply_column_defaults(
    layer: &mut Layer,
    schema: &TableSchema,
    readers: Readers,
) -> Result<(), LakeError> {
    use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
    let Some(existing) = layer.arrow_schema() else {
        return Ok(());
    };
    let history = layer.path.ends_with("__history");
    // A new DATETIME column needs the timestampNtz table feature before any write adds it
    // (under a profile whose readers read it; otherwise it is a UTC timestamp).
    let new_ntz = schema.columns.iter().any(|c| {
        existing.field_with_name(&c.name).is_err()
            && matches!(
                lake_type(c, readers),
                DataType::Timestamp(deltalake::arrow::datatypes::TimeUnit::Microsecond, None)
            )
    });
    let has_ntz = existing.fields().iter().any(|f| {
        matches!(
            f.data_type(),
            DataType::Timestamp(deltalake::arrow::datatypes::TimeUnit::Microsecond, None)
        )
    });
    if new_ntz && !has_ntz {
        let properties = layer.state.commit_properties();
        let table = layer.table.take().expect("a layer keeps its table");
        let table = table
            .add_feature()
            .with_feature(deltalake::kernel::TableFeatures::TimestampWithoutTimezone)
            .with_allow_protocol_versions_increase(true)
            .with_commit_properties(properties)
            .await
            .map_err(delta_err(&layer.path))?;
        layer.table = Some(table);
    }
    let mut added = Vec::new();
    for column in &schema.columns {
        if column.default.is_none() || existing.field_with_name(&column.name).is_ok() {
            continue;
        }
        let field = Field::new(&column.name, lake_type(column, readers), true);
        let delta_field: deltalake::kernel::StructField =
            (&field).try_into_kernel().map_err(|e| LakeError::Schema {
                table: schema.id.to_string(),
                reason: format!("column {}: {e}", column.name),
            })?;
        added.push(delta_field);
    }
    if !added.is_empty() {
        let mut state = layer.state.clone();
        state
            .pending_defaults
            .extend(added.iter().map(|f| f.name().to_string()));
        let properties = state.commit_properties();
        let table = layer.table.take().expect("a layer keeps its table");
        let table = table
            .add_columns()
            .with_fields(added)
            .with_commit_properties(properties)
            .await
            .map_err(delta_err(&layer.path))?;
        layer.table = Some(table);
        layer.state = state;
    }
    if layer.state.pending_defaults.is_empty() {
        return Ok(());
    }
    let pending = layer.state.pending_defaults.clone();
    for (i, name) in pending.iter().enumerate() {
        // Each fill's commit records the columns still pending after it.
        let mut state = layer.state.clone();
        state.pending_defaults = pending[i + 1..].to_vec();
        let value = schema
            .columns
            .iter()
            .find(|c| &c.name == name)
            .and_then(|column| {
                let v = default_value(column);
                if v.is_none() {
                    tracing::warn!(table = %schema.id, column = %name, default = ?column.default, "this DEFAULT is not given to earlier rows in the lake (only literal numbers and strings are)");
                }
                v
            });
        if let Some(value) = value {
            let properties = state.commit_properties();
            let table = layer.table.take().expect("a layer keeps its table");
            let target = col(quote(name));
            let predicate = if history {
                col(END_POSITION).is_null().and(target.is_null())
            } else {
                target.is_null()
            };
            let (table, _) = table
                .update()
                .with_predicate(predicate)
                .with_update(quote(name), lit(value))
                .with_commit_properties(properties)
                .await
                .map_err(delta_err(&layer.path))?;
            layer.table = Some(table);
        }
        layer.state = state;
    }
    Ok(())
}

/// A literal DEFAULT as the Arrow value of its column, when binlake can read it.
fn default_value(
    column: &crate::event::Column,
) -> Option<deltalake::datafusion::scalar::ScalarValue> {
    use crate::event::ColumnType as T;
    let text = column.default.as_deref()?;
    let json = match &column.column_type {
        T::TinyInt | T::SmallInt | T::MediumInt | T::Int | T::BigInt | T::Year => {
            Json::from(text.parse::<i64>().ok()?)
        }
        T::Float | T::Double => Json::from(text.parse::<f64>().ok()?),
        T::Decimal { .. } | T::Char { .. } | T::VarChar { .. } | T::Enum | T::Set | T::Json => {
            if column.is_binary() {
                return None;
            }
            Json::from(text)
        }
        T::Blob { .. } if !column.is_binary() => Json::from(text),
        _ => return None,
    };
    let data_type = arrow_type(column);
    let array = build_array(column, &data_type, &[Some(&json)]).ok()?;
    deltalake::datafusion::scalar::ScalarValue::try_from_array(&array, 0).ok()
}
