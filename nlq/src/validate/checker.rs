//! The visitor that applies the policy to the syntax tree: tables, table functions, settings, placeholders,
//! and what is refused outright (`INTO`, `FORMAT`, ODBC escapes, functions that read outside the catalog).
//! Its `comparisons` part records what each literal and placeholder is compared with.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    DataType, DictionaryField, Expr, FormatClause, ObjectName, Query, Select, Setting, TableFactor, Value,
    ValueWithSpan, Visitor,
};
use sqlparser::tokenizer::Token;

use super::param_type::ParamType;
use super::placeholders::odbc_name_error;
use super::policy::{is_denied_scalar_function, Policy, TableName, EXTERNAL_TABLE_FUNCTIONS};
use super::source::Source;
use super::validated::{Comparand, LiteralSite, PlaceholderSite};
use super::ValidationError;

mod comparisons;

/// CTE names visible in one query: in its body, and (for the CTEs' own queries) before each CTE.
pub(super) struct Frame {
    /// Visible in the body: the enclosing scope plus all of this query's CTEs.
    visible: BTreeSet<String>,
    /// Visible to this query's enclosing scope.
    outer: BTreeSet<String>,
    /// This query's CTEs in order, by name and address, to recognise their queries when visited.
    ctes: Vec<(String, *const Query)>,
}

/// The visitor that applies the policy; the first refusal breaks the walk.
pub(super) struct Checker<'a> {
    pub(super) policy: &'a Policy,
    pub(super) source: Source<'a>,
    pub(super) frames: Vec<Frame>,
    /// Names of FROM items already checked, so that any relation met elsewhere is refused.
    pub(super) factor_names: Vec<*const ObjectName>,
    pub(super) tables: BTreeSet<TableName>,
    pub(super) sites: Vec<(PlaceholderSite, ParamType)>,
    pub(super) literals: Vec<LiteralSite>,
    /// Placeholder `{` offset → what it is compared with.
    pub(super) comparands: BTreeMap<usize, Comparand>,
}

impl Checker<'_> {
    fn is_cte(&self, name: &str) -> bool {
        self.frames.last().is_some_and(|f| f.visible.contains(name))
    }

    fn check_table(&mut self, name: &ObjectName) -> Result<(), ValidationError> {
        let invalid = || ValidationError::InvalidTableName {
            name: name.to_string(),
        };
        let parts = name
            .0
            .iter()
            .map(|p| p.as_ident().map(|i| i.value.clone()))
            .collect::<Option<Vec<_>>>();
        let table = match parts.ok_or_else(invalid)?.as_slice() {
            [table] if self.is_cte(table) => return Ok(()),
            [table] => TableName::new(self.policy.default_database.clone(), table.clone()),
            [database, table] => TableName::new(database.clone(), table.clone()),
            _ => return Err(invalid()),
        };
        let system = ["system", "information_schema"]
            .iter()
            .any(|s| table.database.eq_ignore_ascii_case(s));
        if system && !self.policy.allow_system {
            return Err(ValidationError::SystemTable {
                database: table.database,
                table: table.table,
            });
        }
        if !system && !self.policy.allowed_tables.contains(&table) {
            return Err(ValidationError::TableNotAllowed {
                database: table.database,
                table: table.table,
            });
        }
        self.tables.insert(table);
        Ok(())
    }

    fn check_table_function(&self, name: &ObjectName) -> Result<(), ValidationError> {
        let printed = name.to_string();
        let last = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_ascii_lowercase());
        let last = last.unwrap_or_default();
        if EXTERNAL_TABLE_FUNCTIONS.contains(&last.as_str()) {
            return Err(ValidationError::ExternalTableFunction { name: printed });
        }
        let allowed = name.0.len() == 1
            && self
                .policy
                .allowed_table_functions
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&last));
        if !allowed {
            return Err(ValidationError::TableFunctionNotAllowed { name: printed });
        }
        Ok(())
    }

    fn check_settings(&self, settings: &Option<Vec<Setting>>) -> Result<(), ValidationError> {
        for setting in settings.iter().flatten() {
            if !self.policy.allowed_settings.contains(&setting.key.value) {
                return Err(ValidationError::SettingNotAllowed {
                    name: setting.key.value.clone(),
                });
            }
        }
        Ok(())
    }

    fn placeholder(&mut self, fields: &[DictionaryField]) -> Result<(), ValidationError> {
        let malformed = |text: &str, reason: &str| ValidationError::MalformedPlaceholder {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let Some(first) = fields.first() else {
            return Err(malformed("{}", "expected {name:Type}"));
        };
        let Some((open, close)) = self.source.braces_around(first.key.span.start) else {
            return Err(malformed(
                &format!("{{{}: …}}", first.key.value),
                "its braces could not be located",
            ));
        };
        let tokens = &self.source.tokens;
        let start = self.source.offset(tokens[open].span.start);
        let end = self.source.offset(tokens[close].span.end);
        let colon = (open..close).find(|&i| tokens[i].token == Token::Colon);
        let type_start = colon.and_then(|i| self.source.offset(tokens[i].span.end));
        let type_end = self.source.offset(tokens[close].span.start);
        let (Some(start), Some(end), Some(type_start), Some(type_end)) = (start, end, type_start, type_end)
        else {
            return Err(malformed(
                &first.key.value,
                "its position in the SQL could not be located",
            ));
        };
        let text = &self.source.sql[start..end];
        if fields.len() != 1 {
            return Err(malformed(
                text,
                "a placeholder declares exactly one name and one type",
            ));
        }
        let name = &first.key.value;
        let valid_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name || first.key.quote_style.is_some() {
            return Err(malformed(
                text,
                "the name must be a plain identifier (letters, digits, _)",
            ));
        }
        let declared = self.source.sql[type_start..type_end].trim();
        let Some(ty) = ParamType::from_expr(&first.value, declared) else {
            return Err(malformed(text, "the part after ':' is not a ClickHouse type"));
        };
        self.sites.push((
            PlaceholderSite {
                name: name.clone(),
                range: start..end,
            },
            ty,
        ));
        Ok(())
    }

    /// ClickHouse reads an identifier right of `IN` as a table. Because of sqlparser's unparenthesized-IN
    /// precedence (see the module header), the identifier is the leftmost leaf of the one list item.
    fn check_in_rhs(&mut self, item: &Expr) -> Result<(), ValidationError> {
        let mut leaf = item;
        loop {
            leaf = match leaf {
                Expr::BinaryOp { left, .. } => left,
                Expr::IsNull(e) | Expr::IsNotNull(e) => e,
                Expr::Between { expr, .. } | Expr::InList { expr, .. } | Expr::InSubquery { expr, .. } => {
                    expr
                }
                Expr::Like { expr, .. } | Expr::ILike { expr, .. } => expr,
                _ => break,
            };
        }
        match leaf {
            Expr::Identifier(ident) => self.check_table(&ObjectName::from(vec![ident.clone()])),
            Expr::CompoundIdentifier(parts) => self.check_table(&ObjectName::from(parts.clone())),
            _ => Ok(()),
        }
    }
}

fn flow(result: Result<(), ValidationError>) -> ControlFlow<ValidationError> {
    match result {
        Ok(()) => ControlFlow::Continue(()),
        Err(error) => ControlFlow::Break(error),
    }
}

impl Visitor for Checker<'_> {
    type Break = ValidationError;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<ValidationError> {
        if let Err(error) = self.check_settings(&query.settings) {
            return ControlFlow::Break(error);
        }
        if let Some(format) = &query.format_clause {
            let format = match format {
                FormatClause::Identifier(ident) => ident.value.clone(),
                FormatClause::Null => "Null".to_string(),
            };
            return ControlFlow::Break(ValidationError::FormatClause { format });
        }
        let outer = match self.frames.last() {
            None => BTreeSet::new(),
            Some(top) => match top.ctes.iter().position(|(_, q)| std::ptr::eq(*q, query)) {
                // A CTE's own query sees the enclosing scope and the CTEs defined before it, not itself.
                Some(i) => top
                    .outer
                    .iter()
                    .cloned()
                    .chain(top.ctes[..i].iter().map(|(n, _)| n.clone()))
                    .collect(),
                None => top.visible.clone(),
            },
        };
        let ctes: Vec<(String, *const Query)> = query
            .with
            .iter()
            .flat_map(|with| &with.cte_tables)
            .map(|cte| (cte.alias.name.value.clone(), &*cte.query as *const Query))
            .collect();
        let visible = outer
            .iter()
            .cloned()
            .chain(ctes.iter().map(|(n, _)| n.clone()))
            .collect();
        self.frames.push(Frame { visible, outer, ctes });
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<ValidationError> {
        self.frames.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<ValidationError> {
        match &select.into {
            Some(into) => {
                let target = into
                    .targets
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                ControlFlow::Break(ValidationError::SelectInto { target })
            }
            None => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<ValidationError> {
        match factor {
            TableFactor::Table { name, args: None, .. } => {
                self.factor_names.push(name);
                flow(self.check_table(name))
            }
            TableFactor::Table {
                name,
                args: Some(args),
                ..
            } => {
                self.factor_names.push(name);
                flow(
                    self.check_table_function(name)
                        .and_then(|()| self.check_settings(&args.settings)),
                )
            }
            TableFactor::Function { name, .. } => flow(self.check_table_function(name)),
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => ControlFlow::Continue(()),
            TableFactor::TableFunction { .. } => {
                ControlFlow::Break(ValidationError::UnsupportedTableExpression {
                    what: "TABLE(…)".into(),
                })
            }
            other => {
                let printed = other.to_string();
                let what = printed
                    .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                    .next();
                let what = format!(
                    "FROM item {}",
                    what.filter(|w| !w.is_empty()).unwrap_or("of this kind")
                );
                ControlFlow::Break(ValidationError::UnsupportedTableExpression { what })
            }
        }
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<ValidationError> {
        if self.factor_names.iter().any(|seen| std::ptr::eq(*seen, relation)) {
            return ControlFlow::Continue(());
        }
        ControlFlow::Break(ValidationError::UnsupportedTableExpression {
            what: format!("a table reference outside FROM/JOIN ({relation})"),
        })
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<ValidationError> {
        self.record_comparison(expr);
        match expr {
            Expr::Dictionary(fields) => flow(self.placeholder(fields)),
            Expr::TypedString(typed) if typed.uses_odbc_syntax => {
                let name = match typed.data_type {
                    DataType::Date => "d",
                    DataType::Time(..) => "t",
                    _ => "ts",
                };
                ControlFlow::Break(odbc_name_error(name))
            }
            Expr::Function(function) if function.uses_odbc_syntax => {
                ControlFlow::Break(odbc_name_error("fn"))
            }
            Expr::Function(function) => {
                let name = function
                    .name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(|i| i.value.to_ascii_lowercase());
                match name {
                    Some(name) if is_denied_scalar_function(&name) => {
                        ControlFlow::Break(ValidationError::FunctionNotAllowed {
                            name: function.name.to_string(),
                        })
                    }
                    _ => ControlFlow::Continue(()),
                }
            }
            Expr::InList { list, .. } if list.len() == 1 => flow(self.check_in_rhs(&list[0])),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<ValidationError> {
        match &value.value {
            Value::Placeholder(text) => {
                ControlFlow::Break(ValidationError::UntypedPlaceholder { text: text.clone() })
            }
            _ => ControlFlow::Continue(()),
        }
    }
}
