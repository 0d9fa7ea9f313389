//! The order a topic's changes are applied in when a schema change falls inside a batch.
//!
//! History and silver are written one segment per schema version (see
//! [`super::table_apply`]), and a batch holds a topic's partitions interleaved as they were
//! consumed. Around an ALTER TABLE each partition turns from the old schema to the new one at
//! its own offset, so consumption order alternates between the two, and every alternation
//! would be a segment of its own: a commit for one or two changes. (That is what made a sink
//! catching up over an ALTER apply a change or two a second.) A key's changes all travel in one
//! partition and every layer orders them by binlog position, not batch order, so only each
//! partition's own order must be kept: the changes are put in schema-version order, which all
//! partitions share, each partition's order kept within it.

use crate::event::TableSchema;

/// `items` in schema-version order, each partition's order kept. `key` gives an item's
/// partition and schema. When the partitions do not agree on one order of versions (a schema
/// that comes back after another, as ADD then DROP of one column gives), the partitions are
/// put one after the other instead, which keeps each partition's order too.
pub(super) fn by_schema_version<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> (i32, &TableSchema),
) -> Vec<T> {
    if items.len() < 2 {
        return items;
    }
    // Each item's partition and version (versions numbered by first appearance).
    let mut versions: Vec<&TableSchema> = Vec::new();
    let mut tags: Vec<(i32, usize)> = Vec::with_capacity(items.len());
    for item in &items {
        let (partition, schema) = key(item);
        let version = match versions
            .iter()
            .position(|v| std::ptr::eq(*v, schema) || *v == schema)
        {
            Some(v) => v,
            None => {
                versions.push(schema);
                versions.len() - 1
            }
        };
        tags.push((partition, version));
    }
    let count = versions.len();
    if count == 1 {
        return items;
    }
    let ranks = version_ranks(&tags, count);
    let mut tagged: Vec<(usize, T)> = match ranks {
        Some(ranks) => tags
            .iter()
            .map(|(_, v)| ranks[*v])
            .zip(items.drain(..))
            .collect(),
        None => {
            let mut partitions: Vec<i32> = Vec::new();
            tags.iter()
                .map(|(p, _)| match partitions.iter().position(|x| x == p) {
                    Some(i) => i,
                    None => {
                        partitions.push(*p);
                        partitions.len() - 1
                    }
                })
                .collect::<Vec<_>>()
                .into_iter()
                .zip(items.drain(..))
                .collect()
        }
    };
    tagged.sort_by_key(|(rank, _)| *rank);
    tagged.into_iter().map(|(_, item)| item).collect()
}

/// A rank per version that every partition's sequence of versions follows, or None when no
/// such order exists.
fn version_ranks(tags: &[(i32, usize)], count: usize) -> Option<Vec<usize>> {
    // Edges: a version a partition turns from → the one it turns to.
    let mut last: Vec<(i32, usize)> = Vec::new();
    let mut seen_in: Vec<(i32, usize)> = Vec::new();
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for &(partition, version) in tags {
        match last.iter_mut().find(|(p, _)| *p == partition) {
            Some((_, previous)) if *previous == version => continue,
            Some((_, previous)) => {
                if seen_in.contains(&(partition, version)) {
                    // The partition comes back to a version it left.
                    return None;
                }
                edges.push((*previous, version));
                *previous = version;
            }
            None => last.push((partition, version)),
        }
        seen_in.push((partition, version));
    }
    // Kahn's algorithm, earliest-seen version first among those ready.
    let mut incoming = vec![0usize; count];
    for (_, to) in &edges {
        incoming[*to] += 1;
    }
    let mut ranks = vec![usize::MAX; count];
    for rank in 0..count {
        let next = (0..count).find(|v| ranks[*v] == usize::MAX && incoming[*v] == 0)?;
        ranks[next] = rank;
        for (from, to) in &edges {
            if *from == next {
                incoming[*to] -= 1;
            }
        }
    }
    Some(ranks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Column, ColumnType, TableId};

    fn schema(columns: &[&str]) -> TableSchema {
        TableSchema {
            id: TableId::new("shop", "orders"),
            columns: columns
                .iter()
                .map(|c| Column::new(*c, ColumnType::Int))
                .collect(),
            primary_key: vec![0],
            positional_names: false,
        }
    }

    /// (partition, schema index, name) → the names in applying order.
    fn order(items: &[(i32, usize, &'static str)], schemas: &[TableSchema]) -> Vec<&'static str> {
        let items: Vec<(i32, &TableSchema, &str)> = items
            .iter()
            .map(|(p, s, n)| (*p, &schemas[*s], *n))
            .collect();
        by_schema_version(items, |(p, s, _)| (*p, *s))
            .into_iter()
            .map(|(_, _, n)| n)
            .collect()
    }

    #[test]
    fn partitions_turning_to_a_new_schema_make_two_runs_each_partition_in_order() {
        let schemas = [schema(&["id"]), schema(&["id", "tier"])];
        // Consumed interleaved: partition 1 turns first, partition 0 later.
        let items = [
            (0, 0, "p0-a"),
            (1, 0, "p1-a"),
            (1, 1, "p1-b"),
            (0, 0, "p0-b"),
            (1, 1, "p1-c"),
            (0, 1, "p0-c"),
            (0, 1, "p0-d"),
        ];
        assert_eq!(
            order(&items, &schemas),
            ["p0-a", "p1-a", "p0-b", "p1-b", "p1-c", "p0-c", "p0-d"]
        );
    }

    #[test]
    fn a_partition_seeing_only_the_new_schema_first_still_goes_after_the_old() {
        let schemas = [
            schema(&["id"]),
            schema(&["id", "tier"]),
            schema(&["id", "tier", "x"]),
        ];
        let items = [
            (1, 2, "p1-z"),
            (0, 0, "p0-a"),
            (0, 1, "p0-b"),
            (2, 1, "p2-b"),
            (0, 2, "p0-c"),
        ];
        assert_eq!(
            order(&items, &schemas),
            ["p0-a", "p0-b", "p2-b", "p1-z", "p0-c"]
        );
    }

    #[test]
    fn a_schema_that_comes_back_keeps_each_partition_whole_and_in_order() {
        let schemas = [schema(&["id"]), schema(&["id", "tier"])];
        let items = [
            (0, 0, "p0-a"),
            (1, 0, "p1-a"),
            (0, 1, "p0-b"),
            (1, 1, "p1-b"),
            (0, 0, "p0-c"),
        ];
        assert_eq!(
            order(&items, &schemas),
            ["p0-a", "p0-b", "p0-c", "p1-a", "p1-b"]
        );
    }

    #[test]
    fn one_schema_keeps_the_consumed_order() {
        let schemas = [schema(&["id"])];
        let items = [(1, 0, "a"), (0, 0, "b"), (1, 0, "c")];
        assert_eq!(order(&items, &schemas), ["a", "b", "c"]);
    }
}
