//! What each literal and placeholder of the query is compared with (`=`, `<>`, `<`, `LIKE`, `IN (…)`,
//! `BETWEEN`): the facts [`crate::lift`] types parameters from.

use std::ops::Range;

use sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Value};
use sqlparser::tokenizer::Token;

use super::Checker;
use crate::validate::source::Source;
use crate::validate::validated::{Comparand, Literal, LiteralSite};

/// Functions of one column whose result a compared value takes the type of (see [`crate::lift`]).
#[rustfmt::skip]
const TYPED_WRAPPERS: &[&str] = &[
    "todate", "todatetime", "tostartofday", "tostartofhour", "tostartofminute", "tostartofmonth",
    "tostartofquarter", "tostartofyear", "tostartofweek", "tomonday", "toyyyymm", "toyyyymmdd", "toyear",
    "tomonth", "lower", "upper", "lowerutf8", "upperutf8",
];

impl Checker<'_> {
    /// The byte range of a literal value: the token its span starts at (sqlparser's value spans start right).
    pub(super) fn literal(&self, expr: &Expr) -> Option<(Range<usize>, Literal)> {
        let (value, negative) = match expr {
            Expr::Value(value) => (value, false),
            Expr::UnaryOp {
                op: sqlparser::ast::UnaryOperator::Minus,
                expr,
            } => match expr.as_ref() {
                Expr::Value(value) if matches!(value.value, Value::Number(..)) => (value, true),
                _ => return None,
            },
            _ => return None,
        };
        let literal = match &value.value {
            Value::SingleQuotedString(text) => Literal::String(text.clone()),
            Value::Number(text, _) => Literal::Number(if negative {
                format!("-{text}")
            } else {
                text.clone()
            }),
            _ => return None,
        };
        let tokens = &self.source.tokens;
        let at = tokens.iter().position(|t| t.span.start == value.span.start)?;
        let token_matches = matches!(
            (&tokens[at].token, &literal),
            (Token::SingleQuotedString(_), Literal::String(_)) | (Token::Number(..), Literal::Number(_))
        );
        if !token_matches {
            return None;
        }
        let mut start = self.source.offset(tokens[at].span.start)?;
        let end = self.source.offset(tokens[at].span.end)?;
        if negative {
            let minus = (0..at).rev().find(|&i| !Source::is_trivia(&tokens[i].token))?;
            if tokens[minus].token != Token::Minus {
                return None;
            }
            start = self.source.offset(tokens[minus].span.start)?;
        }
        Some((start..end, literal))
    }

    /// What a value compared with `expr` should be typed as, or `None` when `expr` is itself a literal.
    pub(super) fn comparand(&self, expr: &Expr) -> Option<Comparand> {
        if self.literal(expr).is_some() || matches!(expr, Expr::Dictionary(_)) {
            return None;
        }
        let column = |expr: &Expr| match expr {
            Expr::Identifier(ident) => Some((None, ident.value.clone())),
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => Some((
                Some(parts[parts.len() - 2].value.clone()),
                parts[parts.len() - 1].value.clone(),
            )),
            _ => None,
        };
        let mut expr = expr;
        while let Expr::Nested(inner) = expr {
            expr = inner;
        }
        if let Some((qualifier, name)) = column(expr) {
            return Some(Comparand {
                qualifier,
                column: Some(name),
                ..Comparand::default()
            });
        }
        if let Expr::Function(function) = expr {
            let name = function.name.to_string().to_ascii_lowercase();
            if let FunctionArguments::List(list) = &function.args {
                let first = list.args.first().and_then(|arg| match arg {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => column(e),
                    _ => None,
                });
                if let (Some((qualifier, column)), true) = (first, TYPED_WRAPPERS.contains(&name.as_str())) {
                    return Some(Comparand {
                        qualifier,
                        column: Some(column),
                        function: Some(name),
                        pattern: false,
                    });
                }
            }
        }
        Some(Comparand::default())
    }

    /// Records `value` (a literal or a placeholder) as compared with `comparand`.
    pub(super) fn compared(&mut self, value: &Expr, comparand: &Comparand) {
        if let Some((range, literal)) = self.literal(value) {
            self.literals.push(LiteralSite {
                range,
                value: literal,
                comparand: comparand.clone(),
            });
        } else if let Expr::Dictionary(fields) = value {
            let open = fields
                .first()
                .and_then(|f| self.source.braces_around(f.key.span.start))
                .and_then(|(open, _)| self.source.offset(self.source.tokens[open].span.start));
            if let Some(open) = open {
                self.comparands.insert(open, comparand.clone());
            }
        }
    }

    /// Comparisons whose one side is a value and whose other side is not.
    pub(super) fn record_comparison(&mut self, expr: &Expr) {
        use sqlparser::ast::BinaryOperator as Op;
        match expr {
            Expr::BinaryOp {
                left,
                op: Op::Eq | Op::NotEq | Op::Lt | Op::LtEq | Op::Gt | Op::GtEq,
                right,
            } => {
                if let Some(c) = self.comparand(left) {
                    self.compared(right, &c);
                }
                if let Some(c) = self.comparand(right) {
                    self.compared(left, &c);
                }
            }
            Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => {
                if let Some(mut c) = self.comparand(expr) {
                    c.pattern = true;
                    self.compared(pattern, &c);
                }
            }
            Expr::InList { expr, list, .. } => {
                if let Some(c) = self.comparand(expr) {
                    for item in list {
                        self.compared(item, &c);
                    }
                }
            }
            Expr::Between { expr, low, high, .. } => {
                if let Some(c) = self.comparand(expr) {
                    self.compared(low, &c);
                    self.compared(high, &c);
                }
            }
            _ => {}
        }
    }
}
