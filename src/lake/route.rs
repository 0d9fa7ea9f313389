//! `[[lake.route]]`: shards of one schema (`shop_01.orders` … `shop_16.orders`, on one server or
//! several) landed in one set of tables (`shop.orders`), as Flink CDC's `route` does. A routed
//! change is the source's change with two columns in front, `_source_server` (the logical
//! server name, `source.name`) and `_source_db`, which lead the primary key: the same key
//! value in two shards is two rows. Everything else stays per source: each shard's topic
//! partitions and binlog positions are recorded apart in the table's exactly-once state, and a
//! key's changes all come from one shard, so the per-key position guard compares positions of
//! one binlog only.
//!
//! Not routable, and stopped visibly: a table without a primary key (its row ids are binlog
//! places, which shards share) and a TRUNCATE of one shard (it would empty every shard's rows).
//!
//! DDL: shards take an ALTER one after another, so the routed table sees the new schema from
//! one shard and the old one from the others for a while. A batch keeps each shard's changes
//! together (one topic each), so that costs a commit per schema, not per change; and the
//! target follows `lenient` where `evolve` is configured (`LakeConfig::schema_changes_for`): a
//! column one shard lacks stays (null in its rows), and one shard's narrower type never narrows
//! the table.

use std::sync::Arc;

use serde_json::Value as Json;

use super::change::LakeChange;
use crate::event::{Column, ColumnType, Op, TableId, TableSchema};

/// One `[[lake.route]]`: the source tables `from` matches (a `db.table` glob) land in `to`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub from: String,
    pub to: String,
}

/// The column naming the server a routed row came from.
pub const SOURCE_SERVER: &str = "_source_server";
/// The column naming the database a routed row came from.
pub const SOURCE_DB: &str = "_source_db";

/// The configured routes, first match wins.
pub struct Routes {
    routes: Vec<(globset::GlobMatcher, TableId)>,
    /// Routed schemas made so far: (source schema, target, routed schema). The source schema
    /// is held, so a schema seen again (the same `Arc`, or an equal one) finds its routed one.
    schemas: Vec<(Arc<TableSchema>, TableId, Arc<TableSchema>)>,
}

impl Routes {
    pub fn new(routes: &[RouteConfig]) -> Result<Routes, String> {
        let mut out = Vec::with_capacity(routes.len());
        for route in routes {
            out.push(Self::check(route)?);
        }
        Ok(Routes {
            routes: out,
            schemas: Vec::new(),
        })
    }

    /// The matcher and target of `route`, or what is wrong with it.
    pub fn check(route: &RouteConfig) -> Result<(globset::GlobMatcher, TableId), String> {
        let matcher = globset::GlobBuilder::new(&route.from)
            .literal_separator(false)
            .build()
            .map_err(|e| format!("from = {:?}: {e}", route.from))?
            .compile_matcher();
        let Some((db, table)) = route.to.split_once('.') else {
            return Err(format!("to = {:?}: must be `db.table`", route.to));
        };
        if db.is_empty() || table.is_empty() || table.contains('.') {
            return Err(format!("to = {:?}: must be `db.table`", route.to));
        }
        Ok((matcher, TableId::new(db, table)))
    }

    /// The table `id`'s changes land in, when a route takes it.
    pub fn target(&self, id: &TableId) -> Option<&TableId> {
        let name = id.to_string();
        self.routes
            .iter()
            .find(|(m, _)| m.is_match(&name))
            .map(|(_, to)| to)
    }

    /// The changes of source table `id` as changes of the table its route names (as they are
    /// when no route takes it).
    pub fn route(
        &mut self,
        id: TableId,
        changes: Vec<LakeChange>,
    ) -> Result<(TableId, Vec<LakeChange>), Unroutable> {
        let Some(target) = self.target(&id).cloned() else {
            return Ok((id, changes));
        };
        if let Some(reason) = unroutable(&id, &target, &changes) {
            return Err(Unroutable {
                target,
                changes,
                reason,
            });
        }
        let changes = self.route_to(&id, &target, changes);
        Ok((target, changes))
    }

    fn routed(&mut self, source: &Arc<TableSchema>, target: &TableId) -> Arc<TableSchema> {
        let known = self.schemas.iter().find(|(s, t, _)| {
            t == target && (Arc::ptr_eq(s, source) || s.as_ref() == source.as_ref())
        });
        if let Some((_, _, routed)) = known {
            return Arc::clone(routed);
        }
        let routed = Arc::new(routed_schema(source, target));
        self.schemas
            .push((Arc::clone(source), target.clone(), Arc::clone(&routed)));
        routed
    }

    fn route_to(
        &mut self,
        source: &TableId,
        target: &TableId,
        changes: Vec<LakeChange>,
    ) -> Vec<LakeChange> {
        let mut out = Vec::with_capacity(changes.len());
        for mut c in changes {
            let schema = self.routed(&c.schema, target);
            let server = Json::String(c.server.clone().unwrap_or_default());
            let db = Json::String(source.db.clone());
            for row in [&mut c.before, &mut c.after].into_iter().flatten() {
                row.prepend([server.clone(), db.clone()]);
            }
            c.schema = schema;
            c.key = Default::default();
            out.push(c);
        }
        out
    }
}

/// Changes a route cannot take: the table they would have landed in stops, with the reason.
pub struct Unroutable {
    pub target: TableId,
    pub changes: Vec<LakeChange>,
    pub reason: String,
}

/// Why `changes` of `source` cannot land in `target`, if they cannot.
fn unroutable(source: &TableId, target: &TableId, changes: &[LakeChange]) -> Option<String> {
    changes.iter().find_map(|c| {
        if c.op == Op::Truncate {
            Some(format!(
                "TRUNCATE of {source} at {}: it would empty the rows of every shard in {target}; delete the shard's rows instead, or snapshot the shard again",
                c.order
            ))
        } else if c.schema.primary_key.is_empty() {
            Some(format!(
                "{source} has no primary key: its rows cannot be told apart from other shards' rows in {target} (give it a key, or route it elsewhere)"
            ))
        } else {
            None
        }
    })
}

/// `schema` as the routed table holds it: `_source_server` and `_source_db` first, leading
/// the primary key.
fn routed_schema(schema: &TableSchema, target: &TableId) -> TableSchema {
    let text = |name| {
        let mut c = Column::new(name, ColumnType::VarChar { max_bytes: 1024 });
        c.nullable = false;
        c
    };
    let mut columns = vec![text(SOURCE_SERVER), text(SOURCE_DB)];
    columns.extend(schema.columns.iter().cloned());
    let mut primary_key = vec![0, 1];
    primary_key.extend(schema.primary_key.iter().map(|i| i + 2));
    TableSchema {
        id: target.clone(),
        columns,
        primary_key,
        positional_names: schema.positional_names,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_takes_its_glob_and_rejects_a_bad_target() {
        let routes = Routes::new(&[RouteConfig {
            from: "shop_*.orders".into(),
            to: "shop.orders".into(),
        }])
        .unwrap();
        assert_eq!(
            routes.target(&TableId::new("shop_07", "orders")),
            Some(&TableId::new("shop", "orders"))
        );
        assert_eq!(routes.target(&TableId::new("shop_07", "items")), None);
        assert_eq!(routes.target(&TableId::new("shop", "orders")), None);
        let bad = Routes::new(&[RouteConfig {
            from: "shop_*.orders".into(),
            to: "orders".into(),
        }]);
        assert_eq!(
            bad.err().unwrap(),
            "to = \"orders\": must be `db.table`".to_string()
        );
    }

    #[test]
    fn a_changed_source_schema_gets_its_own_routed_schema() {
        let mut routes = Routes::new(&[RouteConfig {
            from: "shop_*.orders".into(),
            to: "shop.orders".into(),
        }])
        .unwrap();
        let target = TableId::new("shop", "orders");
        let schema = |columns: &[&str]| {
            Arc::new(TableSchema {
                id: TableId::new("shop_01", "orders"),
                columns: columns
                    .iter()
                    .map(|c| Column::new(*c, ColumnType::Int))
                    .collect(),
                primary_key: vec![0],
                positional_names: false,
            })
        };
        let before = routes.routed(&schema(&["id"]), &target);
        // An equal schema in another Arc finds the same routed one; one with a column added
        // (after an ALTER TABLE) gets its own, whatever address it was given.
        assert!(Arc::ptr_eq(
            &before,
            &routes.routed(&schema(&["id"]), &target)
        ));
        let after = routes.routed(&schema(&["id", "note"]), &target);
        let names: Vec<&str> = after.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["_source_server", "_source_db", "id", "note"]);
        assert_eq!(before.columns.len(), 3);
    }

    #[test]
    fn routed_schema_puts_server_and_db_first_and_in_the_key() {
        let mut id = Column::new("id", ColumnType::BigInt);
        id.nullable = false;
        let schema = TableSchema {
            id: TableId::new("shop_01", "orders"),
            columns: vec![
                Column::new("note", ColumnType::VarChar { max_bytes: 40 }),
                id,
            ],
            primary_key: vec![1],
            positional_names: false,
        };
        let routed = routed_schema(&schema, &TableId::new("shop", "orders"));
        let names: Vec<&str> = routed.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["_source_server", "_source_db", "note", "id"]);
        assert_eq!(routed.primary_key, [0, 1, 3]);
        assert_eq!(routed.id.to_string(), "shop.orders");
    }
}
