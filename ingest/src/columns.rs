//! From one Kafka message (a JSON object) to one row in ClickHouse's RowBinary format.
//!
//! Each column names a path into the message (`payload.user_id`) and a ClickHouse type. A message that is not
//! a JSON object, lacks a required field or holds a value that does not fit its column is refused with a
//! [`RowError`] that says which column and why; the caller sends it to the dead letters. Nothing here panics on
//! input.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The ClickHouse column types a mapping can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Uuid,
    DateTime,
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
}

impl ColumnType {
    pub const NAMES: &'static str =
        "String, UUID, DateTime, UInt8, UInt16, UInt32, UInt64, Int8, Int16, Int32, Int64, \
                                     Float32, Float64";

    pub fn parse(name: &str) -> Option<ColumnType> {
        Some(match name {
            "String" => ColumnType::String,
            "UUID" => ColumnType::Uuid,
            "DateTime" => ColumnType::DateTime,
            "UInt8" => ColumnType::UInt8,
            "UInt16" => ColumnType::UInt16,
            "UInt32" => ColumnType::UInt32,
            "UInt64" => ColumnType::UInt64,
            "Int8" => ColumnType::Int8,
            "Int16" => ColumnType::Int16,
            "Int32" => ColumnType::Int32,
            "Int64" => ColumnType::Int64,
            "Float32" => ColumnType::Float32,
            "Float64" => ColumnType::Float64,
            _ => return None,
        })
    }

    /// The type as ClickHouse spells it (also what `DESCRIBE TABLE` prints).
    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::String => "String",
            ColumnType::Uuid => "UUID",
            ColumnType::DateTime => "DateTime",
            ColumnType::UInt8 => "UInt8",
            ColumnType::UInt16 => "UInt16",
            ColumnType::UInt32 => "UInt32",
            ColumnType::UInt64 => "UInt64",
            ColumnType::Int8 => "Int8",
            ColumnType::Int16 => "Int16",
            ColumnType::Int32 => "Int32",
            ColumnType::Int64 => "Int64",
            ColumnType::Float32 => "Float32",
            ColumnType::Float64 => "Float64",
        }
    }
}

/// One target column and where its value comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// Keys from the message's top level down (`["payload", "user_id"]`).
    pub path: Vec<String>,
    pub ty: ColumnType,
    /// When false, a missing or null value becomes the type's default (0, '', 1970-01-01 00:00:00, nil UUID).
    pub required: bool,
}

/// Why a message cannot become a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("empty message")]
    Empty,
    #[error("column {column}: required field {path} is missing")]
    Missing { column: String, path: String },
    #[error("column {column} ({ty}): {reason}")]
    Value {
        column: String,
        ty: &'static str,
        reason: String,
    },
}

/// The columns of the envelope every Aurora event carries (the `analytics.events` shape).
pub fn envelope_columns() -> Vec<Column> {
    let col = |name: &str, path: &str, ty, required| Column {
        name: name.into(),
        path: path.split('.').map(String::from).collect(),
        ty,
        required,
    };
    vec![
        col("event_id", "event_id", ColumnType::Uuid, true),
        col("timestamp", "timestamp", ColumnType::DateTime, true),
        col("event_type", "event_type", ColumnType::String, true),
        col("tenant_id", "tenant_id", ColumnType::String, true),
        col("user_id", "payload.user_id", ColumnType::String, false),
        col("revenue", "payload.amount", ColumnType::Float64, false),
        col("payload", "payload", ColumnType::String, false),
        col("schema_version", "schema_version", ColumnType::UInt16, false),
    ]
}

/// A JSON object's members, borrowed from the message where possible.
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// A string borrowed from the input unless it holds escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key.0, value));
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a RawValue> {
        // Later duplicates win, as in most JSON readers.
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// Encodes messages as RowBinary rows of a fixed column list.
#[derive(Debug, Clone)]
pub struct RowEncoder {
    columns: Vec<Column>,
}

impl RowEncoder {
    pub fn new(columns: Vec<Column>) -> RowEncoder {
        RowEncoder { columns }
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Appends the row for `message` to `out`; on error `out` is left as it was.
    pub fn encode(&self, message: &[u8], out: &mut Vec<u8>) -> Result<(), RowError> {
        if message.is_empty() {
            return Err(RowError::Empty);
        }
        let top: Fields = serde_json::from_slice(message).map_err(|e| RowError::Json(e.to_string()))?;
        // Nested objects parsed once per message, keyed by the top-level member that holds them.
        let mut nested: Vec<(&str, Option<Fields>)> = Vec::new();
        let start = out.len();
        for column in &self.columns {
            let value = match self.lookup(column, &top, &mut nested) {
                Ok(v) => v,
                Err(e) => {
                    out.truncate(start);
                    return Err(e);
                }
            };
            if let Err(e) = write_value(column, value, out) {
                out.truncate(start);
                return Err(e);
            }
        }
        Ok(())
    }

    fn lookup<'m>(
        &self,
        column: &'m Column,
        top: &Fields<'m>,
        nested: &mut Vec<(&'m str, Option<Fields<'m>>)>,
    ) -> Result<Option<&'m RawValue>, RowError> {
        let first = top.get(&column.path[0]);
        if column.path.len() == 1 {
            return Ok(first);
        }
        let Some(first) = first else { return Ok(None) };
        let key = column.path[0].as_str();
        let index = match nested.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                // A member that is not an object has no sub-fields: the value is missing.
                nested.push((key, serde_json::from_str::<Fields>(first.get()).ok()));
                nested.len() - 1
            }
        };
        let mut current = match &nested[index].1 {
            Some(fields) => fields.get(&column.path[1]),
            None => None,
        };
        for key in &column.path[2..] {
            let Some(value) = current else { return Ok(None) };
            current = serde_json::from_str::<Fields>(value.get())
                .ok()
                .and_then(|f| f.get(key));
        }
        Ok(current)
    }
}

fn value_error(column: &Column, reason: impl Into<String>) -> RowError {
    RowError::Value {
        column: column.name.clone(),
        ty: column.ty.sql(),
        reason: reason.into(),
    }
}

fn write_varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn write_string(s: &[u8], out: &mut Vec<u8>) {
    write_varint(s.len() as u64, out);
    out.extend_from_slice(s);
}

/// Writes a String value in RowBinary (length-prefixed bytes).
pub fn write_bytes(s: &[u8], out: &mut Vec<u8>) {
    write_string(s, out)
}

fn string_of<'a>(column: &Column, raw: &'a RawValue) -> Result<Cow<'a, str>, RowError> {
    let text = raw.get();
    // Fast path: a string without escapes is its own content (the parser already checked it).
    if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') && !text.contains('\\') {
        return Ok(Cow::Borrowed(&text[1..text.len() - 1]));
    }
    serde_json::from_str::<Text>(text)
        .map(|t| t.0)
        .map_err(|_| value_error(column, format!("expected a string, got {}", short(raw.get()))))
}

fn short(s: &str) -> String {
    if s.len() <= 40 {
        return s.to_string();
    }
    let mut end = 40;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The text of a JSON number, or of a string holding one.
fn number_text<'a>(column: &Column, raw: &'a RawValue) -> Result<Cow<'a, str>, RowError> {
    let text = raw.get();
    if text.starts_with('"') {
        string_of(column, raw)
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        Ok(Cow::Borrowed(text))
    } else {
        Err(value_error(
            column,
            format!("expected a number, got {}", short(text)),
        ))
    }
}

fn write_value(column: &Column, value: Option<&RawValue>, out: &mut Vec<u8>) -> Result<(), RowError> {
    let value = value.filter(|v| v.get() != "null");
    let Some(raw) = value else {
        if column.required {
            return Err(RowError::Missing {
                column: column.name.clone(),
                path: column.path.join("."),
            });
        }
        write_default(column.ty, out);
        return Ok(());
    };
    match column.ty {
        ColumnType::String => {
            if raw.get().starts_with('"') {
                let s = string_of(column, raw)?;
                write_string(s.as_bytes(), out);
            } else {
                // Numbers, booleans, objects and arrays keep their JSON text.
                write_string(raw.get().as_bytes(), out);
            }
        }
        ColumnType::Uuid => {
            let s = string_of(column, raw)?;
            let uuid =
                parse_uuid(&s).ok_or_else(|| value_error(column, format!("not a UUID: {}", short(&s))))?;
            // RowBinary UUID: the two 64-bit halves, each little-endian.
            let (high, low) = uuid.split_at(8);
            out.extend(high.iter().rev());
            out.extend(low.iter().rev());
        }
        ColumnType::DateTime => {
            let text = raw.get();
            let seconds = if text.starts_with('"') {
                let s = string_of(column, raw)?;
                parse_datetime(&s)
                    .ok_or_else(|| value_error(column, format!("not an RFC 3339 time: {}", short(&s))))?
            } else {
                text.parse::<i64>()
                    .map_err(|_| value_error(column, format!("not a time: {}", short(text))))?
            };
            let seconds = u32::try_from(seconds)
                .map_err(|_| value_error(column, format!("time outside 1970..2106: {}", short(text))))?;
            out.extend_from_slice(&seconds.to_le_bytes());
        }
        ColumnType::Float32 | ColumnType::Float64 => {
            let text = number_text(column, raw)?;
            let v: f64 = text
                .trim()
                .parse()
                .map_err(|_| value_error(column, format!("not a number: {}", short(&text))))?;
            if column.ty == ColumnType::Float32 {
                out.extend_from_slice(&(v as f32).to_le_bytes());
            } else {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        ty => {
            let text = number_text(column, raw)?;
            let text = text.trim();
            let bad = || value_error(column, format!("not a {} integer: {}", ty.sql(), short(text)));
            macro_rules! int {
                ($t:ty) => {{
                    let v: $t = text.parse().map_err(|_| bad())?;
                    out.extend_from_slice(&v.to_le_bytes());
                }};
            }
            match ty {
                ColumnType::UInt8 => int!(u8),
                ColumnType::UInt16 => int!(u16),
                ColumnType::UInt32 => int!(u32),
                ColumnType::UInt64 => int!(u64),
                ColumnType::Int8 => int!(i8),
                ColumnType::Int16 => int!(i16),
                ColumnType::Int32 => int!(i32),
                _ => int!(i64),
            }
        }
    }
    Ok(())
}

fn write_default(ty: ColumnType, out: &mut Vec<u8>) {
    let zeros: usize = match ty {
        ColumnType::String | ColumnType::UInt8 | ColumnType::Int8 => 1,
        ColumnType::UInt16 | ColumnType::Int16 => 2,
        ColumnType::UInt32 | ColumnType::Int32 | ColumnType::Float32 | ColumnType::DateTime => 4,
        ColumnType::UInt64 | ColumnType::Int64 | ColumnType::Float64 => 8,
        ColumnType::Uuid => 16,
    };
    out.extend(std::iter::repeat_n(0u8, zeros));
}

/// `8-4-4-4-12` hexadecimal digits (either case), or 32 digits without dashes.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let bytes = s.as_bytes();
    let hex: Vec<u8> = match bytes.len() {
        36 => {
            if [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
                return None;
            }
            bytes.iter().copied().filter(|&b| b != b'-').collect()
        }
        32 => bytes.to_vec(),
        _ => return None,
    };
    if hex.len() != 32 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut uuid = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        uuid[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(uuid)
}

/// Seconds since 1970 for `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]` (also with a space for `T`; no zone = UTC).
pub fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = &b[r];
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(part.iter().fold(0i64, |n, &c| n * 10 + i64::from(c - b'0')))
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    if let Some((&b'.', tail)) = rest.split_first() {
        let digits = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        rest = &tail[digits..];
    }
    let offset = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let all = [*h1, *h2, *m1, *m2];
            if !all.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let h = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let m = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if h > 23 || m > 59 {
                return None;
            }
            let o = h * 3600 + m * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil-from-days inverse).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(message: &str) -> Result<Vec<u8>, RowError> {
        let mut out = vec![0xAA];
        let r = RowEncoder::new(envelope_columns()).encode(message.as_bytes(), &mut out);
        match r {
            Ok(()) => Ok(out[1..].to_vec()),
            Err(e) => {
                assert_eq!(out, vec![0xAA], "a refused message leaves the buffer as it was");
                Err(e)
            }
        }
    }

    const GOOD: &str = r#"{"event_id":"0f8fad5b-d9cb-469f-a165-70867728950e","timestamp":"2026-10-01T12:00:05Z",
        "event_type":"purchase","tenant_id":"acme","payload":{"user_id":"u42","amount":19.5},"schema_version":1}"#;

    #[test]
    fn envelope_row_bytes() {
        let row = encode(GOOD).unwrap();
        let mut expected = vec![];
        expected.extend([0x9f, 0x46, 0xcb, 0xd9, 0x5b, 0xad, 0x8f, 0x0f]);
        expected.extend([0x0e, 0x95, 0x28, 0x77, 0x86, 0x70, 0x65, 0xa1]);
        expected.extend(1_790_856_005u32.to_le_bytes());
        expected.push(8);
        expected.extend(b"purchase");
        expected.push(4);
        expected.extend(b"acme");
        expected.push(3);
        expected.extend(b"u42");
        expected.extend(19.5f64.to_le_bytes());
        let payload = br#"{"user_id":"u42","amount":19.5}"#;
        expected.push(payload.len() as u8);
        expected.extend(payload);
        expected.extend(1u16.to_le_bytes());
        assert_eq!(row, expected);
    }

    #[test]
    fn optional_fields_take_defaults() {
        let m = r#"{"event_id":"0f8fad5bd9cb469fa16570867728950e","timestamp":"2026-10-01 12:00:05",
            "event_type":"page_view","tenant_id":"a\"b","payload":{"amount":null}}"#;
        let row = encode(m).unwrap();
        // tenant with an escape, then user_id '' and revenue 0
        let tail = &row[16 + 4 + 10..];
        assert_eq!(&tail[..4], b"\x03a\"b");
        assert_eq!(tail[4], 0);
        assert_eq!(&tail[5..13], &0f64.to_le_bytes());
    }

    #[test]
    fn refusals_name_the_column() {
        assert!(matches!(encode("{not json"), Err(RowError::Json(_))));
        assert!(matches!(encode("[1,2]"), Err(RowError::Json(_))));
        assert_eq!(encode(""), Err(RowError::Empty));
        let missing = GOOD.replace("\"tenant_id\":\"acme\",", "");
        assert_eq!(
            encode(&missing),
            Err(RowError::Missing {
                column: "tenant_id".into(),
                path: "tenant_id".into()
            })
        );
        let bad_uuid = GOOD.replace("0f8fad5b-", "zz8fad5b-");
        assert!(matches!(encode(&bad_uuid), Err(RowError::Value { column, .. }) if column == "event_id"));
        let bad_version = GOOD.replace("\"schema_version\":1", "\"schema_version\":70000");
        assert!(
            matches!(encode(&bad_version), Err(RowError::Value { column, .. }) if column == "schema_version")
        );
        let bad_amount = GOOD.replace("19.5", "\"lots\"");
        assert!(matches!(encode(&bad_amount), Err(RowError::Value { column, .. }) if column == "revenue"));
        let bad_time = GOOD.replace("2026-10-01T12", "2026-13-01T12");
        assert!(matches!(encode(&bad_time), Err(RowError::Value { column, .. }) if column == "timestamp"));
        assert!(encode("\u{0}\u{1}").is_err());
    }

    // Expected values from Python's datetime (an independent implementation).
    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_datetime("2000-02-29T23:59:59.999+01:00"), Some(951_865_199));
        assert_eq!(parse_datetime("2026-11-22T04:20:00-02:30"), Some(1_795_330_200));
        assert_eq!(parse_datetime("2001-02-29T00:00:00Z"), None);
        assert_eq!(parse_datetime("2001-02-28T00:00:00+25:00"), None);
        assert_eq!(parse_datetime("2001-02-28"), None);
    }
}
