//! Reading URL parameters the way ClickHouse does, for the few the proxy looks at.
//!
//! The request is forwarded with its original query string; these helpers only extract values (the `query`
//! text for ASK detection, `decompress`), percent-decoded with `+` as a space as Poco's `HTMLForm` does. The
//! first occurrence of a name wins, as in ClickHouse.

use std::borrow::Cow;

/// The decoded value of the first parameter called `name` in a raw query string, if any.
pub fn param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, [u8]>> {
    query.split('&').filter(|pair| !pair.is_empty()).find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key).as_ref() == name.as_bytes()).then(|| decode(value))
    })
}

/// Percent-encodes one component (everything but unreserved characters), for query strings the proxy writes.
pub fn encode(component: &[u8]) -> String {
    let mut out = String::with_capacity(component.len());
    for &b in component {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every `(name, value)` pair of a raw query string, decoded, in order.
pub fn pairs(query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key).into_owned(), decode(value).into_owned())
        })
        .collect()
}

/// Percent-decodes one component, `+` meaning a space. A `%` not followed by two hex digits stays as it is.
pub fn decode(component: &str) -> Cow<'_, [u8]> {
    let bytes = component.as_bytes();
    if !bytes.iter().any(|b| *b == b'%' || *b == b'+') {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(out)
}

fn hex(b: Option<&u8>) -> Option<u8> {
    match b? {
        b @ b'0'..=b'9' => Some(b - b'0'),
        b @ b'a'..=b'f' => Some(b - b'a' + 10),
        b @ b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(query: &str, name: &str) -> Option<String> {
        param(query, name).map(|v| String::from_utf8(v.into_owned()).unwrap())
    }

    #[test]
    fn finds_and_decodes_the_query_parameter() {
        assert_eq!(
            text("database=db&query=SELECT%201%2C%20%27a%26b%27", "query").as_deref(),
            Some("SELECT 1, 'a&b'")
        );
        assert_eq!(
            text("query=ASK+%27top+tenants%27", "query").as_deref(),
            Some("ASK 'top tenants'")
        );
        assert_eq!(text("default_format=Native", "query"), None, "absent parameter");
        assert_eq!(text("query", "query").as_deref(), Some(""), "no value");
        assert_eq!(text("query=", "query").as_deref(), Some(""));
    }

    #[test]
    fn the_first_occurrence_wins_and_names_are_decoded() {
        assert_eq!(
            text("query=SELECT+1&query=SELECT+2", "query").as_deref(),
            Some("SELECT 1")
        );
        assert_eq!(text("%71uery=x", "query").as_deref(), Some("x"));
        assert_eq!(text("a=1&&query_id=7&query=y", "query").as_deref(), Some("y"));
    }

    #[test]
    fn malformed_escapes_stay_and_utf8_survives() {
        assert_eq!(decode("100%").as_ref(), b"100%");
        assert_eq!(decode("%zz%4").as_ref(), b"%zz%4");
        assert_eq!(decode("%C3%A9t%C3%A9").as_ref(), "été".as_bytes());
        assert!(matches!(decode("plain"), Cow::Borrowed(_)));
    }
}
