//! The one reader of ClickHouse's error text: an HTTP error body, or a message that carries one. Servers write
//! it in one of two shapes (ClickHouse's `getExceptionMessage`, `src/Common/Exception.cpp`):
//!
//! ```text
//! Code: 60. DB::Exception: Table x doesn't exist. (UNKNOWN_TABLE) (version 23.8.1.1)            21.8 and later
//! Code: 60, e.displayText() = DB::Exception: Table x doesn't exist, e.what() = DB::Exception     before (18.16)
//! ```
//!
//! Both read as code 60 and message `Table x doesn't exist`. A text that does not start with `Code: N` is no
//! exception ([`parse`] answers `None`); the caller keeps it as it is. The proxy writes both shapes itself
//! (its `dialect` module), so that its own errors look like the server's.

/// Which of the two shapes an error text has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `Code: N. Class: message. (NAME)`, servers since 21.8 (ClickHouse pull request #26172).
    Modern,
    /// `Code: N, e.displayText() = Class: message, e.what() = Class`, servers before 21.8.
    Legacy,
}

/// An exception read from ClickHouse's error text, borrowing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exception<'a> {
    /// ClickHouse's error code ([`crate::codes`]).
    pub code: i32,
    pub shape: Shape,
    /// `DB::Exception`, `DB::NetException`, …, when the text names one.
    pub class: Option<&'a str>,
    /// The code's name, which modern servers print in parentheses after the message.
    pub name: Option<&'a str>,
    /// What went wrong: the text without code, class, name, server version, `e.what()` or stack trace.
    pub message: &'a str,
}

/// Reads `text` as ClickHouse's error text: `Code: N` (at the start, after any whitespace) followed by `.`,
/// `,` or nothing. `None` for anything else, including a number that does not fit an `i32`.
pub fn parse(text: &str) -> Option<Exception<'_>> {
    let rest = text.trim().strip_prefix("Code:")?.trim_start();
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let code = rest[..digits].parse().ok()?;
    let after = &rest[digits..];
    let (shape, body) = match after.as_bytes().first() {
        None => (Shape::Modern, after),
        Some(b'.') => (Shape::Modern, &after[1..]),
        Some(b',') => (Shape::Legacy, &after[1..]),
        Some(_) => return None,
    };
    let body = match body.find(", Stack trace") {
        Some(at) => &body[..at],
        None => body,
    };
    let (class, name, message) = match shape {
        Shape::Modern => {
            let (class, rest) = split_class(body.trim_start());
            let (name, message) = split_name(strip_version(rest));
            (class, name, message)
        }
        Shape::Legacy => {
            let rest = body.trim_start();
            let rest = rest.strip_prefix("e.displayText() = ").unwrap_or(rest);
            let rest = match rest.rfind(", e.what() = ") {
                Some(at) => &rest[..at],
                None => rest,
            };
            let (class, message) = split_class(rest);
            (class, None, message.trim_end())
        }
    };
    Some(Exception {
        code,
        shape,
        class,
        name,
        message,
    })
}

/// The code of ClickHouse's error text, when it is one ([`parse`]).
pub fn code(text: &str) -> Option<i32> {
    parse(text).map(|exception| exception.code)
}

/// `DB::Exception: rest` → (`DB::Exception`, `rest`); a text that names no class is all message.
fn split_class(text: &str) -> (Option<&str>, &str) {
    match text.split_once(": ") {
        Some((class, rest)) if class.contains("::") && !class.contains(char::is_whitespace) => {
            (Some(class), rest)
        }
        _ => (None, text),
    }
}

/// Drops the ` (version 23.8.1.1 (official build))` that servers append.
fn strip_version(text: &str) -> &str {
    let text = text.trim_end();
    match text.rfind(" (version ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => text,
    }
}

/// `message. (NAME)` → (`NAME`, `message`): the period is the one ClickHouse puts before the name.
fn split_name(text: &str) -> (Option<&str>, &str) {
    let text = text.trim_end();
    let Some(open) = text.strip_suffix(')').and_then(|t| t.rfind(" (")) else {
        return (None, text);
    };
    let name = &text[open + 2..text.len() - 1];
    let is_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !is_name {
        return (None, text);
    }
    let message = text[..open].trim_end();
    (Some(name), message.strip_suffix('.').unwrap_or(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;

    #[test]
    fn the_modern_shape_reads_code_class_name_and_message() {
        let text = "Code: 60. DB::Exception: Table x doesn't exist. (UNKNOWN_TABLE) (version 23.8.1.1)";
        assert_eq!(
            parse(text),
            Some(Exception {
                code: codes::UNKNOWN_TABLE,
                shape: Shape::Modern,
                class: Some("DB::Exception"),
                name: Some("UNKNOWN_TABLE"),
                message: "Table x doesn't exist",
            })
        );
        // As a 22.8 server writes it, the version with its own parentheses, and a newline after.
        let text =
            "Code: 516. DB::Exception: alice: Authentication failed: password is incorrect, or there is no \
                    user with such name. (AUTHENTICATION_FAILED) (version 22.8.9.24 (official build))\n";
        let exception = parse(text).unwrap();
        assert_eq!(
            (exception.code, exception.name),
            (codes::AUTHENTICATION_FAILED, Some("AUTHENTICATION_FAILED"))
        );
        assert_eq!(
            exception.message,
            "alice: Authentication failed: password is incorrect, or there is no user with such name"
        );
        // What the proxy writes for itself (dialect::http_error_body), another class included.
        let text =
            "Code: 210. DB::NetException: Aurora proxy: cannot connect to ClickHouse. (NETWORK_ERROR) \n";
        let exception = parse(text).unwrap();
        assert_eq!(exception.class, Some("DB::NetException"));
        assert_eq!(exception.message, "Aurora proxy: cannot connect to ClickHouse");
    }

    #[test]
    fn the_legacy_shape_of_18_16_reads_the_same() {
        let text =
            "Code: 60, e.displayText() = DB::Exception: Table x doesn't exist, e.what() = DB::Exception";
        assert_eq!(
            parse(text),
            Some(Exception {
                code: codes::UNKNOWN_TABLE,
                shape: Shape::Legacy,
                class: Some("DB::Exception"),
                name: None,
                message: "Table x doesn't exist",
            })
        );
        // `curl 'http://…:8123/?query=SELEC'` against 18.16.1: the message keeps its own commas and period.
        let text =
            "Code: 62, e.displayText() = DB::Exception: Syntax error: failed at position 1 (line 1, col 1): \
                    SELEC. Unrecognized token, e.what() = DB::Exception\n";
        let exception = parse(text).unwrap();
        assert_eq!(
            (exception.code, exception.shape),
            (codes::SYNTAX_ERROR, Shape::Legacy)
        );
        assert_eq!(
            exception.message,
            "Syntax error: failed at position 1 (line 1, col 1): SELEC. Unrecognized token"
        );
        let text =
            "Code: 60, e.displayText() = DB::Exception: Table x doesn't exist., e.what() = DB::Exception, \
                    Stack trace:\n\n0. clickhouse-server(StackTrace::StackTrace()+0x16) [0x56d1b46]\n";
        assert_eq!(parse(text).unwrap().message, "Table x doesn't exist.");
    }

    #[test]
    fn a_code_alone_or_with_a_bare_message_is_read() {
        let bare = parse("Code: 48.\n").unwrap();
        assert_eq!(
            (bare.code, bare.class, bare.name, bare.message),
            (codes::NOT_IMPLEMENTED, None, None, "")
        );
        let unnamed = parse("Code: 62. Syntax error").unwrap();
        assert_eq!(
            (unnamed.code, unnamed.class, unnamed.message),
            (codes::SYNTAX_ERROR, None, "Syntax error")
        );
        assert_eq!(
            code("  Code:47, e.displayText() = DB::Exception: Missing columns: 'z'"),
            Some(47)
        );
        assert_eq!(code("Code: 60"), Some(codes::UNKNOWN_TABLE));
    }

    #[test]
    fn a_body_without_a_code_is_no_exception() {
        for text in [
            "Bad Gateway",
            "Ok.\n",
            "",
            "DB::Exception: Table x doesn't exist. (UNKNOWN_TABLE)",
            "Code:",
            "Code: . DB::Exception: no number",
            "Code: x, e.displayText() = DB::Exception: no number",
            "The server said Code: 60. DB::Exception: not at the start",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn garbage_is_no_exception_and_never_panics() {
        for text in [
            "Code: 60abc",
            "Code: -60. DB::Exception: negative",
            "Code: +60. DB::Exception: signed",
            "Code: 99999999999. DB::Exception: does not fit an i32",
            "Code: 60 . DB::Exception: space before the period",
            "<html><body>502 Bad Gateway</body></html>",
            "\u{0}\u{1}Code: 60.",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
        for text in [
            "Code: 1. ()",
            "Code: 1. x (",
            "Code: 1. )",
            "Code: 1, e.what() = ",
            "Code: 1. : ",
            "Code: 1. é (É)",
        ] {
            assert_eq!(code(text), Some(1), "{text:?}");
        }
    }
}
