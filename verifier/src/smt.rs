//! Solver queries as SMT-LIB2 text, answered by Z3 through its library.
//!
//! Every query the verifier asks is first written as a standalone
//! SMT-LIB2 script, and that very text is what Z3 parses and answers
//! (`Z3_solver_from_string`), so a file written by `--emit-smt` is exactly
//! the question that was asked and any solver can re-check it. Exact
//! rationals are written as `(/ p q)` with arbitrary-precision integers,
//! so nothing is rounded on the way in.
//!
//! A query that Z3 cannot parse, that times out, or that Z3 answers
//! `unknown` gives [`Answer::Unknown`] with the reason; it is never taken
//! as a proof.

use std::fmt::Write;
use tfc_ir::Rat;

/// What the solver said.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// No assignment satisfies the query (for a negated claim: proved).
    Unsat,
    /// An assignment exists; its values for the requested constants.
    Sat(Vec<(String, String)>),
    /// No answer, with the reason.
    Unknown(String),
}

/// Writes a rational as an SMT-LIB2 real term.
pub fn real(r: &Rat) -> String {
    let n = r.numer();
    let d = r.denom();
    let num = if n.sign() == num_bigint::Sign::Minus { format!("(- {}.0)", -n) } else { format!("{n}.0") };
    if *d == num_bigint::BigInt::from(1) {
        num
    } else {
        format!("(/ {num} {d}.0)")
    }
}

/// A query under construction.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Comment lines at the top (purpose, expected answer).
    pub header: Vec<String>,
    /// `declare-const` lines.
    pub decls: Vec<String>,
    /// `assert` bodies.
    pub asserts: Vec<String>,
    /// Constants whose model values are wanted on `sat`.
    pub wanted: Vec<String>,
    /// The logic (`QF_LRA`, `QF_LIA`, `QF_NRA`, `QF_LIRA`, ...).
    pub logic: String,
}

impl Query {
    /// A new query in `logic`.
    pub fn new(logic: &str) -> Query {
        Query { logic: logic.into(), ..Query::default() }
    }
    /// Declares a real constant.
    pub fn real_const(&mut self, name: &str) {
        self.decls.push(format!("(declare-const {name} Real)"));
    }
    /// Declares an integer constant.
    pub fn int_const(&mut self, name: &str) {
        self.decls.push(format!("(declare-const {name} Int)"));
    }
    /// Adds an assertion.
    pub fn assert(&mut self, body: String) {
        self.asserts.push(body);
    }
    /// The standalone script, ending in `(check-sat)`.
    pub fn script(&self, expected: &str) -> String {
        let mut s = String::new();
        for h in &self.header {
            let _ = writeln!(s, "; {h}");
        }
        let _ = writeln!(s, "; expected: {expected}");
        let _ = writeln!(s, "(set-logic {})", self.logic);
        for d in &self.decls {
            let _ = writeln!(s, "{d}");
        }
        for a in &self.asserts {
            let _ = writeln!(s, "(assert {a})");
        }
        s.push_str("(check-sat)\n");
        s
    }
    /// The part Z3's parser takes (no `set-logic`/`check-sat` commands).
    fn body(&self) -> String {
        let mut s = String::new();
        for d in &self.decls {
            let _ = writeln!(s, "{d}");
        }
        for a in &self.asserts {
            let _ = writeln!(s, "(assert {a})");
        }
        s
    }
}

/// Asks Z3, with a timeout in milliseconds.
pub fn solve(q: &Query, timeout_ms: u32) -> Answer {
    let solver = z3::Solver::new();
    let mut params = z3::Params::new();
    params.set_u32("timeout", timeout_ms.max(1));
    solver.set_params(&params);
    let body = q.body();
    if body.contains('\0') {
        return Answer::Unknown("query text holds a NUL byte".into());
    }
    solver.from_string(body);
    // A parse error leaves assertions out silently; an incomplete query must
    // never be answered `unsat`, so count what Z3 actually took.
    let got = solver.get_assertions().len();
    if got != q.asserts.len() {
        return Answer::Unknown(format!("Z3 parsed {got} of {} assertions (a malformed query)", q.asserts.len()));
    }
    match solver.check() {
        z3::SatResult::Unsat => Answer::Unsat,
        z3::SatResult::Unknown => Answer::Unknown(solver.get_reason_unknown().unwrap_or_else(|| "unknown".into())),
        z3::SatResult::Sat => {
            let Some(model) = solver.get_model() else {
                return Answer::Unknown("sat without a model".into());
            };
            let mut vals = Vec::new();
            for name in &q.wanted {
                let c = z3::ast::Real::new_const(name.as_str());
                let v = model.eval(&c, true).map(|v| v.to_string()).unwrap_or_default();
                vals.push((name.clone(), v));
            }
            Answer::Sat(vals)
        }
    }
}

/// Reads a model value Z3 printed for a real or an integer (`3`, `(- 2)`,
/// `(/ 1.0 2.0)`, `(- (/ 1.0 2.0))`, `1.5`).
pub fn parse_model_value(s: &str) -> Option<Rat> {
    let t = s.trim();
    if let Some(inner) = t.strip_prefix("(-").and_then(|r| r.strip_suffix(')')) {
        return parse_model_value(inner).map(|r| -r);
    }
    if let Some(inner) = t.strip_prefix("(/").and_then(|r| r.strip_suffix(')')) {
        let parts: Vec<&str> = inner.split_whitespace().collect();
        if parts.len() == 2 {
            let a = parse_model_value(parts[0])?;
            let b = parse_model_value(parts[1])?;
            if b == Rat::default() {
                return None;
            }
            return Some(a / b);
        }
        return None;
    }
    tfc_ir::value::parse_rat(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigInt;

    #[test]
    fn big_rationals_go_in_and_out_exactly() {
        // A weight that fits in neither 32 nor 64 bits as a fraction's parts.
        let x = Rat::new(BigInt::from(634909090909091u64), BigInt::from(100000000000u64));
        let mut q = Query::new("QF_LRA");
        q.real_const("x");
        q.assert(format!("(= x {})", real(&x)));
        q.wanted.push("x".into());
        let mut above = q.clone();
        above.assert("(> x 6349.0)".into());
        match solve(&above, 5000) {
            Answer::Sat(vals) => assert_eq!(parse_model_value(&vals[0].1), Some(x.clone())),
            other => panic!("expected sat, got {other:?}"),
        }
        let mut below = q.clone();
        below.assert("(< x 2.0)".into());
        assert_eq!(solve(&below, 5000), Answer::Unsat);
        // A threshold like 1/(2·N·(N+1)) at large N.
        let n = BigInt::from(10u64).pow(30);
        let t = Rat::new(BigInt::from(1), BigInt::from(2) * &n * (&n + 1));
        let mut q = Query::new("QF_LRA");
        q.real_const("t");
        q.assert(format!("(= t {})", real(&t)));
        q.assert("(<= t 0.0)".into());
        assert_eq!(solve(&q, 5000), Answer::Unsat);
    }

    #[test]
    fn malformed_queries_are_unknown_never_unsat() {
        let mut q = Query::new("QF_LRA");
        q.real_const("x");
        q.assert("(> x".into());
        assert!(matches!(solve(&q, 1000), Answer::Unknown(_)));
    }

    #[test]
    fn a_hard_nonlinear_query_times_out_as_unknown() {
        // x^3 + y^3 = z^3 over positive integers (Fermat, n = 3) with a tiny timeout.
        let mut q = Query::new("QF_NIA");
        for v in ["x", "y", "z"] {
            q.int_const(v);
            q.assert(format!("(> {v} 0)"));
        }
        q.assert("(= (+ (* x x x) (* y y y)) (* z z z))".into());
        match solve(&q, 200) {
            Answer::Unknown(reason) => assert!(!reason.is_empty()),
            other => panic!("a nonlinear query must come back unknown, got {other:?}"),
        }
    }
}
