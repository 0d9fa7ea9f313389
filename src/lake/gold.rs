//! The gold layer: SQL models (`<models>/<name>.sql`, DataFusion SQL) evaluated over the
//! silver tables (addressed as `<db>.<table>`, history as `<db>.<table>__history`) and over
//! other models (`gold.<name>`), each materialized as the Delta table `gold/<name>`. Models run
//! in the order their references give; a cycle is an error; a model that fails is reported with
//! its file and line and the others still run.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltalake::datafusion::catalog::MemorySchemaProvider;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::protocol::SaveMode;
use deltalake::DeltaTable;

use super::gold_vacuum::vacuum_when_due;
pub use super::gold_vacuum::GoldVacuum;
use super::state::without_log_cleanup;
use super::storage::LakeStorage;
use super::LakeError;

/// One model: its name (the file stem), file and SQL.
#[derive(Debug, Clone)]
pub struct GoldModel {
    pub name: String,
    pub file: PathBuf,
    pub sql: String,
}

/// What one refresh did per model: rows written, or the error that stopped the model.
#[derive(Debug, Clone)]
pub struct ModelOutcome {
    pub name: String,
    pub result: Result<usize, String>,
    /// The tables the model reads that do not exist yet (`db.table` of a source table no
    /// change has reached, `gold.<model>` not written yet): the model was not run and waits
    /// for them; `result` says so.
    pub waiting_for: Vec<String>,
    /// Whether the refresh's version was due for a vacuum and the vacuum ran.
    pub vacuumed: bool,
    /// How long evaluating and writing the model took.
    pub elapsed: std::time::Duration,
}

/// The first rows of a gold table, for the status page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GoldPreview {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Why the last refresh of the model failed.
    pub error: Option<String>,
    /// The tables the model waits for (it has not run yet).
    pub waiting_for: Vec<String>,
}

/// Up to `limit` rows of `gold/<name>`, every value as text.
pub async fn preview(
    storage: &LakeStorage,
    name: &str,
    limit: usize,
) -> Result<GoldPreview, LakeError> {
    use deltalake::arrow::array::{Array, StringArray};
    let path = format!("gold/{name}");
    let ctx = SessionContext::new();
    let provider = open_provider(storage, &path, &ctx).await?;
    let err = |e: deltalake::datafusion::error::DataFusionError| LakeError::Storage {
        table: path.clone(),
        reason: e.to_string(),
    };
    let batches = ctx
        .read_table(provider)
        .map_err(err)?
        .limit(0, Some(limit))
        .map_err(err)?
        .collect()
        .await
        .map_err(err)?;
    let mut out = GoldPreview {
        name: name.to_string(),
        ..GoldPreview::default()
    };
    for b in batches {
        if out.columns.is_empty() {
            out.columns = b
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
        }
        let columns: Vec<StringArray> = b
            .columns()
            .iter()
            .map(|c| {
                let cast = deltalake::arrow::compute::cast(
                    c,
                    &deltalake::arrow::datatypes::DataType::Utf8,
                )
                .map_err(|e| LakeError::Storage {
                    table: path.clone(),
                    reason: e.to_string(),
                })?;
                Ok(cast
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("utf8")
                    .clone())
            })
            .collect::<Result<_, LakeError>>()?;
        for i in 0..b.num_rows() {
            out.rows.push(
                columns
                    .iter()
                    .map(|c| {
                        if c.is_null(i) {
                            "NULL".into()
                        } else {
                            c.value(i).to_string()
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// The models that read one of `tables` (`db.table`, history included), and the models that
/// read those.
pub fn affected(models: &[GoldModel], tables: &[String]) -> Vec<GoldModel> {
    let mut chosen: Vec<GoldModel> = models
        .iter()
        .filter(|m| {
            let sql = m.sql.to_lowercase();
            tables.iter().any(|t| {
                let t = t.to_lowercase();
                references(&sql, &t) || references(&sql, &format!("{t}__history"))
            })
        })
        .cloned()
        .collect();
    loop {
        let more: Vec<GoldModel> = models
            .iter()
            .filter(|m| !chosen.iter().any(|c| c.name == m.name))
            .filter(|m| {
                let sql = m.sql.to_lowercase();
                chosen
                    .iter()
                    .any(|c| references(&sql, &format!("gold.{}", c.name.to_lowercase())))
            })
            .cloned()
            .collect();
        if more.is_empty() {
            return chosen;
        }
        chosen.extend(more);
    }
}

/// Reads every `*.sql` of `dir`, in name order.
pub fn load_models(dir: &Path) -> Result<Vec<GoldModel>, LakeError> {
    let bad = |reason: String| LakeError::Config {
        key: "gold.models".into(),
        reason: format!("{}: {reason}", dir.display()),
    };
    let mut models = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| bad(e.to_string()))?;
    for entry in entries {
        let path = entry.map_err(|e| bad(e.to_string()))?.path();
        if path.extension().is_some_and(|x| x == "sql") {
            let sql = std::fs::read_to_string(&path)
                .map_err(|e| bad(format!("{}: {e}", path.display())))?;
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            models.push(GoldModel {
                name,
                file: path,
                sql,
            });
        }
    }
    models.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(models)
}

/// The models in an order where every model comes after the models it reads (`gold.<name>`).
pub fn model_order(models: &[GoldModel]) -> Result<Vec<GoldModel>, LakeError> {
    let names: HashSet<&str> = models.iter().map(|m| m.name.as_str()).collect();
    let deps: HashMap<&str, Vec<&str>> = models
        .iter()
        .map(|m| {
            let lower = m.sql.to_lowercase();
            let reads: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| {
                    *n != m.name && references(&lower, &format!("gold.{}", n.to_lowercase()))
                })
                .collect();
            (m.name.as_str(), reads)
        })
        .collect();
    let mut done: Vec<GoldModel> = Vec::new();
    let mut state: HashMap<&str, u8> = HashMap::new();
    fn visit<'a>(
        name: &'a str,
        deps: &HashMap<&'a str, Vec<&'a str>>,
        state: &mut HashMap<&'a str, u8>,
        order: &mut Vec<&'a str>,
        path: &mut Vec<&'a str>,
    ) -> Result<(), LakeError> {
        match state.get(name) {
            Some(2) => return Ok(()),
            Some(1) => {
                path.push(name);
                return Err(LakeError::Config {
                    key: "gold.models".into(),
                    reason: format!("models read each other in a cycle: {}", path.join(" -> ")),
                });
            }
            _ => {}
        }
        state.insert(name, 1);
        path.push(name);
        for d in deps.get(name).into_iter().flatten() {
            visit(d, deps, state, order, path)?;
        }
        path.pop();
        state.insert(name, 2);
        order.push(name);
        Ok(())
    }
    let mut order = Vec::new();
    for m in models {
        visit(&m.name, &deps, &mut state, &mut order, &mut Vec::new())?;
    }
    for name in order {
        done.push(
            models
                .iter()
                .find(|m| m.name == name)
                .expect("known")
                .clone(),
        );
    }
    Ok(done)
}

/// `needle` occurs in `sql` as a whole name (not as the prefix of a longer one).
fn references(sql: &str, needle: &str) -> bool {
    sql.match_indices(needle).any(|(i, _)| {
        let after = sql[i + needle.len()..].chars().next();
        let before = sql[..i].chars().next_back();
        !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
    })
}

/// `file:line: message` for a model's error, with the line DataFusion/sqlparser reported.
fn locate(model: &GoldModel, error: &str) -> String {
    let line = error
        .find("Line: ")
        .and_then(|i| error[i + 6..].split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1);
    format!("{}:{line}: {error}", model.file.display())
}

/// Silver (and history) tables under the lake: `(db, table)` pairs.
async fn silver_tables(storage: &LakeStorage) -> Result<Vec<(String, String)>, LakeError> {
    let mut out = Vec::new();
    for db in storage.list_dirs("silver").await? {
        for table in storage.list_tables(&format!("silver/{db}")).await? {
            out.push((db.clone(), table));
        }
    }
    out.sort();
    Ok(out)
}

/// JSON helpers for models, since silver keeps JSON columns as text:
/// `json_array_elements(json)` → the elements as a list of JSON texts (for `unnest`),
/// `json_str(json, key)` → the member as text, `json_num(json, key)` → the member as a double.
fn register_json_functions(ctx: &SessionContext) {
    use deltalake::arrow::array::{
        Array, ArrayRef, Float64Builder, ListBuilder, StringArray, StringBuilder,
    };
    use deltalake::arrow::datatypes::{DataType, Field};
    use deltalake::datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};

    fn texts(a: &ArrayRef) -> deltalake::datafusion::error::Result<StringArray> {
        let cast = deltalake::arrow::compute::cast(a, &DataType::Utf8)?;
        Ok(cast
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("utf8")
            .clone())
    }
    fn member(json: &str, key: &str) -> Option<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(json)
            .ok()?
            .get(key)
            .cloned()
    }
    let elements = create_udf(
        "json_array_elements",
        vec![DataType::Utf8],
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let input = texts(&arrays[0])?;
            let mut out = ListBuilder::new(StringBuilder::new());
            for i in 0..input.len() {
                match input
                    .is_valid(i)
                    .then(|| serde_json::from_str::<serde_json::Value>(input.value(i)).ok())
                    .flatten()
                {
                    Some(serde_json::Value::Array(items)) => {
                        for item in items {
                            out.values().append_value(item.to_string());
                        }
                        out.append(true);
                    }
                    _ => out.append(false),
                }
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish())))
        }),
    );
    let string = create_udf(
        "json_str",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let (json, key) = (texts(&arrays[0])?, texts(&arrays[1])?);
            let mut out = StringBuilder::new();
            for i in 0..json.len() {
                let v = (json.is_valid(i) && key.is_valid(i))
                    .then(|| member(json.value(i), key.value(i)))
                    .flatten();
                match v {
                    Some(serde_json::Value::String(s)) => out.append_value(s),
                    Some(serde_json::Value::Null) | None => out.append_null(),
                    Some(other) => out.append_value(other.to_string()),
                }
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish())))
        }),
    );
    let number = create_udf(
        "json_num",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let (json, key) = (texts(&arrays[0])?, texts(&arrays[1])?);
            let mut out = Float64Builder::new();
            for i in 0..json.len() {
                let v = (json.is_valid(i) && key.is_valid(i))
                    .then(|| member(json.value(i), key.value(i)))
                    .flatten();
                match v.and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok())) {
                    Some(f) => out.append_value(f),
                    None => out.append_null(),
                }
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish())))
        }),
    );
    ctx.register_udf(elements);
    ctx.register_udf(string);
    ctx.register_udf(number);
}

/// Evaluates `models` over the lake and writes each to `gold/<name>`.
pub async fn refresh(
    storage: &LakeStorage,
    models: &[GoldModel],
    vacuum: GoldVacuum,
) -> Result<Vec<ModelOutcome>, LakeError> {
    let ordered = model_order(models)?;
    let config =
        SessionConfig::new().set_bool("datafusion.sql_parser.enable_ident_normalization", false);
    let ctx = SessionContext::new_with_config(config);
    register_json_functions(&ctx);
    register_silver(storage, &ctx).await?;
    let catalog = ctx.catalog("datafusion").expect("the default catalog");
    catalog
        .register_schema("gold", Arc::new(MemorySchemaProvider::new()))
        .map_err(|e| LakeError::Storage {
            table: "gold".into(),
            reason: e.to_string(),
        })?;
    // Models not refreshed this time are still there for the ones that read them.
    for name in storage.list_tables("gold").await? {
        let path = format!("gold/{name}");
        let provider = open_provider(storage, &path, &ctx).await?;
        ctx.register_table(
            deltalake::datafusion::common::TableReference::partial("gold", name.as_str()),
            provider,
        )
        .map_err(|e| LakeError::Storage {
            table: path.clone(),
            reason: e.to_string(),
        })?;
    }
    let mut outcomes = Vec::new();
    for model in &ordered {
        let started = std::time::Instant::now();
        let waiting_for = missing_inputs(&ctx, model);
        let mut vacuumed = false;
        let result = if waiting_for.is_empty() {
            match run_model(storage, &ctx, model, vacuum).await {
                Ok((rows, was_vacuumed)) => {
                    vacuumed = was_vacuumed;
                    Ok(rows)
                }
                Err(e) => {
                    tracing::error!(model = %model.name, "{e}");
                    Err(e)
                }
            }
        } else {
            Err(format!(
                "{}: waiting for {}: no such table yet (no change of it has been applied)",
                model.file.display(),
                waiting_for.join(", ")
            ))
        };
        outcomes.push(ModelOutcome {
            name: model.name.clone(),
            result,
            waiting_for,
            vacuumed,
            elapsed: started.elapsed(),
        });
    }
    Ok(outcomes)
}

/// The qualified tables `model` reads (`db.table`, `gold.<name>`) that are not registered:
/// silver tables of source tables no change has reached yet (an empty table, or one whose
/// first rows are still on their way) and models not written yet. Such a model waits for
/// them instead of failing at every refresh. A model that does not parse is left to fail
/// with the parser's error.
fn missing_inputs(ctx: &SessionContext, model: &GoldModel) -> Vec<String> {
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let Ok(statement) = state.sql_to_statement(&model.sql, &dialect) else {
        return Vec::new();
    };
    let Ok(references) = state.resolve_table_references(&statement) else {
        return Vec::new();
    };
    let mut missing: Vec<String> = references
        .into_iter()
        .filter(|r| r.schema().is_some())
        .filter(|r| !ctx.table_exist(r.clone()).unwrap_or(false))
        .map(|r| r.to_string())
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

/// Registers every silver table as `<db>.<table>`, as it is now (again, when it was already).
async fn register_silver(storage: &LakeStorage, ctx: &SessionContext) -> Result<(), LakeError> {
    let catalog = ctx.catalog("datafusion").expect("the default catalog");
    for (db, table) in silver_tables(storage).await? {
        if catalog.schema(&db).is_none() {
            catalog
                .register_schema(&db, Arc::new(MemorySchemaProvider::new()))
                .map_err(|e| LakeError::Storage {
                    table: db.clone(),
                    reason: e.to_string(),
                })?;
        }
        let path = format!("silver/{db}/{table}");
        let provider = open_provider(storage, &path, ctx).await?;
        let reference =
            deltalake::datafusion::common::TableReference::partial(db.as_str(), table.as_str());
        let _ = ctx.deregister_table(reference.clone());
        ctx.register_table(reference, provider)
            .map_err(|e| LakeError::Storage {
                table: path.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok(())
}

async fn open_provider(
    storage: &LakeStorage,
    path: &str,
    ctx: &SessionContext,
) -> Result<Arc<dyn deltalake::datafusion::catalog::TableProvider>, LakeError> {
    let url = storage.table_url(path)?;
    let table = DeltaTable::try_from_url_with_storage_options(url, storage.options().clone())
        .await
        .map_err(|e| LakeError::Delta {
            table: path.to_string(),
            source: Box::new(e),
        })?;
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| LakeError::Delta {
            table: path.to_string(),
            source: Box::new(e),
        })?;
    table
        .table_provider()
        .await
        .map_err(|e| LakeError::Storage {
            table: path.to_string(),
            reason: e.to_string(),
        })
}

/// Times a model is computed again when another sink of the group refreshed it at the same
/// moment (its overwrite went in first).
const CONCURRENT_REFRESH_ATTEMPTS: u32 = 5;

async fn run_model(
    storage: &LakeStorage,
    ctx: &SessionContext,
    model: &GoldModel,
    vacuum: GoldVacuum,
) -> Result<(usize, bool), String> {
    let path = format!("gold/{}", model.name);
    let url = storage.table_url(&path).map_err(|e| e.to_string())?;
    let mut attempt = 0;
    let (table, rows) = loop {
        let df = ctx
            .sql(&model.sql)
            .await
            .map_err(|e| locate(model, &e.to_string()))?;
        let batches = df
            .collect()
            .await
            .map_err(|e| locate(model, &e.to_string()))?;
        let rows = batches.iter().map(|b| b.num_rows()).sum::<usize>();
        let table =
            DeltaTable::try_from_url_with_storage_options(url.clone(), storage.options().clone())
                .await
                .map_err(|e| format!("{path}: {e}"))?;
        // One refresh at a time: an overwrite goes in only on top of the version it read, and
        // the loser of two sinks refreshing at once computes the model again from what silver
        // holds now.
        let written = table
            .write(batches)
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite)
            .with_commit_properties(without_log_cleanup(
                deltalake::kernel::transaction::CommitProperties::default().with_max_retries(0),
            ))
            .await
            .map_err(|e| LakeError::Delta {
                table: path.clone(),
                source: Box::new(e),
            });
        match written {
            Ok(table) => break (table, rows),
            Err(e) if e.is_concurrent_commit() && attempt < CONCURRENT_REFRESH_ATTEMPTS => {
                attempt += 1;
                tracing::info!(model = %model.name, attempt, "another sink refreshed the model at the same moment: computing it again");
                register_silver(storage, ctx)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let (table, vacuumed) = match vacuum_when_due(table.clone(), vacuum).await {
        Ok((vacuumed_table, Some(vacuumed))) => {
            tracing::info!(model = %model.name, files = vacuumed.files, log_files = vacuumed.log_files, "model's table vacuumed");
            (vacuumed_table, true)
        }
        Ok((table, None)) => (table, false),
        // The refresh stands; the next due version tries again.
        Err(e) => {
            tracing::warn!(model = %model.name, "vacuum of {path}: {e}");
            (table, false)
        }
    };
    // Later models read this one as gold.<name>.
    let provider = table
        .table_provider()
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    let reference =
        deltalake::datafusion::common::TableReference::partial("gold", model.name.as_str());
    let _ = ctx.deregister_table(reference.clone());
    ctx.register_table(reference, provider)
        .map_err(|e| format!("{path}: {e}"))?;
    Ok((rows, vacuumed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, sql: &str) -> GoldModel {
        GoldModel {
            name: name.into(),
            file: PathBuf::from(format!("sql/gold/{name}.sql")),
            sql: sql.into(),
        }
    }

    #[test]
    fn models_run_after_the_models_they_read_and_cycles_are_errors() {
        let ordered = model_order(&[
            model("b", "SELECT * FROM gold.a JOIN gold.c ON true"),
            model("a", "SELECT 1"),
            model("c", "SELECT * FROM gold.a"),
            model("ab", "SELECT * FROM shop.x"),
        ])
        .unwrap();
        let names: Vec<&str> = ordered.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "c", "b", "ab"]);
        let err = model_order(&[
            model("x", "SELECT * FROM gold.y"),
            model("y", "SELECT * FROM gold.x"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("cycle: x -> y -> x"), "{err}");
    }

    #[test]
    fn a_commit_refreshes_the_models_that_read_its_tables() {
        let models = [
            model(
                "revenue",
                "SELECT * FROM shop.orders o JOIN shop.items i ON true",
            ),
            model("people", "SELECT * FROM shop.customers__history"),
            model("top", "SELECT * FROM gold.revenue"),
            model("other", "SELECT * FROM shop.orders_archive"),
        ];
        let names = |t: &[&str]| {
            let tables: Vec<String> = t.iter().map(|s| s.to_string()).collect();
            affected(&models, &tables)
                .into_iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&["shop.orders"]), ["revenue", "top"]);
        assert_eq!(names(&["shop.customers"]), ["people"]);
        assert!(names(&["shop.unused"]).is_empty());
    }

    /// A model reading a silver table no change has reached yet (or a model that has not
    /// run) waits for it: not run, not counted as a failure, said once; a model with a real
    /// error still fails; the others run.
    #[tokio::test]
    async fn models_whose_tables_do_not_exist_yet_wait_for_them() {
        use deltalake::arrow::array::{Int64Array, RecordBatch};
        use std::collections::BTreeMap;
        let dir = tempfile::tempdir().unwrap();
        let storage =
            LakeStorage::new(dir.path().to_str().unwrap(), &BTreeMap::new(), dir.path()).unwrap();
        let silver_of_ids = |path: &'static str, ids: Vec<i64>| {
            let storage = storage.clone();
            async move {
                let batch = RecordBatch::try_from_iter([(
                    "id",
                    Arc::new(Int64Array::from(ids)) as deltalake::arrow::array::ArrayRef,
                )])
                .unwrap();
                DeltaTable::try_from_url(storage.table_url(path).unwrap())
                    .await
                    .unwrap()
                    .write(vec![batch])
                    .await
                    .unwrap();
            }
        };
        silver_of_ids("silver/shop/orders", vec![1, 2, 3]).await;
        let models = vec![
            model(
                "joined",
                "SELECT o.id FROM shop.orders o JOIN shop.customers c ON o.id = c.id",
            ),
            model("on_top", "SELECT * FROM gold.joined"),
            model("counted", "SELECT count(*) AS n FROM shop.orders"),
            model("broken", "SELECT no_such_column FROM shop.orders"),
        ];
        let outcomes = refresh(&storage, &models, GoldVacuum::default())
            .await
            .unwrap();
        let by_name = |name: &str| outcomes.iter().find(|o| o.name == name).unwrap();
        assert_eq!(by_name("joined").waiting_for, ["shop.customers"]);
        assert_eq!(
            by_name("joined").result,
            Err("sql/gold/joined.sql: waiting for shop.customers: no such table yet (no change of it has been applied)".into())
        );
        assert_eq!(by_name("on_top").waiting_for, ["gold.joined"]);
        assert_eq!(by_name("counted").result, Ok(1));
        assert!(by_name("counted").waiting_for.is_empty());
        let broken = by_name("broken");
        assert!(broken.waiting_for.is_empty());
        assert!(
            broken
                .result
                .as_ref()
                .unwrap_err()
                .contains("no_such_column"),
            "{:?}",
            broken.result
        );
        assert!(!dir.path().join("gold/joined").exists());

        // From the sink: the waiting models are no failures, and the status page says what
        // they wait for.
        let mut schedule = crate::lake::gold_schedule::GoldSchedule::new(
            storage.clone(),
            models.clone(),
            super::super::config::GoldRefresh::OnCommit,
            GoldVacuum::default(),
        );
        schedule.after_commit(&["shop.orders".to_string()]).await;
        assert_eq!(schedule.failures, 1);
        let waiting: Vec<(&str, &[String])> = schedule
            .previews
            .iter()
            .filter(|p| !p.waiting_for.is_empty())
            .map(|p| (p.name.as_str(), p.waiting_for.as_slice()))
            .collect();
        assert_eq!(
            waiting,
            [
                ("joined", &["shop.customers".to_string()][..]),
                ("on_top", &["gold.joined".to_string()][..])
            ]
        );

        // Once the table exists the model runs.
        silver_of_ids("silver/shop/customers", vec![2, 3, 4]).await;
        let outcomes = refresh(&storage, &models, GoldVacuum::default())
            .await
            .unwrap();
        let by_name = |name: &str| outcomes.iter().find(|o| o.name == name).unwrap();
        assert_eq!(by_name("joined").result, Ok(2));
        assert_eq!(by_name("on_top").result, Ok(2));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let m = model("bad", "SELECT\n  FROM nowhere");
        assert_eq!(
            locate(&m, "SQL error: ParserError(\"Expected: end of statement, found: x at Line: 2, Column: 3\")"),
            "sql/gold/bad.sql:2: SQL error: ParserError(\"Expected: end of statement, found: x at Line: 2, Column: 3\")"
        );
        assert!(locate(&m, "table 'shop.nowhere' not found").starts_with("sql/gold/bad.sql:1: "));
    }
}
