//! Differential checking: the residual a compiled model *should* hold,
//! from the interpreter's values, and the first place it does not.
//!
//! The layout and lowering promise, after every recorded [`Step`] of the
//! exact forward pass, a residual that is a pure function of the
//! interpreter's values (`lower.rs`, module docs):
//!
//! * `one` is 1 at every position, `bos` is 1 at BOS only;
//! * **BOS is clean**: at position 0 every other dimension is 0, except a
//!   width head's scratch dimension between that head and its decoder
//!   (where it holds 1: BOS attends to itself alone);
//! * an **embedded** node (tokens, indices, constants) holds the encoding
//!   of its value from the embedding on;
//! * a node computed by a head or an MLP in slot `s` (slot `2L` is layer
//!   L's attention, `2L+1` its MLP) holds its **baseline** before slot `s`
//!   and the encoding of its value from slot `s` on; a `width` is ready
//!   one slot later, after its decoder. The baseline is the default's
//!   encoding for an aggregate (written by the embedding) and 0 otherwise;
//! * a `width`'s **scratch** dimension holds 1/(w+1) at a non-BOS position
//!   (the head's tie between the w selected keys and BOS) and 1 at BOS
//!   right after the width head, and 0 at every other step;
//! * a **loop state** holds, before its loop, its initial value (a
//!   constant, or whatever the node it is initialised from holds at that
//!   step — so the initialiser's baseline before the initialiser runs); in
//!   iteration t of the loop, the state at the start of iteration t until
//!   the commit, and from the commit on the state at the start of
//!   iteration t + 1 (the final state after the last one); after the loop,
//!   the final state;
//! * a loop **body** node holds, in iteration t, its baseline before its
//!   slot, its value in iteration t from its slot until the commit, and its
//!   baseline again from the commit on (the commit restores it, so the
//!   block can run again); outside its loop it holds its baseline.
//!
//! Loops are checked **exactly, per iteration and per sublayer**, not only
//! at their boundaries: the interpreter's trace gives every body value per
//! iteration ([`interp::TraceEntry::iteration`]) and every state at the
//! start of each iteration. When an `until` loop ran a different number
//! of times than the interpreter's (a wrong halting test), the residual
//! walk runs a copy of the model whose loops are pinned to the
//! interpreter's numbers of runs, so that steps stay aligned with the
//! trace; the real model's runs and outputs are compared afterwards (see
//! [`DiffError::Undiagnosed`]).
//!
//! Dimensions are filled additively, one node at a time, so this assumes
//! what [`crate::layout`] does today: every node owns its dimensions (no
//! two live nodes share one).
//!
//! [`first_mismatch`] reports the first (step, position, dimension), in
//! run order, then position (BOS first), then dimension, where the model's
//! exact residual differs from the promise; `tests/differential.rs` calls
//! it whenever a model's output disagrees with the interpreter's.

use crate::layout::Dims;
use crate::plan::{NodeId, NodeKind, Region, StateInit};
use crate::Compiled;
use num_traits::{One, Zero};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use tfc_ir::check::Checked;
use tfc_ir::diag::Diagnostic;
use tfc_ir::forward::{Attention, ForwardError, ForwardOptions, PreparedModel, Step};
use tfc_ir::interp::{self, Run, RunOptions};
use tfc_ir::model::LoopStop;
use tfc_ir::{Rat, Value};

/// The first residual coordinate where a model breaks its layout's promise.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// The step after which the residual first differs.
    pub step: Step,
    /// Its index in the run's list of steps.
    pub step_index: usize,
    /// What that step computes: the instructions of the heads (for an
    /// attention step) or MLP blocks (for an MLP step) of that sublayer, or
    /// `embedding`.
    pub computed_by: Vec<String>,
    /// The residual position: 0 is BOS, p ≥ 1 is input token p − 1.
    pub position: usize,
    /// The residual dimension.
    pub dim: usize,
    /// Its basis label (`%x:3`, `tokens:a`, `scratch.w0`, ...).
    pub label: String,
    /// The value the layout promises there.
    pub expected: Rat,
    /// The value the model holds there.
    pub actual: Rat,
    /// The first input index (0-based) where the real model's decoded
    /// output differs from the interpreter's, if it ran and differs.
    pub output_position: Option<usize>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.position == 0 { "BOS".to_string() } else { format!("token {}", self.position - 1) };
        write!(
            f,
            "residual differs after {} [{}] (step {}), position {} ({at}), dim {} `{}`: expected {}, actual {}",
            self.step,
            self.computed_by.join(", "),
            self.step_index,
            self.position,
            self.dim,
            self.label,
            self.expected,
            self.actual
        )?;
        if let Some(p) = self.output_position {
            write!(f, "; first differing output at index {p}")?;
        }
        Ok(())
    }
}

/// Why [`first_mismatch`] could not compare, or what it could not explain.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DiffError {
    /// The interpreter refused the input (E0602, E0603, E0604, ...): there
    /// is no meaning to compare with.
    #[error("the interpreter refused the input: {} {}", .0.code, .0.message)]
    Interpreter(Diagnostic),
    /// The pinned model (loops fixed to the interpreter's runs) did not run.
    #[error("the model did not run: {0}")]
    Forward(#[from] ForwardError),
    /// The interpreter's values break the plan (a value outside its node's
    /// value set, a symbol in a numerical node, a missing trace entry): a
    /// checker or planner bug, not a lowering one.
    #[error("the interpreter's values do not fit the plan: {0}")]
    Plan(String),
    /// The residual matched the layout at every step, yet the real model
    /// disagrees: its loops ran a different number of times (a wrong
    /// halting dimension), it failed, or its readout decoded something else.
    #[error("the residual matched at every step, but {0}")]
    Undiagnosed(String),
}

/// What a node holds at a step.
struct Holds<'v> {
    values: Cow<'v, [Value]>,
    /// A baseline (default or nothing): a value outside the set encodes as
    /// nothing, as [`crate::lower`] writes it, rather than being an error.
    baseline: bool,
}

/// The residuals a compiled model should hold on one input.
pub struct Expected<'a> {
    compiled: &'a Compiled,
    input: &'a [Value],
    indices: Vec<Value>,
    trace: HashMap<(&'a str, Option<usize>), &'a [Value]>,
    iterations: &'a [usize],
}

impl<'a> Expected<'a> {
    /// Expectations from a traced interpreter run on `input`
    /// ([`RunOptions::trace`] must have been set).
    pub fn new(compiled: &'a Compiled, run: &'a Run, input: &'a [Value]) -> Expected<'a> {
        let mut trace = HashMap::new();
        for e in &run.trace {
            trace.insert((e.name.as_str(), e.iteration), e.values.as_slice());
        }
        Expected { compiled, input, indices: (0..input.len()).map(|i| Value::int(i as i64)).collect(), trace, iterations: &run.iterations }
    }

    /// The slot a step ends (−1 for the embedding) and the (loop, iteration)
    /// it runs in, if its layer belongs to a loop.
    fn place(&self, step: Step) -> (i64, Option<(usize, usize)>) {
        let (slot, layer, iteration) = match step {
            Step::Embed => return (-1, None),
            Step::Attn { layer, iteration } => (2 * layer as i64, layer, iteration),
            Step::Mlp { layer, iteration } => (2 * layer as i64 + 1, layer, iteration),
        };
        let lp = self.compiled.schedule.loops.iter().position(|r| r.contains(&layer));
        (slot, lp.map(|k| (k, iteration)))
    }

    fn traced(&self, n: NodeId, iteration: Option<usize>) -> Result<&'a [Value], DiffError> {
        let name = self.compiled.plan.nodes[n].name.as_str();
        self.trace.get(&(name, iteration)).copied().ok_or_else(|| {
            DiffError::Plan(match iteration {
                Some(t) => format!("no trace of %{name} in loop iteration {t}"),
                None => format!("no trace of %{name}"),
            })
        })
    }

    /// The slot after which a computed node is ready.
    fn ready(&self, n: NodeId) -> Option<i64> {
        let s = self.compiled.schedule.slot[n]?;
        Some(match self.compiled.plan.nodes[n].kind {
            NodeKind::Width { .. } => s.0 as i64 + 1,
            _ => s.0 as i64,
        })
    }

    fn baseline(&self, n: NodeId) -> Option<Holds<'a>> {
        match &self.compiled.plan.nodes[n].kind {
            NodeKind::Aggregate { default, .. } => Some(Holds { values: Cow::Owned(vec![default.clone(); self.input.len()]), baseline: true }),
            _ => None,
        }
    }

    fn value(values: &'a [Value]) -> Option<Holds<'a>> {
        Some(Holds { values: Cow::Borrowed(values), baseline: false })
    }

    /// What node `n` holds after the step ending slot `g` (`None`: nothing).
    fn holds(&self, n: NodeId, g: i64, at: Option<(usize, usize)>) -> Result<Option<Holds<'a>>, DiffError> {
        let plan = &self.compiled.plan;
        let sched = &self.compiled.schedule;
        let node = &plan.nodes[n];
        Ok(match &node.kind {
            NodeKind::Tokens => Expected::value(self.input),
            NodeKind::Indices => Some(Holds { values: Cow::Owned(self.indices.clone()), baseline: false }),
            NodeKind::Const(v) => Some(Holds { values: Cow::Owned(vec![v.clone(); self.input.len()]), baseline: false }),
            NodeKind::State { loop_idx, init } => {
                let k = *loop_idx;
                let range = &sched.loops[k];
                let commit = sched.commits[k].0 as i64;
                if g < 2 * range.start as i64 {
                    match init {
                        StateInit::Const(v) => Some(Holds { values: Cow::Owned(vec![v.clone(); self.input.len()]), baseline: false }),
                        StateInit::Node(src) => self.holds(*src, g, at)?,
                    }
                } else if let Some(t) = at.filter(|(k2, _)| *k2 == k).map(|(_, t)| t) {
                    let runs = self.iterations.get(k).copied().unwrap_or(0);
                    if g < commit {
                        Expected::value(self.traced(n, Some(t))?)
                    } else if t + 1 < runs {
                        Expected::value(self.traced(n, Some(t + 1))?)
                    } else {
                        Expected::value(self.traced(n, None)?)
                    }
                } else {
                    Expected::value(self.traced(n, None)?)
                }
            }
            NodeKind::Aggregate { .. } | NodeKind::Width { .. } | NodeKind::Mlp { .. } => {
                let r = self.ready(n).ok_or_else(|| DiffError::Plan(format!("%{} is not scheduled", node.name)))?;
                match node.region {
                    Region::Segment(_) if g >= r => Expected::value(self.traced(n, None)?),
                    Region::Segment(_) => self.baseline(n),
                    Region::Loop(k) => match at {
                        Some((k2, t)) if k2 == k && g >= r && g < sched.commits[k].0 as i64 => Expected::value(self.traced(n, Some(t))?),
                        _ => self.baseline(n),
                    },
                }
            }
        })
    }

    /// The residual the layout promises after `step`, `[position][dim]`
    /// with position 0 = BOS.
    pub fn residual(&self, step: Step) -> Result<Vec<Vec<Rat>>, DiffError> {
        let (g, at) = self.place(step);
        let c = self.compiled;
        let layout = &c.layout;
        let d = layout.labels.len();
        let n = self.input.len();
        let mut x = vec![vec![Rat::zero(); d]; n + 1];
        for row in x.iter_mut() {
            row[layout.one] = Rat::one();
        }
        x[0][layout.bos] = Rat::one();
        for id in 0..c.plan.nodes.len() {
            let Some(h) = self.holds(id, g, at)? else { continue };
            let node = &c.plan.nodes[id];
            if h.values.len() != n {
                return Err(DiffError::Plan(format!("%{} has {} values on an input of {n}", node.name, h.values.len())));
            }
            for (p, v) in h.values.iter().enumerate() {
                match &layout.dims[id] {
                    Dims::Cat(m) => match m.get(v) {
                        Some(dim) => x[p + 1][*dim] += Rat::one(),
                        None if h.baseline => {}
                        None => return Err(DiffError::Plan(format!("%{} = {v} at index {p} is outside its value set", node.name))),
                    },
                    Dims::Num(dim) => match v.as_num() {
                        Some(r) => x[p + 1][*dim] += r,
                        None if h.baseline => {}
                        None => return Err(DiffError::Plan(format!("numerical %{} holds the symbol {v} at index {p}", node.name))),
                    },
                }
            }
        }
        // Scratch: 1/(w+1) (1 at BOS) right after the width head, else 0.
        for (&id, &dim) in &layout.scratch {
            if c.schedule.slot[id].map(|s| s.0 as i64) != Some(g) {
                continue;
            }
            let w = match (c.plan.nodes[id].region, at) {
                (Region::Loop(_), Some((_, t))) => self.traced(id, Some(t))?,
                _ => self.traced(id, None)?,
            };
            x[0][dim] = Rat::one();
            for (p, v) in w.iter().enumerate() {
                let wn = v.as_num().ok_or_else(|| DiffError::Plan(format!("width %{} is not a number", c.plan.nodes[id].name)))?;
                x[p + 1][dim] = Rat::one() / (wn + Rat::one());
            }
        }
        Ok(x)
    }
}

/// What a step computes, for reports.
pub fn computed_by(compiled: &Compiled, step: Step) -> Vec<String> {
    let layers = &compiled.model.layers;
    match step {
        Step::Embed => vec!["embedding".into()],
        Step::Attn { layer, .. } => layers.get(layer).map(|l| l.attn.iter().flat_map(|h| h.instructions.clone()).collect()).unwrap_or_default(),
        Step::Mlp { layer, .. } => layers.get(layer).map(|l| l.mlps.iter().flat_map(|m| m.instructions.clone()).collect()).unwrap_or_default(),
    }
}

/// Runs the interpreter (traced) and the exact model (hard attention) on
/// `tokens` and returns the first residual coordinate where the model
/// differs from what the layout promises, `None` when the residual matches
/// at every step and the real model's loop runs and outputs equal the
/// interpreter's.
///
/// The residual walk reads the real run's residuals when its loops ran as
/// many times as the interpreter's; otherwise (a wrong halting test) it
/// runs a copy of the model with every loop pinned to the interpreter's
/// number of runs, so that steps line up with the trace. The real run
/// gives [`Mismatch::output_position`] and [`DiffError::Undiagnosed`].
pub fn first_mismatch(compiled: &Compiled, checked: &Checked, tokens: &[Value]) -> Result<Option<Mismatch>, DiffError> {
    let run = interp::run(&checked.program, tokens, &RunOptions { trace: true }).map_err(DiffError::Interpreter)?;
    let model = &compiled.model;
    if model.loops.len() != run.iterations.len() {
        return Err(DiffError::Plan(format!("the model has {} loops, the program ran {}", model.loops.len(), run.iterations.len())));
    }
    let keep = ForwardOptions { keep_residuals: true };
    let prepared = PreparedModel::<Rat>::new(model)?;
    // Residuals first, decoding apart: a broken model's readout may be ambiguous.
    let real = prepared.residuals(tokens, Attention::Hard, &keep);
    let real_outputs = real.as_ref().map_err(Clone::clone).and_then(|r| prepared.decode(&r.final_residual));
    let pinned_run;
    let walked = match &real {
        Ok(r) if r.loop_iterations == run.iterations => r,
        _ => {
            let mut pinned = model.clone();
            for (lp, &runs) in pinned.loops.iter_mut().zip(&run.iterations) {
                lp.stop = LoopStop::Fixed(runs);
            }
            pinned_run = PreparedModel::<Rat>::new(&pinned)?.residuals(tokens, Attention::Hard, &keep)?;
            &pinned_run
        }
    };

    let output_position = real_outputs.as_ref().ok().and_then(|o| o.iter().zip(&run.output).position(|(a, b)| a != b));
    let expected = Expected::new(compiled, &run, tokens);
    for (k, (step, actual)) in walked.steps.iter().zip(&walked.residuals).enumerate() {
        let want = expected.residual(*step)?;
        for (p, (wrow, arow)) in want.iter().zip(actual).enumerate() {
            if let Some(dim) = (0..wrow.len()).find(|&d| wrow[d] != arow[d]) {
                return Ok(Some(Mismatch {
                    step: *step,
                    step_index: k,
                    computed_by: computed_by(compiled, *step),
                    position: p,
                    dim,
                    label: compiled.layout.labels[dim].clone(),
                    expected: wrow[dim].clone(),
                    actual: arow[dim].clone(),
                    output_position,
                }));
            }
        }
    }
    let real = real.map_err(|e| DiffError::Undiagnosed(format!("the real model fails: {e}")))?;
    if real.loop_iterations != run.iterations {
        return Err(DiffError::Undiagnosed(format!(
            "the real model's loops ran {:?} times, the interpreter's {:?} (a wrong halting dimension?)",
            real.loop_iterations, run.iterations
        )));
    }
    let outputs = real_outputs.map_err(|e| DiffError::Undiagnosed(format!("the readout fails: {e}")))?;
    match output_position {
        Some(p) => Err(DiffError::Undiagnosed(format!("the readout decodes {} at index {p} where the interpreter gives {}", outputs[p], run.output[p]))),
        None if outputs.len() != run.output.len() => {
            Err(DiffError::Undiagnosed(format!("the model gives {} outputs, the interpreter {}", outputs.len(), run.output.len())))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfc_ir::model::Matrix;

    fn compiled(src: &str) -> (Checked, Compiled) {
        let prog = tfc_ir::parse(src).expect("parses");
        let checked = tfc_ir::check(&prog).expect("checks");
        let c = crate::compile(&checked).expect("compiles");
        (checked, c)
    }

    fn toks(s: &str) -> Vec<Value> {
        s.split_whitespace().map(|t| tfc_ir::value::parse_value(t).expect("a value")).collect()
    }

    fn set_entry(m: &mut Matrix, i: usize, j: usize, v: Rat) {
        m.entries.retain(|(a, b, _)| !(*a == i && *b == j));
        if !v.is_zero() {
            m.entries.push((i, j, v));
        }
        m.entries.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    }

    const SORT: &str = "program sort {
  vocab {1, 2, 3}
  max_len 5
  %tok  = tokens
  %idx  = indices
  %key  = seqmap %tok, %idx { x + 1 * y / 5 } : cat
  %lt   = select %key, %key, lt
  %tgt  = width %lt
  %pick = select %tgt, %idx, eq
  %out  = aggregate %pick, %tok default 0 : cat
  output %out
}";

    const PARITY_LOOP: &str = "program par {
  vocab {0, 1}
  max_len 4
  %tok = tokens
  %idx = indices
  %prev = select %idx, %idx { k == q - 1 }
  loop {
    state %s : cat in {0, 1} = %tok
    iterations 3
    %p = aggregate %prev, %s default 0 : cat
    %x = seqmap %s, %p { mod(x + y, 2) } : cat
    next %s = %x
  }
  output %s
}";

    const HALT: &str = "program halt {
  vocab {0, 1}
  max_len 3
  %tok = tokens
  loop {
    state %h : cat in {0, 1} = %tok
    until %h max 2
    %n = map %h { 1 } : cat
    next %h = %n
  }
  output %h
}";

    #[test]
    fn diff_clean_models_match_everywhere() {
        let cases: [(&str, &[&str]); 3] = [
            (SORT, &["1", "2 3 1 2", "3 2 1 3 2", "1 1 1 1"]),
            (PARITY_LOOP, &["1", "0 1", "1 0 1 1", "1 1 1 1"]),
            (HALT, &["1", "0", "0 1 0", "1 1 1"]),
        ];
        for (src, inputs) in cases {
            let (checked, c) = compiled(src);
            for input in inputs {
                let r = first_mismatch(&c, &checked, &toks(input));
                assert!(matches!(r, Ok(None)), "{}: {input}: {r:?}", c.plan.program);
            }
        }
    }

    /// A planted error in a head's output matrix is found at that head's layer.
    #[test]
    fn diff_finds_a_planted_head_error() {
        let (checked, mut c) = compiled(SORT);
        let out = c.plan.node_named("out").expect("%out");
        let layer = c.schedule.slot[out].expect("scheduled").layer();
        let Dims::Cat(m) = &c.layout.dims[out] else { panic!("cat") };
        let (d1, d2) = (m[&Value::int(1)], m[&Value::int(2)]);
        // The head's value column that writes %out:1 writes %out:2 instead.
        let head = c.model.layers[layer].attn.iter_mut().find(|h| h.instructions == ["%out"]).expect("the %out head");
        let col = head.w_o.entries.iter().find(|e| e.1 == d1).expect("writes %out:1").0;
        set_entry(&mut head.w_o, col, d1, Rat::zero());
        set_entry(&mut head.w_o, col, d2, Rat::one());
        let m = first_mismatch(&c, &checked, &toks("2 3 1 2")).expect("compares").expect("finds the error");
        assert_eq!(m.step, Step::Attn { layer, iteration: 0 }, "{m}");
        assert!(m.computed_by.contains(&"%out".to_string()), "{m}");
        assert_eq!((m.position, m.dim, m.expected.clone(), m.actual.clone()), (1, d1, Rat::one(), Rat::zero()), "{m}");
        assert_eq!(m.output_position, Some(0), "{m}");
    }

    /// A planted error in an MLP's output weights is found at that MLP.
    #[test]
    fn diff_finds_a_planted_mlp_error() {
        let (checked, mut c) = compiled(SORT);
        let tgt = c.plan.node_named("tgt").expect("%tgt");
        let layer = c.schedule.slot[tgt].expect("scheduled").layer();
        let mlp = c.model.layers[layer].mlps.iter_mut().find(|m| m.instructions == ["%tgt"]).expect("the decoder");
        let (i, j, v) = mlp.w_out.entries[0].clone();
        set_entry(&mut mlp.w_out, i, j, v * Rat::from_integer(2.into()));
        let m = first_mismatch(&c, &checked, &toks("2 3 1 2")).expect("compares").expect("finds the error");
        assert_eq!(m.step, Step::Mlp { layer, iteration: 0 }, "{m}");
        assert!(m.computed_by.contains(&"%tgt".to_string()), "{m}");
        assert!(m.label.starts_with("%tgt:"), "{m}");
    }

    /// A planted error in a loop body's MLP is found in the loop's first run.
    #[test]
    fn diff_finds_a_planted_loop_error() {
        let (checked, mut c) = compiled(PARITY_LOOP);
        let x = c.plan.node_named("x").expect("%x");
        let layer = c.schedule.slot[x].expect("scheduled").layer();
        let mlp = c.model.layers[layer].mlps.iter_mut().find(|m| m.instructions == ["%x"]).expect("the seqmap");
        for e in mlp.w_out.entries.iter_mut() {
            e.2 = -e.2.clone();
        }
        let m = first_mismatch(&c, &checked, &toks("1 0 1 1")).expect("compares").expect("finds it");
        assert_eq!(m.step, Step::Mlp { layer, iteration: 0 }, "{m}");
        assert!(m.label.starts_with("%x:"), "{m}");
    }

    /// A wrong halting dimension leaves every residual right; it is still reported.
    #[test]
    fn diff_reports_a_wrong_halting_dimension() {
        let (checked, mut c) = compiled(HALT);
        let h = c.plan.node_named("h").expect("%h");
        let Dims::Cat(m) = &c.layout.dims[h] else { panic!("cat") };
        let zero_dim = m[&Value::int(0)];
        c.model.loops[0].stop = LoopStop::Until { halt_dim: zero_dim, max: 2 };
        let r = first_mismatch(&c, &checked, &toks("1 1"));
        assert!(matches!(r, Err(DiffError::Undiagnosed(_))), "{r:?}");
    }

    /// States initialised from earlier loops' states (categorical and
    /// numerical, through a constant-initialised state, over three loops):
    /// the fan-out must follow every write of the source state.
    const CHAIN: &str = "program chain {
  vocab {0, 1, 2}
  max_len 3
  %tok = tokens
  %t = map %tok { x } : num
  loop {
    state %a : cat in {0, 1, 2} = 0
    state %m : num in {0..6} = %t
    iterations 2
    %a1 = seqmap %a, %tok { min(x + y, 2) } : cat
    %m1 = map %m { min(x + 1, 6) } : num
    next %a = %a1
    next %m = %m1
  }
  loop {
    state %b : cat in {0..3} = %a
    state %n : num in {0..7} = %m
    iterations 1
    %b1 = map %b { min(x + 1, 3) } : cat
    %n1 = map %n { min(x + 1, 7) } : num
    next %b = %b1
    next %n = %n1
  }
  loop {
    state %c : cat in {0..3} = %b
    iterations 1
    %c1 = map %c { 3 - x } : cat
    next %c = %c1
  }
  %o = seqmap %c, %n { 10 * x + y } : num
  output %o
}";

    #[test]
    fn diff_states_initialised_from_states() {
        let (checked, c) = compiled(CHAIN);
        let prepared = PreparedModel::<Rat>::new(&c.model).expect("valid");
        let inputs = tfc_ir::check::all_inputs(&checked.program, 1000).expect("few inputs");
        for input in &inputs {
            let want = interp::run(&checked.program, input, &RunOptions::default()).expect("runs").output;
            let got = prepared.run(input, Attention::Hard, &ForwardOptions::default()).map(|r| r.outputs);
            assert_eq!(got.as_ref().ok(), Some(&want), "on {input:?}: {:?}", first_mismatch(&c, &checked, input));
            let r = first_mismatch(&c, &checked, input);
            assert!(matches!(r, Ok(None)), "on {input:?}: {r:?}");
        }
    }

    #[test]
    fn diff_needs_an_input_the_interpreter_accepts() {
        let (checked, c) = compiled(SORT);
        assert!(matches!(first_mismatch(&c, &checked, &toks("1 2 3 1 2 3")), Err(DiffError::Interpreter(_))));
    }
}
