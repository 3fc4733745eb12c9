//! How aurora-ingest writes names and values into the SQL it sends: every database, table and column name
//! is quoted with [`quote_ident`], every string value with [`quote`], whatever was checked before.

/// An identifier in backticks, with `\\` and `` ` `` escaped.
pub fn quote_ident(s: &str) -> String {
    quoted(s, '`')
}

/// A string literal in single quotes, with `\\` and `'` escaped.
pub fn quote(s: &str) -> String {
    quoted(s, '\'')
}

fn quoted(s: &str, mark: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(mark);
    for c in s.chars() {
        if c == mark || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push(mark);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_escaped() {
        assert_eq!(quote("it's \\"), "'it\\'s \\\\'");
        assert_eq!(quote("a`b"), "'a`b'");
        assert_eq!(quote_ident("events"), "`events`");
        assert_eq!(quote_ident("a`b\\"), "`a\\`b\\\\`");
        assert_eq!(quote_ident("it's"), "`it's`");
    }
}
