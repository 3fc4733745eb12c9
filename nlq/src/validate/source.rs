//! The SQL text with its tokens: tokenizer locations (line, column) turned into byte offsets.

use sqlparser::dialect::ClickHouseDialect;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

/// The SQL text with its tokens, for turning line/column spans into byte offsets.
pub(crate) struct Source<'a> {
    pub(crate) sql: &'a str,
    pub(crate) tokens: Vec<TokenWithSpan>,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub(crate) fn new(sql: &'a str, tokens: Vec<TokenWithSpan>) -> Self {
        let line_starts = std::iter::once(0)
            .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
            .collect::<Vec<_>>();
        Self {
            sql,
            tokens,
            line_starts,
        }
    }

    /// Byte offset of a tokenizer location (1-based line; 1-based column counted in chars).
    pub(crate) fn offset(&self, location: Location) -> Option<usize> {
        let start = *self.line_starts.get((location.line as usize).checked_sub(1)?)?;
        let column = (location.column as usize).checked_sub(1)?;
        let line = &self.sql[start..];
        match line.char_indices().nth(column) {
            Some((i, _)) => Some(start + i),
            None if line.chars().count() == column => Some(self.sql.len()),
            None => None,
        }
    }

    pub(crate) fn is_trivia(token: &Token) -> bool {
        matches!(token, Token::Whitespace(_))
    }

    /// The `{` … `}` around a dictionary whose first key starts at `key_start`: (open index, close index).
    pub(super) fn braces_around(&self, key_start: Location) -> Option<(usize, usize)> {
        let key = self.tokens.iter().position(|t| t.span.start == key_start)?;
        let open = (0..key)
            .rev()
            .find(|&i| !Self::is_trivia(&self.tokens[i].token))?;
        if self.tokens[open].token != Token::LBrace {
            return None;
        }
        let mut depth = 0usize;
        for (i, t) in self.tokens.iter().enumerate().skip(open) {
            match t.token {
                Token::LBrace => depth += 1,
                Token::RBrace => {
                    depth -= 1;
                    if depth == 0 {
                        return Some((open, i));
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// `sql` with ClickHouse's JOIN strictness and distribution words (`ANY`, `ALL`, `ASOF`, `SEMI`, `ANTI`,
/// `GLOBAL` before a join) blanked out with spaces of the same length, which sqlparser does not read: the
/// byte offsets stay those of the text, where the words stay.
pub(crate) fn blank_join_strictness(sql: &str) -> String {
    let Ok(tokens) = Tokenizer::new(&ClickHouseDialect {}, sql).tokenize_with_location() else {
        return sql.to_string();
    };
    let source = Source::new(sql, tokens);
    // Each unquoted word, upper-cased, with its byte range.
    let words: Vec<(String, Option<(usize, usize)>)> = source
        .tokens
        .iter()
        .filter_map(|t| match &t.token {
            Token::Word(w) if w.quote_style.is_none() => Some((
                w.value.to_ascii_uppercase(),
                source.offset(t.span.start).zip(source.offset(t.span.end)),
            )),
            _ => None,
        })
        .collect();
    let mut out = sql.as_bytes().to_vec();
    for pair in words.windows(2) {
        let [(word, range), (next, _)] = pair else {
            continue;
        };
        let joins = matches!(
            next.as_str(),
            "LEFT" | "RIGHT" | "INNER" | "FULL" | "JOIN" | "ANY" | "ALL" | "ASOF" | "SEMI" | "ANTI" | "CROSS"
        );
        let strictness = matches!(word.as_str(), "ANY" | "ALL" | "ASOF" | "SEMI" | "ANTI" | "GLOBAL");
        if joins && strictness {
            if let Some((start, end)) = range {
                out[*start..*end].fill(b' ');
            }
        }
    }
    // Only ASCII letters were replaced by spaces.
    String::from_utf8(out).unwrap_or_else(|_| sql.to_string())
}
