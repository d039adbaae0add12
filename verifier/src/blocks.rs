//! The block checks: embedding, heads, MLPs, loop commits, readout.
//!
//! A first pass walks the model in order and works out, from each head's
//! and MLP's instruction and the program, which values are present in the
//! residual before every block; the checks then run in parallel (rayon),
//! each on its own block, against those sets. See the crate docs for what
//! each check establishes.

use crate::basis::{read_basis, Basis, Group};
use crate::smt::{self, Answer, Query};
use crate::{BlockReport, Counterexample, Options, Report, Verdict, VerifyError};
use num_traits::{Signed, Zero};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use tfc_ir::ast::{Encoding, Init, Let, Op, Stmt, Stop};
use tfc_ir::check::{all_lets, AggregateVerdict, Checked, Scope};
use tfc_ir::eval;
use tfc_ir::model::{Head, LoopStop, Matrix, Mlp, Model};
use tfc_ir::{Rat, Value};

pub(crate) type Vector = BTreeMap<usize, Rat>;
pub(crate) type Assignment = BTreeMap<String, Value>;

fn rat(n: i64) -> Rat {
    Rat::from_integer(n.into())
}

fn add(v: &mut Vector, d: usize, x: Rat) {
    let e = v.entry(d).or_insert_with(Rat::zero);
    *e += x;
    if e.is_zero() {
        v.remove(&d);
    }
}

/// x · W for a sparse row vector x.
pub(crate) fn vecmat(x: &Vector, w: &Matrix) -> Vector {
    let mut out = Vector::new();
    for (i, j, v) in &w.entries {
        if let Some(xi) = x.get(i) {
            add(&mut out, *j, xi * v);
        }
    }
    out
}

pub(crate) fn dot(a: &Vector, b: &Vector) -> Rat {
    a.iter().filter_map(|(k, x)| b.get(k).map(|y| x * y)).sum()
}

fn rows(m: &Matrix) -> BTreeSet<usize> {
    m.entries.iter().map(|e| e.0).collect()
}

/// A failed local check, before confirmation.
#[derive(Clone, Debug)]
pub(crate) struct Failure(pub(crate) String);

/// What a block check concluded.
enum Outcome {
    Proved { method: String, detail: String },
    Failed(Failure),
    Unknown(String),
}

/// The program-side facts the checks need.
pub(crate) struct Ctx<'a> {
    pub(crate) checked: &'a Checked,
    pub(crate) basis: Basis,
    pub(crate) lets: BTreeMap<String, &'a Let>,
    pub(crate) opts: &'a Options,
    pub(crate) model: &'a Model,
}

impl Ctx<'_> {
    pub(crate) fn set_of(&self, name: &str) -> Vec<Value> {
        if name == "@indices" {
            return (0..self.checked.program.max_len).map(|i| Value::int(i as i64)).collect();
        }
        self.checked.get(name).and_then(|i| i.set()).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// The group owning a dimension (IR name), or a role (`one`, `bos`, `scratch.*`).
    pub(crate) fn owner(&self, d: usize) -> &str {
        &self.basis.owner[d]
    }

    /// IR names of the groups a matrix reads (excluding one/bos); errors on scratch.
    pub(crate) fn groups_read(&self, m: &Matrix, allow_scratch: bool) -> Result<Vec<String>, Failure> {
        let mut out = BTreeSet::new();
        for d in rows(m) {
            let o = self.owner(d);
            if o == "one" || o == "bos" {
                continue;
            }
            if o.starts_with("scratch.") {
                if allow_scratch {
                    continue;
                }
                return Err(Failure(format!("reads scratch dimension `{o}`")));
            }
            out.insert(self.group_name(o));
        }
        Ok(out.into_iter().collect())
    }

    /// The canonical IR name of a raw basis owner (`@tokens` → the program's tokens name).
    fn group_name(&self, owner: &str) -> String {
        match owner {
            "@tokens" => self.lets.values().find(|l| l.op == Op::Tokens).map(|l| l.name.text.clone()).unwrap_or_else(|| owner.into()),
            "@indices" => self.lets.values().find(|l| l.op == Op::Indices).map(|l| l.name.text.clone()).unwrap_or_else(|| owner.into()),
            o => o.to_string(),
        }
    }

    pub(crate) fn group(&self, name: &str) -> Option<&Group> {
        self.basis.groups.get(name)
    }

    /// A value as a function of the values in `asg`, by the program's elementwise instructions.
    fn value_of(&self, name: &str, asg: &Assignment) -> Result<Value, String> {
        if let Some(v) = asg.get(name) {
            return Ok(v.clone());
        }
        let Some(l) = self.lets.get(name) else { return Err(name.to_string()) };
        match &l.op {
            Op::Map { arg, func } => {
                let x = self.value_of(&arg.text, asg)?;
                eval::apply(func, &[x]).map_err(|e| format!("{name}: {e}"))
            }
            Op::SeqMap { lhs, rhs, func } => {
                let x = self.value_of(&lhs.text, asg)?;
                let y = self.value_of(&rhs.text, asg)?;
                eval::apply(func, &[x, y]).map_err(|e| format!("{name}: {e}"))
            }
            Op::Const(c) => Ok(c.clone()),
            Op::Tokens => {
                // Every `tokens` instruction is the same value.
                self.lets.values().filter(|l| l.op == Op::Tokens).find_map(|l| asg.get(&l.name.text).cloned()).ok_or_else(|| name.to_string())
            }
            Op::Indices => self
                .lets
                .values()
                .filter(|l| l.op == Op::Indices)
                .find_map(|l| asg.get(&l.name.text).cloned())
                .or_else(|| asg.get("@indices").cloned())
                .ok_or_else(|| name.to_string()),
            Op::Length if self.checked.program.causal => {
                let i = self
                    .lets
                    .values()
                    .filter(|l| l.op == Op::Indices)
                    .find_map(|l| asg.get(&l.name.text).cloned())
                    .or_else(|| asg.get("@indices").cloned())
                    .ok_or_else(|| name.to_string())?;
                Ok(Value::Num(i.as_num().cloned().unwrap_or_default() + rat(1)))
            }
            _ => Err(name.to_string()),
        }
    }

    fn selected(&self, sel: &str, kasg: &Assignment, qasg: &Assignment) -> Result<bool, String> {
        let l = self.lets.get(sel).ok_or_else(|| sel.to_string())?;
        match &l.op {
            Op::Select { keys, queries, pred } => {
                // A side the head does not read is fine when the predicate does not
                // depend on it: it must then give the same answer for every value
                // of that side's set.
                let side = |name: &str, asg: &Assignment| -> Result<Vec<Value>, String> {
                    match self.value_of(name, asg) {
                        Ok(v) => Ok(vec![v]),
                        Err(missing) => {
                            let set = self.set_of(name);
                            if set.is_empty() {
                                Err(missing)
                            } else {
                                Ok(set)
                            }
                        }
                    }
                };
                let ks = side(&keys.text, kasg)?;
                let qs = side(&queries.text, qasg)?;
                let mut answer = None;
                for k in &ks {
                    for q in &qs {
                        let h = eval::holds(pred, k, q).map_err(|e| e.to_string())?;
                        match answer {
                            None => answer = Some(h),
                            Some(a) if a != h => {
                                let missing = if ks.len() > 1 { &keys.text } else { &queries.text };
                                return Err(missing.clone());
                            }
                            _ => {}
                        }
                    }
                }
                Ok(answer.unwrap_or(false))
            }
            Op::And(a, b) => Ok(self.selected(&a.text, kasg, qasg)? && self.selected(&b.text, kasg, qasg)?),
            Op::Or(a, b) => Ok(self.selected(&a.text, kasg, qasg)? || self.selected(&b.text, kasg, qasg)?),
            Op::Not(a) => Ok(!self.selected(&a.text, kasg, qasg)?),
            _ => Err(format!("{sel} is not a selector")),
        }
    }

    /// States initialised from `name`, transitively (a later loop's state
    /// initialised from an earlier loop's state receives its writes too).
    fn fanout(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![name.to_string()];
        while let Some(cur) = todo.pop() {
            for s in &self.checked.program.body {
                if let Stmt::Loop(lp) = s {
                    for st in &lp.state {
                        if matches!(&st.init, Init::Value(n) if n.text == cur) && !out.contains(&st.name.text) {
                            out.push(st.name.text.clone());
                            todo.push(st.name.text.clone());
                        }
                    }
                }
            }
        }
        out
    }

    /// The residual delta that writes value `v` for `name`: its own group and its fan-out states.
    fn write(&self, name: &str, v: &Value) -> Vector {
        let mut out = Vector::new();
        for n in std::iter::once(name.to_string()).chain(self.fanout(name)) {
            if let Some(g) = self.group(&n) {
                for (d, x) in g.enc(v) {
                    add(&mut out, d, x);
                }
            }
        }
        out
    }

    /// The dims a value's write may touch.
    fn write_dims(&self, name: &str) -> BTreeSet<usize> {
        std::iter::once(name.to_string())
            .chain(self.fanout(name))
            .filter_map(|n| self.group(&n).map(|g| g.dims()))
            .flatten()
            .collect()
    }

    fn baseline(&self, name: &str) -> Vector {
        match self.lets.get(name).map(|l| &l.op) {
            Some(Op::Aggregate { default, .. }) => {
                let d = default.clone().unwrap_or(Value::int(0));
                self.write(name, &d)
            }
            _ => Vector::new(),
        }
    }

    /// The residual at a non-BOS position holding `asg` (only the groups in it), plus `one`.
    pub(crate) fn residual(&self, asg: &Assignment) -> Vector {
        let mut x = Vector::new();
        add(&mut x, self.basis.one, rat(1));
        for (n, v) in asg {
            if let Some(g) = self.group(n) {
                for (d, val) in g.enc(v) {
                    add(&mut x, d, val);
                }
            }
        }
        x
    }

    pub(crate) fn bos_residual(&self) -> Vector {
        let mut x = Vector::new();
        add(&mut x, self.basis.one, rat(1));
        add(&mut x, self.basis.bos, rat(1));
        x
    }

    /// Every assignment of values to `groups`, or `None` past the limit.
    pub(crate) fn combos(&self, groups: &[String]) -> Option<Vec<Assignment>> {
        let mut total: usize = 1;
        for g in groups {
            total = total.saturating_mul(self.set_of(g).len().max(1));
        }
        if total > self.opts.enum_limit {
            return None;
        }
        let mut out = vec![Assignment::new()];
        for g in groups {
            let set = self.set_of(g);
            let mut next = Vec::with_capacity(out.len() * set.len());
            for a in &out {
                for v in &set {
                    let mut b = a.clone();
                    b.insert(g.clone(), v.clone());
                    next.push(b);
                }
            }
            out = next;
        }
        Some(out)
    }
}

fn show(asg: &Assignment) -> String {
    if asg.is_empty() {
        return "(nothing)".into();
    }
    asg.iter().map(|(k, v)| format!("%{k}={v}")).collect::<Vec<_>>().join(", ")
}

/// What a block is, for the first pass.
#[derive(Clone, Debug)]
enum Piece {
    Head { layer: usize, idx: usize },
    Mlp { layer: usize, idx: usize },
}

/// A block with the values present before it.
struct Block {
    layer: usize,
    kind: &'static str,
    pieces: Vec<Piece>,
    present: BTreeSet<String>,
    /// Width instructions whose head ran in this layer's attention, with their scratch dim.
    widths: BTreeMap<String, usize>,
    in_loop: Option<usize>,
}

/// Verifies a model against a checked program.
pub fn verify(checked: &Checked, model: &Model, opts: &Options) -> Result<Report, VerifyError> {
    let prog = &checked.program;
    if model.program != prog.name || model.vocab != prog.vocab || model.max_len != prog.max_len {
        return Err(VerifyError::Mismatch(format!(
            "the model is of `{}` (vocab of {}, max_len {}), the program is `{}` (vocab of {}, max_len {})",
            model.program,
            model.vocab.len(),
            model.max_len,
            prog.name,
            prog.vocab.len(),
            prog.max_len
        )));
    }
    model.validate().map_err(|e| VerifyError::Mismatch(e.to_string()))?;
    let basis = read_basis(&model.basis, checked).map_err(VerifyError::Mismatch)?;
    let lets: BTreeMap<String, &Let> = all_lets(&prog.body).into_iter().map(|l| (l.name.text.clone(), l)).collect();
    let ctx = Ctx { checked, basis, lets, opts, model };
    let mut blocks_out: Vec<BlockReport> = Vec::new();

    // Structure: causal flag, loops.
    let t0 = Instant::now();
    let loops: Vec<&tfc_ir::ast::Loop> = prog.body.iter().filter_map(|s| if let Stmt::Loop(l) = s { Some(l) } else { None }).collect();
    let structure = structure_check(&ctx, &loops);
    blocks_out.push(report(None, "structure", vec![], structure, t0));

    // Embedding.
    let t0 = Instant::now();
    let (embed_outcome, mut present) = embedding_check(&ctx);
    blocks_out.push(report(None, "embed", vec![], embed_outcome, t0));

    // First pass: the present set before each block.
    let mut blocks: Vec<Block> = Vec::new();
    let loop_of_layer = |l: usize| model.loops.iter().position(|lp| lp.layers.contains(&l));
    let mut state_entry: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (li, layer) in model.layers.iter().enumerate() {
        let in_loop = loop_of_layer(li);
        if let Some(k) = in_loop {
            if model.loops[k].layers.start == li {
                // The state is present in the body (initialised, or from the last iteration).
                for st in loops.get(k).map(|l| l.state.as_slice()).unwrap_or(&[]) {
                    present.insert(st.name.text.clone());
                }
                state_entry.insert(k, present.clone());
            }
        }
        let heads: Vec<Piece> = (0..layer.attn.len()).map(|idx| Piece::Head { layer: li, idx }).collect();
        let mut widths = BTreeMap::new();
        let mut written = Vec::new();
        for h in &layer.attn {
            if let Some(name) = h.instructions.first().map(|s| s.trim_start_matches('%').to_string()) {
                let is_width = matches!(ctx.lets.get(&name).map(|l| &l.op), Some(Op::Width(_)) | Some(Op::Length));
                if is_width {
                    if let Some(d) = h.w_o.entries.first().map(|e| e.1) {
                        widths.insert(name.clone(), d);
                    }
                } else {
                    written.push(name);
                }
            }
        }
        blocks.push(Block { layer: li, kind: "attn", pieces: heads, present: present.clone(), widths: BTreeMap::new(), in_loop });
        for n in written {
            present.insert(n.clone());
            present.extend(ctx.fanout(&n));
        }
        let mlps: Vec<Piece> = (0..layer.mlps.len()).map(|idx| Piece::Mlp { layer: li, idx }).collect();
        blocks.push(Block { layer: li, kind: "mlp", pieces: mlps, present: present.clone(), widths, in_loop });
        for m in &layer.mlps {
            if let Some(name) = m.instructions.first() {
                let n = name.trim_start_matches('%').to_string();
                if !n.starts_with("loop ") {
                    present.insert(n.clone());
                    present.extend(ctx.fanout(&n));
                }
            }
        }
        if let Some(k) = in_loop {
            if model.loops[k].layers.end == li + 1 {
                // After the loop: what was there at entry (with the states), body values restored.
                present = state_entry.get(&k).cloned().unwrap_or_default();
            }
        }
    }

    // Second pass: the checks, in parallel.
    let results: Vec<BlockReport> = blocks
        .par_iter()
        .map(|b| {
            let t0 = Instant::now();
            let mut instructions = Vec::new();
            let mut outcomes = Vec::new();
            for p in &b.pieces {
                let (name, outcome) = match p {
                    Piece::Head { layer, idx } => {
                        let h = &model.layers[*layer].attn[*idx];
                        (h.instructions.join(","), check_head(&ctx, h, b))
                    }
                    Piece::Mlp { layer, idx } => {
                        let m = &model.layers[*layer].mlps[*idx];
                        (m.instructions.join(","), check_mlp(&ctx, m, b))
                    }
                };
                instructions.push(name);
                outcomes.push(outcome);
            }
            let combined = combine(outcomes);
            report(Some(b.layer), b.kind, instructions, combined, t0)
        })
        .collect();
    blocks_out.extend(results.into_iter().filter(|r| !r.instructions.is_empty()));

    // Readout.
    let t0 = Instant::now();
    let readout = readout_check(&ctx, &present);
    blocks_out.push(report(None, "readout", vec![model.output.name.clone()], readout, t0));

    // Categorical aggregates over whole sequences.
    for (name, v) in &checked.aggregates {
        let t0 = Instant::now();
        let outcome = match v {
            AggregateVerdict::AtMostOneKey => Outcome::Proved { method: "checker".into(), detail: "the selector picks at most one key".into() },
            AggregateVerdict::ValueDeterminedByQuery => {
                Outcome::Proved { method: "checker".into(), detail: "every key a query can select carries the same value".into() }
            }
            AggregateVerdict::Exhaustive(n) => Outcome::Proved { method: "exhaustive".into(), detail: format!("all {n} admitted inputs run, one value each time") },
            AggregateVerdict::Undecided(_) => match crate::seq::single_valued(checked, name, opts) {
                crate::seq::SeqOutcome::Proved(detail) => Outcome::Proved { method: "z3 (bounded over every length)".into(), detail },
                crate::seq::SeqOutcome::Witness(input) => {
                    Outcome::Failed(Failure(format!("on input `{}` a query selects keys with different values", input.join(" "))))
                }
                crate::seq::SeqOutcome::Unknown(why) => Outcome::Unknown(why),
            },
        };
        blocks_out.push(report(None, "aggregate", vec![format!("%{name}")], outcome, t0));
    }

    // Confirm failures with a concrete input; collect the evidence either way.
    let (evidence, mut mismatch) = crate::evidence::differential(prog, model, opts.evidence_inputs, opts.evidence_seconds);
    // A failed local check with no witness yet: look again, among long inputs.
    if mismatch.is_none() && blocks_out.iter().any(|b| b.verdict == Verdict::Refuted) {
        mismatch = crate::evidence::long_inputs(prog, model, opts.evidence_inputs.max(500), opts.evidence_seconds.max(2.0));
    }
    let mut counterexample = None;
    for b in &mut blocks_out {
        if b.verdict == Verdict::Refuted {
            match &mismatch {
                Some(m) => {
                    if counterexample.is_none() {
                        counterexample = Some(Counterexample {
                            input: crate::seq_string(&m.input),
                            position: m.position,
                            expected: m.expected.clone(),
                            actual: m.actual.clone(),
                            block: format!("{} {}", b.layer.map_or("-".into(), |l| format!("layer {l}")), b.kind),
                            instruction: b.instructions.join(", "),
                            check: b.detail.clone(),
                        });
                    }
                }
                None => {
                    if !b.detail.starts_with("on input") {
                        b.verdict = Verdict::Unknown;
                        b.detail = format!(
                            "{}; no input realizing it was found in {} runs of the model against the interpreter",
                            b.detail, evidence.inputs
                        );
                    } else if counterexample.is_none() {
                        counterexample = Some(Counterexample {
                            input: b.detail.split('`').nth(1).unwrap_or("").split_whitespace().map(String::from).collect(),
                            position: 0,
                            expected: "a single value".into(),
                            actual: "keys with different values".into(),
                            block: b.kind.clone(),
                            instruction: b.instructions.join(", "),
                            check: b.detail.clone(),
                        });
                    }
                }
            }
        }
    }
    // A mismatch that no local check explains is itself a refutation (the
    // local checks are incomplete there): never report such a model proved.
    if let Some(m) = &mismatch {
        if !blocks_out.iter().any(|b| b.verdict == Verdict::Refuted) {
            blocks_out.push(BlockReport {
                layer: None,
                kind: "end-to-end".into(),
                instructions: vec![],
                verdict: Verdict::Refuted,
                method: "differential run".into(),
                detail: "the model disagrees with the interpreter although every local check passed".into(),
                time_ms: 0.0,
            });
            counterexample = Some(Counterexample {
                input: crate::seq_string(&m.input),
                position: m.position,
                expected: m.expected.clone(),
                actual: m.actual.clone(),
                block: "end-to-end".into(),
                instruction: String::new(),
                check: "differential run".into(),
            });
        }
    }
    let verdict = blocks_out.iter().map(|b| b.verdict).max().unwrap_or(Verdict::Unknown);
    let smt_files = crate::seq::take_emitted();
    Ok(Report { program: prog.name.clone(), verdict, blocks: blocks_out, counterexample, evidence, smt_files })
}

fn report(layer: Option<usize>, kind: &str, instructions: Vec<String>, o: Outcome, t0: Instant) -> BlockReport {
    let (verdict, method, detail) = match o {
        Outcome::Proved { method, detail } => (Verdict::Proved, method, detail),
        Outcome::Failed(Failure(d)) => (Verdict::Refuted, "enumeration".into(), d),
        Outcome::Unknown(d) => (Verdict::Unknown, "-".into(), d),
    };
    BlockReport { layer, kind: kind.into(), instructions, verdict, method, detail, time_ms: t0.elapsed().as_secs_f64() * 1000.0 }
}

fn combine(outcomes: Vec<Outcome>) -> Outcome {
    let mut methods = BTreeSet::new();
    let mut details = Vec::new();
    let mut unknown = None;
    for o in outcomes {
        match o {
            Outcome::Failed(f) => return Outcome::Failed(f),
            Outcome::Unknown(u) => unknown = Some(u),
            Outcome::Proved { method, detail } => {
                methods.insert(method);
                details.push(detail);
            }
        }
    }
    if let Some(u) = unknown {
        return Outcome::Unknown(u);
    }
    Outcome::Proved { method: methods.into_iter().collect::<Vec<_>>().join("+"), detail: details.join("; ") }
}

fn structure_check(ctx: &Ctx, loops: &[&tfc_ir::ast::Loop]) -> Outcome {
    let m = ctx.model;
    let p = &ctx.checked.program;
    if m.causal != p.causal {
        return Outcome::Failed(Failure(format!("the model's attention is {}causal, the program's {}", if m.causal { "" } else { "non-" }, if p.causal { "causal" } else { "not" })));
    }
    if m.loops.len() != loops.len() {
        return Outcome::Failed(Failure(format!("the program has {} loop(s), the model {}", loops.len(), m.loops.len())));
    }
    for (k, (ml, pl)) in m.loops.iter().zip(loops).enumerate() {
        let ok = match (&ml.stop, &pl.stop) {
            (LoopStop::Fixed(a), Stop::Fixed(b)) => a == b,
            (LoopStop::Until { halt_dim, max }, Stop::Until { halt, max: pmax }) => {
                let dim_ok = match ctx.group(&halt.text) {
                    Some(Group::Cat(g)) => g.get(&Value::int(1)) == Some(halt_dim),
                    Some(Group::Num(d)) => d == halt_dim,
                    None => false,
                };
                dim_ok && max == pmax
            }
            _ => false,
        };
        if !ok {
            return Outcome::Failed(Failure(format!("loop {k}'s stop rule differs from the program's")));
        }
        // Every layer of the loop implements only this loop's body (or its commit).
        for li in ml.layers.clone() {
            let layer = &m.layers[li];
            let names = layer.attn.iter().map(|h| &h.instructions).chain(layer.mlps.iter().map(|x| &x.instructions));
            for ins in names {
                for n in ins {
                    let n = n.trim_start_matches('%');
                    let in_body = ctx.checked.get(n).is_some_and(|i| i.scope == Scope::LoopBody(k));
                    if !in_body && *n != format!("loop {k} commit") {
                        return Outcome::Failed(Failure(format!("layer {li} is in loop {k} but implements `{n}`, which is not in its body")));
                    }
                }
            }
        }
    }
    Outcome::Proved { method: "structure".into(), detail: format!("{} loop(s), attention {}", loops.len(), if p.causal { "causal" } else { "full" }) }
}

fn embedding_check(ctx: &Ctx) -> (Outcome, BTreeSet<String>) {
    let m = ctx.model;
    let p = &ctx.checked.program;
    let mut present = BTreeSet::new();
    let mut pos_expected: Vector = Vector::new();
    let tokens_name = ctx.lets.values().find(|l| l.op == Op::Tokens).map(|l| l.name.text.clone());
    let token_writes = |v: &Value| -> Vector {
        let mut x = Vector::new();
        add(&mut x, ctx.basis.one, rat(1));
        if let Some(t) = &tokens_name {
            for (d, val) in ctx.write(t, v) {
                add(&mut x, d, val);
            }
        }
        x
    };
    let row = |mat: &Matrix, r: usize| -> Vector { mat.row(r).iter().map(|e| (e.1, e.2.clone())).collect() };
    if row(&m.token_embed, 0) != ctx.bos_residual() {
        return (Outcome::Failed(Failure("the BOS token does not embed as exactly one = 1, bos = 1".into())), present);
    }
    for (k, v) in p.vocab.iter().enumerate() {
        if row(&m.token_embed, k + 1) != token_writes(v) {
            return (Outcome::Failed(Failure(format!("token `{v}` does not embed as its one-hot (and `one`)"))), present);
        }
    }
    if let Some(t) = &tokens_name {
        if ctx.group(t).is_some() {
            for l in ctx.lets.values().filter(|l| l.op == Op::Tokens) {
                present.insert(l.name.text.clone());
            }
            present.extend(ctx.fanout(t));
        }
    }
    if !row(&m.pos_embed, 0).is_empty() {
        return (Outcome::Failed(Failure("the BOS position embeds something".into())), present);
    }
    // Position rows: indices, constants, constant-initialised states, aggregate baselines.
    let idx_name = ctx.lets.values().find(|l| l.op == Op::Indices).map(|l| l.name.text.clone()).or_else(|| ctx.group("@indices").map(|_| "@indices".to_string()));
    let consts: Vec<(&str, Value)> = ctx.lets.values().filter_map(|l| if let Op::Const(c) = &l.op { Some((l.name.text.as_str(), c.clone())) } else { None }).collect();
    for (n, c) in &consts {
        for (d, x) in ctx.write(n, c) {
            add(&mut pos_expected, d, x);
        }
        if ctx.group(n).is_some() {
            present.insert(n.to_string());
            present.extend(ctx.fanout(n));
        }
    }
    for s in &p.body {
        if let Stmt::Loop(lp) = s {
            for st in &lp.state {
                if let Init::Const(c) = &st.init {
                    for (d, x) in ctx.write(&st.name.text, c) {
                        add(&mut pos_expected, d, x);
                    }
                }
            }
        }
    }
    for l in ctx.lets.values() {
        if matches!(l.op, Op::Aggregate { .. }) {
            for (d, x) in ctx.baseline(&l.name.text) {
                add(&mut pos_expected, d, x);
            }
        }
    }
    for pos in 1..=p.max_len {
        let mut want = pos_expected.clone();
        if let Some(i) = &idx_name {
            let iv = Value::int(pos as i64 - 1);
            let w = if i == "@indices" { ctx.group(i).map(|g| g.enc(&iv).into_iter().collect()).unwrap_or_default() } else { ctx.write(i, &iv) };
            for (d, x) in w {
                add(&mut want, d, x);
            }
        }
        if row(&m.pos_embed, pos) != want {
            return (Outcome::Failed(Failure(format!("position {} does not embed as its index, the constants and the aggregates' defaults", pos - 1))), present);
        }
    }
    if let Some(i) = &idx_name {
        if ctx.group(i).is_some() {
            for l in ctx.lets.values().filter(|l| l.op == Op::Indices) {
                present.insert(l.name.text.clone());
            }
            present.insert(i.clone());
            present.extend(ctx.fanout(i));
        }
    }
    (Outcome::Proved { method: "exact".into(), detail: format!("{} token rows, {} position rows", p.vocab.len() + 1, p.max_len + 1) }, present)
}

fn readout_check(ctx: &Ctx, present: &BTreeSet<String>) -> Outcome {
    let out = &ctx.checked.program.output.text;
    let r = &ctx.model.output;
    if r.name.trim_start_matches('%') != out {
        return Outcome::Failed(Failure(format!("the readout reads `{}`, the program's output is `%{out}`", r.name)));
    }
    if !present.contains(out) {
        return Outcome::Failed(Failure(format!("the output `%{out}` is never computed")));
    }
    let ok = match (ctx.group(out), r.encoding) {
        (Some(Group::Cat(g)), Encoding::Cat) => {
            r.dims.len() == g.len() && r.dims.iter().zip(&r.values).all(|(d, v)| g.get(v) == Some(d))
        }
        (Some(Group::Num(d)), Encoding::Num) => r.dims == vec![*d],
        _ => false,
    };
    if ok {
        Outcome::Proved { method: "exact".into(), detail: format!("reads the dimensions of %{out}") }
    } else {
        Outcome::Failed(Failure(format!("the readout's dimensions are not those of `%{out}`")))
    }
}

fn check_head(ctx: &Ctx, h: &Head, b: &Block) -> Outcome {
    let [name] = h.instructions.as_slice() else {
        return Outcome::Failed(Failure(format!("a head must implement one instruction, this one names {}", h.instructions.len())));
    };
    let name = name.trim_start_matches('%');
    let Some(l) = ctx.lets.get(name) else {
        return Outcome::Failed(Failure(format!("the head names `%{name}`, which the program does not define")));
    };
    // The heads of a sublayer add up: an instruction implemented by two of them is written twice.
    let layer = &ctx.model.layers[b.layer];
    let twins = layer.attn.iter().filter(|o| o.instructions == h.instructions).count();
    if twins > 1 {
        return Outcome::Failed(Failure(format!("`%{name}` is implemented by {twins} heads of layer {}, whose writes add up", b.layer)));
    }
    let (sel, width, values, default) = match &l.op {
        Op::Aggregate { sel, values, default } => (Some(sel.text.clone()), false, Some(values.text.clone()), default.clone().unwrap_or(Value::int(0))),
        Op::Width(sel) => (Some(sel.text.clone()), true, None, Value::int(0)),
        Op::Length => (None, true, None, Value::int(0)),
        _ => return Outcome::Failed(Failure(format!("`%{name}` is a `{}`, which no head implements", l.op.keyword()))),
    };
    if b.present.contains(name) {
        return Outcome::Failed(Failure(format!("`%{name}` is computed twice")));
    }
    let read = |m: &Matrix| -> Result<Vec<String>, Failure> {
        let g = ctx.groups_read(m, false)?;
        for n in &g {
            if !b.present.contains(n) {
                return Err(Failure(format!("reads `%{n}` before it is computed")));
            }
        }
        Ok(g)
    };
    let (qg, kg, vg) = match (read(&h.w_q), read(&h.w_k), read(&h.w_v)) {
        (Ok(a), Ok(b_), Ok(c)) => (a, b_, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Outcome::Failed(e),
    };
    let (Some(qcs), Some(kcs)) = (ctx.combos(&qg), ctx.combos(&kg)) else {
        return Outcome::Unknown(format!("the score table of `%{name}` is larger than the enumeration limit of {}", ctx.opts.enum_limit));
    };
    if qcs.len().saturating_mul(kcs.len()) > ctx.opts.enum_limit.saturating_mul(50) {
        return Outcome::Unknown(format!("the score table of `%{name}` has {} × {} entries, beyond the limit", qcs.len(), kcs.len()));
    }
    let kvecs: Vec<Vector> = kcs.iter().map(|kc| vecmat(&ctx.residual(kc), &h.w_k)).collect();
    let k_bos = vecmat(&ctx.bos_residual(), &h.w_k);
    // Scores against the selector.
    for qc in &qcs {
        let q = vecmat(&ctx.residual(qc), &h.w_q);
        let s_bos = dot(&q, &k_bos);
        let mut top: Option<(Rat, &Assignment)> = None;
        for (kc, k) in kcs.iter().zip(&kvecs) {
            let s = dot(&q, k);
            let selected = match &sel {
                None => true,
                Some(sel) => match ctx.selected(sel, kc, qc) {
                    Ok(x) => x,
                    Err(missing) => {
                        return Outcome::Failed(Failure(format!(
                            "the head's maps do not read what the selector of `%{name}` needs (`%{missing}`)"
                        )))
                    }
                },
            };
            let fail = |why: &str| {
                Outcome::Failed(Failure(format!(
                    "query {} / key {}: score {} {why} (BOS scores {})",
                    show(qc),
                    show(kc),
                    tfc_ir::model::rat_to_string(&s),
                    tfc_ir::model::rat_to_string(&s_bos)
                )))
            };
            if selected {
                if width {
                    if s != s_bos {
                        return fail("for a selected key, not level with BOS");
                    }
                } else {
                    if s <= s_bos {
                        return fail("for a selected key, not above BOS");
                    }
                    match &top {
                        None => top = Some((s.clone(), kc)),
                        Some((t, k0)) if *t != s => {
                            return Outcome::Failed(Failure(format!(
                                "query {}: selected keys {} and {} score {} and {}; selected keys must tie",
                                show(qc),
                                show(k0),
                                show(kc),
                                tfc_ir::model::rat_to_string(t),
                                tfc_ir::model::rat_to_string(&s)
                            )))
                        }
                        _ => {}
                    }
                }
            } else if s >= s_bos {
                return fail("for an unselected key, not below BOS");
            }
        }
    }
    // The BOS query attends to BOS alone.
    let q_bos = vecmat(&ctx.bos_residual(), &h.w_q);
    let bos_self = dot(&q_bos, &k_bos);
    for (kc, k) in kcs.iter().zip(&kvecs) {
        if dot(&q_bos, k) >= bos_self {
            return Outcome::Failed(Failure(format!("the BOS query does not attend to BOS alone (key {} ties or wins)", show(kc))));
        }
    }
    // Values.
    let Some(vcs) = ctx.combos(&vg) else {
        return Outcome::Unknown(format!("the value map of `%{name}` reads more combinations than the limit"));
    };
    let out_of = |x: &Vector| vecmat(&vecmat(x, &h.w_v), &h.w_o);
    let bos_out = out_of(&ctx.bos_residual());
    if width {
        // BOS's value is 1 in one scratch dimension; every key's value is 0.
        let ok = bos_out.len() == 1 && bos_out.iter().all(|(d, x)| ctx.owner(*d).starts_with("scratch.") && *x == rat(1));
        if !ok {
            return Outcome::Failed(Failure(format!("the width head `%{name}` must give BOS the value 1 in a scratch dimension")));
        }
        // That dimension is its own: the decoder reads it (the first pass takes
        // it from `w_o`), no other head of the layer adds to it, and the
        // decoder, which zeroes it again, is in this layer.
        let scratch = *bos_out.keys().next().expect("one entry");
        if h.w_o.entries.iter().any(|e| e.1 != scratch) {
            return Outcome::Failed(Failure(format!("the width head `%{name}` writes outside its scratch dimension")));
        }
        if layer.attn.iter().filter(|o| o.w_o.entries.iter().any(|e| e.1 == scratch)).count() > 1 {
            return Outcome::Failed(Failure(format!(
                "the scratch dimension `{}` of `%{name}` is written by another head of layer {} too",
                ctx.model.basis[scratch], b.layer
            )));
        }
        if !layer.mlps.iter().any(|m| m.instructions == h.instructions) {
            return Outcome::Failed(Failure(format!("the width head `%{name}` has no decoder in layer {}", b.layer)));
        }
        for vc in &vcs {
            if !out_of(&ctx.residual(vc)).is_empty() {
                return Outcome::Failed(Failure(format!("the width head `%{name}` gives key {} a nonzero value", show(vc))));
            }
        }
    } else {
        if !bos_out.is_empty() {
            return Outcome::Failed(Failure(format!("BOS's value in the head of `%{name}` is not zero")));
        }
        let values = values.expect("aggregate");
        let base = ctx.write(name, &default);
        let allowed = ctx.write_dims(name);
        for vc in &vcs {
            let v = match ctx.value_of(&values, vc) {
                Ok(v) => v,
                Err(missing) => return Outcome::Failed(Failure(format!("the value map does not read what `%{values}` needs (`%{missing}`)"))),
            };
            let mut want = ctx.write(name, &v);
            for (d, x) in &base {
                add(&mut want, *d, -x.clone());
            }
            let got = out_of(&ctx.residual(vc));
            if got != want {
                let stray: Vec<&str> = got.keys().filter(|d| !allowed.contains(d)).map(|d| ctx.model.basis[*d].as_str()).collect();
                let what = if stray.is_empty() { String::new() } else { format!(" (writes outside its value: {})", stray.join(", ")) };
                return Outcome::Failed(Failure(format!("the value map sends {} to the wrong encoding of `%{name}` = {v}{what}", show(vc))));
            }
        }
    }
    Outcome::Proved {
        method: "enumeration".into(),
        detail: format!("%{name}: {} query × {} key combinations, {} values", qcs.len(), kcs.len(), vcs.len()),
    }
}

/// One MLP block's output on a residual.
fn mlp_out(m: &Mlp, x: &Vector) -> Vector {
    let mut pre = vecmat(x, &m.w_in);
    for (j, bj) in &m.b_in.entries {
        add(&mut pre, *j, bj.clone());
    }
    let hidden: Vector = pre.into_iter().filter(|(_, v)| v.is_positive()).collect();
    let mut out = vecmat(&hidden, &m.w_out);
    for (j, bj) in &m.b_out.entries {
        add(&mut out, *j, bj.clone());
    }
    out
}

fn check_mlp(ctx: &Ctx, m: &Mlp, b: &Block) -> Outcome {
    let [name] = m.instructions.as_slice() else {
        return Outcome::Failed(Failure(format!("an MLP block must implement one instruction, this one names {}", m.instructions.len())));
    };
    // The blocks of a sublayer add up: an instruction implemented by two of them is written twice.
    let twins = ctx.model.layers[b.layer].mlps.iter().filter(|o| o.instructions == m.instructions).count();
    if twins > 1 {
        return Outcome::Failed(Failure(format!("`{name}` is implemented by {twins} MLP blocks of layer {}, whose writes add up", b.layer)));
    }
    if let Some(rest) = name.strip_prefix("loop ") {
        let k: Option<usize> = rest.strip_suffix(" commit").and_then(|x| x.parse().ok());
        return match (k, b.in_loop) {
            (Some(k), Some(bk)) if k == bk => check_commit(ctx, m, b, k),
            _ => Outcome::Failed(Failure(format!("`{name}` is not in its loop's layers"))),
        };
    }
    let name = name.trim_start_matches('%').to_string();
    let Some(l) = ctx.lets.get(&name) else {
        return Outcome::Failed(Failure(format!("the MLP names `%{name}`, which the program does not define")));
    };
    if b.present.contains(&name) {
        return Outcome::Failed(Failure(format!("`%{name}` is computed twice")));
    }
    // BOS: nothing, except a width decoder zeroing its scratch.
    let is_width = matches!(l.op, Op::Width(_) | Op::Length);
    if is_width {
        let Some(&scratch) = b.widths.get(&name) else {
            return Outcome::Failed(Failure(format!("the decoder of `%{name}` is not in the layer of its head")));
        };
        let g = match ctx.groups_read(&m.w_in, true) {
            Ok(g) => g,
            Err(e) => return Outcome::Failed(e),
        };
        if !g.is_empty() || rows(&m.w_in).iter().any(|d| ctx.owner(*d).starts_with("scratch.") && *d != scratch) {
            return Outcome::Failed(Failure(format!("the decoder of `%{name}` reads more than its scratch dimension")));
        }
        let mut bos = ctx.bos_residual();
        add(&mut bos, scratch, rat(1));
        let mut want_bos = Vector::new();
        add(&mut want_bos, scratch, rat(-1));
        if mlp_out(m, &bos) != want_bos {
            return Outcome::Failed(Failure(format!("at BOS the decoder of `%{name}` must only zero its scratch")));
        }
        let set = ctx.set_of(&name);
        for w in &set {
            let inv = rat(1) / (w.as_num().cloned().unwrap_or_default() + rat(1));
            let mut x = Vector::new();
            add(&mut x, ctx.basis.one, rat(1));
            add(&mut x, scratch, inv.clone());
            let mut want = ctx.write(&name, w);
            add(&mut want, scratch, -inv.clone());
            let got = mlp_out(m, &x);
            if got != want {
                return Outcome::Failed(Failure(format!(
                    "the decoder of `%{name}` misreads width {w}: from 1/(w+1) = {} it writes {}",
                    tfc_ir::model::rat_to_string(&inv),
                    describe(ctx, &got)
                )));
            }
        }
        return Outcome::Proved { method: "enumeration".into(), detail: format!("%{name} decoded exactly at all {} widths", set.len()) };
    }
    if !matches!(l.op, Op::Map { .. } | Op::SeqMap { .. }) {
        return Outcome::Failed(Failure(format!("`%{name}` is a `{}`, which no MLP implements", l.op.keyword())));
    }
    if !mlp_out(m, &ctx.bos_residual()).is_empty() {
        return Outcome::Failed(Failure(format!("the MLP of `%{name}` writes at BOS")));
    }
    let g = match ctx.groups_read(&m.w_in, false) {
        Ok(g) => g,
        Err(e) => return Outcome::Failed(e),
    };
    for n in &g {
        if !b.present.contains(n) {
            return Outcome::Failed(Failure(format!("the MLP of `%{name}` reads `%{n}` before it is computed")));
        }
    }
    let Some(combos) = ctx.combos(&g) else {
        return Outcome::Unknown(format!("the MLP of `%{name}` reads more value combinations than the enumeration limit of {}", ctx.opts.enum_limit));
    };
    for c in &combos {
        let v = match ctx.value_of(&name, c) {
            Ok(v) => v,
            Err(missing) => return Outcome::Failed(Failure(format!("the MLP of `%{name}` does not read `%{missing}`, which it needs"))),
        };
        let want = ctx.write(&name, &v);
        let got = mlp_out(m, &ctx.residual(c));
        if got != want {
            return Outcome::Failed(Failure(format!("the MLP of `%{name}` on {} writes {}, not `%{name}` = {v}", show(c), describe(ctx, &got))));
        }
    }
    Outcome::Proved { method: "enumeration".into(), detail: format!("%{name} exact on all {} input combinations", combos.len()) }
}

fn describe(ctx: &Ctx, v: &Vector) -> String {
    if v.is_empty() {
        return "nothing".into();
    }
    v.iter().map(|(d, x)| format!("{}={}", ctx.model.basis[*d], tfc_ir::model::rat_to_string(x))).collect::<Vec<_>>().join(", ")
}

/// The loop commit: next state as a difference, body values back to baseline.
fn check_commit(ctx: &Ctx, m: &Mlp, b: &Block, k: usize) -> Outcome {
    let prog = &ctx.checked.program;
    let Some(lp) = prog.body.iter().filter_map(|s| if let Stmt::Loop(l) = s { Some(l) } else { None }).nth(k) else {
        return Outcome::Failed(Failure(format!("no loop {k} in the program")));
    };
    // What must change: states (to their next values) and body values present (to baseline).
    let body: Vec<String> = b.present.iter().filter(|n| ctx.checked.get(n).is_some_and(|i| i.scope == Scope::LoopBody(k))).cloned().collect();
    let mut needed: BTreeSet<String> = body.iter().cloned().collect();
    for (s, n) in &lp.next {
        if s.text != n.text {
            needed.insert(s.text.clone());
            needed.insert(n.text.clone());
        }
    }
    let groups = match ctx.groups_read(&m.w_in, false) {
        Ok(g) => g,
        Err(e) => return Outcome::Failed(e),
    };
    let mut vars: BTreeSet<String> = groups.iter().cloned().collect();
    vars.extend(needed.iter().filter(|n| ctx.group(n).is_some()).cloned());
    for n in &vars {
        if !b.present.contains(n) {
            return Outcome::Failed(Failure(format!("the commit of loop {k} reads `%{n}`, which is not in the residual")));
        }
    }
    let vars: Vec<String> = vars.into_iter().collect();
    let expected = |asg: &Assignment| -> Result<Vector, String> {
        let mut want = Vector::new();
        for (s, n) in &lp.next {
            if s.text == n.text {
                continue;
            }
            let nv = ctx.value_of(&n.text, asg)?;
            let sv = asg.get(&s.text).cloned().ok_or_else(|| s.text.clone())?;
            ctx.group(&s.text).ok_or_else(|| s.text.clone())?;
            // The state's dimensions and those of the states initialised from it.
            for (d, x) in ctx.write(&s.text, &nv) {
                add(&mut want, d, x);
            }
            for (d, x) in ctx.write(&s.text, &sv) {
                add(&mut want, d, -x);
            }
        }
        for bn in &body {
            let v = asg.get(bn).cloned().ok_or_else(|| bn.clone())?;
            for (d, x) in ctx.baseline(bn) {
                add(&mut want, d, x);
            }
            for (d, x) in ctx.group(bn).map(|g| g.enc(&v)).unwrap_or_default() {
                add(&mut want, d, -x);
            }
        }
        Ok(want)
    };
    if !mlp_out(m, &ctx.bos_residual()).is_empty() {
        return Outcome::Failed(Failure(format!("the commit of loop {k} writes at BOS")));
    }
    if let Some(combos) = ctx.combos(&vars) {
        for c in &combos {
            let want = match expected(c) {
                Ok(w) => w,
                Err(missing) => return Outcome::Failed(Failure(format!("the commit of loop {k} cannot know `%{missing}`"))),
            };
            let got = mlp_out(m, &ctx.residual(c));
            if got != want {
                return Outcome::Failed(Failure(format!("the commit of loop {k} on {} writes {}, expected {}", show(c), describe(ctx, &got), describe(ctx, &want))));
            }
        }
        return Outcome::Proved { method: "enumeration".into(), detail: format!("loop {k} commit exact on {} combinations", combos.len()) };
    }
    match commit_components(ctx, m, k, &vars, lp, &body) {
        Some(outcome) => outcome,
        None => commit_smt(ctx, m, k, &vars, lp),
    }
}

/// The commit checked component by component: hidden units, expected
/// terms, values and output dimensions are linked when a unit reads or
/// writes them together or an expected term relates them (a state and its
/// next value). Output is a sum over units, so each component can be
/// checked alone on the product of its own values' sets; that is exact
/// and complete. `None` when a component is still too large to enumerate.
fn commit_components(ctx: &Ctx, m: &Mlp, k: usize, vars: &[String], lp: &tfc_ir::ast::Loop, body: &[String]) -> Option<Outcome> {
    // Union-find over nodes: groups (by index in `vars`) and output dims (offset).
    let nv = vars.len();
    let d = ctx.model.basis.len();
    let mut parent: Vec<usize> = (0..nv + d).collect();
    fn find(p: &mut Vec<usize>, x: usize) -> usize {
        let mut r = x;
        while p[r] != r {
            r = p[r];
        }
        let mut y = x;
        while p[y] != r {
            let n = p[y];
            p[y] = r;
            y = n;
        }
        r
    }
    let union = |p: &mut Vec<usize>, a: usize, b: usize| {
        let (ra, rb) = (find(p, a), find(p, b));
        if ra != rb {
            p[ra] = rb;
        }
    };
    let var_of = |name: &str| vars.iter().position(|v| v == name);
    let dim_owner_var = |dim: usize| -> Option<usize> { var_of(&ctx.group_name(ctx.owner(dim))) };
    // Units: the groups they read and dims they write.
    let mut unit_nodes: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, j, _) in &m.w_in.entries {
        if let Some(v) = dim_owner_var(*i) {
            unit_nodes.entry(*j).or_default().push(v);
        }
    }
    for (u, j, _) in &m.w_out.entries {
        unit_nodes.entry(*u).or_default().push(nv + *j);
    }
    for nodes in unit_nodes.values() {
        for w in nodes.windows(2) {
            union(&mut parent, w[0], w[1]);
        }
    }
    // Expected terms.
    for (st, n) in &lp.next {
        if st.text == n.text {
            continue;
        }
        let (Some(a), Some(b)) = (var_of(&st.text), var_of(&n.text)) else { return None };
        union(&mut parent, a, b);
        for dd in ctx.write_dims(&st.text) {
            union(&mut parent, a, nv + dd);
        }
    }
    for bn in body {
        let a = var_of(bn)?;
        for dd in ctx.group(bn)?.dims().into_iter().chain(ctx.baseline(bn).keys().copied()) {
            union(&mut parent, a, nv + dd);
        }
    }
    for (j, _) in &m.b_out.entries {
        let _ = find(&mut parent, nv + *j);
    }
    // Components.
    let mut comps: BTreeMap<usize, (Vec<usize>, BTreeSet<usize>)> = BTreeMap::new();
    for v in 0..nv {
        let r = find(&mut parent, v);
        comps.entry(r).or_default().0.push(v);
    }
    for dd in 0..d {
        let r = find(&mut parent, nv + dd);
        if let Some(c) = comps.get_mut(&r) {
            c.1.insert(dd);
        } else if unit_nodes.values().any(|ns| ns.contains(&(nv + dd))) || m.b_out.entries.iter().any(|(j, _)| *j == dd) {
            comps.entry(r).or_default().1.insert(dd);
        }
    }
    let mut checked_combos = 0usize;
    for (_, (cvars, cdims)) in comps {
        let names: Vec<String> = cvars.iter().map(|&v| vars[v].clone()).collect();
        let combos = ctx.combos(&names)?;
        for c in &combos {
            // Only this component's values are set; the others are at zero,
            // which does not touch this component's units or dims.
            let got: Vector = mlp_out(m, &ctx.residual(c)).into_iter().filter(|(dd, _)| cdims.contains(dd)).collect();
            let mut want = Vector::new();
            for (st, n) in &lp.next {
                if st.text == n.text || !names.contains(&st.text) {
                    continue;
                }
                let nv_ = ctx.value_of(&n.text, c).ok()?;
                let sv = c.get(&st.text)?.clone();
                for (dd, x) in ctx.write(&st.text, &nv_) {
                    add(&mut want, dd, x);
                }
                for (dd, x) in ctx.write(&st.text, &sv) {
                    add(&mut want, dd, -x);
                }
            }
            for bn in body.iter().filter(|b| names.contains(b)) {
                let v = c.get(bn)?.clone();
                for (dd, x) in ctx.baseline(bn) {
                    add(&mut want, dd, x);
                }
                for (dd, x) in ctx.group(bn)?.enc(&v) {
                    add(&mut want, dd, -x);
                }
            }
            if got != want {
                return Some(Outcome::Failed(Failure(format!(
                    "the commit of loop {k} on {} writes {}, expected {}",
                    show(c),
                    describe(ctx, &got),
                    describe(ctx, &want)
                ))));
            }
        }
        checked_combos += combos.len();
    }
    Some(Outcome::Proved {
        method: "enumeration".into(),
        detail: format!("loop {k} commit exact, by independent parts ({checked_combos} combinations in all)"),
    })
}

/// The commit with Z3: one variable per value (an index into its set for
/// one-hot values, a real constrained to its set for numbers), the ReLU
/// network in linear real arithmetic, and the claim negated.
fn commit_smt(ctx: &Ctx, m: &Mlp, k: usize, vars: &[String], lp: &tfc_ir::ast::Loop) -> Outcome {
    let mut q = Query::new("QF_LIRA");
    q.header.push(format!("tfc: program {}, loop {k} commit: the next state is written exactly and body values are restored", ctx.checked.program.name));
    let mut dim_term: BTreeMap<usize, String> = BTreeMap::new();
    dim_term.insert(ctx.basis.one, "1.0".into());
    let mut value_term: BTreeMap<String, String> = BTreeMap::new();
    for (i, n) in vars.iter().enumerate() {
        let set = ctx.set_of(n);
        match ctx.group(n) {
            Some(Group::Cat(g)) => {
                let c = format!("c{i}");
                q.int_const(&c);
                q.assert(format!("(and (>= {c} 0) (< {c} {}))", set.len()));
                for (j, v) in set.iter().enumerate() {
                    if let Some(d) = g.get(v) {
                        dim_term.insert(*d, format!("(ite (= {c} {j}) 1.0 0.0)"));
                    }
                }
                value_term.insert(n.clone(), c);
            }
            Some(Group::Num(d)) => {
                let x = format!("x{i}");
                q.real_const(&x);
                let alts: Vec<String> = set.iter().filter_map(|v| v.as_num()).map(|r| format!("(= {x} {})", smt::real(r))).collect();
                q.assert(format!("(or {})", alts.join(" ")));
                dim_term.insert(*d, x.clone());
                value_term.insert(n.clone(), x);
            }
            None => return Outcome::Unknown(format!("`%{n}` has no dimensions")),
        }
    }
    // States that initialise later loops' states are written in those dims
    // too; that is not encoded here.
    if lp.state.iter().any(|st| !ctx.fanout(&st.name.text).is_empty()) {
        return Outcome::Unknown(format!("the commit of loop {k} feeds later loops' states; too large to enumerate and not encoded for Z3"));
    }
    // Only commits whose next values are present values (not computed on the fly) are encoded.
    for (s, n) in &lp.next {
        if s.text != n.text && !vars.contains(&n.text) {
            return Outcome::Unknown(format!("the commit of loop {k}: next value `%{}` is not in the residual", n.text));
        }
    }
    let term = |d: usize| dim_term.get(&d).cloned().unwrap_or_else(|| "0.0".into());
    // Hidden units.
    let mut pre: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (i, j, w) in &m.w_in.entries {
        pre.entry(*j).or_default().push(format!("(* {} {})", smt::real(w), term(*i)));
    }
    for (j, bj) in &m.b_in.entries {
        pre.entry(*j).or_default().push(smt::real(bj));
    }
    let mut out: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (u, terms) in &pre {
        let h = format!("h{u}");
        q.real_const(&h);
        let p = format!("(+ 0.0 {})", terms.join(" "));
        q.assert(format!("(= {h} (ite (> {p} 0.0) {p} 0.0))"));
        for (i, j, w) in m.w_out.row(*u) {
            let _ = i;
            out.entry(*j).or_default().push(format!("(* {} {h})", smt::real(w)));
        }
    }
    for (j, bj) in &m.b_out.entries {
        out.entry(*j).or_default().push(smt::real(bj));
    }
    // Expected output per dimension.
    let mut want: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let prog_body: Vec<String> = vars.iter().filter(|n| ctx.checked.get(n).is_some_and(|i| i.scope == Scope::LoopBody(k))).cloned().collect();
    for (s, n) in &lp.next {
        if s.text == n.text {
            continue;
        }
        match (ctx.group(&s.text), ctx.group(&n.text)) {
            (Some(Group::Cat(gs)), Some(Group::Cat(gn))) => {
                for (v, ds) in gs {
                    want.entry(*ds).or_default().push(format!("(- {})", term(*ds)));
                    if let Some(dn) = gn.get(v) {
                        want.entry(*ds).or_default().push(term(*dn));
                    }
                }
            }
            (Some(Group::Num(ds)), Some(Group::Num(dn))) => {
                want.entry(*ds).or_default().push(format!("(- {})", term(*ds)));
                want.entry(*ds).or_default().push(term(*dn));
            }
            _ => return Outcome::Unknown(format!("state `%{}` and its next value differ in encoding", s.text)),
        }
    }
    for bn in &prog_body {
        if let Some(g) = ctx.group(bn) {
            for d in g.dims() {
                want.entry(d).or_default().push(format!("(- {})", term(d)));
            }
        }
        for (d, x) in ctx.baseline(bn) {
            // The baseline holds at non-BOS positions, where `one` = 1.
            want.entry(d).or_default().push(smt::real(&x));
        }
    }
    let dims: BTreeSet<usize> = out.keys().chain(want.keys()).copied().collect();
    let diffs: Vec<String> = dims
        .iter()
        .map(|d| {
            let o = out.get(d).map(|t| format!("(+ 0.0 {})", t.join(" "))).unwrap_or_else(|| "0.0".into());
            let w = want.get(d).map(|t| format!("(+ 0.0 {})", t.join(" "))).unwrap_or_else(|| "0.0".into());
            format!("(not (= {o} {w}))")
        })
        .collect();
    if diffs.is_empty() {
        return Outcome::Proved { method: "z3".into(), detail: format!("loop {k} commit writes nothing and needs to write nothing") };
    }
    q.assert(format!("(or {})", diffs.join(" ")));
    crate::seq::emit(&q, "unsat", &format!("{}.loop{k}.commit", ctx.checked.program.name), ctx.opts);
    match smt::solve(&q, ctx.opts.timeout_ms) {
        Answer::Unsat => Outcome::Proved { method: "z3".into(), detail: format!("loop {k} commit, {} values, ReLU network in linear arithmetic", vars.len()) },
        Answer::Sat(_) => Outcome::Failed(Failure(format!("the commit of loop {k} does not write the next state exactly for some state in the declared sets"))),
        Answer::Unknown(why) => Outcome::Unknown(format!("z3: {why}")),
    }
}

