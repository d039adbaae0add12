//! Properties over whole sequences: a categorical aggregate always sees
//! one value.
//!
//! Whether every key a query selects carries the same value depends on
//! the whole input, not on one position, so no block check can show it.
//! When the checker's static arguments and its search could not settle it,
//! this module bounded-model-checks it with Z3: for every length m up to
//! `max_len` it encodes the program's values at m positions (tokens as
//! unknowns over the vocabulary; maps as tables over the value sets;
//! selectors as boolean matrices; widths as sums; earlier categorical
//! aggregates as "the value of the selected key", sound because they are
//! checked first) and asks for a query and two selected keys with
//! different values. `unsat` at every length is a proof for all inputs.
//! Loops and numerical aggregates in the cone are not encoded: `unknown`.

use crate::smt::{self, Answer, Query};
use crate::Options;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use tfc_ir::ast::{CmpPred, Encoding, Let, Op, Pred, Stmt};
use tfc_ir::check::{all_lets, Checked};
use tfc_ir::{eval, Value};

static EMITTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Writes a query to `--emit-smt DIR` (if set) as `<name>.smt2`.
pub fn emit(q: &Query, expected: &str, name: &str, opts: &Options) {
    let Some(dir) = &opts.emit_smt else { return };
    let _ = std::fs::create_dir_all(dir);
    let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' { c } else { '_' }).collect();
    let path = dir.join(format!("{safe}.smt2"));
    if std::fs::write(&path, q.script(expected)).is_ok() {
        if let Ok(mut v) = EMITTED.lock() {
            v.push(path.display().to_string());
        }
    }
}

/// The files written since the last call.
pub fn take_emitted() -> Vec<String> {
    EMITTED.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
}

/// The outcome of a sequence-level check.
#[derive(Clone, Debug, PartialEq)]
pub enum SeqOutcome {
    /// Holds for every input.
    Proved(String),
    /// An input (tokens as written) where it fails.
    Witness(Vec<String>),
    /// Not decided.
    Unknown(String),
}

struct Enc<'a> {
    checked: &'a Checked,
    lets: BTreeMap<String, &'a Let>,
    /// Symbol → its code as a number distinct from every numeric value.
    sym_code: BTreeMap<String, tfc_ir::Rat>,
    q: Query,
    m: usize,
    done: BTreeSet<String>,
}

impl Enc<'_> {
    fn code(&self, v: &Value) -> String {
        match v {
            Value::Num(r) => smt::real(r),
            Value::Sym(s) => smt::real(&self.sym_code[s]),
        }
    }
    fn set(&self, n: &str) -> Vec<Value> {
        self.checked.get(n).and_then(|i| i.set()).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }
    fn var(n: &str, i: usize) -> String {
        format!("v_{}_{i}", n.replace('.', "_"))
    }
    fn sel(n: &str, i: usize, j: usize) -> String {
        format!("s_{}_{i}_{j}", n.replace('.', "_"))
    }
    fn visible(&self, i: usize, j: usize) -> bool {
        !self.checked.program.causal || j <= i
    }

    /// Encodes value `n` at every position (and what it depends on).
    fn value(&mut self, n: &str) -> Result<(), String> {
        if !self.done.insert(n.to_string()) {
            return Ok(());
        }
        let l = *self.lets.get(n).ok_or_else(|| format!("`%{n}` is a loop state; loops are not encoded"))?;
        let m = self.m;
        match &l.op {
            Op::Tokens => {
                let vocab = self.checked.program.vocab.clone();
                for i in 0..m {
                    self.q.real_const(&Self::var(n, i));
                    let alts: Vec<String> = vocab.iter().map(|v| format!("(= {} {})", Self::var(n, i), self.code(v))).collect();
                    self.q.assert(format!("(or {})", alts.join(" ")));
                    self.q.wanted.push(Self::var(n, i));
                }
                if self.checked.program.distinct && m > 1 {
                    let all: Vec<String> = (0..m).map(|i| Self::var(n, i)).collect();
                    self.q.assert(format!("(distinct {})", all.join(" ")));
                }
            }
            Op::Indices | Op::Length | Op::Const(_) => {
                for i in 0..m {
                    let v = match &l.op {
                        Op::Indices => Value::int(i as i64),
                        Op::Length if self.checked.program.causal => Value::int(i as i64 + 1),
                        Op::Length => Value::int(m as i64),
                        Op::Const(c) => c.clone(),
                        _ => unreachable!(),
                    };
                    self.q.real_const(&Self::var(n, i));
                    self.q.assert(format!("(= {} {})", Self::var(n, i), self.code(&v)));
                }
            }
            Op::Map { arg, func } => {
                self.value(&arg.text)?;
                let dom = self.set(&arg.text);
                for i in 0..m {
                    let mut t = String::new();
                    let mut close = 0;
                    for (k, x) in dom.iter().enumerate() {
                        let y = eval::apply(func, std::slice::from_ref(x)).map_err(|e| e.to_string())?;
                        if k + 1 == dom.len() {
                            t.push_str(&self.code(&y));
                        } else {
                            t.push_str(&format!("(ite (= {} {}) {} ", Self::var(&arg.text, i), self.code(x), self.code(&y)));
                            close += 1;
                        }
                    }
                    t.push_str(&")".repeat(close));
                    self.q.real_const(&Self::var(n, i));
                    self.q.assert(format!("(= {} {t})", Self::var(n, i)));
                }
            }
            Op::SeqMap { lhs, rhs, func } => {
                self.value(&lhs.text)?;
                self.value(&rhs.text)?;
                let (da, db) = (self.set(&lhs.text), self.set(&rhs.text));
                if da.len() * db.len() > 20_000 {
                    return Err(format!("`%{n}` has a table of {} entries, too large to encode", da.len() * db.len()));
                }
                for i in 0..m {
                    let mut alts = Vec::new();
                    for x in &da {
                        for y in &db {
                            let z = eval::apply(func, &[x.clone(), y.clone()]).map_err(|e| e.to_string())?;
                            alts.push(format!(
                                "(and (= {} {}) (= {} {}) (= {} {}))",
                                Self::var(&lhs.text, i),
                                self.code(x),
                                Self::var(&rhs.text, i),
                                self.code(y),
                                Self::var(n, i),
                                self.code(&z)
                            ));
                        }
                    }
                    self.q.real_const(&Self::var(n, i));
                    self.q.assert(format!("(or {})", alts.join(" ")));
                }
            }
            Op::Width(s) => {
                self.selector(&s.text)?;
                for i in 0..m {
                    let terms: Vec<String> = (0..m).filter(|&j| self.visible(i, j)).map(|j| format!("(ite {} 1.0 0.0)", Self::sel(&s.text, i, j))).collect();
                    self.q.real_const(&Self::var(n, i));
                    self.q.assert(format!("(= {} (+ 0.0 {}))", Self::var(n, i), terms.join(" ")));
                }
            }
            Op::Aggregate { sel, values, default } if l.enc == Some(Encoding::Cat) => {
                // Sound once this aggregate is known to be single-valued: the
                // value of any selected key, here the first one.
                self.selector(&sel.text)?;
                self.value(&values.text)?;
                let d = default.clone().unwrap_or(Value::int(0));
                for i in 0..m {
                    let mut t = self.code(&d);
                    for j in (0..m).rev().filter(|&j| self.visible(i, j)) {
                        t = format!("(ite {} {} {t})", Self::sel(&sel.text, i, j), Self::var(&values.text, j));
                    }
                    self.q.real_const(&Self::var(n, i));
                    self.q.assert(format!("(= {} {t})", Self::var(n, i)));
                }
            }
            Op::Aggregate { .. } => return Err(format!("numerical aggregate `%{n}` is in the cone (a mean is not linear)")),
            _ => return Err(format!("`%{n}` is a {}", l.op.keyword())),
        }
        Ok(())
    }

    fn selector(&mut self, n: &str) -> Result<(), String> {
        if !self.done.insert(n.to_string()) {
            return Ok(());
        }
        let l = *self.lets.get(n).ok_or_else(|| format!("no selector `%{n}`"))?;
        let m = self.m;
        let mut defs: Vec<(usize, usize, String)> = Vec::new();
        match &l.op {
            Op::Select { keys, queries, pred } => {
                self.value(&keys.text)?;
                self.value(&queries.text)?;
                let (ks, qs) = (self.set(&keys.text), self.set(&queries.text));
                for i in 0..m {
                    for j in 0..m {
                        let (k, q) = (Self::var(&keys.text, j), Self::var(&queries.text, i));
                        let body = match pred {
                            Pred::Cmp(c) => match c {
                                CmpPred::Eq => format!("(= {k} {q})"),
                                CmpPred::Ne => format!("(not (= {k} {q}))"),
                                CmpPred::Lt => format!("(< {k} {q})"),
                                CmpPred::Le => format!("(<= {k} {q})"),
                                CmpPred::Gt => format!("(> {k} {q})"),
                                CmpPred::Ge => format!("(>= {k} {q})"),
                                CmpPred::True => "true".into(),
                                CmpPred::False => "false".into(),
                            },
                            _ => {
                                let mut alts = Vec::new();
                                for a in &ks {
                                    for b in &qs {
                                        if eval::holds(pred, a, b).unwrap_or(false) {
                                            alts.push(format!("(and (= {k} {}) (= {q} {}))", self.code(a), self.code(b)));
                                        }
                                    }
                                }
                                format!("(or false {})", alts.join(" "))
                            }
                        };
                        defs.push((i, j, body));
                    }
                }
            }
            Op::And(a, b) | Op::Or(a, b) => {
                self.selector(&a.text)?;
                self.selector(&b.text)?;
                let op = if matches!(l.op, Op::And(..)) { "and" } else { "or" };
                for i in 0..m {
                    for j in 0..m {
                        defs.push((i, j, format!("({op} {} {})", Self::sel(&a.text, i, j), Self::sel(&b.text, i, j))));
                    }
                }
            }
            Op::Not(a) => {
                self.selector(&a.text)?;
                for i in 0..m {
                    for j in 0..m {
                        defs.push((i, j, format!("(not {})", Self::sel(&a.text, i, j))));
                    }
                }
            }
            _ => return Err(format!("`%{n}` is not a selector")),
        }
        for (i, j, body) in defs {
            let s = Self::sel(n, i, j);
            self.q.decls.push(format!("(declare-const {s} Bool)"));
            self.q.assert(format!("(= {s} {body})"));
        }
        Ok(())
    }
}

/// Checks that categorical aggregate `name` always sees one value.
pub fn single_valued(checked: &Checked, name: &str, opts: &Options) -> SeqOutcome {
    let prog = &checked.program;
    if prog.body.iter().any(|s| matches!(s, Stmt::Loop(_))) && tfc_ir::check::find_let(prog, name).is_some_and(|_| checked.get(name).is_some_and(|i| i.scope != tfc_ir::check::Scope::Top)) {
        return SeqOutcome::Unknown("aggregates inside loops are not encoded over sequences".into());
    }
    let lets: BTreeMap<String, &Let> = all_lets(&prog.body).into_iter().map(|l| (l.name.text.clone(), l)).collect();
    let Some(l) = lets.get(name) else { return SeqOutcome::Unknown(format!("no `%{name}`")) };
    let Op::Aggregate { sel, values, .. } = &l.op else { return SeqOutcome::Unknown(format!("`%{name}` is not an aggregate")) };
    // Symbol codes above every number in play.
    let mut maxabs = tfc_ir::Rat::from_integer(0.into());
    let mut syms = BTreeSet::new();
    for info in checked.info.values() {
        for v in info.set().into_iter().flatten() {
            match v {
                Value::Num(r) => {
                    let a = if *r < tfc_ir::Rat::from_integer(0.into()) { -r.clone() } else { r.clone() };
                    if a > maxabs {
                        maxabs = a;
                    }
                }
                Value::Sym(s) => {
                    syms.insert(s.clone());
                }
            }
        }
    }
    for v in &prog.vocab {
        if let Value::Sym(s) = v {
            syms.insert(s.clone());
        }
    }
    let base = maxabs.floor() + tfc_ir::Rat::from_integer(1000.into());
    let sym_code: BTreeMap<String, tfc_ir::Rat> =
        syms.into_iter().enumerate().map(|(i, s)| (s, &base + tfc_ir::Rat::from_integer((i as i64).into()))).collect();
    let mut lengths = 0;
    for m in 1..=prog.max_len {
        let mut e = Enc { checked, lets: lets.clone(), sym_code: sym_code.clone(), q: Query::new("QF_LRA"), m, done: BTreeSet::new() };
        e.q.header.push(format!("tfc: program {}, categorical aggregate %{name} sees one value at length {m}", prog.name));
        if let Err(why) = e.selector(&sel.text).and_then(|_| e.value(&values.text)) {
            return SeqOutcome::Unknown(why);
        }
        let mut alts = Vec::new();
        for i in 0..m {
            for j1 in 0..m {
                for j2 in (j1 + 1)..m {
                    if !(e.visible(i, j1) && e.visible(i, j2)) {
                        continue;
                    }
                    alts.push(format!(
                        "(and {} {} (not (= {} {})))",
                        Enc::sel(&sel.text, i, j1),
                        Enc::sel(&sel.text, i, j2),
                        Enc::var(&values.text, j1),
                        Enc::var(&values.text, j2)
                    ));
                }
            }
        }
        if alts.is_empty() {
            lengths += 1;
            continue;
        }
        e.q.assert(format!("(or {})", alts.join(" ")));
        emit(&e.q, "unsat", &format!("{}.{name}.single_valued.len{m}", prog.name), opts);
        match smt::solve(&e.q, opts.timeout_ms) {
            Answer::Unsat => lengths += 1,
            Answer::Sat(vals) => {
                let decode = |s: &str| -> String {
                    let Some(r) = smt::parse_model_value(s) else { return s.to_string() };
                    sym_code.iter().find(|(_, c)| **c == r).map(|(k, _)| k.clone()).unwrap_or_else(|| Value::Num(r).to_string())
                };
                let toks: Vec<String> = vals.iter().filter(|(n, _)| n.starts_with("v_")).map(|(_, v)| decode(v)).collect();
                return SeqOutcome::Witness(toks);
            }
            Answer::Unknown(why) => return SeqOutcome::Unknown(format!("z3 at length {m}: {why}")),
        }
    }
    SeqOutcome::Proved(format!("no query selects two keys with different values, at every length 1..={} ({lengths} queries)", prog.max_len))
}
