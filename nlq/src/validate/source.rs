//! The SQL text with its tokens: tokenizer locations (line, column) turned into byte offsets.

use sqlparser::tokenizer::{Location, Token, TokenWithSpan};

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
