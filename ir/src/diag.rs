//! Diagnostics: errors and warnings about a program, as data.
//!
//! Every problem the parser, the checker or the interpreter finds in a
//! program is a [`Diagnostic`] with a stable code (listed in [`codes`] and
//! documented in `docs/IR.md`), a primary span, optional secondary labels
//! and a hint. They are rendered once, at the CLI edge.

use crate::ast::Span;
use std::fmt;

/// How bad it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The program is still accepted.
    Warning,
    /// The program is rejected.
    Error,
}

/// One problem, with where it is and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code, e.g. `E0201`.
    pub code: &'static str,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
    /// The primary location.
    pub span: Span,
    /// Secondary locations with their labels.
    pub labels: Vec<(Span, String)>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error with `code` at `span`.
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            labels: vec![],
            hint: None,
        }
    }
    /// A warning with `code` at `span`.
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, span, message) }
    }
    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }
    /// Adds a secondary label.
    pub fn with_label(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.labels.push((span, label.into()));
        self
    }
    /// Whether this rejects the program.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}[{}]: {}", self.code, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

/// 1-based line and column of byte offset `pos` in `src`.
pub fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let before = &src[..floor_char_boundary(src, pos)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The stable diagnostic codes. `E00xx` are lexical and input-file
/// errors, `E01xx` syntax, `E02xx` names and SSA, `E03xx` encodings and
/// kinds, `E04xx` value sets, `E05xx` loops, `E06xx` runtime errors of the
/// interpreter, `W0xxx` warnings.
pub mod codes {
    /// The file is not valid UTF-8.
    pub const NOT_UTF8: &str = "E0001";
    /// The file is larger than the documented limit.
    pub const TOO_LARGE: &str = "E0002";
    /// A character that starts no token.
    pub const BAD_CHAR: &str = "E0003";
    /// A quoted symbol without its closing quote or with a bad escape.
    pub const BAD_STRING: &str = "E0004";
    /// A malformed number (such as `1/0`).
    pub const BAD_NUMBER: &str = "E0005";
    /// The file holds no program.
    pub const EMPTY: &str = "E0006";
    /// Something other than what the grammar allows here.
    pub const UNEXPECTED: &str = "E0101";
    /// Nesting deeper than the documented limit.
    pub const TOO_DEEP: &str = "E0102";
    /// A header field given twice, or missing.
    pub const HEADER: &str = "E0103";
    /// A name used before (or without) its definition.
    pub const UNDEFINED: &str = "E0201";
    /// A name defined twice.
    pub const REDEFINED: &str = "E0202";
    /// An output name that is not defined.
    pub const BAD_OUTPUT: &str = "E0203";
    /// A selector used where a value is needed, or the reverse.
    pub const KIND_MISMATCH: &str = "E0301";
    /// A value's encoding does not fit its use.
    pub const ENCODING: &str = "E0302";
    /// A `num` value whose set holds a symbol.
    pub const NOT_NUMERIC: &str = "E0303";
    /// An instruction that must declare its encoding does not.
    pub const MISSING_ENCODING: &str = "E0304";
    /// A categorical aggregate without a default.
    pub const MISSING_DEFAULT: &str = "E0305";
    /// A categorical aggregate that can select keys carrying different values.
    pub const AMBIGUOUS_AGGREGATE: &str = "E0306";
    /// An expression uses a variable its context does not bind.
    pub const BAD_VARIABLE: &str = "E0307";
    /// A function that fails (division by zero, a symbol in arithmetic, a
    /// table without an entry) on a value of its input set.
    pub const FUNCTION_FAILS: &str = "E0401";
    /// A value set larger than the limit.
    pub const SET_TOO_LARGE: &str = "E0402";
    /// A vocabulary that is empty, repeats a token, or holds `BOS`.
    pub const BAD_VOCAB: &str = "E0403";
    /// `max_len` of 0 or above the limit.
    pub const BAD_MAX_LEN: &str = "E0404";
    /// A table listing an input twice.
    pub const DUPLICATE_ENTRY: &str = "E0405";
    /// A loop state value outside its declared set.
    pub const STATE_ESCAPES: &str = "E0501";
    /// A loop whose `next` list does not match its state.
    pub const BAD_NEXT: &str = "E0502";
    /// A loop inside a loop.
    pub const NESTED_LOOP: &str = "E0503";
    /// A halting value that is not a 0/1 state variable.
    pub const BAD_HALT: &str = "E0504";
    /// A loop iteration count of 0 or above the limit.
    pub const BAD_ITERATIONS: &str = "E0505";
    /// An input token outside the vocabulary, or an input of bad length.
    pub const BAD_INPUT: &str = "E0601";
    /// A categorical aggregate saw different values at run time.
    pub const RUNTIME_AMBIGUOUS: &str = "E0602";
    /// A function failed at run time.
    pub const RUNTIME_EVAL: &str = "E0603";
    /// A loop did not halt within its maximum.
    pub const NO_HALT: &str = "E0604";
    /// A value computed at run time is outside its inferred set (a bug).
    pub const RUNTIME_SET: &str = "E0605";
    /// Under causal attention a selector can reach keys after the query.
    pub const W_CAUSAL_FUTURE: &str = "W0001";
    /// A value nothing reads.
    pub const W_UNUSED: &str = "W0002";
    /// A categorical aggregate whose single-valuedness the checker could
    /// not decide; `tfc verify` decides it.
    pub const W_AGGREGATE_UNDECIDED: &str = "W0003";
}
