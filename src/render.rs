//! Rendering diagnostics, once, at the CLI edge.
//!
//! Library crates return [`Diagnostic`]s as data; this module turns them
//! into compiler-style reports with source snippets (`codespan-reporting`),
//! coloured only when stderr is a terminal.

use codespan_reporting::diagnostic::{Diagnostic as CsDiag, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, termcolor};
use std::io::IsTerminal;
use tfc_ir::{Diagnostic, Severity};

/// Writes `diags` for the file `path` with source `src` to stderr.
pub fn emit(path: &str, src: &str, diags: &[Diagnostic]) {
    let choice = if std::io::stderr().is_terminal() {
        termcolor::ColorChoice::Auto
    } else {
        termcolor::ColorChoice::Never
    };
    let writer = termcolor::StandardStream::stderr(choice);
    let mut lock = writer.lock();
    let config = term::Config::default();
    let file = SimpleFile::new(path, src);
    for d in diags {
        let _ = term::emit(&mut lock, &config, &file, &to_codespan(d, src.len()));
    }
}

fn clamp(r: std::ops::Range<usize>, len: usize) -> std::ops::Range<usize> {
    let s = r.start.min(len);
    s..r.end.clamp(s, len)
}

fn to_codespan(d: &Diagnostic, len: usize) -> CsDiag<()> {
    let base = match d.severity {
        Severity::Error => CsDiag::error(),
        Severity::Warning => CsDiag::warning(),
    };
    let mut labels = vec![Label::primary((), clamp(d.span.start..d.span.end, len))];
    for (span, text) in &d.labels {
        labels.push(Label::secondary((), clamp(span.start..span.end, len)).with_message(text));
    }
    let mut out = base.with_code(d.code).with_message(&d.message).with_labels(labels);
    if let Some(h) = &d.hint {
        out = out.with_notes(vec![format!("hint: {h}")]);
    }
    out
}

/// A diagnostic as JSON.
pub fn to_json(path: &str, src: &str, d: &Diagnostic) -> serde_json::Value {
    let (line, col) = tfc_ir::diag::line_col(src, d.span.start);
    serde_json::json!({
        "severity": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
        "code": d.code,
        "message": d.message,
        "file": path,
        "line": line,
        "column": col,
        "span": [d.span.start, d.span.end],
        "hint": d.hint,
    })
}
