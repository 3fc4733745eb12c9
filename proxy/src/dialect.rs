//! The error dialect of the ClickHouse behind the proxy: errors the proxy raises itself are written the way that
//! server writes its own, so a client cannot tell them apart by shape.
//!
//! Servers before 21.8 (ClickHouse pull request #26172 added the code name to messages) write an HTTP error
//! body as `Code: 62, e.displayText() = DB::Exception: message, e.what() = DB::Exception` and put
//! `DB::Exception: ` in front of the message of a native Exception packet; newer ones write
//! `Code: 62. DB::Exception: message. (SYNTAX_ERROR)` and the bare message. The proxy learns which from
//! every native server Hello, from the version the ASK catalog reads, and from a probe at startup; until it
//! knows, it writes the modern form.

use std::sync::atomic::{AtomicU8, Ordering};

use aurora_common::exception::Shape;

const UNKNOWN: u8 = 0;
const MODERN: u8 = 1;
const LEGACY: u8 = 2;

/// One proxy has one upstream, so one dialect for the whole process.
static CURRENT: AtomicU8 = AtomicU8::new(UNKNOWN);

/// How the upstream writes its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// 21.8 and later.
    Modern,
    /// Before 21.8 (the test ground's 18.16).
    Legacy,
}

impl Dialect {
    /// The dialect of a server version `major.minor`.
    pub fn of_version(major: u64, minor: u64) -> Dialect {
        if (major, minor) < (21, 8) {
            Dialect::Legacy
        } else {
            Dialect::Modern
        }
    }

    /// The dialect an error body of the server shows (`None`: not a ClickHouse error body).
    pub fn of_error_body(body: &str) -> Option<Dialect> {
        Some(match aurora_common::exception::parse(body)?.shape {
            Shape::Modern => Dialect::Modern,
            Shape::Legacy => Dialect::Legacy,
        })
    }
}

/// Records what was learnt about the upstream.
pub fn learn(dialect: Dialect) {
    let value = match dialect {
        Dialect::Modern => MODERN,
        Dialect::Legacy => LEGACY,
    };
    CURRENT.store(value, Ordering::Relaxed);
}

/// The upstream's dialect as far as it is known (modern until learnt otherwise).
pub fn current() -> Dialect {
    match CURRENT.load(Ordering::Relaxed) {
        LEGACY => Dialect::Legacy,
        _ => Dialect::Modern,
    }
}

/// The body of a ClickHouse HTTP error in `dialect`, newline-terminated. `name` is the code's name (modern
/// servers print it in parentheses); the message's own trailing period is not doubled.
pub fn http_error_body(dialect: Dialect, code: i32, name: &str, class: &str, message: &str) -> String {
    let message = message.trim_end().trim_end_matches('.');
    match dialect {
        Dialect::Modern => format!("Code: {code}. {class}: {message}. ({name}) \n"),
        Dialect::Legacy => {
            format!("Code: {code}, e.displayText() = {class}: {message}, e.what() = {class}\n")
        }
    }
}

/// The message field of a native Exception packet in `dialect`.
pub fn native_message(dialect: Dialect, class: &str, message: &str) -> String {
    match dialect {
        Dialect::Modern => message.to_string(),
        Dialect::Legacy => format!("{class}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_match_what_the_servers_write() {
        // 18.16.1 on the test ground: `curl 'http://…:8123/?query=SELEC'`.
        let legacy = "Code: 62, e.displayText() = DB::Exception: Syntax error: failed at position 1, e.what() = DB::Exception\n";
        assert_eq!(Dialect::of_error_body(legacy), Some(Dialect::Legacy));
        assert_eq!(
            http_error_body(
                Dialect::Legacy,
                62,
                "SYNTAX_ERROR",
                "DB::Exception",
                "Syntax error: failed at position 1."
            ),
            legacy
        );
        let modern = "Code: 516. DB::Exception: Authentication failed. (AUTHENTICATION_FAILED) (version 22.8.9.24 (official build))\n";
        assert_eq!(Dialect::of_error_body(modern), Some(Dialect::Modern));
        assert_eq!(
            http_error_body(
                Dialect::Modern,
                62,
                "SYNTAX_ERROR",
                "DB::Exception",
                "Aurora: bad ASK."
            ),
            "Code: 62. DB::Exception: Aurora: bad ASK. (SYNTAX_ERROR) \n"
        );
        assert_eq!(Dialect::of_error_body("Ok.\n"), None);
        assert_eq!(Dialect::of_version(18, 16), Dialect::Legacy);
        assert_eq!(Dialect::of_version(21, 8), Dialect::Modern);
        assert_eq!(
            native_message(Dialect::Legacy, "DB::Exception", "Aurora: no"),
            "DB::Exception: Aurora: no"
        );
    }
}
