//! `order_by` and `partition_by` of a pipeline: the keys of the table aurora-ingest creates.
//!
//! They come from the config file or from an API caller, so they are never pasted into SQL. Each is parsed as one
//! expression with sqlparser's ClickHouse dialect (anything after it — `ORDER BY`, `SETTINGS`, `;`, a comment —
//! is refused), checked against a closed shape ([`KeyExpr`]: columns of the mapping, deterministic functions of
//! [`FUNCTIONS`] applied to such expressions, non-negative integer literals), and printed back by
//! [`KeyExpr::sql`] from the checked tree: identifiers quoted, function names spelled as in the list, integers
//! as Aurora formats them. The user's text never reaches ClickHouse.

use sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectNamePart, Value,
};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use crate::sql::quote_ident;

/// Functions a key may use: deterministic, of one row, without side effects. Names are case-sensitive in
/// ClickHouse and compared exactly.
pub const FUNCTIONS: &[&str] = &[
    "tuple",
    "toYYYYMM",
    "toYYYYMMDD",
    "toYYYYMMDDhhmmss",
    "toDate",
    "toYear",
    "toMonth",
    "toDayOfMonth",
    "toHour",
    "toMonday",
    "toStartOfYear",
    "toStartOfQuarter",
    "toStartOfMonth",
    "toStartOfWeek",
    "toStartOfDay",
    "toStartOfHour",
    "toStartOfMinute",
    "intDiv",
    "cityHash64",
    "sipHash64",
    "xxHash64",
];

/// Longest key expression accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1000;

/// A checked key expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyExpr {
    /// A column of the pipeline's mapping.
    Column(String),
    Integer(u64),
    /// One of [`FUNCTIONS`] and its arguments.
    Call(&'static str, Vec<KeyExpr>),
}

impl KeyExpr {
    /// Parses `text` as one expression over `columns` (the mapping's column names) and checks its shape.
    pub fn parse(text: &str, columns: &[&str]) -> Result<KeyExpr, String> {
        if text.len() > MAX_KEY_LEN {
            return Err(format!("longer than {MAX_KEY_LEN} bytes"));
        }
        let dialect = ClickHouseDialect {};
        let mut parser = Parser::new(&dialect)
            .try_with_sql(text)
            .map_err(|e| format!("cannot parse {text:?}: {e}"))?;
        let expr = parser
            .parse_expr()
            .map_err(|e| format!("cannot parse {text:?} as an expression: {e}"))?;
        let next = parser.peek_token();
        if next.token != Token::EOF {
            return Err(format!(
                "{text:?} must be one expression; it goes on with {} (clauses, comments and statements are not keys)",
                next.token
            ));
        }
        Self::check(&expr, columns)
    }

    fn check(expr: &Expr, columns: &[&str]) -> Result<KeyExpr, String> {
        match expr {
            Expr::Identifier(ident) => {
                if !matches!(ident.quote_style, None | Some('`') | Some('"')) {
                    return Err(format!("{ident} is not a column name"));
                }
                match columns.iter().find(|c| **c == ident.value) {
                    Some(c) => Ok(KeyExpr::Column(c.to_string())),
                    None => Err(format!(
                        "{} is not a column of the mapping ({})",
                        ident.value,
                        columns.join(", ")
                    )),
                }
            }
            Expr::Value(v) => match &v.value {
                Value::Number(digits, false)
                    if !digits.is_empty()
                        && digits.len() <= 19
                        && digits.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    digits
                        .parse::<u64>()
                        .map(KeyExpr::Integer)
                        .map_err(|_| format!("{digits} is not an integer Aurora accepts"))
                }
                other => Err(format!("{other} is not allowed in a key (integers only)")),
            },
            Expr::Nested(inner) => Self::check(inner, columns),
            Expr::Function(f) => Self::check_call(f, columns),
            other => Err(format!(
                "{other} is not allowed in a key: use columns of the mapping, integers and the functions {}",
                FUNCTIONS.join(", ")
            )),
        }
    }

    fn check_call(f: &Function, columns: &[&str]) -> Result<KeyExpr, String> {
        let name = match f.name.0.as_slice() {
            [ObjectNamePart::Identifier(ident)] if ident.quote_style.is_none() => ident.value.as_str(),
            _ => return Err(format!("{} is not a function a key may use", f.name)),
        };
        let Some(known) = FUNCTIONS.iter().find(|n| **n == name) else {
            return Err(format!(
                "{name} is not a function a key may use ({})",
                FUNCTIONS.join(", ")
            ));
        };
        let plain = !f.uses_odbc_syntax
            && matches!(f.parameters, FunctionArguments::None)
            && f.within_group.is_empty()
            && f.filter.is_none()
            && f.null_treatment.is_none()
            && f.over.is_none();
        let FunctionArguments::List(list) = &f.args else {
            return Err(format!("{name} needs an argument list in parentheses"));
        };
        if !plain || list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
            return Err(format!("{f} is not a plain call of {name}"));
        }
        let args = list
            .args
            .iter()
            .map(|arg| match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Self::check(e, columns),
                other => Err(format!("{other} is not an argument a key may use")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeyExpr::Call(known, args))
    }

    /// The expression as ClickHouse SQL, printed from the checked tree.
    pub fn sql(&self) -> String {
        match self {
            KeyExpr::Column(name) => quote_ident(name),
            KeyExpr::Integer(n) => n.to_string(),
            KeyExpr::Call(name, args) => format!(
                "{name}({})",
                args.iter().map(KeyExpr::sql).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: &[&str] = &["timestamp", "tenant_id", "event_type", "user id", "n"];

    fn round_trip(text: &str) -> String {
        let first = KeyExpr::parse(text, COLUMNS).unwrap_or_else(|e| panic!("{text}: {e}"));
        let printed = first.sql();
        let again = KeyExpr::parse(&printed, COLUMNS).unwrap_or_else(|e| panic!("{printed}: {e}"));
        assert_eq!(
            first, again,
            "parse → print → parse changed {text:?} (printed {printed:?})"
        );
        assert_eq!(again.sql(), printed);
        printed
    }

    #[test]
    fn allowed_shapes_round_trip_with_quoted_identifiers() {
        assert_eq!(round_trip("toYYYYMM(timestamp)"), "toYYYYMM(`timestamp`)");
        assert_eq!(round_trip("tenant_id"), "`tenant_id`");
        assert_eq!(round_trip("`tenant_id`"), "`tenant_id`");
        assert_eq!(round_trip("\"event_type\""), "`event_type`");
        assert_eq!(round_trip("tuple()"), "tuple()");
        assert_eq!(round_trip("intDiv(n, 1000)"), "intDiv(`n`, 1000)");
        assert_eq!(
            round_trip("(toStartOfWeek(timestamp, 1))"),
            "toStartOfWeek(`timestamp`, 1)"
        );
        assert_eq!(
            round_trip("tuple(toDate(timestamp), cityHash64(tenant_id))"),
            "tuple(toDate(`timestamp`), cityHash64(`tenant_id`))"
        );
        assert_eq!(round_trip("`user id`"), "`user id`");
        assert_eq!(round_trip("  toMonday( timestamp )  "), "toMonday(`timestamp`)");
        // Comments are whitespace to the parser; what is printed is the tree, without them.
        assert_eq!(round_trip("timestamp -- a comment"), "`timestamp`");
        assert_eq!(round_trip("toDate(/* day */ timestamp)"), "toDate(`timestamp`)");
    }

    #[test]
    fn injections_and_other_shapes_are_refused() {
        for text in [
            "tuple() ORDER BY tuple() SETTINGS index_granularity = 3 --",
            "toYYYYMM(timestamp) SETTINGS index_granularity = 3",
            "tuple(); DROP TABLE x",
            "timestamp /* c */ , n",
            "timestamp, n",
            "n + 1",
            "-n",
            "'text'",
            "1.5",
            "1e3",
            "now()",
            "rand()",
            "file('/etc/passwd')",
            "url('http://x')",
            "TOYYYYMM(timestamp)",
            "`toYYYYMM`(timestamp)",
            "db.toYYYYMM(timestamp)",
            "quantile(0.5)(n)",
            "toDate(timestamp) OVER ()",
            "tuple(DISTINCT n)",
            "tuple(x => n)",
            "tuple(*)",
            "missing_column",
            "t.timestamp",
            "(SELECT 1)",
            "n IN (SELECT 1)",
            "CAST(n AS String)",
            "",
            "99999999999999999999999",
        ] {
            assert!(KeyExpr::parse(text, COLUMNS).is_err(), "accepted {text:?}");
        }
        let too_long = format!("tuple({})", vec!["n"; 400].join(", "));
        assert!(KeyExpr::parse(&too_long, COLUMNS).unwrap_err().contains("longer"));
        let deep = format!("{}n{}", "tuple(".repeat(100), ")".repeat(100));
        assert!(
            KeyExpr::parse(&deep, COLUMNS).is_err(),
            "nesting is bounded by the parser"
        );
    }

    #[test]
    fn the_refusal_says_what_follows_the_expression() {
        let e = KeyExpr::parse(
            "tuple() ORDER BY tuple() SETTINGS index_granularity = 3 --",
            COLUMNS,
        )
        .unwrap_err();
        assert!(e.contains("one expression"), "{e}");
        let e = KeyExpr::parse("missing", COLUMNS).unwrap_err();
        assert!(e.contains("not a column of the mapping"), "{e}");
    }
}
