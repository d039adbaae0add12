//! Tokens of the text format.
//!
//! The lexer is a single pass over the source that never fails halfway: a
//! character that starts no token, a bad string or a bad number becomes a
//! diagnostic with its span, and lexing stops there.

use crate::ast::Span;
use crate::diag::{codes, Diagnostic};

/// One token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// `%name` (the text without `%`).
    Name(String),
    /// A bare word: keywords, predicates, variables, bare symbols.
    Word(String),
    /// A number literal as written: `3`, `7/2`, `0.25` (no sign).
    Number(String),
    /// A quoted symbol, unescaped.
    Str(String),
    /// Punctuation and operators: `{ } ( ) , : = -> .. + - * / == != < <= > >= && || !`.
    Punct(&'static str),
    /// The end of the input.
    Eof,
}

impl Tok {
    /// How the token reads in a diagnostic.
    pub fn describe(&self) -> String {
        match self {
            Tok::Name(n) => format!("`%{n}`"),
            Tok::Word(w) => format!("`{w}`"),
            Tok::Number(n) => format!("number `{n}`"),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::Punct(p) => format!("`{p}`"),
            Tok::Eof => "end of file".to_string(),
        }
    }
}

const PUNCTS: &[&str] = &[
    "->", "..", "==", "!=", "<=", ">=", "&&", "||", "{", "}", "(", ")", ",", ":", "=", "+", "-",
    "*", "/", "<", ">", "!",
];

/// Splits `src` into tokens with spans; the last token is [`Tok::Eof`].
pub fn lex(src: &str) -> Result<Vec<(Tok, Span)>, Diagnostic> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b';' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        if c == b'%' {
            i += 1;
            while i < bytes.len() && is_name_byte(bytes[i]) {
                i += 1;
            }
            if i == start + 1 {
                return Err(Diagnostic::error(
                    codes::UNEXPECTED,
                    Span::new(start, i),
                    "`%` must be followed by a name",
                )
                .with_hint("names look like `%tok` or `%x.1`"));
            }
            out.push((Tok::Name(src[start + 1..i].to_string()), Span::new(start, i)));
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Word(src[start..i].to_string()), Span::new(start, i)));
            continue;
        }
        if c.is_ascii_digit() {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            // A decimal point needs a digit after it, so that `0..5` is a range.
            if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            } else if i + 1 < bytes.len() && bytes[i] == b'/' && bytes[i + 1].is_ascii_digit() {
                // `7/2` with no spaces is one rational literal; `7 / 2` is a division.
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let text = &src[start..i];
            if text.len() > 1000 {
                return Err(Diagnostic::error(
                    codes::BAD_NUMBER,
                    Span::new(start, i),
                    format!("number literal of {} digits is too long", text.len()),
                )
                .with_hint("literals are limited to 1000 characters"));
            }
            if crate::value::parse_rat(text).is_none() {
                return Err(Diagnostic::error(
                    codes::BAD_NUMBER,
                    Span::new(start, i),
                    format!("`{text}` is not a number"),
                )
                .with_hint("a rational literal needs a nonzero denominator"));
            }
            out.push((Tok::Number(text.to_string()), Span::new(start, i)));
            continue;
        }
        if c == b'"' {
            i += 1;
            let mut text = String::new();
            loop {
                let Some(ch) = src[i..].chars().next() else {
                    return Err(Diagnostic::error(
                        codes::BAD_STRING,
                        Span::new(start, i),
                        "unterminated quoted symbol",
                    )
                    .with_hint("close it with `\"`"));
                };
                i += ch.len_utf8();
                match ch {
                    '"' => break,
                    '\n' => {
                        return Err(Diagnostic::error(
                            codes::BAD_STRING,
                            Span::new(start, i - 1),
                            "unterminated quoted symbol",
                        )
                        .with_hint("quoted symbols end on the line they start; close it with `\"`"))
                    }
                    '\\' => {
                        let esc = src[i..].chars().next();
                        let decoded = match esc {
                            Some('"') => '"',
                            Some('\\') => '\\',
                            Some('n') => '\n',
                            Some('t') => '\t',
                            _ => {
                                let end = i + esc.map_or(0, |e| e.len_utf8());
                                return Err(Diagnostic::error(
                                    codes::BAD_STRING,
                                    Span::new(i - 1, end),
                                    "unknown escape in quoted symbol",
                                )
                                .with_hint("the escapes are \\\" \\\\ \\n \\t"));
                            }
                        };
                        i += esc.map_or(0, |e| e.len_utf8());
                        text.push(decoded);
                    }
                    other => text.push(other),
                }
            }
            out.push((Tok::Str(text), Span::new(start, i)));
            continue;
        }
        if let Some(p) = PUNCTS.iter().find(|p| src[i..].starts_with(**p)) {
            i += p.len();
            out.push((Tok::Punct(p), Span::new(start, i)));
            continue;
        }
        let ch = src[i..].chars().next().unwrap_or('?');
        return Err(Diagnostic::error(
            codes::BAD_CHAR,
            Span::new(start, start + ch.len_utf8()),
            format!("unexpected character `{}`", ch.escape_default()),
        )
        .with_hint("comments start with `;`; symbols other than words are quoted, as in \"(\""));
    }
    out.push((Tok::Eof, Span::new(src.len(), src.len())));
    Ok(out)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}
