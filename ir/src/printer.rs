//! The printer: [`Program`] to source text that parses back to it.
//!
//! The output is canonical: header fields in a fixed order, one
//! instruction per line, encodings always written, integer runs in sets
//! written as ranges, expressions with the fewest parentheses that keep
//! their tree. `parse(print(p)) == p` for every well-formed `p`; the
//! round-trip property test in `tests/roundtrip.rs` checks it.

use crate::ast::*;
use crate::value::{ExprValue, Value};
use num_traits::One;
use std::fmt::Write;

/// Prints a program in the canonical text form.
pub fn print(p: &Program) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "program {} {{", p.name);
    let _ = writeln!(out, "  vocab {}", set(&p.vocab));
    let _ = writeln!(out, "  max_len {}", p.max_len);
    if p.causal {
        out.push_str("  causal\n");
    }
    if p.distinct {
        out.push_str("  distinct_tokens\n");
    }
    out.push('\n');
    stmts(&mut out, &p.body, 1);
    let _ = writeln!(out, "  output {}", p.output);
    out.push_str("}\n");
    out
}

fn stmts(out: &mut String, body: &[Stmt], level: usize) {
    let pad = "  ".repeat(level);
    for s in body {
        match s {
            Stmt::Let(l) => {
                let _ = write!(out, "{pad}{} = {}", l.name, op(&l.op));
                if let Some(e) = l.enc {
                    let _ = write!(out, " : {e}");
                }
                out.push('\n');
            }
            Stmt::Loop(lp) => {
                let _ = writeln!(out, "{pad}loop {{");
                for st in &lp.state {
                    let init = match &st.init {
                        Init::Value(n) => n.to_string(),
                        Init::Const(v) => v.to_string(),
                    };
                    let _ = writeln!(out, "{pad}  state {} : {} in {} = {init}", st.name, st.enc, set(&st.values));
                }
                match &lp.stop {
                    Stop::Fixed(n) => {
                        let _ = writeln!(out, "{pad}  iterations {n}");
                    }
                    Stop::Until { halt, max } => {
                        let _ = writeln!(out, "{pad}  until {halt} max {max}");
                    }
                }
                stmts(out, &lp.body, level + 1);
                for (s, v) in &lp.next {
                    let _ = writeln!(out, "{pad}  next {s} = {v}");
                }
                let _ = writeln!(out, "{pad}}}");
            }
        }
    }
}

/// Prints one instruction (without name or encoding).
pub fn op(o: &Op) -> String {
    match o {
        Op::Tokens | Op::Indices | Op::Length => o.keyword().to_string(),
        Op::Const(v) => format!("const {v}"),
        Op::Map { arg, func: f } => format!("map {arg} {}", func(f)),
        Op::SeqMap { lhs, rhs, func: f } => format!("seqmap {lhs}, {rhs} {}", func(f)),
        Op::Select { keys, queries, pred: p } => match p {
            Pred::Cmp(c) => format!("select {keys}, {queries}, {}", c.keyword()),
            Pred::Expr(e) => format!("select {keys}, {queries} {{ {} }}", expr(e)),
            Pred::Table(pairs) => {
                let rows: Vec<String> = pairs.iter().map(|(k, q)| format!("({k}, {q})")).collect();
                format!("select {keys}, {queries} table {{{}}}", rows.join(", "))
            }
        },
        Op::And(a, b) => format!("and {a}, {b}"),
        Op::Or(a, b) => format!("or {a}, {b}"),
        Op::Not(a) => format!("not {a}"),
        Op::Aggregate { sel, values, default } => match default {
            Some(d) => format!("aggregate {sel}, {values} default {d}"),
            None => format!("aggregate {sel}, {values}"),
        },
        Op::Width(s) => format!("width {s}"),
    }
}

fn func(f: &Func) -> String {
    match f {
        Func::Expr(e) => format!("{{ {} }}", expr(e)),
        Func::Table(rows) => {
            let rows: Vec<String> = rows
                .iter()
                .map(|(ins, out)| match ins.as_slice() {
                    [a] => format!("{a} -> {out}"),
                    ins => {
                        let ins: Vec<String> = ins.iter().map(|v| v.to_string()).collect();
                        format!("({}) -> {out}", ins.join(", "))
                    }
                })
                .collect();
            format!("table {{{}}}", rows.join(", "))
        }
    }
}

/// A set in written order, with runs of three or more consecutive
/// integers as ranges.
pub fn set(values: &[Value]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        let is_int = |v: &Value| v.as_num().is_some_and(|r| r.is_integer());
        if is_int(&values[i]) {
            while j + 1 < values.len()
                && is_int(&values[j + 1])
                && values[j + 1].as_num().cloned() == values[j].as_num().map(|r| r + num_rational::BigRational::one())
            {
                j += 1;
            }
        }
        if j >= i + 2 {
            parts.push(format!("{}..{}", values[i], values[j]));
            i = j + 1;
        } else {
            parts.push(values[i].to_string());
            i += 1;
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// Prints an expression with minimal parentheses.
pub fn expr(e: &Expr) -> String {
    let mut s = String::new();
    write_expr(&mut s, e, 0);
    s
}

fn prec(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary(op, ..) => op.precedence(),
        // Unary operators and negative literals bind tighter than any binary operator.
        ExprKind::Unary(..) => 6,
        _ => 7,
    }
}

/// `min` is the least precedence this position can take without parentheses.
fn write_expr(out: &mut String, e: &Expr, min: u8) {
    let p = prec(e);
    let paren = p < min;
    if paren {
        out.push('(');
    }
    match &e.kind {
        ExprKind::Lit(v) => match v {
            Value::Num(r) => {
                // A negative literal prints as `-3`, which parses back as that literal.
                let _ = write!(out, "{}", Value::Num(r.clone()));
            }
            other => {
                let _ = write!(out, "{}", ExprValue(other));
            }
        },
        ExprKind::Var(v) => out.push_str(v.letter()),
        ExprKind::Unary(op, inner) => {
            out.push(if *op == UnOp::Neg { '-' } else { '!' });
            // `-(3)` keeps a negation of a literal distinct from the literal `-3`.
            let needs = matches!(inner.kind, ExprKind::Lit(Value::Num(_)));
            if needs {
                out.push('(');
                write_expr(out, inner, 0);
                out.push(')');
            } else {
                write_expr(out, inner, 6);
            }
        }
        ExprKind::Binary(op, a, b) => {
            let q = op.precedence();
            // Left-associative: the left child may share our level, the right may not.
            // Comparisons do not chain, so neither child may be a comparison.
            let left_min = if q == 3 { 4 } else { q };
            write_expr(out, a, left_min);
            let _ = write!(out, " {} ", op.symbol());
            write_expr(out, b, q + 1);
        }
        ExprKind::Call(f, args) => {
            out.push_str(f.name());
            out.push('(');
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, a, 0);
            }
            out.push(')');
        }
    }
    if paren {
        out.push(')');
    }
}
