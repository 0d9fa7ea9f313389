//! What may leave the database host (`[source] exclude_columns`, `mask_columns`) and which
//! columns key a table's changes (`key_columns`): excluded columns are dropped from every
//! change and from the table's schema, masked ones replaced by the hex SHA-256 of a secret salt
//! and the value, and a table given `key_columns` is keyed by them (as Debezium's
//! `message.key.columns`; a table without a primary key then reaches silver), before the
//! source hands a change to its output. So the values never reach the transport (Kafka, the NDJSON file, the embedded
//! channel), bronze, silver or any log; statement text (`source.query`), which may quote
//! them, is dropped for such tables too. A masked value is the same wherever it comes from
//! (the binlog or a snapshot's SELECT), so a masked key still identifies its row.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::decoder::Commit;
use super::SourceOutput;
use crate::event::{ChangeEvent, Column, ColumnType, Row, TableId, TableSchema, Value};

/// `mask_columns` methods.
pub const MASK_METHODS: &[&str] = &["sha256"];

/// What happens to one column of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Treatment {
    Keep,
    Mask,
}

/// A table's columns as they leave: the schema published, and per column kept, where it comes
/// from and how.
#[derive(Debug)]
struct Plan {
    schema: Arc<TableSchema>,
    columns: Vec<(usize, Treatment)>,
}

/// The rules, and the plan of every table schema met so far.
#[derive(Debug, Default)]
pub struct ColumnPolicy {
    excluded: HashSet<String>,
    masked: HashSet<String>,
    /// `db.table` (lowercase) → its key columns.
    keys: HashMap<String, Vec<String>>,
    salt: Vec<u8>,
    /// By schema identity (a schema version is one `Arc`); `None`: the table passes unchanged.
    plans: HashMap<usize, (Arc<TableSchema>, Option<Arc<Plan>>)>,
}

fn column_key(table: &TableId, column: &str) -> String {
    format!("{}.{}.{}", table.db, table.table, column).to_ascii_lowercase()
}

impl ColumnPolicy {
    /// `exclude` and `mask` name columns as `db.table.column`; `salt` keys the masks.
    pub fn new(exclude: &[String], mask: &[String], salt: &str) -> ColumnPolicy {
        ColumnPolicy {
            excluded: exclude.iter().map(|c| c.to_ascii_lowercase()).collect(),
            masked: mask.iter().map(|c| c.to_ascii_lowercase()).collect(),
            keys: HashMap::new(),
            salt: salt.as_bytes().to_vec(),
            plans: HashMap::new(),
        }
    }

    /// Keys `db.table` by `columns`, whatever its primary key.
    pub fn with_key_columns<'a>(
        mut self,
        keys: impl IntoIterator<Item = (&'a String, &'a Vec<String>)>,
    ) -> ColumnPolicy {
        self.keys = keys
            .into_iter()
            .map(|(t, c)| (t.to_ascii_lowercase(), c.clone()))
            .collect();
        self
    }

    pub fn is_empty(&self) -> bool {
        self.excluded.is_empty() && self.masked.is_empty() && self.keys.is_empty()
    }

    fn plan(&mut self, schema: &Arc<TableSchema>) -> Result<Option<Arc<Plan>>, String> {
        let id = Arc::as_ptr(schema) as usize;
        if let Some((kept, plan)) = self.plans.get(&id) {
            if Arc::ptr_eq(kept, schema) {
                return Ok(plan.clone());
            }
        }
        let mut columns = Vec::with_capacity(schema.columns.len());
        let mut out = Vec::with_capacity(schema.columns.len());
        let mut touched = false;
        for (i, c) in schema.columns.iter().enumerate() {
            let key = column_key(&schema.id, &c.name);
            if self.excluded.contains(&key) {
                if schema.primary_key.contains(&i) {
                    return Err(format!(
                        "{}: source.exclude_columns names {}, a primary-key column; mask it instead (mask_columns), so rows keep their identity",
                        schema.id, c.name
                    ));
                }
                touched = true;
                continue;
            }
            if self.masked.contains(&key) {
                touched = true;
                let mut masked = Column::new(c.name.clone(), ColumnType::Char { max_bytes: 64 });
                masked.nullable = c.nullable;
                columns.push((i, Treatment::Mask));
                out.push(masked);
            } else {
                columns.push((i, Treatment::Keep));
                out.push(c.clone());
            }
        }
        let table = schema.id.to_string().to_ascii_lowercase();
        let primary_key: Vec<usize> = match self.keys.get(&table) {
            Some(names) => {
                touched = true;
                let mut key = Vec::with_capacity(names.len());
                for name in names {
                    let i = out
                        .iter()
                        .position(|c| c.name.eq_ignore_ascii_case(name))
                        .ok_or_else(|| {
                            format!(
                                "{}: source.key_columns names {name}, which the table does not have (or exclude_columns drops)",
                                schema.id
                            )
                        })?;
                    key.push(i);
                }
                key
            }
            None => schema
                .primary_key
                .iter()
                .filter_map(|k| columns.iter().position(|(i, _)| i == k))
                .collect(),
        };
        let plan = touched.then(|| {
            Arc::new(Plan {
                schema: Arc::new(TableSchema {
                    id: schema.id.clone(),
                    columns: out,
                    primary_key,
                    positional_names: schema.positional_names,
                }),
                columns,
            })
        });
        self.plans.insert(id, (Arc::clone(schema), plan.clone()));
        Ok(plan)
    }

    /// The change as it may leave the host; `None` when the table passes unchanged.
    pub fn apply(
        &mut self,
        event: &ChangeEvent<'_>,
    ) -> Result<Option<ChangeEvent<'static>>, String> {
        if self.is_empty() {
            return Ok(None);
        }
        let Some(plan) = self.plan(&event.table)? else {
            return Ok(None);
        };
        let row = |r: &Row<'_>| -> Row<'static> {
            plan.columns
                .iter()
                .map(|&(i, t)| {
                    let v = r.get(i).cloned().flatten()?;
                    Some(match t {
                        Treatment::Keep => v.into_owned(),
                        Treatment::Mask => self.mask(&event.table.columns[i], &v),
                    })
                })
                .collect()
        };
        let mut source = event.source.clone();
        source.query = None;
        Ok(Some(ChangeEvent {
            table: Arc::clone(&plan.schema),
            op: event.op,
            before: event.before.as_ref().map(row),
            after: event.after.as_ref().map(row),
            position: event.position.clone(),
            source,
            transaction: event.transaction.clone(),
        }))
    }

    fn mask(&self, column: &Column, value: &Value<'_>) -> Value<'static> {
        if matches!(value, Value::Null) {
            return Value::Null;
        }
        let text;
        let bytes: &[u8] = match value {
            Value::Text(t) => t.as_bytes(),
            Value::Bytes(b) => b,
            Value::Enum(i) => {
                text = column
                    .members
                    .get((*i as usize).wrapping_sub(1))
                    .cloned()
                    .unwrap_or_default();
                text.as_bytes()
            }
            Value::Set(bits) => {
                text = column
                    .members
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bits & (1 << i) != 0)
                    .map(|(_, m)| m.as_str())
                    .collect::<Vec<_>>()
                    .join(",");
                text.as_bytes()
            }
            Value::Int(v) => {
                text = v.to_string();
                text.as_bytes()
            }
            Value::UInt(v) => {
                text = v.to_string();
                text.as_bytes()
            }
            Value::Decimal(d) => {
                text = d.to_string();
                text.as_bytes()
            }
            Value::DecimalText(t) => t.as_bytes(),
            other => {
                text = other.comparable();
                text.as_bytes()
            }
        };
        let mut hasher = Sha256::new();
        hasher.update(&self.salt);
        hasher.update(bytes);
        let digest = hasher.finalize();
        Value::Text(
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into(),
        )
    }
}

/// A source output that lets only what the policy allows through.
pub struct Guarded<'a, O: SourceOutput + ?Sized> {
    pub inner: &'a mut O,
    pub policy: ColumnPolicy,
}

impl<O: SourceOutput + ?Sized> SourceOutput for Guarded<'_, O> {
    fn change(&mut self, event: &ChangeEvent<'_>) -> Result<(), String> {
        match self.policy.apply(event)? {
            Some(guarded) => self.inner.change(&guarded),
            None => self.inner.change(event),
        }
    }
    fn commit(&mut self, commit: &Commit) -> Result<(), String> {
        self.inner.commit(commit)
    }
    fn heartbeat(&mut self, file: &str, pos: u64) -> Result<(), String> {
        self.inner.heartbeat(file, pos)
    }
    fn make_durable(&mut self) -> Result<(), String> {
        self.inner.make_durable()
    }
    fn make_durable_later(&mut self) -> Result<super::durable::Durable, String> {
        self.inner.make_durable_later()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Op, Position, SourceInfo};

    fn users() -> Arc<TableSchema> {
        let mut id = Column::new("id", ColumnType::Int);
        id.nullable = false;
        Arc::new(TableSchema {
            id: TableId::new("shop", "users"),
            columns: vec![
                id,
                Column::new("email", ColumnType::VarChar { max_bytes: 200 }),
                Column::new("password_hash", ColumnType::VarChar { max_bytes: 200 }),
                Column::new("name", ColumnType::VarChar { max_bytes: 200 }),
            ],
            primary_key: vec![0],
            positional_names: false,
        })
    }

    fn insert(table: &Arc<TableSchema>, email: &str) -> ChangeEvent<'static> {
        ChangeEvent {
            table: Arc::clone(table),
            op: Op::Create,
            before: None,
            after: Some(vec![
                Some(Value::Int(7)),
                Some(Value::Text(email.to_string().into())),
                Some(Value::Text("$2y$secret".into())),
                Some(Value::Text("Ann".into())),
            ]),
            position: Position {
                file: "b.000001".into(),
                pos: 4,
                row: 0,
            },
            source: SourceInfo {
                server_id: 1,
                ts_ms: 0,
                gtid: None,
                thread: None,
                query: Some("INSERT INTO users VALUES (7, 'ann@x', '$2y$secret', 'Ann')".into()),
                snapshot: "false",
            },
            transaction: None,
        }
    }

    #[test]
    fn excluded_columns_are_gone_and_masked_ones_hashed_with_the_salt() {
        let table = users();
        let mut policy = ColumnPolicy::new(
            &["shop.users.password_hash".into()],
            &["SHOP.users.Email".into()],
            "pepper",
        );
        let out = policy.apply(&insert(&table, "ann@x")).unwrap().unwrap();
        let names: Vec<&str> = out.table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "email", "name"]);
        assert_eq!(out.table.primary_key, [0]);
        assert_eq!(
            out.table.columns[1].column_type,
            ColumnType::Char { max_bytes: 64 }
        );
        let after = out.after.unwrap();
        let mut h = Sha256::new();
        h.update(b"pepper");
        h.update(b"ann@x");
        let expected: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(after[1], Some(Value::Text(expected.into())));
        assert_eq!(after[2], Some(Value::Text("Ann".into())));
        assert!(
            out.source.query.is_none(),
            "the statement quotes the values"
        );
        // Another salt, another mask; another table, unchanged.
        let mut other = ColumnPolicy::new(&[], &["shop.users.email".into()], "salt2");
        let masked = other.apply(&insert(&table, "ann@x")).unwrap().unwrap();
        assert_ne!(masked.after.unwrap()[1], after[1]);
        let mut none = ColumnPolicy::new(&[], &["shop.orders.email".into()], "s");
        assert!(none.apply(&insert(&table, "ann@x")).unwrap().is_none());
    }

    #[test]
    fn key_columns_key_a_table_whatever_its_primary_key() {
        let mut keyless = (*users()).clone();
        keyless.primary_key.clear();
        let table = Arc::new(keyless);
        let keys = [(
            "Shop.Users".to_string(),
            vec!["name".to_string(), "ID".to_string()],
        )];
        let mut policy =
            ColumnPolicy::new(&[], &[], "").with_key_columns(keys.iter().map(|(t, c)| (t, c)));
        let out = policy.apply(&insert(&table, "a")).unwrap().unwrap();
        assert_eq!(out.table.primary_key, [3, 0]);
        assert_eq!(
            out.after,
            insert(&table, "a").after,
            "the values pass unchanged"
        );
        let bad = [("shop.users".to_string(), vec!["nope".to_string()])];
        let mut policy =
            ColumnPolicy::new(&[], &[], "").with_key_columns(bad.iter().map(|(t, c)| (t, c)));
        let e = policy.apply(&insert(&table, "a")).unwrap_err();
        assert!(e.contains("source.key_columns names nope"), "{e}");
    }

    #[test]
    fn a_primary_key_column_cannot_be_excluded() {
        let mut policy = ColumnPolicy::new(&["shop.users.id".into()], &[], "");
        let e = policy.apply(&insert(&users(), "a")).unwrap_err();
        assert!(
            e.contains("shop.users: source.exclude_columns names id, a primary-key column"),
            "{e}"
        );
    }
}
