//! A placeholder's declared ClickHouse type (`{name:Type}`), read from the expression sqlparser makes of it.

use std::fmt;

use sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Value, ValueWithSpan};

/// A placeholder's declared ClickHouse type, read from the syntax tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamType {
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// `Decimal(P, S)`; `Decimal32(S)` … `Decimal256(S)` map to precision 9, 18, 38, 76.
    Decimal {
        precision: u8,
        scale: u8,
    },
    String,
    Date,
    DateTime,
    Bool,
    Uuid,
    Nullable(Box<ParamType>),
    Array(Box<ParamType>),
    LowCardinality(Box<ParamType>),
    /// A type-shaped declaration that binding does not handle (`Map(String, UInt64)`, `DateTime('UTC')`):
    /// kept as written so that the refusal can name it.
    Other(String),
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamType::UInt8 => f.write_str("UInt8"),
            ParamType::UInt16 => f.write_str("UInt16"),
            ParamType::UInt32 => f.write_str("UInt32"),
            ParamType::UInt64 => f.write_str("UInt64"),
            ParamType::Int8 => f.write_str("Int8"),
            ParamType::Int16 => f.write_str("Int16"),
            ParamType::Int32 => f.write_str("Int32"),
            ParamType::Int64 => f.write_str("Int64"),
            ParamType::Float32 => f.write_str("Float32"),
            ParamType::Float64 => f.write_str("Float64"),
            ParamType::Decimal { precision, scale } => write!(f, "Decimal({precision}, {scale})"),
            ParamType::String => f.write_str("String"),
            ParamType::Date => f.write_str("Date"),
            ParamType::DateTime => f.write_str("DateTime"),
            ParamType::Bool => f.write_str("Bool"),
            ParamType::Uuid => f.write_str("UUID"),
            ParamType::Nullable(t) => write!(f, "Nullable({t})"),
            ParamType::Array(t) => write!(f, "Array({t})"),
            ParamType::LowCardinality(t) => write!(f, "LowCardinality({t})"),
            ParamType::Other(text) => f.write_str(text),
        }
    }
}

impl ParamType {
    /// Reads a type from the expression sqlparser made of it; `None` if it is not type-shaped at all.
    pub(super) fn from_expr(expr: &Expr, source: &str) -> Option<ParamType> {
        let other = || {
            Some(ParamType::Other(
                source.split_whitespace().collect::<Vec<_>>().join(" "),
            ))
        };
        match expr {
            Expr::Identifier(ident) if ident.quote_style.is_none() => Some(match ident.value.as_str() {
                "UInt8" => ParamType::UInt8,
                "UInt16" => ParamType::UInt16,
                "UInt32" => ParamType::UInt32,
                "UInt64" => ParamType::UInt64,
                "Int8" => ParamType::Int8,
                "Int16" => ParamType::Int16,
                "Int32" => ParamType::Int32,
                "Int64" => ParamType::Int64,
                "Float32" => ParamType::Float32,
                "Float64" => ParamType::Float64,
                "String" => ParamType::String,
                "Date" => ParamType::Date,
                "DateTime" => ParamType::DateTime,
                "Bool" | "Boolean" => ParamType::Bool,
                "UUID" => ParamType::Uuid,
                _ => return other(),
            }),
            Expr::Function(function) => {
                let [part] = function.name.0.as_slice() else {
                    return None;
                };
                let name = part.as_ident()?.value.as_str();
                let FunctionArguments::List(list) = &function.args else {
                    return other();
                };
                let args: Vec<&Expr> = list
                    .args
                    .iter()
                    .filter_map(|arg| match arg {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                        _ => None,
                    })
                    .collect();
                if args.len() != list.args.len() {
                    return other();
                }
                let number = |e: &Expr| match e {
                    Expr::Value(ValueWithSpan {
                        value: Value::Number(n, _),
                        ..
                    }) => n.parse::<u8>().ok(),
                    _ => None,
                };
                let inner =
                    |e: &Expr| ParamType::from_expr(e, "").filter(|t| !matches!(t, ParamType::Other(_)));
                let decimal = |precision: u8, scale: Option<u8>| match scale {
                    Some(scale) if (1..=76).contains(&precision) && scale <= precision => {
                        Some(ParamType::Decimal { precision, scale })
                    }
                    _ => other(),
                };
                match (name, args.as_slice()) {
                    ("Nullable", [t]) => inner(t).map(|t| ParamType::Nullable(Box::new(t))).or_else(other),
                    ("Array", [t]) => inner(t).map(|t| ParamType::Array(Box::new(t))).or_else(other),
                    ("LowCardinality", [t]) => inner(t)
                        .map(|t| ParamType::LowCardinality(Box::new(t)))
                        .or_else(other),
                    ("Decimal", [p, s]) => match number(p) {
                        Some(p) => decimal(p, number(s)),
                        None => other(),
                    },
                    ("Decimal32", [s]) => decimal(9, number(s)),
                    ("Decimal64", [s]) => decimal(18, number(s)),
                    ("Decimal128", [s]) => decimal(38, number(s)),
                    ("Decimal256", [s]) => decimal(76, number(s)),
                    _ => other(),
                }
            }
            _ => None,
        }
    }
}
