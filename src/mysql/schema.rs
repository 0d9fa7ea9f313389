//! The schema binlake knows for each table apart from table maps: from CREATE TABLE statements
//! (`--schema FILE.sql`, information_schema) and from DDL met in the binlog (CREATE / ALTER /
//! RENAME / DROP / TRUNCATE TABLE), parsed with sqlparser's MySQL dialect. Table maps without
//! optional metadata carry no column names, ENUM/SET members or signedness; this fills them in.

use std::collections::BTreeMap;

use sqlparser::ast::{
    AlterTableOperation, ColumnDef, ColumnOption, DataType, EnumMember, MySQLColumnPosition,
    ObjectName, ObjectType, RenameTableNameKind, Statement, TableConstraint,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

use super::charset::charset_by_name;
use crate::event::{Charset, ColumnType, TableId};

/// A column as DDL declares it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeclaredColumn {
    pub name: String,
    /// The declared type as sqlparser prints it (`INT UNSIGNED`, `ENUM('a', 'b')`).
    pub type_text: String,
    pub unsigned: bool,
    pub nullable: bool,
    pub charset: Option<Charset>,
    pub members: Vec<String>,
    /// The `DEFAULT` when it is a literal (a number or a string), as its text; None for no
    /// default, NULL, or an expression such as CURRENT_TIMESTAMP.
    #[serde(default)]
    pub default: Option<String>,
    /// The names this column had before RENAME / CHANGE COLUMN, oldest first: the lake renames
    /// its column rather than start a new one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renamed_from: Vec<String>,
}

/// A table as DDL declares it.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct DeclaredTable {
    pub columns: Vec<DeclaredColumn>,
    pub primary_key: Vec<String>,
    /// UNIQUE keys, by index name, in declaration order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique_keys: Vec<(String, Vec<String>)>,
}

impl DeclaredTable {
    /// The columns that identify a row: the primary key, or without one the first UNIQUE key
    /// whose columns are all NOT NULL (as Debezium keys such a table; a nullable unique key
    /// lets several rows hold NULL).
    /// A `PRIMARY KEY` or `UNIQUE` written on a column's own definition (CREATE TABLE,
    /// ALTER TABLE ... ADD COLUMN id INT AUTO_INCREMENT PRIMARY KEY).
    fn take_inline_keys(&mut self, def: &ColumnDef) {
        let name = strip_quotes(&def.name.value);
        for o in &def.options {
            match o.option {
                ColumnOption::PrimaryKey(_) => self.primary_key = vec![name.clone()],
                ColumnOption::Unique(_) => {
                    self.unique_keys.push((name.clone(), vec![name.clone()]))
                }
                _ => {}
            }
        }
    }

    pub fn row_key(&self) -> &[String] {
        if !self.primary_key.is_empty() {
            return &self.primary_key;
        }
        self.unique_keys
            .iter()
            .find(|(_, cols)| {
                !cols.is_empty()
                    && cols.iter().all(|k| {
                        self.columns
                            .iter()
                            .any(|c| c.name.eq_ignore_ascii_case(k) && !c.nullable)
                    })
            })
            .map(|(_, cols)| cols.as_slice())
            .unwrap_or(&[])
    }

    fn rename_in_keys(&mut self, old: &str, new: &str) {
        for k in self
            .primary_key
            .iter_mut()
            .chain(self.unique_keys.iter_mut().flat_map(|(_, c)| c.iter_mut()))
        {
            if k.eq_ignore_ascii_case(old) {
                *k = new.to_string();
            }
        }
    }
}

/// Whether a DATETIME, TIMESTAMP or TIME column of `before` keeps fewer fractional digits in
/// `after`. The server then changes its values without row events, and how differs: MySQL
/// rounds (unless `TIME_TRUNCATE_FRACTIONAL`), MariaDB truncates (unless
/// `TIME_ROUND_FRACTIONAL`), by the ALTER's session sql_mode. The lake keeps such a column in
/// the same Delta type, so only the server's own values make it right: the table is read again.
fn fewer_fractional_digits(before: &DeclaredTable, after: &DeclaredTable) -> bool {
    let fsp = |t: ColumnType| match t {
        ColumnType::DateTime { fsp } | ColumnType::Timestamp { fsp } | ColumnType::Time { fsp } => {
            Some(fsp)
        }
        _ => None,
    };
    after.columns.iter().any(|a| {
        let old = before.columns.iter().find(|b| {
            b.name.eq_ignore_ascii_case(&a.name)
                || a.renamed_from
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(&b.name))
        });
        match (old.and_then(|b| fsp(b.column_type())), fsp(a.column_type())) {
            (Some(old), Some(new)) => new < old,
            _ => false,
        }
    })
}

impl DeclaredColumn {
    /// The column type the declaration describes, for rows that come from SELECT rather than
    /// a table map (snapshots). Lengths are in characters here, which only CHAR/VARCHAR keep.
    pub fn column_type(&self) -> ColumnType {
        let upper = self.type_text.to_ascii_uppercase();
        let base: String = upper
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let args: Vec<u32> = upper
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(inside, _)| {
                inside
                    .split(',')
                    .filter_map(|a| a.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let arg = |i: usize, default: u32| args.get(i).copied().unwrap_or(default);
        match base.as_str() {
            "TINYINT" | "BOOL" | "BOOLEAN" => ColumnType::TinyInt,
            "SMALLINT" => ColumnType::SmallInt,
            "MEDIUMINT" => ColumnType::MediumInt,
            "INT" | "INTEGER" => ColumnType::Int,
            "BIGINT" => ColumnType::BigInt,
            "FLOAT" => ColumnType::Float,
            "DOUBLE" | "REAL" => ColumnType::Double,
            "DECIMAL" | "NUMERIC" | "DEC" => ColumnType::Decimal {
                precision: arg(0, 10) as u8,
                scale: arg(1, 0) as u8,
            },
            "BIT" => ColumnType::Bit {
                bits: arg(0, 1) as u16,
            },
            "DATE" => ColumnType::Date,
            "DATETIME" => ColumnType::DateTime {
                fsp: arg(0, 0) as u8,
            },
            "TIMESTAMP" => ColumnType::Timestamp {
                fsp: arg(0, 0) as u8,
            },
            "TIME" => ColumnType::Time {
                fsp: arg(0, 0) as u8,
            },
            "YEAR" => ColumnType::Year,
            "CHAR" | "BINARY" | "NCHAR" | "CHARACTER" => ColumnType::Char {
                max_bytes: arg(0, 1),
            },
            "VARCHAR" | "VARBINARY" | "NVARCHAR" => ColumnType::VarChar {
                max_bytes: arg(0, 255),
            },
            "TINYTEXT" | "TINYBLOB" => ColumnType::Blob { pack_len: 1 },
            "TEXT" | "BLOB" => ColumnType::Blob { pack_len: 2 },
            "MEDIUMTEXT" | "MEDIUMBLOB" => ColumnType::Blob { pack_len: 3 },
            "LONGTEXT" | "LONGBLOB" => ColumnType::Blob { pack_len: 4 },
            "ENUM" => ColumnType::Enum,
            "SET" => ColumnType::Set,
            "JSON" => ColumnType::Json,
            "VECTOR" => ColumnType::Vector,
            "GEOMETRY" | "POINT" | "LINESTRING" | "POLYGON" | "MULTIPOINT" | "MULTILINESTRING"
            | "MULTIPOLYGON" | "GEOMETRYCOLLECTION" | "GEOMCOLLECTION" => ColumnType::Geometry,
            _ => ColumnType::Unknown(0),
        }
    }
}

/// What one DDL statement did, for the decoder to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DdlEffect {
    /// Not a table DDL statement (BEGIN, DML in STATEMENT format, CREATE USER, ...).
    None,
    /// Table definitions changed; `needs_snapshot`: tables whose rows the lake's silver cannot
    /// have yet, since no insert carries them: renamed into their name (RENAME TABLE, ALTER
    /// TABLE ... RENAME), or given a key where they had none (silver needs one).
    Changed {
        tables: Vec<TableId>,
        needs_snapshot: Vec<TableId>,
    },
    /// TRUNCATE TABLE.
    Truncated(Vec<TableId>),
}

/// A table DDL statement sqlparser could not read; the named table's schema is forgotten so a
/// stale definition is never used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse DDL ({reason}); the schema of {table} is now unknown: {sql}")]
pub struct UnparsedDdl {
    pub table: String,
    pub reason: String,
    pub sql: String,
}

#[derive(Debug, Clone, Default)]
pub struct SchemaTracker {
    tables: BTreeMap<TableId, DeclaredTable>,
}

fn ident_name(name: &ObjectName, default_db: &str) -> TableId {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.to_string().trim_matches('`').to_string())
        .collect();
    match parts.as_slice() {
        [db, table] => TableId::new(db.clone(), table.clone()),
        [.., table] => TableId::new(default_db, table.clone()),
        [] => TableId::new(default_db, ""),
    }
}

fn strip_quotes(s: &str) -> String {
    s.trim_matches('`').to_string()
}

fn first_words(sql: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = sql.trim_start();
    while out.len() < n {
        // Skip comments MySQL puts in generated DDL.
        if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map(|x| x.1).unwrap_or("").trim_start();
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '(' || c == ';')
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        out.push(rest[..end].to_ascii_uppercase());
        rest = rest[end..].trim_start();
    }
    out
}

/// The table a DDL statement names, read by hand when sqlparser could not.
fn table_named_in(sql: &str) -> String {
    let words: Vec<String> = sql
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '(' || c == ';').to_string())
        .collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let Some(i) = upper.iter().position(|w| w == "TABLE") else {
        return "?".into();
    };
    let mut j = i + 1;
    while upper
        .get(j)
        .is_some_and(|w| w == "IF" || w == "NOT" || w == "EXISTS")
    {
        j += 1;
    }
    words
        .get(j)
        .map(|w| w.replace('`', ""))
        .unwrap_or_else(|| "?".into())
}

/// Removes MySQL column attributes sqlparser's MySQL dialect does not read and that do not
/// change how binlake decodes a column: `[IN]VISIBLE`, and the `BINARY` attribute after a
/// character type (`CHAR(20) BINARY` means a binary collation, still text). Quoted strings and
/// identifiers are left alone.
fn normalize_ddl(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.char_indices().peekable();
    let mut last_significant = ' ';
    while let Some((i, ch)) = chars.next() {
        if ch == '\'' || ch == '"' || ch == '`' {
            out.push(ch);
            let mut prev = ' ';
            for (_, c) in chars.by_ref() {
                out.push(c);
                if c == ch && prev != '\\' {
                    break;
                }
                prev = c;
            }
            last_significant = ch;
            continue;
        }
        if ch.is_ascii_alphabetic()
            && !out.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        {
            let word_end = sql[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map(|n| i + n)
                .unwrap_or(sql.len());
            let word = &sql[i..word_end];
            let upper = word.to_ascii_uppercase();
            let drop = upper == "INVISIBLE"
                || upper == "VISIBLE"
                || (upper == "BINARY"
                    && last_significant == ')'
                    && !sql[word_end..].trim_start().starts_with('('));
            if !drop {
                out.push_str(word);
                last_significant = word.chars().last().unwrap_or(' ');
            }
            while chars.peek().is_some_and(|(j, _)| *j < word_end) {
                chars.next();
            }
            continue;
        }
        out.push(ch);
        if !ch.is_whitespace() {
            last_significant = ch;
        }
    }
    out
}

fn is_table_ddl(sql: &str) -> bool {
    let w = first_words(sql, 4);
    let kw = |i: usize| w.get(i).map(String::as_str).unwrap_or("");
    match kw(0) {
        "CREATE" => {
            let mut i = 1;
            while matches!(kw(i), "OR" | "REPLACE" | "TEMPORARY") {
                i += 1;
            }
            // A UNIQUE index may become the key of a table without a primary key.
            kw(i) == "TABLE" || (kw(i) == "UNIQUE" && kw(i + 1) == "INDEX")
        }
        "ALTER" => kw(1) == "TABLE" || (kw(1) == "ONLINE" && kw(2) == "TABLE") || kw(1) == "IGNORE",
        "RENAME" => kw(1) == "TABLE",
        "DROP" => {
            kw(1) == "TABLE" || (kw(1) == "TEMPORARY" && kw(2) == "TABLE") || kw(1) == "INDEX"
        }
        "TRUNCATE" => true,
        _ => false,
    }
}

fn declared_column(def: &ColumnDef, table_charset: Option<Charset>) -> DeclaredColumn {
    let type_text = def.data_type.to_string();
    let upper = type_text.to_ascii_uppercase();
    let members = match &def.data_type {
        DataType::Enum(m, _) => m
            .iter()
            .map(|e| match e {
                EnumMember::Name(n) => n.clone(),
                EnumMember::NamedValue(n, _) => n.clone(),
            })
            .collect(),
        DataType::Set(m) => m.clone(),
        _ => Vec::new(),
    };
    let binary_type = matches!(
        def.data_type,
        DataType::Binary(_) | DataType::Varbinary(_) | DataType::Blob(_)
    ) || ["TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BLOB"]
        .iter()
        .any(|t| upper.starts_with(t));
    let mut charset = if binary_type {
        Some(Charset::Binary)
    } else {
        None
    };
    let mut nullable = true;
    let mut explicit = None;
    let mut default = None;
    for opt in &def.options {
        match &opt.option {
            ColumnOption::CharacterSet(name) | ColumnOption::Collation(name) => {
                explicit = charset_by_name(&name.to_string());
            }
            ColumnOption::NotNull => nullable = false,
            ColumnOption::PrimaryKey(_) => nullable = false,
            ColumnOption::Default(expr) => default = literal_text(expr),
            _ => {}
        }
    }
    let textual = !binary_type
        && [
            "CHAR",
            "VARCHAR",
            "TEXT",
            "TINYTEXT",
            "MEDIUMTEXT",
            "LONGTEXT",
            "ENUM",
            "SET",
            "CHARACTER",
            "NCHAR",
            "NVARCHAR",
        ]
        .iter()
        .any(|t| upper.starts_with(t));
    if textual {
        charset = explicit.or(table_charset).or(Some(Charset::Utf8));
    }
    // `CHAR(16) CHARACTER SET binary` / `BINARY` attribute.
    if explicit == Some(Charset::Binary) || upper.contains(" BINARY") && !textual {
        charset = Some(Charset::Binary);
    }
    DeclaredColumn {
        name: strip_quotes(&def.name.value),
        unsigned: upper.contains("UNSIGNED"),
        type_text,
        nullable,
        charset,
        members,
        default,
        renamed_from: Vec::new(),
    }
}

/// The text of a literal `DEFAULT` (`5`, `-1.5`, `'new'`); None for anything else.
fn literal_text(expr: &sqlparser::ast::Expr) -> Option<String> {
    use sqlparser::ast::{Expr, UnaryOperator, Value};
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(n.to_string()),
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => literal_text(expr).map(|t| format!("-{t}")),
        Expr::Nested(e) => literal_text(e),
        _ => None,
    }
}

/// A UNIQUE constraint as (index name, columns); MySQL names an unnamed one after its first
/// column.
fn unique_key(con: &TableConstraint) -> (String, Vec<String>) {
    let TableConstraint::Unique(unique) = con else {
        return (String::new(), Vec::new());
    };
    let columns = index_columns(&unique.columns);
    let name = unique
        .index_name
        .as_ref()
        .or(unique.name.as_ref())
        .map(|n| strip_quotes(&n.value))
        .unwrap_or_else(|| columns.first().cloned().unwrap_or_default());
    (name, columns)
}

fn index_columns(cols: &[sqlparser::ast::IndexColumn]) -> Vec<String> {
    cols.iter()
        .map(|c| {
            let s = c.column.expr.to_string();
            // `name(10)` prefix keys: the column is `name`.
            strip_quotes(s.split('(').next().unwrap_or(&s).trim())
        })
        .collect()
}

fn table_charset_from_options(options_text: &str) -> Option<Charset> {
    let upper = options_text.to_ascii_uppercase();
    for key in ["CHARSET", "CHARACTER SET", "COLLATE"] {
        if let Some(i) = upper.find(key) {
            let rest = options_text[i + key.len()..].trim_start_matches([' ', '=']);
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if let Some(cs) = charset_by_name(&name) {
                return Some(cs);
            }
        }
    }
    None
}

impl SchemaTracker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, id: &TableId) -> Option<&DeclaredTable> {
        self.tables.get(id)
    }

    pub fn tables(&self) -> impl Iterator<Item = (&TableId, &DeclaredTable)> {
        self.tables.iter()
    }

    /// Whether `id` is known and has nothing that identifies its rows.
    fn is_keyless(&self, id: &TableId) -> bool {
        self.tables.get(id).is_some_and(|t| t.row_key().is_empty())
    }

    pub fn insert(&mut self, id: TableId, table: DeclaredTable) {
        self.tables.insert(id, table);
    }

    /// The schema history as stored in a checkpoint.
    pub fn to_entries(&self) -> Vec<(TableId, DeclaredTable)> {
        self.tables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn from_entries(entries: Vec<(TableId, DeclaredTable)>) -> Self {
        SchemaTracker {
            tables: entries.into_iter().collect(),
        }
    }

    /// Applies one SQL statement run with `default_db` as the current schema. Statements that
    /// are not table DDL are ignored.
    pub fn apply(&mut self, default_db: &str, sql: &str) -> Result<DdlEffect, UnparsedDdl> {
        if !is_table_ddl(sql) {
            return Ok(DdlEffect::None);
        }
        let statements = match Parser::parse_sql(&MySqlDialect {}, &normalize_ddl(sql)) {
            Ok(s) => s,
            Err(e) => {
                let table = table_named_in(sql);
                let id = if table.contains('.') {
                    let (d, t) = table.split_once('.').expect("has a dot");
                    TableId::new(d, t)
                } else {
                    TableId::new(default_db, table.clone())
                };
                self.tables.remove(&id);
                return Err(UnparsedDdl {
                    table: id.to_string(),
                    reason: e.to_string(),
                    sql: sql.chars().take(300).collect(),
                });
            }
        };
        let mut changed = Vec::new();
        let mut truncated = Vec::new();
        let mut needs_snapshot = Vec::new();
        for st in statements {
            match st {
                Statement::CreateTable(ct) => {
                    let id = ident_name(&ct.name, default_db);
                    if let Some(like) = &ct.like {
                        let src = match like {
                            sqlparser::ast::CreateTableLikeKind::Parenthesized(l)
                            | sqlparser::ast::CreateTableLikeKind::Plain(l) => {
                                ident_name(&l.name, default_db)
                            }
                        };
                        match self.tables.get(&src).cloned() {
                            Some(t) => {
                                self.tables.insert(id.clone(), t);
                            }
                            None => {
                                self.tables.remove(&id);
                            }
                        }
                        changed.push(id);
                        continue;
                    }
                    if ct.if_not_exists && self.tables.contains_key(&id) {
                        continue;
                    }
                    if ct.query.is_some() && ct.columns.is_empty() {
                        // CREATE TABLE ... AS SELECT: columns come from the query.
                        self.tables.remove(&id);
                        changed.push(id);
                        continue;
                    }
                    let table_cs = table_charset_from_options(&ct.table_options.to_string());
                    let mut t = DeclaredTable {
                        columns: ct
                            .columns
                            .iter()
                            .map(|c| declared_column(c, table_cs))
                            .collect(),
                        primary_key: Vec::new(),
                        unique_keys: Vec::new(),
                    };
                    for def in &ct.columns {
                        t.take_inline_keys(def);
                    }
                    for con in &ct.constraints {
                        match con {
                            TableConstraint::PrimaryKey(key) => {
                                t.primary_key = index_columns(&key.columns);
                            }
                            TableConstraint::Unique(_) => t.unique_keys.push(unique_key(con)),
                            _ => {}
                        }
                    }
                    for c in t.columns.iter_mut() {
                        if t.primary_key
                            .iter()
                            .any(|k| k.eq_ignore_ascii_case(&c.name))
                        {
                            c.nullable = false;
                        }
                    }
                    self.tables.insert(id.clone(), t);
                    changed.push(id);
                }
                Statement::AlterTable(alter) => {
                    let named = ident_name(&alter.name, default_db);
                    let keyless = self.is_keyless(&named);
                    let before = self.tables.get(&named).cloned();
                    let mut id = named.clone();
                    for op in alter.operations {
                        id = self.alter(id, op, default_db);
                    }
                    let rounded = match (&before, self.tables.get(&id)) {
                        (Some(before), Some(after)) => fewer_fractional_digits(before, after),
                        _ => false,
                    };
                    if id != named || (keyless && !self.is_keyless(&id)) || rounded {
                        needs_snapshot.push(id.clone());
                    }
                    changed.push(id);
                }
                Statement::RenameTable(renames) => {
                    for r in renames {
                        let from = ident_name(&r.old_name, default_db);
                        let to = ident_name(&r.new_name, default_db);
                        if let Some(t) = self.tables.remove(&from) {
                            self.tables.insert(to.clone(), t);
                        }
                        changed.push(from);
                        needs_snapshot.push(to.clone());
                        changed.push(to);
                    }
                }
                Statement::Drop {
                    object_type: ObjectType::Table,
                    names,
                    ..
                } => {
                    for n in names {
                        let id = ident_name(&n, default_db);
                        self.tables.remove(&id);
                        changed.push(id);
                    }
                }
                Statement::Truncate(truncate) => {
                    for t in truncate.table_names {
                        truncated.push(ident_name(&t.name, default_db));
                    }
                }
                Statement::CreateIndex(index) if index.unique => {
                    let id = ident_name(&index.table_name, default_db);
                    let keyless = self.is_keyless(&id);
                    if let Some(t) = self.tables.get_mut(&id) {
                        let columns = index_columns(&index.columns);
                        let name = index
                            .name
                            .as_ref()
                            .map(|n| strip_quotes(&n.to_string()))
                            .unwrap_or_else(|| columns.first().cloned().unwrap_or_default());
                        t.unique_keys.push((name, columns));
                        if keyless && !self.is_keyless(&id) {
                            needs_snapshot.push(id.clone());
                        }
                        changed.push(id);
                    }
                }
                Statement::Drop {
                    object_type: ObjectType::Index,
                    names,
                    table: Some(table),
                    ..
                } => {
                    let id = ident_name(&table, default_db);
                    if let Some(t) = self.tables.get_mut(&id) {
                        for n in &names {
                            let name = strip_quotes(&n.to_string());
                            t.unique_keys
                                .retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
                        }
                        changed.push(id);
                    }
                }
                _ => {}
            }
        }
        if !truncated.is_empty() {
            return Ok(DdlEffect::Truncated(truncated));
        }
        Ok(DdlEffect::Changed {
            tables: changed,
            needs_snapshot,
        })
    }

    /// Applies one ALTER TABLE operation; returns the table's (possibly new) name.
    fn alter(&mut self, id: TableId, op: AlterTableOperation, default_db: &str) -> TableId {
        use AlterTableOperation as A;
        if let A::RenameTable { table_name } = &op {
            let to = match table_name {
                RenameTableNameKind::As(n) | RenameTableNameKind::To(n) => {
                    ident_name(n, default_db)
                }
            };
            if let Some(t) = self.tables.remove(&id) {
                self.tables.insert(to.clone(), t);
            }
            return to;
        }
        let Some(t) = self.tables.get_mut(&id) else {
            return id;
        };
        let position = |t: &DeclaredTable, pos: &Option<MySQLColumnPosition>| match pos {
            Some(MySQLColumnPosition::First) => Some(0),
            Some(MySQLColumnPosition::After(after)) => t
                .columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(&after.value))
                .map(|i| i + 1),
            None => None,
        };
        let find = |t: &DeclaredTable, name: &str| {
            t.columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
        };
        match op {
            A::AddColumn {
                column_def,
                column_position,
                ..
            } => {
                let col = declared_column(&column_def, None);
                let at = position(t, &column_position).unwrap_or(t.columns.len());
                t.columns.insert(at.min(t.columns.len()), col);
                t.take_inline_keys(&column_def);
            }
            A::DropColumn { column_names, .. } => {
                for n in column_names {
                    if let Some(i) = find(t, &n.value) {
                        t.columns.remove(i);
                    }
                    t.primary_key.retain(|k| !k.eq_ignore_ascii_case(&n.value));
                    // A key loses a dropped column; a key left with none is gone.
                    for (_, cols) in t.unique_keys.iter_mut() {
                        cols.retain(|k| !k.eq_ignore_ascii_case(&n.value));
                    }
                    t.unique_keys.retain(|(_, cols)| !cols.is_empty());
                }
            }
            A::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                if let Some(i) = find(t, &old_column_name.value) {
                    let old = std::mem::replace(
                        &mut t.columns[i].name,
                        strip_quotes(&new_column_name.value),
                    );
                    t.columns[i].renamed_from.push(old);
                }
                t.rename_in_keys(
                    &old_column_name.value,
                    &strip_quotes(&new_column_name.value),
                );
            }
            A::ChangeColumn {
                old_name,
                new_name,
                data_type,
                options,
                column_position,
            } => {
                let def = ColumnDef {
                    name: new_name.clone(),
                    data_type,
                    options: options
                        .into_iter()
                        .map(|option| sqlparser::ast::ColumnOptionDef { name: None, option })
                        .collect(),
                };
                if let Some(i) = find(t, &old_name.value) {
                    let mut col = declared_column(&def, None);
                    let old = t.columns.remove(i);
                    col.renamed_from = old.renamed_from;
                    if !old.name.eq_ignore_ascii_case(&col.name) {
                        col.renamed_from.push(old.name);
                    }
                    let at = position(t, &column_position).unwrap_or(i);
                    t.columns.insert(at.min(t.columns.len()), col);
                }
                t.rename_in_keys(&old_name.value, &strip_quotes(&new_name.value));
            }
            A::ModifyColumn {
                col_name,
                data_type,
                options,
                column_position,
            } => {
                let def = ColumnDef {
                    name: col_name.clone(),
                    data_type,
                    options: options
                        .into_iter()
                        .map(|option| sqlparser::ast::ColumnOptionDef { name: None, option })
                        .collect(),
                };
                if let Some(i) = find(t, &col_name.value) {
                    let mut col = declared_column(&def, None);
                    col.renamed_from = t.columns.remove(i).renamed_from;
                    let at = position(t, &column_position).unwrap_or(i);
                    t.columns.insert(at.min(t.columns.len()), col);
                }
            }
            A::AddConstraint {
                constraint: TableConstraint::PrimaryKey(key),
                ..
            } => {
                t.primary_key = index_columns(&key.columns);
            }
            A::DropPrimaryKey { .. } => t.primary_key.clear(),
            A::AddConstraint {
                constraint: con @ TableConstraint::Unique(_),
                ..
            } => t.unique_keys.push(unique_key(&con)),
            A::DropIndex { name } | A::DropConstraint { name, .. } => {
                let name = strip_quotes(&name.value);
                t.unique_keys
                    .retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
            }
            _ => {}
        }
        id
    }

    /// Loads a file of CREATE TABLE (and other DDL) statements, as `--schema` gives it. `USE db`
    /// statements set the schema unqualified names belong to.
    pub fn load_sql_file(&mut self, path: &std::path::Path) -> Result<usize, super::BinlogError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| super::BinlogError::Schema {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        let statements =
            Parser::parse_sql(&MySqlDialect {}, &text).map_err(|e| super::BinlogError::Schema {
                file: file.clone(),
                reason: e.to_string(),
            })?;
        let mut db = String::new();
        let mut count = 0;
        for st in statements {
            if let Statement::Use(u) = &st {
                db = strip_quotes(u.to_string().trim_start_matches("USE ").trim());
                continue;
            }
            let sql = st.to_string();
            if let DdlEffect::Changed { tables: t, .. } =
                self.apply(&db, &sql)
                    .map_err(|e| super::BinlogError::Schema {
                        file: file.clone(),
                        reason: e.to_string(),
                    })?
            {
                count += t.len();
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker_with(sql: &str) -> SchemaTracker {
        let mut t = SchemaTracker::new();
        t.apply("shop", sql).unwrap();
        t
    }

    #[test]
    fn create_table_collects_names_types_keys_and_charsets() {
        let t = tracker_with(
            "CREATE TABLE `orders` (id INT UNSIGNED NOT NULL AUTO_INCREMENT, status ENUM('new','paid') NOT NULL, \
             tags SET('a','b'), note VARCHAR(20) CHARACTER SET latin1, raw VARBINARY(8), body TEXT, \
             PRIMARY KEY (id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        );
        let o = t.get(&TableId::new("shop", "orders")).unwrap();
        let names: Vec<_> = o.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "status", "tags", "note", "raw", "body"]);
        assert!(o.columns[0].unsigned);
        assert_eq!(o.columns[1].members, ["new", "paid"]);
        assert_eq!(o.columns[2].members, ["a", "b"]);
        assert_eq!(o.columns[3].charset, Some(Charset::Latin1));
        assert_eq!(o.columns[4].charset, Some(Charset::Binary));
        assert_eq!(o.columns[5].charset, Some(Charset::Utf8));
        assert_eq!(o.primary_key, ["id"]);
    }

    #[test]
    fn alter_rename_drop_truncate() {
        let mut t = tracker_with("CREATE TABLE a (id INT PRIMARY KEY, x INT)");
        t.apply(
            "shop",
            "ALTER TABLE a ADD COLUMN y BIGINT UNSIGNED AFTER id, DROP COLUMN x",
        )
        .unwrap();
        t.apply("shop", "ALTER TABLE a ADD COLUMN z INT FIRST")
            .unwrap();
        t.apply("shop", "ALTER TABLE a CHANGE COLUMN y yy BIGINT")
            .unwrap();
        let a = t.get(&TableId::new("shop", "a")).unwrap();
        let names: Vec<_> = a.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["z", "id", "yy"]);
        assert!(!a.columns[2].unsigned);
        t.apply("shop", "RENAME TABLE a TO b").unwrap();
        assert!(t.get(&TableId::new("shop", "a")).is_none());
        assert_eq!(
            t.apply("other", "TRUNCATE TABLE shop.b").unwrap(),
            DdlEffect::Truncated(vec![TableId::new("shop", "b")])
        );
        t.apply("shop", "DROP TABLE IF EXISTS `b` /* generated by server */")
            .unwrap();
        assert!(t.get(&TableId::new("shop", "b")).is_none());
        assert_eq!(t.apply("shop", "BEGIN").unwrap(), DdlEffect::None);
        assert_eq!(
            t.apply("shop", "INSERT INTO b VALUES (1)").unwrap(),
            DdlEffect::None
        );
    }

    #[test]
    fn mysql_only_column_attributes_are_tolerated() {
        let t = tracker_with(
            "CREATE TABLE s (f1 INT UNSIGNED INVISIBLE, login CHAR(16) BINARY NOT NULL, note VARCHAR(9) DEFAULT 'INVISIBLE', b BINARY(4))",
        );
        let s = t.get(&TableId::new("shop", "s")).unwrap();
        let names: Vec<_> = s.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["f1", "login", "note", "b"]);
        assert_eq!(s.columns[1].charset, Some(Charset::Utf8));
        assert_eq!(s.columns[3].charset, Some(Charset::Binary));
    }

    #[test]
    fn a_table_without_a_primary_key_is_keyed_by_its_first_not_null_unique_key() {
        let mut t = tracker_with(
            "CREATE TABLE a (x INT, code VARCHAR(5) NOT NULL, email VARCHAR(50) UNIQUE, \
             UNIQUE KEY by_code (code))",
        );
        let id = TableId::new("shop", "a");
        // `email` is nullable: several rows may hold NULL there, so it identifies none.
        assert_eq!(t.get(&id).unwrap().row_key(), ["code"]);
        t.apply("shop", "ALTER TABLE a DROP INDEX by_code").unwrap();
        assert!(t.get(&id).unwrap().row_key().is_empty());
        t.apply("shop", "CREATE UNIQUE INDEX by_x ON a (x, code)")
            .unwrap();
        assert!(t.get(&id).unwrap().row_key().is_empty(), "x is nullable");
        t.apply("shop", "ALTER TABLE a MODIFY x INT NOT NULL")
            .unwrap();
        assert_eq!(t.get(&id).unwrap().row_key(), ["x", "code"]);
        t.apply("shop", "ALTER TABLE a RENAME COLUMN code TO c2")
            .unwrap();
        assert_eq!(t.get(&id).unwrap().row_key(), ["x", "c2"]);
        t.apply("shop", "DROP INDEX by_x ON a").unwrap();
        assert!(t.get(&id).unwrap().row_key().is_empty());
        t.apply("shop", "ALTER TABLE a ADD PRIMARY KEY (x)")
            .unwrap();
        assert_eq!(t.get(&id).unwrap().row_key(), ["x"], "a primary key wins");
    }

    #[test]
    fn fewer_fractional_digits_read_the_table_again() {
        let mut t = tracker_with(
            "CREATE TABLE ev (id INT PRIMARY KEY, at DATETIME(6), d DECIMAL(10,4), tm TIME(3))",
        );
        let id = TableId::new("shop", "ev");
        let snapshots = |effect: DdlEffect| match effect {
            DdlEffect::Changed { needs_snapshot, .. } => needs_snapshot,
            other => panic!("{other:?}"),
        };
        let widen = t
            .apply(
                "shop",
                "ALTER TABLE ev MODIFY at DATETIME(6), MODIFY tm TIME(6)",
            )
            .unwrap();
        assert!(snapshots(widen).is_empty(), "more digits change no value");
        let scale = t
            .apply("shop", "ALTER TABLE ev MODIFY d DECIMAL(10,2)")
            .unwrap();
        assert!(
            snapshots(scale).is_empty(),
            "DECIMAL rounds alike on both servers: the lake's cast does it"
        );
        let fewer = t
            .apply("shop", "ALTER TABLE ev CHANGE at happened DATETIME(0)")
            .unwrap();
        assert_eq!(snapshots(fewer), std::slice::from_ref(&id));
        let time = t.apply("shop", "ALTER TABLE ev MODIFY tm TIME").unwrap();
        assert_eq!(snapshots(time), [id]);
    }

    #[test]
    fn a_key_written_on_an_added_column_keys_the_table() {
        let mut t = tracker_with("CREATE TABLE log (at INT, what VARCHAR(5))");
        let id = TableId::new("shop", "log");
        assert!(t.get(&id).unwrap().row_key().is_empty());
        let effect = t
            .apply(
                "shop",
                "ALTER TABLE log ADD COLUMN `id` INT NOT NULL AUTO_INCREMENT PRIMARY KEY FIRST",
            )
            .unwrap();
        assert_eq!(t.get(&id).unwrap().row_key(), ["id"]);
        assert_eq!(t.get(&id).unwrap().columns[0].name, "id");
        assert!(
            matches!(effect, DdlEffect::Changed { ref needs_snapshot, .. } if needs_snapshot == std::slice::from_ref(&id)),
            "its rows are read again by the new key: {effect:?}"
        );
        let mut u = tracker_with("CREATE TABLE log (at INT)");
        u.apply(
            "shop",
            "ALTER TABLE log ADD COLUMN code CHAR(3) NOT NULL UNIQUE",
        )
        .unwrap();
        assert_eq!(u.get(&id).unwrap().row_key(), ["code"]);
    }

    #[test]
    fn declared_types_map_to_column_types() {
        let t = tracker_with(
            "CREATE TABLE ty (a DECIMAL(12,2), b DATETIME(6), c TIMESTAMP(3) NULL, d BIT(5), e BIGINT UNSIGNED, f TEXT, g LONGBLOB, h VARCHAR(30), i POINT)",
        );
        let types: Vec<ColumnType> = t
            .get(&TableId::new("shop", "ty"))
            .unwrap()
            .columns
            .iter()
            .map(|c| c.column_type())
            .collect();
        assert_eq!(
            types,
            [
                ColumnType::Decimal {
                    precision: 12,
                    scale: 2
                },
                ColumnType::DateTime { fsp: 6 },
                ColumnType::Timestamp { fsp: 3 },
                ColumnType::Bit { bits: 5 },
                ColumnType::BigInt,
                ColumnType::Blob { pack_len: 2 },
                ColumnType::Blob { pack_len: 4 },
                ColumnType::VarChar { max_bytes: 30 },
                ColumnType::Geometry,
            ]
        );
    }

    #[test]
    fn unparseable_ddl_forgets_the_table() {
        let mut t = tracker_with("CREATE TABLE c (id INT)");
        let err = t
            .apply("shop", "ALTER TABLE c ADD SPATIAL INDEX ((((")
            .unwrap_err();
        assert_eq!(err.table, "shop.c");
        assert!(t.get(&TableId::new("shop", "c")).is_none());
    }
}
