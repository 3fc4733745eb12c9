//! ClickHouse data types reduced to what decides a column's size on the wire.
//!
//! The proxy never decodes values: it only needs to know where a column's bytes end so that it can find the
//! next packet. [`DataType::parse`] turns a type name as the server prints it (`Array(Nullable(String))`,
//! `Tuple(a UInt8, b DateTime64(3, 'UTC'))`, `Map(String, UInt64)`) into that shape. Types whose bulk
//! serialization is not self-describing without implementing them (aggregate function states, `Dynamic`,
//! `JSON`, `Variant`) become [`DataType::Opaque`]; the proxy then relays such a connection as plain bytes.

use super::error::DecodeError;

/// The wire shape of a column type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataType {
    /// A fixed number of bytes per value (numbers, dates, UUID, FixedString(N), Enum…).
    Fixed(u64),
    /// Varuint length then bytes, per value.
    String,
    /// A null map (one byte per value) then the inner column.
    Nullable(Box<DataType>),
    /// Cumulative u64 offsets per value then the inner column for all elements.
    Array(Box<DataType>),
    /// Each element column in turn.
    Tuple(Vec<DataType>),
    /// A dictionary-encoded column; the box holds the dictionary type (Nullable removed).
    LowCardinality(Box<DataType>),
    /// A type the proxy cannot size; the name says which.
    Opaque(String),
}

/// Deepest nesting of type names accepted; deeper names are malformed rather than a stack overflow.
const MAX_DEPTH: usize = 64;

impl DataType {
    /// Parses a type name as ClickHouse writes it in a block header.
    pub fn parse(name: &str) -> Result<DataType, DecodeError> {
        parse_type(name.trim(), 0)
    }

    /// Whether any part of this type cannot be sized.
    pub fn opaque_part(&self) -> Option<&str> {
        match self {
            DataType::Opaque(name) => Some(name),
            DataType::Nullable(t) | DataType::Array(t) | DataType::LowCardinality(t) => t.opaque_part(),
            DataType::Tuple(ts) => ts.iter().find_map(|t| t.opaque_part()),
            DataType::Fixed(_) | DataType::String => None,
        }
    }
}

fn malformed(name: &str, why: &str) -> DecodeError {
    DecodeError::malformed(format!("type name {name:?}: {why}"))
}

fn parse_type(name: &str, depth: usize) -> Result<DataType, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(malformed(name, "nested too deeply"));
    }
    let head_len = name
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(name.len());
    let (head, rest) = name.split_at(head_len);
    if head.is_empty() {
        return Err(malformed(name, "expected a type name"));
    }
    let args = match rest.trim() {
        "" => Vec::new(),
        rest if rest.starts_with('(') && rest.ends_with(')') => split_args(&rest[1..rest.len() - 1])
            .ok_or_else(|| malformed(name, "unbalanced parentheses or quotes"))?,
        _ => return Err(malformed(name, "unexpected text after the type name")),
    };
    let one_type = |depth| -> Result<DataType, DecodeError> {
        match args.as_slice() {
            [inner] => parse_type(inner, depth),
            _ => Err(malformed(name, "expected one type argument")),
        }
    };
    let fixed = |width| Ok(DataType::Fixed(width));
    match head {
        "UInt8" | "Int8" | "Bool" | "Enum8" | "Nothing" => fixed(1),
        "UInt16" | "Int16" | "Enum16" | "Date" | "BFloat16" => fixed(2),
        "UInt32" | "Int32" | "Float32" | "Date32" | "DateTime" | "IPv4" | "Time" | "Decimal32" => fixed(4),
        "UInt64" | "Int64" | "Float64" | "DateTime64" | "Time64" | "Decimal64" => fixed(8),
        "UInt128" | "Int128" | "UUID" | "IPv6" | "Decimal128" => fixed(16),
        "UInt256" | "Int256" | "Decimal256" => fixed(32),
        h if h.starts_with("Interval") => fixed(8),
        "Decimal" => {
            let precision: u64 = args
                .first()
                .and_then(|p| p.trim().parse().ok())
                .ok_or_else(|| malformed(name, "Decimal needs a precision"))?;
            match precision {
                1..=9 => fixed(4),
                10..=18 => fixed(8),
                19..=38 => fixed(16),
                39..=76 => fixed(32),
                _ => Err(malformed(name, "Decimal precision out of range")),
            }
        }
        "FixedString" => {
            let n: u64 = args
                .first()
                .and_then(|n| n.trim().parse().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| malformed(name, "FixedString needs a positive length"))?;
            fixed(n)
        }
        "String" => Ok(DataType::String),
        "Nullable" => Ok(DataType::Nullable(Box::new(one_type(depth + 1)?))),
        "Array" => Ok(DataType::Array(Box::new(one_type(depth + 1)?))),
        "LowCardinality" => {
            let inner = one_type(depth + 1)?;
            let dictionary = match inner {
                DataType::Nullable(t) => *t,
                t => t,
            };
            Ok(DataType::LowCardinality(Box::new(dictionary)))
        }
        "SimpleAggregateFunction" => match args.as_slice() {
            [_function, inner] => parse_type(inner, depth + 1),
            _ => Err(malformed(name, "expected a function and a type")),
        },
        "Tuple" if args.is_empty() => fixed(1),
        "Tuple" => Ok(DataType::Tuple(
            args.iter()
                .map(|a| parse_type(strip_element_name(a), depth + 1))
                .collect::<Result<_, _>>()?,
        )),
        "Nested" => Ok(DataType::Array(Box::new(DataType::Tuple(
            args.iter()
                .map(|a| parse_type(strip_element_name(a), depth + 1))
                .collect::<Result<_, _>>()?,
        )))),
        "Map" => match args.as_slice() {
            [k, v] => Ok(DataType::Array(Box::new(DataType::Tuple(vec![
                parse_type(k, depth + 1)?,
                parse_type(v, depth + 1)?,
            ])))),
            _ => Err(malformed(name, "Map needs a key and a value type")),
        },
        "Point" => Ok(point()),
        "Ring" | "LineString" => Ok(DataType::Array(Box::new(point()))),
        "Polygon" | "MultiLineString" => Ok(DataType::Array(Box::new(DataType::Array(Box::new(point()))))),
        "MultiPolygon" => Ok(DataType::Array(Box::new(DataType::Array(Box::new(
            DataType::Array(Box::new(point())),
        ))))),
        _ => Ok(DataType::Opaque(head.to_string())),
    }
}

fn point() -> DataType {
    DataType::Tuple(vec![DataType::Fixed(8), DataType::Fixed(8)])
}

/// `a UInt8` or `` `a b` UInt8 `` inside a named Tuple/Nested → `UInt8`; an unnamed element is returned as is.
fn strip_element_name(arg: &str) -> &str {
    let arg = arg.trim();
    if let Some(quoted) = arg.strip_prefix('`') {
        return match quoted.find('`') {
            Some(end) => quoted[end + 1..].trim(),
            None => arg,
        };
    }
    let word_len = arg
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(arg.len());
    let after = &arg[word_len..];
    if after.starts_with(char::is_whitespace) && !after.trim().is_empty() {
        after.trim()
    } else {
        arg
    }
}

/// Splits `a, B(c, 'x,y'), d` at top-level commas; `None` when brackets or quotes do not balance.
fn split_args(inner: &str) -> Option<Vec<&str>> {
    let mut args = Vec::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '`' | '"' => quote = Some(c),
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                args.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 || quote.is_some() {
        return None;
    }
    let last = inner[start..].trim();
    if !last.is_empty() || !args.is_empty() {
        args.push(last);
    }
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::DataType::*;
    use super::*;

    #[test]
    fn parses_server_type_names() {
        assert_eq!(DataType::parse("UInt64").unwrap(), Fixed(8));
        assert_eq!(DataType::parse("DateTime('Europe/Berlin')").unwrap(), Fixed(4));
        assert_eq!(DataType::parse("DateTime64(3, 'UTC')").unwrap(), Fixed(8));
        assert_eq!(DataType::parse("Decimal(38, 10)").unwrap(), Fixed(16));
        assert_eq!(DataType::parse("Enum8('a, b' = 1, 'c)' = 2)").unwrap(), Fixed(1));
        assert_eq!(DataType::parse("FixedString(16)").unwrap(), Fixed(16));
        assert_eq!(
            DataType::parse("Array(Nullable(String))").unwrap(),
            Array(Box::new(Nullable(Box::new(String))))
        );
        assert_eq!(
            DataType::parse("LowCardinality(Nullable(String))").unwrap(),
            LowCardinality(Box::new(String))
        );
        assert_eq!(
            DataType::parse("Map(String, UInt64)").unwrap(),
            Array(Box::new(Tuple(vec![String, Fixed(8)])))
        );
        assert_eq!(
            DataType::parse("Tuple(a UInt8, `b c` DateTime64(3, 'UTC'), String)").unwrap(),
            Tuple(vec![Fixed(1), Fixed(8), String])
        );
        assert_eq!(
            DataType::parse("Nested(x UInt32, y String)").unwrap(),
            Array(Box::new(Tuple(vec![Fixed(4), String])))
        );
        assert_eq!(
            DataType::parse("SimpleAggregateFunction(sum, UInt64)").unwrap(),
            Fixed(8)
        );
        assert_eq!(
            DataType::parse("AggregateFunction(uniq, String)")
                .unwrap()
                .opaque_part(),
            Some("AggregateFunction")
        );
    }

    #[test]
    fn malformed_names_are_errors_not_panics() {
        for bad in [
            "",
            "(",
            "Array(",
            "Array(String",
            "Nullable()",
            "FixedString(0)",
            "Decimal(99, 1)",
            "UInt8 x",
            "Map(String)",
        ] {
            assert!(DataType::parse(bad).is_err(), "{bad:?}");
        }
        let deep = "Array(".repeat(200) + "UInt8" + &")".repeat(200);
        assert!(DataType::parse(&deep).is_err());
    }
}
