//! The reference interpreter: a program's meaning on one concrete input.
//!
//! [`run`] executes a [`Program`] on a token sequence in exact rational
//! arithmetic, following `docs/IR.md` ("Meaning") to the letter. It is the
//! oracle everything else is judged against: the optimizer's rewrites, the
//! compiled model's forward pass and the verifier's proofs must all agree
//! with it, and the checker calls it on many small inputs to find witnesses.
//! So it is written to be obviously right first, and cheap on small inputs
//! second: names are resolved through one hash map per run, every selector
//! is materialised once as a boolean matrix, and functions and predicates
//! are evaluated once per distinct argument rather than once per position.
//!
//! It never panics on a program the checker has not seen: an undefined
//! name, a selector where a value belongs, a malformed loop or a missing
//! encoding comes back as the [`Diagnostic`] the checker would have given.
//! Expressions are evaluated by [`crate::eval`], the one evaluator shared
//! with the checker and the compiler, so there is one meaning of `x + 1`.

use crate::ast::{
    Builtin, Encoding, Expr, ExprKind, Func, Init, Let, Loop, Name, Op, Pred, Program, Span, Stmt,
    Stop,
};
use crate::diag::{codes, Diagnostic};
use crate::eval::{self, EvalError};
use crate::value::{Rat, Value};
use num_bigint::BigInt;
use num_integer::Integer;
use num_traits::{One, ToPrimitive, Zero};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What [`run`] records besides the output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Record every value as it is computed (see [`Run::trace`]).
    pub trace: bool,
}

/// One value as it was computed, for `tfc run --trace` and for debugging
/// a disagreement between the interpreter and the compiled model.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceEntry {
    /// The value's name, without `%`.
    pub name: String,
    /// The loop iteration (0-based) for loop body and state values at the
    /// start of an iteration; `None` outside loops and for a loop's final
    /// state.
    pub iteration: Option<usize>,
    /// The value at every position.
    pub values: Vec<Value>,
}

/// The result of running a program on one input.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// The program's output value, one entry per input position (BOS is
    /// not a position of the IR).
    pub output: Vec<Value>,
    /// The final value of every top-level name and every loop state name,
    /// keyed by the name without `%`. Selectors are not values and are left
    /// out; so are loop body names, which are local to their loop.
    pub values: BTreeMap<String, Vec<Value>>,
    /// With [`RunOptions::trace`]: every value in the order it was
    /// computed. A loop contributes, per iteration, its state at the start
    /// of the iteration and then its body's values (all with
    /// `iteration = Some(i)`), and after the loop its final state (with
    /// `iteration = None`). Empty without tracing.
    pub trace: Vec<TraceEntry>,
    /// How many times each loop ran its body, loops in program order.
    pub iterations: Vec<usize>,
}

/// Runs `prog` on `input` (tokens, BOS excluded).
///
/// Errors: E0601 for an input the program does not accept (empty, longer
/// than `max_len`, a token outside the vocabulary, a repeated token under
/// `distinct_tokens`); E0602 when a categorical aggregate sees different
/// values; E0603 when a function or predicate fails; E0604 when an `until`
/// loop does not halt within its maximum. On a program that has not been
/// checked it may also return the checker's own codes (E0201, E0203,
/// E0301, E0304, E0305, E0502, E0503, E0504, E0101) instead of panicking.
pub fn run(prog: &Program, input: &[Value], opts: &RunOptions) -> Result<Run, Diagnostic> {
    check_input(prog, input)?;
    check_arities(prog)?;
    let mut it = Interp {
        causal: prog.causal,
        input,
        n: input.len(),
        env: HashMap::new(),
        trace: if opts.trace { Some(Vec::new()) } else { None },
        exported: Vec::new(),
        iterations: Vec::new(),
    };
    for stmt in &prog.body {
        match stmt {
            Stmt::Let(l) => {
                it.exec_let(l, None)?;
                it.exported.push(&l.name.text);
            }
            Stmt::Loop(lp) => it.exec_loop(lp)?,
        }
    }
    let output = match it.env.get(prog.output.text.as_str()) {
        Some(Slot::Val(v)) => v.clone(),
        Some(Slot::Sel(_)) => {
            return Err(Diagnostic::error(
                codes::BAD_OUTPUT,
                prog.output.span,
                format!("the output `{}` is a selector, not a value", prog.output),
            )
            .with_hint("output a value computed from it, such as an `aggregate` or a `width`"))
        }
        None => {
            return Err(Diagnostic::error(
                codes::BAD_OUTPUT,
                prog.output.span,
                format!("the output `{}` is not defined", prog.output),
            )
            .with_hint("output a value defined at the top level or a loop state variable"))
        }
    };
    let mut values = BTreeMap::new();
    for name in it.exported {
        // Moving rather than cloning: the environment is not needed again.
        if let Some(Slot::Val(v)) = it.env.remove(name) {
            values.insert(name.to_string(), v);
        }
    }
    Ok(Run {
        output,
        values,
        trace: it.trace.unwrap_or_default(),
        iterations: it.iterations,
    })
}

/// What a name is bound to while the program runs.
enum Slot {
    /// A value: one entry per position.
    Val(Vec<Value>),
    /// A selector: `m[i][j]` says whether query `i` selects key `j`. Under
    /// `causal`, entries with `j > i` are always false, so consumers never
    /// need to know about the mask.
    Sel(Vec<Vec<bool>>),
}

/// The running state of one [`run`].
struct Interp<'p> {
    causal: bool,
    input: &'p [Value],
    n: usize,
    /// Every name currently in scope. Loop body names are removed after
    /// every iteration, so they are never visible after the loop, nor
    /// (in an unchecked program) before their definition.
    env: HashMap<&'p str, Slot>,
    trace: Option<Vec<TraceEntry>>,
    /// Top-level and state names, in definition order, for [`Run::values`].
    exported: Vec<&'p str>,
    iterations: Vec<usize>,
}

impl<'p> Interp<'p> {
    /// The value bound to `name`, or E0201 / E0301.
    fn value(&self, name: &Name) -> Result<&Vec<Value>, Diagnostic> {
        match self.env.get(name.text.as_str()) {
            Some(Slot::Val(v)) => Ok(v),
            Some(Slot::Sel(_)) => Err(Diagnostic::error(
                codes::KIND_MISMATCH,
                name.span,
                format!("`{name}` is a selector where a value belongs"),
            )
            .with_hint("aggregate over the selector, or take its `width`, to get a value")),
            None => Err(undefined(name)),
        }
    }

    /// The selector bound to `name`, or E0201 / E0301.
    fn selector(&self, name: &Name) -> Result<&Vec<Vec<bool>>, Diagnostic> {
        match self.env.get(name.text.as_str()) {
            Some(Slot::Sel(s)) => Ok(s),
            Some(Slot::Val(_)) => Err(Diagnostic::error(
                codes::KIND_MISMATCH,
                name.span,
                format!("`{name}` is a value where a selector belongs"),
            )
            .with_hint("build a selector from values with `select`")),
            None => Err(undefined(name)),
        }
    }

    fn record(&mut self, name: &str, iteration: Option<usize>, values: &[Value]) {
        if let Some(t) = &mut self.trace {
            t.push(TraceEntry {
                name: name.to_string(),
                iteration,
                values: values.to_vec(),
            });
        }
    }

    /// Records the value currently bound to `name`, if tracing.
    fn record_bound(&mut self, name: &Name, iteration: Option<usize>) {
        if let (Some(t), Some(Slot::Val(v))) = (&mut self.trace, self.env.get(name.text.as_str())) {
            t.push(TraceEntry {
                name: name.text.clone(),
                iteration,
                values: v.clone(),
            });
        }
    }

    /// Computes one statement and binds its name.
    fn exec_let(&mut self, l: &'p Let, iteration: Option<usize>) -> Result<(), Diagnostic> {
        let slot = self.eval_op(l)?;
        if let Slot::Val(v) = &slot {
            self.record(&l.name.text, iteration, v);
        }
        self.env.insert(&l.name.text, slot);
        Ok(())
    }

    fn eval_op(&self, l: &Let) -> Result<Slot, Diagnostic> {
        let n = self.n;
        Ok(match &l.op {
            Op::Tokens => Slot::Val(self.input.to_vec()),
            Op::Indices => Slot::Val((0..n).map(count).collect()),
            Op::Length => Slot::Val(
                (0..n)
                    .map(|i| if self.causal { count(i + 1) } else { count(n) })
                    .collect(),
            ),
            Op::Const(c) => Slot::Val(vec![c.clone(); n]),
            Op::Map { arg, func } => Slot::Val(self.map(l, func, self.value(arg)?)?),
            Op::SeqMap { lhs, rhs, func } => {
                Slot::Val(self.seqmap(l, func, self.value(lhs)?, self.value(rhs)?)?)
            }
            Op::Select {
                keys,
                queries,
                pred,
            } => Slot::Sel(self.select(l, pred, self.value(keys)?, self.value(queries)?)?),
            Op::And(a, b) => {
                Slot::Sel(zip_sel(self.selector(a)?, self.selector(b)?, |x, y| x && y))
            }
            Op::Or(a, b) => Slot::Sel(zip_sel(self.selector(a)?, self.selector(b)?, |x, y| x || y)),
            Op::Not(a) => {
                let a = self.selector(a)?;
                // The complement is taken within what the query can see:
                // under `causal` a key after the query stays unselected.
                Slot::Sel(
                    a.iter()
                        .enumerate()
                        .map(|(i, row)| {
                            row.iter()
                                .enumerate()
                                .map(|(j, &b)| !b && (!self.causal || j <= i))
                                .collect()
                        })
                        .collect(),
                )
            }
            Op::Aggregate {
                sel,
                values,
                default,
            } => {
                let s = self.selector(sel)?;
                let v = self.value(values)?;
                match l.enc.or(l.op.default_encoding()) {
                    Some(Encoding::Num) => Slot::Val(self.aggregate_num(l, s, v, default)?),
                    Some(Encoding::Cat) => {
                        let Some(default) = default else {
                            return Err(Diagnostic::error(
                                codes::MISSING_DEFAULT,
                                l.span,
                                format!("categorical aggregate `{}` has no default", l.name),
                            )
                            .with_hint(
                                "add `default v`: the value where the query selects no key",
                            ));
                        };
                        Slot::Val(aggregate_cat(l, s, v, default)?)
                    }
                    None => {
                        return Err(Diagnostic::error(
                            codes::MISSING_ENCODING,
                            l.span,
                            format!("aggregate `{}` declares no encoding", l.name),
                        )
                        .with_hint("add `: num` for a mean or `: cat` to copy a single value"))
                    }
                }
            }
            Op::Width(s) => Slot::Val(
                self.selector(s)?
                    .iter()
                    .map(|row| count(row.iter().filter(|&&b| b).count()))
                    .collect(),
            ),
        })
    }

    /// `map`: the function once per distinct argument.
    fn map(&self, l: &Let, func: &Func, a: &[Value]) -> Result<Vec<Value>, Diagnostic> {
        let (ids, distinct) = intern(a);
        let mut memo: Vec<Option<Value>> = vec![None; distinct.len()];
        let mut out = Vec::with_capacity(a.len());
        // Positions in order, so a failure is reported at its first position.
        for (i, &id) in ids.iter().enumerate() {
            if memo[id].is_none() {
                let x = distinct[id];
                let r = eval::apply(func, std::slice::from_ref(x))
                    .map_err(|e| eval_failed(l, i, &[x], e))?;
                memo[id] = Some(r);
            }
            if let Some(v) = &memo[id] {
                out.push(v.clone());
            }
        }
        Ok(out)
    }

    /// `seqmap`: the function once per distinct pair of arguments.
    fn seqmap(
        &self,
        l: &Let,
        func: &Func,
        a: &[Value],
        b: &[Value],
    ) -> Result<Vec<Value>, Diagnostic> {
        let (aid, ad) = intern(a);
        let (bid, bd) = intern(b);
        let width = bd.len();
        let mut memo: Vec<Option<Value>> = vec![None; ad.len() * width];
        let mut out = Vec::with_capacity(a.len());
        for i in 0..a.len().min(b.len()) {
            let cell = aid[i] * width + bid[i];
            if memo[cell].is_none() {
                let (x, y) = (ad[aid[i]], bd[bid[i]]);
                let r = eval::apply(func, &[x.clone(), y.clone()])
                    .map_err(|e| eval_failed(l, i, &[x, y], e))?;
                memo[cell] = Some(r);
            }
            if let Some(v) = &memo[cell] {
                out.push(v.clone());
            }
        }
        Ok(out)
    }

    /// `select`: the predicate once per distinct (key, query) pair that
    /// some query can see. Pairs hidden by the causal mask are never
    /// evaluated, so a predicate that would fail only there does not fail:
    /// the compiled model never computes them either.
    fn select(
        &self,
        l: &Let,
        pred: &Pred,
        keys: &[Value],
        queries: &[Value],
    ) -> Result<Vec<Vec<bool>>, Diagnostic> {
        let n = self.n;
        let (kid, kd) = intern(keys);
        let (qid, qd) = intern(queries);
        let width = qd.len();
        let mut memo: Vec<Option<bool>> = vec![None; kd.len() * width];
        let mut m = vec![vec![false; n]; n];
        for (i, row) in m.iter_mut().enumerate() {
            let visible = if self.causal { i + 1 } else { n };
            for (j, cell) in row.iter_mut().enumerate().take(visible) {
                let slot = kid[j] * width + qid[i];
                *cell = match memo[slot] {
                    Some(b) => b,
                    None => {
                        let (k, q) = (kd[kid[j]], qd[qid[i]]);
                        let b = eval::holds(pred, k, q).map_err(|e| {
                            Diagnostic::error(
                                codes::RUNTIME_EVAL,
                                l.span,
                                format!(
                                    "selector `{}` failed at query position {i}, key position {j} \
                                     on (key {k}, query {q}): {e}",
                                    l.name
                                ),
                            )
                        })?;
                        memo[slot] = Some(b);
                        b
                    }
                };
            }
        }
        Ok(m)
    }

    /// Numerical aggregate: the exact mean of the selected values.
    fn aggregate_num(
        &self,
        l: &Let,
        sel: &[Vec<bool>],
        v: &[Value],
        default: &Option<Value>,
    ) -> Result<Vec<Value>, Diagnostic> {
        let (ids, distinct) = intern(v);
        // Summing rationals costs a gcd per addition. Scaling every value
        // to the common denominator `scale` makes each sum a sum of
        // integers (machine integers when they fit), divided once.
        let scale = distinct
            .iter()
            .filter_map(|d| d.as_num())
            .fold(BigInt::one(), |acc, r| acc.lcm(r.denom()));
        let scaled: Vec<Option<BigInt>> = distinct
            .iter()
            .map(|d| d.as_num().map(|r| r.numer() * (&scale / r.denom())))
            .collect();
        let small: Option<Vec<Option<i64>>> = scaled
            .iter()
            .map(|s| match s {
                None => Some(None),
                Some(b) => b.to_i64().map(Some),
            })
            .collect();
        let symbol = |i: usize, j: usize| {
            Diagnostic::error(
                codes::RUNTIME_EVAL,
                l.span,
                format!(
                    "numerical aggregate `{}` at query position {i} selects the symbol {} at \
                     key position {j}, which has no mean",
                    l.name, v[j]
                ),
            )
            .with_hint("declare it `: cat` to copy symbols, or aggregate numbers")
        };
        let default = default.clone().unwrap_or_else(|| Value::Num(Rat::zero()));
        let mut out = Vec::with_capacity(sel.len());
        for (i, row) in sel.iter().enumerate() {
            let keys = row.iter().enumerate().filter(|(_, &b)| b).map(|(j, _)| j);
            let mut total = 0usize;
            let sum = match &small {
                Some(small) => {
                    // At most 2^64 terms below 2^63 each: no i128 overflow.
                    let mut acc: i128 = 0;
                    for j in keys {
                        acc += i128::from(small[ids[j]].ok_or_else(|| symbol(i, j))?);
                        total += 1;
                    }
                    BigInt::from(acc)
                }
                None => {
                    let mut acc = BigInt::zero();
                    for j in keys {
                        acc += scaled[ids[j]].as_ref().ok_or_else(|| symbol(i, j))?;
                        total += 1;
                    }
                    acc
                }
            };
            out.push(if total == 0 {
                default.clone()
            } else {
                Value::Num(Rat::new(sum, &scale * BigInt::from(total)))
            });
        }
        Ok(out)
    }

    /// Runs a loop to its end and binds its final state.
    fn exec_loop(&mut self, lp: &'p Loop) -> Result<(), Diagnostic> {
        // Structure first, so that a malformed loop fails the same way
        // whatever the input.
        let mut state_index: HashMap<&str, usize> = HashMap::new();
        for (k, s) in lp.state.iter().enumerate() {
            state_index.insert(&s.name.text, k);
        }
        let mut next_src: Vec<Option<&'p Name>> = vec![None; lp.state.len()];
        for (s, v) in &lp.next {
            match state_index.get(s.text.as_str()) {
                None => {
                    return Err(Diagnostic::error(
                        codes::BAD_NEXT,
                        s.span,
                        format!("`next {s}` names no state variable of this loop"),
                    ))
                }
                Some(&k) if next_src[k].is_some() => {
                    return Err(Diagnostic::error(
                        codes::BAD_NEXT,
                        s.span,
                        format!("state variable `{s}` has two `next` lines"),
                    ))
                }
                Some(&k) => next_src[k] = Some(v),
            }
        }
        let mut sources = Vec::with_capacity(lp.state.len());
        for (s, src) in lp.state.iter().zip(&next_src) {
            match src {
                Some(src) => sources.push(*src),
                None => {
                    return Err(Diagnostic::error(
                        codes::BAD_NEXT,
                        s.span,
                        format!("state variable `{}` has no `next` line", s.name),
                    ))
                }
            }
        }
        let (limit, halt) = match &lp.stop {
            Stop::Fixed(n) => (*n, None),
            Stop::Until { halt, max } => match state_index.get(halt.text.as_str()) {
                Some(&k) => (*max, Some((k, halt))),
                None => {
                    return Err(Diagnostic::error(
                        codes::BAD_HALT,
                        halt.span,
                        format!("the halting value `{halt}` is not a state variable of this loop"),
                    ))
                }
            },
        };
        let mut body_lets = Vec::with_capacity(lp.body.len());
        for stmt in &lp.body {
            match stmt {
                Stmt::Let(l) => body_lets.push(l),
                Stmt::Loop(inner) => {
                    return Err(Diagnostic::error(
                        codes::NESTED_LOOP,
                        inner.span,
                        "a loop inside a loop",
                    )
                    .with_hint("loops do not nest; unroll the inner loop or merge the two states"))
                }
            }
        }

        // Every initial value is read before any state name is bound, so
        // an initialiser sees only what was defined before the loop.
        let mut init = Vec::with_capacity(lp.state.len());
        for s in &lp.state {
            init.push(match &s.init {
                Init::Value(name) => self.value(name)?.clone(),
                Init::Const(c) => vec![c.clone(); self.n],
            });
        }
        // Names the body will shadow (only in a program that breaks SSA)
        // come back when the loop ends.
        let saved: Vec<(&'p str, Option<Slot>)> = body_lets
            .iter()
            .map(|l| (l.name.text.as_str(), self.env.remove(l.name.text.as_str())))
            .collect();
        for (s, v) in lp.state.iter().zip(init) {
            self.env.insert(&s.name.text, Slot::Val(v));
        }

        let one = Value::int(1);
        let mut done = 0usize;
        loop {
            if let Some((k, halt_name)) = halt {
                let h = self.value(&lp.state[k].name)?;
                match h.iter().position(|v| *v != one) {
                    None => break,
                    Some(p) if done == limit => {
                        return Err(Diagnostic::error(
                            codes::NO_HALT,
                            lp.span,
                            format!(
                                "loop did not halt within {limit} iterations: `{halt_name}` is {} \
                                 at position {p}, not 1",
                                h[p]
                            ),
                        )
                        .with_hint(
                            "raise `max`, or check that the body reaches the halting state",
                        ))
                    }
                    Some(_) => {}
                }
            } else if done == limit {
                break;
            }
            for s in &lp.state {
                self.record_bound(&s.name, Some(done));
            }
            for l in &body_lets {
                self.exec_let(l, Some(done))?;
            }
            // All next values are read before any is bound: `next %a = %b`
            // and `next %b = %a` swap.
            let mut next = Vec::with_capacity(sources.len());
            for src in &sources {
                next.push(self.value(src)?.clone());
            }
            for (s, v) in lp.state.iter().zip(next) {
                self.env.insert(&s.name.text, Slot::Val(v));
            }
            for l in &body_lets {
                self.env.remove(l.name.text.as_str());
            }
            done += 1;
        }
        for (name, slot) in saved {
            if let Some(slot) = slot {
                self.env.insert(name, slot);
            }
        }
        for s in &lp.state {
            self.record_bound(&s.name, None);
            self.exported.push(&s.name.text);
        }
        self.iterations.push(done);
        Ok(())
    }
}

/// Categorical aggregate: the one value every selected key carries.
fn aggregate_cat(
    l: &Let,
    sel: &[Vec<bool>],
    v: &[Value],
    default: &Value,
) -> Result<Vec<Value>, Diagnostic> {
    let (ids, distinct) = intern(v);
    let mut out = Vec::with_capacity(sel.len());
    for (i, row) in sel.iter().enumerate() {
        let mut seen: Option<usize> = None;
        for (j, _) in row.iter().enumerate().filter(|(_, &b)| b) {
            match seen {
                None => seen = Some(ids[j]),
                Some(id) if id == ids[j] => {}
                Some(_) => return Err(ambiguous(l, i, row, &ids, &distinct)),
            }
        }
        out.push(match seen {
            Some(id) => distinct[id].clone(),
            None => default.clone(),
        });
    }
    Ok(out)
}

/// E0602 for query `i`: every distinct value the query sees, with the
/// key positions that carry it (the first few), in order of first key.
fn ambiguous(l: &Let, i: usize, row: &[bool], ids: &[usize], distinct: &[&Value]) -> Diagnostic {
    const SHOWN: usize = 4;
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (j, _) in row.iter().enumerate().filter(|(_, &b)| b) {
        match groups.iter_mut().find(|(id, _)| *id == ids[j]) {
            Some((_, keys)) => keys.push(j),
            None => groups.push((ids[j], vec![j])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(id, keys)| {
            let mut shown: Vec<String> = keys.iter().take(SHOWN).map(|k| k.to_string()).collect();
            if keys.len() > SHOWN {
                shown.push(format!("and {} more", keys.len() - SHOWN));
            }
            let noun = if keys.len() == 1 { "key" } else { "keys" };
            format!("{} at {noun} {}", distinct[*id], shown.join(", "))
        })
        .collect();
    Diagnostic::error(
        codes::RUNTIME_AMBIGUOUS,
        l.span,
        format!(
            "categorical aggregate `{}` saw different values at query position {i}: {}",
            l.name,
            parts.join("; ")
        ),
    )
    .with_hint(
        "a categorical aggregate copies a value only where all selected keys agree; \
         narrow the selector, or declare `: num` for a mean",
    )
}

/// E0603 for a `map` / `seqmap` at position `i` on `args`.
fn eval_failed(l: &Let, i: usize, args: &[&Value], e: EvalError) -> Diagnostic {
    let args = match args {
        [a] => a.to_string(),
        _ => format!(
            "({})",
            args.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Diagnostic::error(
        codes::RUNTIME_EVAL,
        l.span,
        format!("`{}` failed at position {i} on {args}: {e}", l.name),
    )
}

fn undefined(name: &Name) -> Diagnostic {
    Diagnostic::error(
        codes::UNDEFINED,
        name.span,
        format!("undefined value `{name}`"),
    )
    .with_hint("a name must be defined before it is used; loop body names end with the loop")
}

fn count(k: usize) -> Value {
    Value::Num(Rat::from_integer(BigInt::from(k)))
}

fn zip_sel(a: &[Vec<bool>], b: &[Vec<bool>], f: impl Fn(bool, bool) -> bool) -> Vec<Vec<bool>> {
    a.iter()
        .zip(b)
        .map(|(ra, rb)| ra.iter().zip(rb).map(|(&x, &y)| f(x, y)).collect())
        .collect()
}

/// Below this many distinct values a linear scan beats hashing: hashing a
/// `BigRational` divides, and most runs see a handful of values.
const LINEAR_INTERN: usize = 16;

/// Numbers the distinct values of `vals` in order of first occurrence:
/// `ids[i]` is the number of `vals[i]`, `distinct[id]` the value.
fn intern(vals: &[Value]) -> (Vec<usize>, Vec<&Value>) {
    let mut distinct: Vec<&Value> = Vec::new();
    let mut map: Option<HashMap<&Value, usize>> = None;
    let mut ids = Vec::with_capacity(vals.len());
    for v in vals {
        let id = match &mut map {
            Some(m) => *m.entry(v).or_insert_with(|| {
                distinct.push(v);
                distinct.len() - 1
            }),
            None => match distinct.iter().position(|d| *d == v) {
                Some(id) => id,
                None => {
                    distinct.push(v);
                    if distinct.len() > LINEAR_INTERN {
                        map = Some(distinct.iter().enumerate().map(|(k, d)| (*d, k)).collect());
                    }
                    distinct.len() - 1
                }
            },
        };
        ids.push(id);
    }
    (ids, distinct)
}

/// E0601: the input must be a sequence the program is defined on.
fn check_input(prog: &Program, input: &[Value]) -> Result<(), Diagnostic> {
    let bad = |msg: String| {
        Diagnostic::error(codes::BAD_INPUT, prog.span, msg).with_hint(format!(
            "`{}` takes 1 to {} tokens from its vocabulary{}",
            prog.name,
            prog.max_len,
            if prog.distinct {
                ", pairwise distinct"
            } else {
                ""
            }
        ))
    };
    if input.is_empty() {
        return Err(bad("the input is empty".to_string()));
    }
    if input.len() > prog.max_len {
        return Err(bad(format!(
            "the input has {} tokens, more than max_len {}",
            input.len(),
            prog.max_len
        )));
    }
    let (ids, distinct) = intern(input);
    // A scan of the vocabulary per distinct token is cheapest for the
    // short inputs the checker tries by the thousand; a hash set wins
    // once both are large.
    let in_vocab: Vec<bool> = if distinct.len().saturating_mul(prog.vocab.len()) <= 1 << 16 {
        distinct.iter().map(|t| prog.vocab.contains(t)).collect()
    } else {
        let set: HashSet<&Value> = prog.vocab.iter().collect();
        distinct.iter().map(|t| set.contains(t)).collect()
    };
    let mut first: Vec<Option<usize>> = vec![None; distinct.len()];
    for (i, &id) in ids.iter().enumerate() {
        if !in_vocab[id] {
            return Err(bad(format!(
                "the token {} at position {i} is not in the vocabulary",
                distinct[id]
            )));
        }
        match first[id] {
            Some(p) if prog.distinct => {
                return Err(bad(format!(
                    "the token {} appears at positions {p} and {i}, but the program \
                     requires distinct tokens",
                    distinct[id]
                )))
            }
            Some(_) => {}
            None => first[id] = Some(i),
        }
    }
    Ok(())
}

/// Rejects a builtin call with the wrong number of arguments, which
/// [`eval`] assumes the parser has ruled out (it would panic).
fn check_arities(prog: &Program) -> Result<(), Diagnostic> {
    fn expr(e: &Expr) -> Result<(), Diagnostic> {
        match &e.kind {
            ExprKind::Lit(_) | ExprKind::Var(_) => Ok(()),
            ExprKind::Unary(_, a) => expr(a),
            ExprKind::Binary(_, a, b) => {
                expr(a)?;
                expr(b)
            }
            ExprKind::Call(f, args) => {
                if args.len() != f.arity() {
                    return Err(arity(*f, args.len(), e.span));
                }
                args.iter().try_for_each(expr)
            }
        }
    }
    fn arity(f: Builtin, got: usize, span: Span) -> Diagnostic {
        Diagnostic::error(
            codes::UNEXPECTED,
            span,
            format!("`{}` takes {} arguments, not {got}", f.name(), f.arity()),
        )
    }
    fn stmts(body: &[Stmt]) -> Result<(), Diagnostic> {
        for stmt in body {
            match stmt {
                Stmt::Let(l) => match &l.op {
                    Op::Map {
                        func: Func::Expr(e),
                        ..
                    }
                    | Op::SeqMap {
                        func: Func::Expr(e),
                        ..
                    }
                    | Op::Select {
                        pred: Pred::Expr(e),
                        ..
                    } => expr(e)?,
                    _ => {}
                },
                Stmt::Loop(lp) => stmts(&lp.body)?,
            }
        }
        Ok(())
    }
    stmts(&prog.body)
}

#[cfg(test)]
mod tests {
    //! Every expected output below is worked out by hand in the comment
    //! beside it, from docs/IR.md, not copied from what the code printed.

    use super::*;
    use crate::ast::{BinOp, CmpPred, Expr, ExprKind, StateVar, Var};

    fn nm(s: &str) -> Name {
        Name::new(s)
    }
    fn stmt(name: &str, op: Op, enc: Option<Encoding>) -> Stmt {
        Stmt::Let(Let {
            name: nm(name),
            op,
            enc,
            span: Span::default(),
        })
    }
    fn cat(name: &str, op: Op) -> Stmt {
        stmt(name, op, Some(Encoding::Cat))
    }
    fn num(name: &str, op: Op) -> Stmt {
        stmt(name, op, Some(Encoding::Num))
    }
    /// A selector, or an instruction with its default encoding.
    fn bare(name: &str, op: Op) -> Stmt {
        stmt(name, op, None)
    }
    fn ints(xs: &[i64]) -> Vec<Value> {
        xs.iter().map(|&x| Value::int(x)).collect()
    }
    fn vocab(lo: i64, hi: i64) -> Vec<Value> {
        (lo..=hi).map(Value::int).collect()
    }
    fn program(vocab: Vec<Value>, max_len: usize, body: Vec<Stmt>, output: &str) -> Program {
        Program {
            name: "t".into(),
            vocab,
            max_len,
            causal: false,
            distinct: false,
            body,
            output: nm(output),
            span: Span::default(),
        }
    }
    fn select(k: &str, q: &str, p: CmpPred) -> Op {
        Op::Select {
            keys: nm(k),
            queries: nm(q),
            pred: Pred::Cmp(p),
        }
    }
    fn agg(s: &str, v: &str, default: Option<Value>) -> Op {
        Op::Aggregate {
            sel: nm(s),
            values: nm(v),
            default,
        }
    }
    fn map(a: &str, e: Expr) -> Op {
        Op::Map {
            arg: nm(a),
            func: Func::Expr(e),
        }
    }
    fn seqmap(a: &str, b: &str, e: Expr) -> Op {
        Op::SeqMap {
            lhs: nm(a),
            rhs: nm(b),
            func: Func::Expr(e),
        }
    }
    fn var(v: Var) -> Expr {
        Expr::new(ExprKind::Var(v))
    }
    fn lit(n: i64) -> Expr {
        Expr::new(ExprKind::Lit(Value::int(n)))
    }
    fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
        Expr::new(ExprKind::Binary(op, Box::new(a), Box::new(b)))
    }
    fn ok(p: &Program, input: &[Value]) -> Run {
        match run(p, input, &RunOptions::default()) {
            Ok(r) => r,
            Err(d) => panic!("unexpected error: {d}"),
        }
    }
    fn err(p: &Program, input: &[Value]) -> Diagnostic {
        match run(p, input, &RunOptions::default()) {
            Ok(r) => panic!("expected an error, got output {:?}", r.output),
            Err(d) => d,
        }
    }

    /// tokens, indices, and `select indices, indices, le` (query i sees
    /// keys 0..=i): the prefix selector of a running mean.
    fn prefix_body() -> Vec<Stmt> {
        vec![
            bare("tok", Op::Tokens),
            bare("idx", Op::Indices),
            bare("pre", select("idx", "idx", CmpPred::Le)),
        ]
    }

    #[test]
    fn running_mean_is_exact() {
        let mut body = prefix_body();
        body.push(num("mean", agg("pre", "tok", None)));
        // mean * (index + 1) is the prefix sum.
        body.push(num(
            "sum",
            seqmap(
                "mean",
                "idx",
                bin(
                    BinOp::Mul,
                    var(Var::X),
                    bin(BinOp::Add, var(Var::Y), lit(1)),
                ),
            ),
        ));
        let mut p = program(vocab(1, 3), 4, body, "mean");
        // Input 3 2 1 1: 3/1, (3+2)/2, (3+2+1)/3, (3+2+1+1)/4.
        let r = ok(&p, &ints(&[3, 2, 1, 1]));
        assert_eq!(
            r.output,
            vec![
                Value::int(3),
                Value::ratio(5, 2),
                Value::int(2),
                Value::ratio(7, 4)
            ]
        );
        // 3*1, 5/2*2, 2*3, 7/4*4.
        assert_eq!(r.values["sum"], ints(&[3, 5, 6, 7]));
        // Selectors are not values; top-level values all are.
        assert!(!r.values.contains_key("pre"));
        assert_eq!(r.values["idx"], ints(&[0, 1, 2, 3]));
        assert!(r.trace.is_empty() && r.iterations.is_empty());
        p.output = nm("sum");
        assert_eq!(ok(&p, &ints(&[3, 2, 1, 1])).output, ints(&[3, 5, 6, 7]));
    }

    #[test]
    fn means_of_fractions_and_huge_numbers() {
        let mut body = prefix_body();
        body.push(num("mean", agg("pre", "tok", None)));
        let fr = vec![Value::ratio(1, 2), Value::ratio(1, 3), Value::ratio(-3, 4)];
        let p = program(fr.clone(), 3, body.clone(), "mean");
        // 1/2; (1/2 + 1/3) / 2 = 5/12; (6/12 + 4/12 - 9/12) / 3 = 1/36.
        let want = vec![Value::ratio(1, 2), Value::ratio(5, 12), Value::ratio(1, 36)];
        assert_eq!(ok(&p, &fr).output, want);
        // Beyond 64 bits: 2^70, then (2^70 + 2^70 + 2) / 2 = 2^70 + 1.
        let big = |k: i64| Value::Num(Rat::from_integer(BigInt::from(2).pow(70u32) + k));
        let p = program(vec![big(0), big(2)], 2, body, "mean");
        assert_eq!(ok(&p, &[big(0), big(2)]).output, vec![big(0), big(1)]);
    }

    #[test]
    fn categorical_aggregate_never_averages() {
        let mut body = prefix_body();
        body.push(Stmt::Let(Let {
            name: nm("first"),
            op: agg("pre", "tok", Some(Value::int(0))),
            enc: Some(Encoding::Cat),
            span: Span::new(100, 130),
        }));
        let p = program(vocab(1, 3), 4, body, "first");
        // Position 0 sees only key 0 (3): fine. Position 1 sees keys 0 and
        // 1, carrying 3 and 2: E0602 there, at the statement's span.
        let d = err(&p, &ints(&[3, 2, 1, 1]));
        assert_eq!(d.code, codes::RUNTIME_AMBIGUOUS);
        assert_eq!((d.span.start, d.span.end), (100, 130));
        assert!(d.message.contains("`%first`"), "{}", d.message);
        assert!(d.message.contains("query position 1"), "{}", d.message);
        assert!(
            d.message.contains("3 at key 0") && d.message.contains("2 at key 1"),
            "{}",
            d.message
        );
        // When every selected key agrees, the value is copied: 2 2 2.
        assert_eq!(ok(&p, &ints(&[2, 2, 2])).output, ints(&[2, 2, 2]));
    }

    #[test]
    fn ambiguity_message_groups_keys_by_value() {
        let mut body = prefix_body();
        body.push(cat("first", agg("pre", "tok", Some(Value::int(0)))));
        let p = program(vocab(1, 3), 4, body, "first");
        // 1 1 2: position 2 sees 1 at keys 0, 1 and 2 at key 2.
        let d = err(&p, &ints(&[1, 1, 2]));
        assert!(d.message.contains("query position 2"), "{}", d.message);
        assert!(
            d.message.contains("1 at keys 0, 1; 2 at key 2"),
            "{}",
            d.message
        );
    }

    #[test]
    fn empty_selection_reads_the_default() {
        let body = vec![
            bare("tok", Op::Tokens),
            bare("idx", Op::Indices),
            // Query i selects key j where j == tok_i.
            bare("at", select("idx", "tok", CmpPred::Eq)),
            cat("a", agg("at", "idx", Some(Value::sym("_")))),
            cat("b", agg("at", "a", Some(Value::sym("_")))),
        ];
        let p = program(vocab(1, 4), 4, body, "b");
        let r = ok(&p, &ints(&[1, 2, 3, 4]));
        // a_i = idx at key tok_i: keys 1, 2, 3 exist, key 4 does not.
        let u = Value::sym("_");
        assert_eq!(
            r.values["a"],
            vec![Value::int(1), Value::int(2), Value::int(3), u.clone()]
        );
        // b_i = a at key tok_i: a_1, a_2, a_3, then none.
        assert_eq!(r.output, vec![Value::int(2), Value::int(3), u.clone(), u]);
    }

    #[test]
    fn numerical_default_is_zero_unless_declared() {
        let body = vec![
            bare("tok", Op::Tokens),
            bare("none", select("tok", "tok", CmpPred::False)),
            num("z", agg("none", "tok", None)),
            num("d", agg("none", "tok", Some(Value::ratio(1, 2)))),
        ];
        let p = program(vocab(1, 3), 3, body, "z");
        let r = ok(&p, &ints(&[1, 2]));
        assert_eq!(r.output, ints(&[0, 0]));
        assert_eq!(r.values["d"], vec![Value::ratio(1, 2); 2]);
    }

    fn reverse(causal: bool) -> Program {
        let body = vec![
            bare("tok", Op::Tokens),
            bare("idx", Op::Indices),
            bare("len", Op::Length),
            // opp = length - index - 1
            cat(
                "opp",
                seqmap(
                    "len",
                    "idx",
                    bin(
                        BinOp::Sub,
                        bin(BinOp::Sub, var(Var::X), var(Var::Y)),
                        lit(1),
                    ),
                ),
            ),
            // Query i selects key j where j == opp_i.
            bare("flip", select("idx", "opp", CmpPred::Eq)),
            cat("rev", agg("flip", "tok", Some(Value::int(0)))),
        ];
        let mut p = program(vocab(1, 3), 3, body, "rev");
        p.causal = causal;
        p
    }

    #[test]
    fn reverse_and_its_causal_meaning() {
        // opp = 2 1 0, so position i copies token 2 - i.
        assert_eq!(
            ok(&reverse(false), &ints(&[1, 2, 3])).output,
            ints(&[3, 2, 1])
        );
        // Causal: length is i + 1, so opp = i + 1 - i - 1 = 0 everywhere,
        // and key 0 is visible to every query: token 0 everywhere.
        let r = ok(&reverse(true), &ints(&[1, 2, 3]));
        assert_eq!(r.values["len"], ints(&[1, 2, 3]));
        assert_eq!(r.values["opp"], ints(&[0, 0, 0]));
        assert_eq!(r.output, ints(&[1, 1, 1]));
    }

    #[test]
    fn causal_mask_holds_through_not() {
        let body = vec![
            bare("idx", Op::Indices),
            bare("lt", select("idx", "idx", CmpPred::Lt)),
            bare("ge", Op::Not(nm("lt"))),
            bare("w", Op::Width(nm("ge"))),
        ];
        let mut p = program(vocab(1, 3), 3, body, "w");
        // not(j < i) is j >= i: positions 0, 1, 2 select 3, 2, 1 keys.
        assert_eq!(ok(&p, &ints(&[1, 1, 1])).output, ints(&[3, 2, 1]));
        // Causal: j >= i among j <= i leaves only j == i.
        p.causal = true;
        assert_eq!(ok(&p, &ints(&[1, 1, 1])).output, ints(&[1, 1, 1]));
    }

    #[test]
    fn sort_unique_from_the_docs() {
        let body = vec![
            bare("tok", Op::Tokens),
            bare("idx", Op::Indices),
            bare("lt", select("tok", "tok", CmpPred::Lt)),
            bare("tgt", Op::Width(nm("lt"))),
            bare("pick", select("tgt", "idx", CmpPred::Eq)),
            cat("out", agg("pick", "tok", Some(Value::int(0)))),
        ];
        let mut p = program(vocab(1, 5), 5, body, "out");
        p.distinct = true;
        let r = ok(&p, &ints(&[3, 1, 2]));
        // Smaller tokens: 3 has two (1, 2), 1 none, 2 one.
        assert_eq!(r.values["tgt"], ints(&[2, 0, 1]));
        // Query i copies the key whose target is i: 1 (key 1), 2 (key 2), 3 (key 0).
        assert_eq!(r.output, ints(&[1, 2, 3]));
    }

    #[test]
    fn appeared_earlier() {
        let body = vec![
            bare("tok", Op::Tokens),
            bare("idx", Op::Indices),
            bare("same", select("tok", "tok", CmpPred::Eq)),
            bare("before", select("idx", "idx", CmpPred::Lt)),
            bare("prev", Op::And(nm("same"), nm("before"))),
            num("one", Op::Const(Value::int(1))),
            // 1 wherever an earlier equal token exists, else the default 0.
            num("frac", agg("prev", "one", None)),
            cat("seen", map("frac", bin(BinOp::Gt, var(Var::X), lit(0)))),
        ];
        let p = program(vocab(1, 3), 5, body, "seen");
        // 1 2 1 3 2: the second 1 (pos 2) and the second 2 (pos 4) repeat.
        assert_eq!(
            ok(&p, &ints(&[1, 2, 1, 3, 2])).output,
            ints(&[0, 0, 1, 0, 1])
        );
    }

    #[test]
    fn or_selects_either() {
        let body = vec![
            bare("idx", Op::Indices),
            bare("lt", select("idx", "idx", CmpPred::Lt)),
            bare("gt", select("idx", "idx", CmpPred::Gt)),
            bare("ne", Op::Or(nm("lt"), nm("gt"))),
            bare("w", Op::Width(nm("ne"))),
            num("m", agg("ne", "idx", None)),
        ];
        let p = program(vocab(1, 1), 4, body, "w");
        let r = ok(&p, &ints(&[1, 1, 1]));
        // Every other position: width 2 everywhere.
        assert_eq!(r.output, ints(&[2, 2, 2]));
        // Means of the other indices: (1+2)/2, (0+2)/2, (0+1)/2.
        assert_eq!(
            r.values["m"],
            vec![Value::ratio(3, 2), Value::int(1), Value::ratio(1, 2)]
        );
    }

    #[test]
    fn tables_and_symbols() {
        // A symbol vocabulary through a map table and an expression select.
        let body = vec![
            bare("tok", Op::Tokens),
            cat(
                "open",
                Op::Map {
                    arg: nm("tok"),
                    func: Func::Table(vec![
                        (vec![Value::sym("(")], Value::int(1)),
                        (vec![Value::sym(")")], Value::int(-1)),
                    ]),
                },
            ),
            bare("idx", Op::Indices),
            bare("pre", select("idx", "idx", CmpPred::Le)),
            num("bal", agg("pre", "open", None)),
        ];
        let p = program(vec![Value::sym("("), Value::sym(")")], 4, body, "bal");
        // ( ( ) ): opens 1 1 -1 -1; prefix means 1, 1, 1/3, 0.
        let toks: Vec<Value> = ["(", "(", ")", ")"]
            .iter()
            .map(|s| Value::sym(*s))
            .collect();
        assert_eq!(
            ok(&p, &toks).output,
            vec![
                Value::int(1),
                Value::int(1),
                Value::ratio(1, 3),
                Value::int(0)
            ]
        );
    }

    /// Parity of the number of 1 tokens, read one position per iteration:
    /// iteration k copies token k (default 0 past the end) into the sum.
    fn parity(iterations: usize) -> Program {
        let body = vec![
            bare("tok", Op::Tokens),
            bare("idx", Op::Indices),
            Stmt::Loop(Loop {
                state: vec![
                    StateVar {
                        name: nm("acc"),
                        enc: Encoding::Cat,
                        values: ints(&[0, 1]),
                        init: Init::Const(Value::int(0)),
                        span: Span::default(),
                    },
                    StateVar {
                        name: nm("k"),
                        enc: Encoding::Cat,
                        values: vocab(0, 4),
                        init: Init::Const(Value::int(0)),
                        span: Span::default(),
                    },
                ],
                stop: Stop::Fixed(iterations),
                body: vec![
                    bare("at", select("idx", "k", CmpPred::Eq)),
                    cat("t", agg("at", "tok", Some(Value::int(0)))),
                    cat(
                        "acc1",
                        seqmap(
                            "acc",
                            "t",
                            Expr::new(ExprKind::Call(
                                Builtin::Mod,
                                vec![bin(BinOp::Add, var(Var::X), var(Var::Y)), lit(2)],
                            )),
                        ),
                    ),
                    cat("k1", map("k", bin(BinOp::Add, var(Var::X), lit(1)))),
                ],
                next: vec![(nm("acc"), nm("acc1")), (nm("k"), nm("k1"))],
                span: Span::default(),
            }),
        ];
        program(vocab(0, 1), 4, body, "acc")
    }

    #[test]
    fn parity_loop_runs_a_fixed_number_of_times() {
        let p = parity(4);
        // 1 0 1 1: acc goes 0 -> 1 -> 1 -> 0 -> 1 (three ones: odd).
        let r = run(&p, &ints(&[1, 0, 1, 1]), &RunOptions { trace: true }).expect("runs");
        assert_eq!(r.output, ints(&[1, 1, 1, 1]));
        assert_eq!(r.iterations, vec![4]);
        assert_eq!(r.values["k"], ints(&[4, 4, 4, 4]));
        // Body names are local to the loop.
        assert!(!r.values.contains_key("t") && !r.values.contains_key("acc1"));
        // The state at the start of each iteration, then the final state.
        let acc: Vec<(Option<usize>, Value)> = r
            .trace
            .iter()
            .filter(|e| e.name == "acc")
            .map(|e| (e.iteration, e.values[0].clone()))
            .collect();
        let expect = [
            (Some(0), 0),
            (Some(1), 1),
            (Some(2), 1),
            (Some(3), 0),
            (None, 1),
        ];
        let expect: Vec<(Option<usize>, Value)> =
            expect.iter().map(|&(i, v)| (i, Value::int(v))).collect();
        assert_eq!(acc, expect);
        // Trace order: tok, idx, then per iteration acc, k, t, acc1, k1
        // (no selector), then the final acc, k.
        let names: Vec<&str> = r.trace.iter().map(|e| e.name.as_str()).collect();
        let mut want = vec!["tok", "idx"];
        for _ in 0..4 {
            want.extend(["acc", "k", "t", "acc1", "k1"]);
        }
        want.extend(["acc", "k"]);
        assert_eq!(names, want);
        // Token k at iteration k: 1 0 1 1.
        let t: Vec<Value> = r
            .trace
            .iter()
            .filter(|e| e.name == "t")
            .map(|e| e.values[0].clone())
            .collect();
        assert_eq!(t, ints(&[1, 0, 1, 1]));
        // 1 1: two ones, even; iterations 2 and 3 read past the end (default 0).
        assert_eq!(ok(&p, &ints(&[1, 1])).output, ints(&[0, 0]));
        // 1 0 0 0 after only one iteration: acc = token 0 = 1.
        assert_eq!(
            ok(&parity(1), &ints(&[1, 0, 0, 0])).output,
            ints(&[1, 1, 1, 1])
        );
    }

    /// Counts every token down to 0; halts when all are 0. `%n` counts runs.
    fn countdown(max: usize, halt_init: i64) -> Program {
        let sv = |name: &str, init: Init, values: Vec<Value>| StateVar {
            name: nm(name),
            enc: Encoding::Cat,
            values,
            init,
            span: Span::default(),
        };
        let body = vec![
            bare("tok", Op::Tokens),
            Stmt::Loop(Loop {
                state: vec![
                    sv("c", Init::Value(nm("tok")), vocab(0, 5)),
                    sv("h", Init::Const(Value::int(halt_init)), ints(&[0, 1])),
                    sv("n", Init::Const(Value::int(0)), vocab(0, 10)),
                ],
                stop: Stop::Until { halt: nm("h"), max },
                body: vec![
                    cat(
                        "c1",
                        map(
                            "c",
                            Expr::new(ExprKind::Call(
                                Builtin::Max,
                                vec![bin(BinOp::Sub, var(Var::X), lit(1)), lit(0)],
                            )),
                        ),
                    ),
                    cat("h1", map("c1", bin(BinOp::Eq, var(Var::X), lit(0)))),
                    cat("n1", map("n", bin(BinOp::Add, var(Var::X), lit(1)))),
                ],
                next: vec![
                    (nm("c"), nm("c1")),
                    (nm("h"), nm("h1")),
                    (nm("n"), nm("n1")),
                ],
                span: Span::new(7, 9),
            }),
        ];
        program(vocab(0, 5), 4, body, "n")
    }

    #[test]
    fn until_loop_halts() {
        // 2 3 1: after run 1 c = 1 2 0, after run 2 c = 0 1 0, after run 3
        // c = 0 0 0 and h = 1 1 1, so the check before run 4 stops it.
        let r = ok(&countdown(10, 0), &ints(&[2, 3, 1]));
        assert_eq!(r.iterations, vec![3]);
        assert_eq!(r.output, ints(&[3, 3, 3]));
        assert_eq!(r.values["c"], ints(&[0, 0, 0]));
        assert_eq!(r.values["h"], ints(&[1, 1, 1]));
        // Exactly enough: max 3 is reached only after the halt check passes.
        assert_eq!(ok(&countdown(3, 0), &ints(&[2, 3, 1])).iterations, vec![3]);
        // Halted before the first run: the body never runs.
        let r = ok(&countdown(10, 1), &ints(&[2, 3, 1]));
        assert_eq!((r.iterations, r.output), (vec![0], ints(&[0, 0, 0])));
    }

    #[test]
    fn until_loop_past_its_max_is_an_error() {
        // After 2 runs h = 1 0 1 (token 3 is still at 1): E0604 at the loop.
        let d = err(&countdown(2, 0), &ints(&[2, 3, 1]));
        assert_eq!(d.code, codes::NO_HALT);
        assert_eq!((d.span.start, d.span.end), (7, 9));
        assert!(
            d.message.contains("within 2 iterations") && d.message.contains("position 1"),
            "{}",
            d.message
        );
    }

    #[test]
    fn next_values_are_read_together() {
        // next %a = %b, next %b = %a swaps; three swaps leave them swapped.
        let sv = |name: &str, v: i64| StateVar {
            name: nm(name),
            enc: Encoding::Cat,
            values: ints(&[1, 2]),
            init: Init::Const(Value::int(v)),
            span: Span::default(),
        };
        let body = vec![Stmt::Loop(Loop {
            state: vec![sv("a", 1), sv("b", 2)],
            stop: Stop::Fixed(3),
            body: vec![],
            next: vec![(nm("a"), nm("b")), (nm("b"), nm("a"))],
            span: Span::default(),
        })];
        let r = ok(&program(vocab(0, 0), 2, body, "a"), &ints(&[0, 0]));
        assert_eq!(
            (r.output, r.values["b"].clone()),
            (ints(&[2, 2]), ints(&[1, 1]))
        );
    }

    #[test]
    fn bad_inputs_are_e0601() {
        let mut p = program(vocab(1, 3), 3, vec![bare("tok", Op::Tokens)], "tok");
        for input in [
            vec![],
            ints(&[1, 2, 3, 1]),
            ints(&[1, 4]),
            vec![Value::sym("a")],
        ] {
            assert_eq!(err(&p, &input).code, codes::BAD_INPUT, "input {input:?}");
        }
        assert!(err(&p, &ints(&[1, 4])).message.contains("position 1"));
        // Repeats are fine until the program asks for distinct tokens.
        assert_eq!(ok(&p, &ints(&[2, 2])).output, ints(&[2, 2]));
        p.distinct = true;
        let d = err(&p, &ints(&[1, 2, 1]));
        assert_eq!(d.code, codes::BAD_INPUT);
        assert!(d.message.contains("positions 0 and 2"), "{}", d.message);
        // Exactly max_len is allowed.
        assert_eq!(ok(&p, &ints(&[3, 1, 2])).output, ints(&[3, 1, 2]));
    }

    #[test]
    fn function_failures_are_e0603() {
        let body = vec![
            bare("tok", Op::Tokens),
            num("inv", map("tok", bin(BinOp::Div, lit(1), var(Var::X)))),
        ];
        let p = program(vocab(0, 2), 3, body, "inv");
        // 1/2, 1/1, then 1/0 at position 2.
        let d = err(&p, &ints(&[2, 1, 0]));
        assert_eq!(d.code, codes::RUNTIME_EVAL);
        assert!(
            d.message.contains("`%inv`") && d.message.contains("position 2"),
            "{}",
            d.message
        );
        assert!(d.message.contains("on 0"), "{}", d.message);
        assert_eq!(
            ok(&p, &ints(&[2, 1])).output,
            vec![Value::ratio(1, 2), Value::int(1)]
        );

        // An ordering on symbols in a selector.
        let body = vec![
            bare("tok", Op::Tokens),
            bare("lt", select("tok", "tok", CmpPred::Lt)),
            bare("w", Op::Width(nm("lt"))),
        ];
        let p = program(vec![Value::sym("a"), Value::sym("b")], 3, body, "w");
        let d = err(&p, &[Value::sym("a"), Value::sym("b")]);
        assert_eq!(d.code, codes::RUNTIME_EVAL);
        assert!(
            d.message.contains("query position 0, key position 0"),
            "{}",
            d.message
        );

        // A numerical mean of symbols.
        let body = vec![
            bare("tok", Op::Tokens),
            bare("all", select("tok", "tok", CmpPred::True)),
            num("m", agg("all", "tok", None)),
        ];
        let p = program(vec![Value::sym("a")], 3, body, "m");
        assert_eq!(err(&p, &[Value::sym("a")]).code, codes::RUNTIME_EVAL);
    }

    #[test]
    fn causal_mask_hides_failing_pairs() {
        // The predicate 1 / (q - k + 1) over indices divides by zero only
        // where key k = q + 1, a key after its query: without the mask key
        // 1 against query 0 fails; under causal no visible pair does.
        let pred = Pred::Expr(bin(
            BinOp::Div,
            lit(1),
            bin(
                BinOp::Add,
                bin(BinOp::Sub, var(Var::Q), var(Var::K)),
                lit(1),
            ),
        ));
        let body = vec![
            bare("idx", Op::Indices),
            bare(
                "s",
                Op::Select {
                    keys: nm("idx"),
                    queries: nm("idx"),
                    pred,
                },
            ),
            bare("w", Op::Width(nm("s"))),
        ];
        let mut p = program(vocab(0, 0), 3, body, "w");
        assert_eq!(err(&p, &ints(&[0, 0])).code, codes::RUNTIME_EVAL);
        p.causal = true;
        // Every visible pair gives a nonzero 1 / (i - j + 1): width i + 1.
        assert_eq!(ok(&p, &ints(&[0, 0, 0])).output, ints(&[1, 2, 3]));
    }

    #[test]
    fn unchecked_programs_fail_without_panicking() {
        let one = ints(&[1]);
        let v = vocab(1, 1);
        // Undefined name.
        let p = program(v.clone(), 2, vec![num("m", map("nope", var(Var::X)))], "m");
        assert_eq!(err(&p, &one).code, codes::UNDEFINED);
        // Selector where a value belongs, and the reverse.
        let sel = || bare("s", select("tok", "tok", CmpPred::True));
        let p = program(
            v.clone(),
            2,
            vec![
                bare("tok", Op::Tokens),
                sel(),
                num("m", map("s", var(Var::X))),
            ],
            "m",
        );
        assert_eq!(err(&p, &one).code, codes::KIND_MISMATCH);
        let p = program(
            v.clone(),
            2,
            vec![bare("tok", Op::Tokens), bare("w", Op::Width(nm("tok")))],
            "w",
        );
        assert_eq!(err(&p, &one).code, codes::KIND_MISMATCH);
        let p = program(
            v.clone(),
            2,
            vec![
                bare("tok", Op::Tokens),
                sel(),
                num("m", agg("s", "s", None)),
            ],
            "m",
        );
        assert_eq!(err(&p, &one).code, codes::KIND_MISMATCH);
        // Aggregate without an encoding; categorical without a default.
        let p = program(
            v.clone(),
            2,
            vec![
                bare("tok", Op::Tokens),
                sel(),
                bare("m", agg("s", "tok", None)),
            ],
            "m",
        );
        assert_eq!(err(&p, &one).code, codes::MISSING_ENCODING);
        let p = program(
            v.clone(),
            2,
            vec![
                bare("tok", Op::Tokens),
                sel(),
                cat("m", agg("s", "tok", None)),
            ],
            "m",
        );
        assert_eq!(err(&p, &one).code, codes::MISSING_DEFAULT);
        // Output undefined, or a selector.
        let p = program(v.clone(), 2, vec![bare("tok", Op::Tokens)], "nope");
        assert_eq!(err(&p, &one).code, codes::BAD_OUTPUT);
        let p = program(v.clone(), 2, vec![bare("tok", Op::Tokens), sel()], "s");
        assert_eq!(err(&p, &one).code, codes::BAD_OUTPUT);
        // A builtin with the wrong arity (eval would panic on it).
        let bad = Expr::new(ExprKind::Call(Builtin::Min, vec![var(Var::X)]));
        let p = program(
            v.clone(),
            2,
            vec![bare("tok", Op::Tokens), num("m", map("tok", bad))],
            "m",
        );
        assert_eq!(err(&p, &one).code, codes::UNEXPECTED);
        // A loop body name is gone after the loop.
        let mut p = parity(1);
        p.output = nm("t");
        assert_eq!(err(&p, &ints(&[1])).code, codes::BAD_OUTPUT);
        // A use before definition inside a loop body.
        let mut p = parity(2);
        if let Stmt::Loop(lp) = &mut p.body[2] {
            lp.body.swap(0, 1);
        }
        assert_eq!(err(&p, &ints(&[1])).code, codes::UNDEFINED);
        // Malformed loops: a next for no state, a missing next, a halting
        // name that is not a state variable, a nested loop.
        let mut p = parity(1);
        if let Stmt::Loop(lp) = &mut p.body[2] {
            lp.next[1].0 = nm("zz");
        }
        assert_eq!(err(&p, &ints(&[1])).code, codes::BAD_NEXT);
        let mut p = parity(1);
        if let Stmt::Loop(lp) = &mut p.body[2] {
            lp.next.pop();
        }
        assert_eq!(err(&p, &ints(&[1])).code, codes::BAD_NEXT);
        let mut p = countdown(3, 0);
        if let Stmt::Loop(lp) = &mut p.body[1] {
            lp.stop = Stop::Until {
                halt: nm("tok"),
                max: 3,
            };
        }
        assert_eq!(err(&p, &ints(&[1])).code, codes::BAD_HALT);
        let mut p = parity(1);
        let inner = p.body[2].clone();
        if let Stmt::Loop(lp) = &mut p.body[2] {
            lp.body.push(inner);
        }
        assert_eq!(err(&p, &ints(&[1])).code, codes::NESTED_LOOP);
    }
}
