//! Tenant scoping: a query rewritten so that every table it reads yields only one tenant's rows.
//!
//! [`scope`] parses the text with sqlparser's `ClickHouseDialect` and walks its syntax tree. Every table
//! reference — in FROM, every JOIN, subqueries anywhere (FROM, WHERE, SELECT, `IN (SELECT …)`, `EXISTS`), each
//! branch of a UNION, the bodies of CTEs — is replaced in the text by a subquery that filters the table on the
//! tenant column, keeping the reference's name: `db.t AS x` becomes `(SELECT * FROM db.t WHERE tenant_id =
//! 'acme') AS x`, and an unaliased `db.t` becomes `(…) AS t`, so `t.col` still resolves. The rest of the text
//! is the caller's own, byte for byte (the printed form of sqlparser's tree is not always valid ClickHouse).
//!
//! What cannot be proven scoped is refused with a [`TenantError`]: anything but one query, table functions,
//! tables without the tenant column or unknown to the catalog, a table named outside FROM/JOIN (`x IN t`),
//! functions that read tables by name (`joinGet`, `dictGet…`), and text sqlparser cannot read.
//!
//! Limits: `SELECT *` of the subquery does not carry MATERIALIZED or ALIAS columns, so a query that names one of
//! those fails at ClickHouse (it never widens what is read).

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{Expr, ObjectName, Query, Spanned, Statement, TableFactor, Visit, Visitor};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Tokenizer;

use crate::validate::placeholders::prepare_placeholders;
use crate::validate::source::{blank_join_strictness, Source};

/// Whose rows a query may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRule {
    /// The column that holds the tenant (e.g. `tenant_id`).
    pub column: String,
    /// The tenant's value of it.
    pub value: String,
    /// The database of unqualified table names.
    pub default_database: String,
}

/// What the catalog knows of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableScope {
    /// The table has the tenant column.
    Scoped,
    /// It exists but has no tenant column: a tenant user may not read it.
    Unscoped,
    /// No such table is known.
    Unknown,
}

/// Why a query cannot be scoped to a tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error("the statement cannot be read: {0}")]
    Syntax(String),
    #[error("only one SELECT query may be run (this is {0})")]
    NotAQuery(String),
    #[error("table {0} has no tenant column {1}: it cannot be read by a tenant user")]
    Unscoped(String, String),
    #[error("table {0} is not known")]
    UnknownTable(String),
    #[error("{0} cannot be scoped to a tenant")]
    Unsupported(String),
}

/// `sql` with every table reference filtered to the tenant of `rule`; `tables(database, table)` says what the
/// catalog knows of each table.
pub fn scope(
    sql: &str,
    rule: &TenantRule,
    tables: &dyn Fn(&str, &str) -> TableScope,
) -> Result<String, TenantError> {
    // Placeholders (`{name:Type}`) become readable for sqlparser at the same byte offsets.
    let prepared = prepare_placeholders(sql);
    let dialect = ClickHouseDialect {};
    let blanked = blank_join_strictness(&prepared.parsed);
    let parsed = blanked.as_str();
    let statements = Parser::parse_sql(&dialect, parsed).map_err(|e| TenantError::Syntax(e.to_string()))?;
    let query = match statements.as_slice() {
        [Statement::Query(query)] => query,
        [] => return Err(TenantError::NotAQuery("empty".into())),
        [other] => {
            let kind = other.to_string();
            let kind = kind
                .split_whitespace()
                .next()
                .unwrap_or("a statement")
                .to_uppercase();
            return Err(TenantError::NotAQuery(kind));
        }
        many => return Err(TenantError::NotAQuery(format!("{} statements", many.len()))),
    };
    let tokens = Tokenizer::new(&dialect, parsed)
        .tokenize_with_location()
        .map_err(|e| TenantError::Syntax(e.to_string()))?;
    let mut scoper = Scoper {
        rule,
        tables,
        source: Source::new(parsed, tokens),
        ctes: BTreeSet::new(),
        factor_names: Vec::new(),
        edits: Vec::new(),
    };
    scoper.collect_ctes(query);
    if let ControlFlow::Break(error) = query.visit(&mut scoper) {
        return Err(error);
    }
    // The edits go into the text as it is kept (`shown` has the same offsets as `parsed`).
    let mut out = prepared.shown;
    let mut edits = scoper.edits;
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (start, end, text) in edits {
        out.replace_range(start..end, &text);
    }
    Ok(out)
}

struct Scoper<'a> {
    rule: &'a TenantRule,
    tables: &'a dyn Fn(&str, &str) -> TableScope,
    source: Source<'a>,
    /// Names of common table expressions: references to them are not tables.
    ctes: BTreeSet<String>,
    /// Table names seen in FROM/JOIN (a relation visited elsewhere is refused).
    factor_names: Vec<*const ObjectName>,
    /// (start, end, replacement) in bytes of the text.
    edits: Vec<(usize, usize, String)>,
}

impl Scoper<'_> {
    fn collect_ctes(&mut self, query: &Query) {
        struct Ctes<'b>(&'b mut BTreeSet<String>);
        impl Visitor for Ctes<'_> {
            type Break = ();
            fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
                if let Some(with) = &query.with {
                    for cte in &with.cte_tables {
                        self.0.insert(cte.alias.name.value.clone());
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let _ = query.visit(&mut Ctes(&mut self.ctes));
    }

    fn range(&self, name: &ObjectName) -> Option<(usize, usize)> {
        let span = name.span();
        Some((self.source.offset(span.start)?, self.source.offset(span.end)?))
    }

    /// The edit that scopes the table `name` (aliased or not).
    fn scope_table(&mut self, name: &ObjectName, aliased: bool) -> Result<(), TenantError> {
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|part| part.as_ident().map(|i| i.value.clone()))
            .collect();
        if parts.len() != name.0.len() {
            return Err(TenantError::Unsupported(format!("the table name {name}")));
        }
        let (database, table) = match parts.as_slice() {
            [table] if self.ctes.contains(table) => return Ok(()),
            [table] => (self.rule.default_database.clone(), table.clone()),
            [database, table] => (database.clone(), table.clone()),
            _ => return Err(TenantError::Unsupported(format!("the table name {name}"))),
        };
        let shown = format!("{database}.{table}");
        match (self.tables)(&database, &table) {
            TableScope::Scoped => {}
            TableScope::Unscoped => return Err(TenantError::Unscoped(shown, self.rule.column.clone())),
            TableScope::Unknown => return Err(TenantError::UnknownTable(shown)),
        }
        let (start, end) = self
            .range(name)
            .ok_or_else(|| TenantError::Unsupported(format!("the table reference {name}")))?;
        let original = &self.source.sql[start..end];
        let mut text = format!(
            "(SELECT * FROM {original} WHERE {} = {})",
            quote_identifier(&self.rule.column),
            crate::bind::quoted_string(&self.rule.value)
        );
        if !aliased {
            text.push_str(" AS ");
            text.push_str(&quote_identifier(&table));
        }
        self.edits.push((start, end, text));
        Ok(())
    }
}

fn flow(result: Result<(), TenantError>) -> ControlFlow<TenantError> {
    match result {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => ControlFlow::Break(e),
    }
}

impl Visitor for Scoper<'_> {
    type Break = TenantError;

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<TenantError> {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args: None,
                with_hints,
                version: None,
                partitions,
                sample: None,
                ..
            } if with_hints.is_empty() && partitions.is_empty() => {
                self.factor_names.push(name as *const ObjectName);
                flow(self.scope_table(name, alias.is_some()))
            }
            TableFactor::Table {
                args: Some(_), name, ..
            }
            | TableFactor::Function { name, .. } => {
                ControlFlow::Break(TenantError::Unsupported(format!("the table function {name}")))
            }
            TableFactor::Table { name, .. } => ControlFlow::Break(TenantError::Unsupported(format!(
                "the table reference {name} with its modifiers"
            ))),
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => ControlFlow::Continue(()),
            other => {
                let printed = other.to_string();
                let what = printed.split_whitespace().next().unwrap_or("this").to_string();
                ControlFlow::Break(TenantError::Unsupported(format!("the FROM item {what}")))
            }
        }
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<TenantError> {
        if self.factor_names.iter().any(|seen| std::ptr::eq(*seen, relation)) {
            return ControlFlow::Continue(());
        }
        ControlFlow::Break(TenantError::Unsupported(format!(
            "a table reference outside FROM/JOIN ({relation})"
        )))
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<TenantError> {
        match expr {
            // `x IN t` reads the table t: ClickHouse takes a bare name on the right of IN as a table.
            Expr::InList { list, .. }
                if list.len() == 1
                    && matches!(list[0], Expr::Identifier(_) | Expr::CompoundIdentifier(_)) =>
            {
                ControlFlow::Break(TenantError::Unsupported(format!(
                    "IN {} (a table or a column named alone)",
                    list[0]
                )))
            }
            Expr::Function(function) => {
                let name = function.name.to_string().to_ascii_lowercase();
                if name.starts_with("joinget") || name.starts_with("dictget") || name == "hascolumnintable" {
                    ControlFlow::Break(TenantError::Unsupported(format!(
                        "the function {} (it reads a table by name)",
                        function.name
                    )))
                } else {
                    ControlFlow::Continue(())
                }
            }
            _ => ControlFlow::Continue(()),
        }
    }
}

/// `name` as ClickHouse reads it: bare when it is a plain identifier, in backquotes otherwise.
fn quote_identifier(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
    }
}

#[cfg(test)]
#[path = "tenant_tests.rs"]
mod tests;
