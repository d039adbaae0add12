//! Stage 4, `layout_to_model`: exact rational weights.
//!
//! Conventions every construction here keeps (and `docs/LOWERING.md`
//! states for the verifier's readers):
//!
//! * **BOS stays clean.** At the BOS position the residual is `one = 1`,
//!   `bos = 1` and 0 elsewhere after every layer. Heads make the BOS query
//!   attend to BOS alone and give BOS a zero value; MLP units are off at
//!   BOS (they read one-hot dimensions, which are 0 there, or are gated by
//!   `−M·bos`); the only exception is a width head's scratch dimension,
//!   which its decoder zeroes in the same layer.
//! * **Scores.** A head's selector is a conjunction of r literals; the
//!   score of key j for query i is the number of literals that hold, so a
//!   selected key scores r and an unselected one at most r − 1. BOS scores
//!   r − 1/2 for an aggregate (strictly between) and r for a width (a tie
//!   with the selected keys, so BOS gets weight 1/(w+1)).
//!
//!   ```text
//!   score(i, j) = Σ_t [ (key_t[j], query_t[i]) ∈ selected_t ]  +  bos_score·[j = BOS]
//!   q_i = one-hot(query_t[i]) per literal  ⊕  (bos_score·one_i + bos_i)
//!   k_j = Σ_u selected_t(key_t[j], u)·e_u  ⊕  bos_j
//!   ```
//! * **Defaults are a baseline.** The embedding writes an aggregate's
//!   default into its dimensions at every non-BOS position; the head's
//!   value is `enc(v) − enc(default)`, zero at BOS. An empty selection
//!   reads BOS and leaves the default; a non-empty one whose keys agree
//!   on v adds `enc(v) − enc(default)`.
//! * **MLPs are exact on the value sets**: categorical lookups with one
//!   unit per output (one argument) or per input pair (two), piecewise-
//!   linear interpolation through every point of a numerical set (knots at
//!   the set's values, so the network equals the function on the set).
//! * **Loops** end with a commit MLP: `Δstate = enc(next) − enc(state)`
//!   and `Δb = baseline(b) − enc(b)` for every value the body computed,
//!   so the residual holds exactly the new state and the body can run again.
//!   A later loop's state initialised from this state gets the same Δ in
//!   its own dimensions (writes fan out to initialised states, transitively).

use crate::layout::{Dims, Layout};
use crate::plan::{NodeId, NodeKind, Operand, Plan, Selector, StateInit};
use crate::schedule::{Schedule, Sublayer};
use crate::CompileError;
use num_traits::{Signed, Zero};
use std::collections::BTreeMap;
use tfc_ir::ast::Encoding;
use tfc_ir::model::{Head, Layer, LoopSpec, LoopStop, Matrix, Mlp, Model, Readout, SparseVec, FORMAT_VERSION};
use tfc_ir::{Rat, Value};

/// How a width's 1/(w+1) is decoded (docs/PRECISION.md, "Certified lowering").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WidthDecoder {
    /// One unit per point, knots at the points: the fewest units, exact in
    /// rationals, but its coefficients grow like (w+1)(w+2) and cancel,
    /// so low-precision formats lose it early.
    #[default]
    Interpolant,
    /// A clamped ramp between each pair of neighbouring points, two units
    /// each, slopes a power of two and breakpoints on the grid of that
    /// power: flat at every point, so an error in 1/(w+1) smaller than a
    /// quarter of the gap to the next point does not reach the output, and
    /// the two units' dependence on the input cancels exactly.
    Ramp,
}

/// Choices the lowering makes that do not change what the model computes
/// under hard attention, only how well it survives rounding.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LowerOptions {
    /// The width decoder construction.
    pub width_decoder: WidthDecoder,
    /// The softmax inverse temperature to record in the model.
    pub softmax_beta: Option<Rat>,
}

/// A sparse vector over residual dimensions.
type Vector = BTreeMap<usize, Rat>;

fn rat(n: i64) -> Rat {
    Rat::from_integer(n.into())
}

fn add(v: &mut Vector, dim: usize, x: Rat) {
    let e = v.entry(dim).or_insert_with(Rat::zero);
    *e += x;
    if e.is_zero() {
        v.remove(&dim);
    }
}

fn add_scaled(v: &mut Vector, w: &Vector, s: &Rat) {
    for (d, x) in w {
        add(v, *d, x * s);
    }
}

/// Where a node's value must be written: its own dimensions and those of
/// every loop state it initialises.
struct Targets<'a> {
    plan: &'a Plan,
    layout: &'a Layout,
}

impl Targets<'_> {
    /// The residual vector encoding `v` as node `n`'s value (own dimensions only).
    fn enc(&self, n: NodeId, v: &Value) -> Vector {
        let mut out = Vector::new();
        match &self.layout.dims[n] {
            Dims::Cat(m) => {
                if let Some(d) = m.get(v) {
                    add(&mut out, *d, rat(1));
                }
            }
            Dims::Num(d) => add(&mut out, *d, v.as_num().cloned().unwrap_or_default()),
        }
        out
    }
    /// The vector written when node `n` takes value `v`: its own encoding
    /// plus the encodings of the states it initialises, transitively (a
    /// state initialised from an earlier loop's state receives every write
    /// of that state: its initialiser, the embedding, the loop's commits).
    fn write(&self, n: NodeId, v: &Value) -> Vector {
        let mut out = self.enc(n, v);
        for (s, node) in self.plan.nodes.iter().enumerate() {
            if let NodeKind::State { init: StateInit::Node(src), .. } = &node.kind {
                if *src == n {
                    for (d, x) in self.write(s, v) {
                        add(&mut out, d, x);
                    }
                }
            }
        }
        out
    }
    /// The value a node holds before it is computed: its default for an
    /// aggregate, nothing otherwise.
    fn baseline(&self, n: NodeId) -> Vector {
        match &self.plan.nodes[n].kind {
            NodeKind::Aggregate { default, .. } => self.enc(n, default),
            _ => Vector::new(),
        }
    }
}

/// MLP units under construction.
#[derive(Default)]
struct MlpBuilder {
    /// (input weights, bias, output weights) per hidden unit.
    units: Vec<(Vector, Rat, Vector)>,
}

impl MlpBuilder {
    fn unit(&mut self, input: Vector, bias: Rat, output: Vector) {
        if output.is_empty() || (input.is_empty() && !bias.is_positive()) {
            return;
        }
        self.units.push((input, bias, output));
    }
    fn build(self, d: usize, instructions: Vec<String>) -> Result<Mlp, CompileError> {
        let h = self.units.len();
        let mut w_in = Vec::new();
        let mut b_in = Vec::new();
        let mut w_out = Vec::new();
        for (u, (input, bias, output)) in self.units.into_iter().enumerate() {
            w_in.extend(input.into_iter().map(|(r, x)| (r, u, x)));
            if !bias.is_zero() {
                b_in.push((u, bias));
            }
            w_out.extend(output.into_iter().map(|(c, x)| (u, c, x)));
        }
        Ok(Mlp {
            w_in: Matrix::from_triplets(d, h, w_in).map_err(CompileError::model)?,
            b_in: SparseVec::from_pairs(h, b_in).map_err(CompileError::model)?,
            w_out: Matrix::from_triplets(h, d, w_out).map_err(CompileError::model)?,
            b_out: SparseVec::zeros(d),
            instructions,
        })
    }
}

/// Piecewise-linear units computing `outs[i]` at `xs[i]` (sorted,
/// distinct) from the number in dimension `x`, exact at every point, all
/// off at BOS (where `x` holds `x_bos`).
///
/// ```text
/// g(x) = y_0·relu(one − bos) + Σ_{i<k−1} c_i·relu(x − x_i − M·bos)
/// c_0 = slope_0,  c_i = slope_i − slope_{i−1},  M = max(0, x_bos − x_0) + 1
/// ```
/// For x = x_j every unit with i < j contributes c_i·(x_j − x_i), which sums
/// to the interpolant's value y_j; the others are 0.
fn piecewise(mb: &mut MlpBuilder, one: usize, bos: usize, x: usize, x_bos: &Rat, gate: Option<(usize, Rat)>, xs: &[Rat], outs: &[Vector]) {
    // `gate`: an extra (dim, M) term that switches every unit off unless the dim is 1
    // (used for the cat × num construction: + M·y_c − M·one).
    let m = (x_bos - &xs[0]).max(Rat::zero()) + rat(1);
    let first = outs[0].clone();
    let mut const_in = Vector::new();
    match &gate {
        None => {
            add(&mut const_in, one, rat(1));
            add(&mut const_in, bos, rat(-1));
        }
        Some((g, _)) => add(&mut const_in, *g, rat(1)),
    }
    mb.unit(const_in, Rat::zero(), first);
    let mut prev_slope: Vector = Vector::new();
    for i in 0..xs.len().saturating_sub(1) {
        let dx = &xs[i + 1] - &xs[i];
        let mut slope = Vector::new();
        add_scaled(&mut slope, &outs[i + 1], &(rat(1) / &dx));
        add_scaled(&mut slope, &outs[i], &(rat(-1) / &dx));
        let mut c = slope.clone();
        add_scaled(&mut c, &prev_slope, &rat(-1));
        let mut input = Vector::new();
        add(&mut input, x, rat(1));
        add(&mut input, one, -xs[i].clone());
        match &gate {
            None => add(&mut input, bos, -m.clone()),
            Some((g, gm)) => {
                add(&mut input, *g, gm.clone());
                add(&mut input, one, -gm.clone());
            }
        }
        mb.unit(input, Rat::zero(), c);
        prev_slope = slope;
    }
}

/// Clamped ramps computing `outs[i]` at `xs[i]` (sorted, distinct, all
/// in (0, 1]) from the number in dimension `x`, exact at every point and
/// flat around it; off at BOS, where `x` holds 1.
///
/// ```text
/// g(x) = y_top·relu(one − bos) + Σ_i (y_i − y_{i+1})·ramp_i(x)
/// ramp_i(x) = relu(m_i + 1 − s_i·x) − relu(m_i − s_i·x)
/// ```
/// ramp_i is 1 for x ≤ m_i/s_i, 0 for x ≥ (m_i + 1)/s_i. s_i is the
/// smallest power of two with 1/s_i ≤ D_i/4 (D_i = x_{i+1} − x_i) and m_i
/// the integer nearest s_i·(x_i + x_{i+1})/2 − 1/2, so the ramp's zone
/// lies inside the gap, at least D_i/4 from both points: every point sees
/// each ramp at exactly 0 or 1, and s_i·x̂ is an exact scaling in any
/// binary format. Each ramp points towards smaller x (larger widths),
/// which keeps its active units below about s_i·x_{i+1} ≤ 4(w+2) in size.
fn ramps(mb: &mut MlpBuilder, one: usize, bos: usize, x: usize, xs: &[Rat], outs: &[Vector]) {
    let k = xs.len();
    let top = outs[k - 1].clone();
    let mut const_in = Vector::new();
    add(&mut const_in, one, rat(1));
    add(&mut const_in, bos, rat(-1));
    mb.unit(const_in, Rat::zero(), top);
    for i in 0..k.saturating_sub(1) {
        let gap = &xs[i + 1] - &xs[i];
        let mut s = rat(1);
        while &rat(1) / &s > &gap / rat(4) {
            s *= rat(2);
        }
        let mid = (&xs[i] + &xs[i + 1]) / rat(2);
        let m = (&s * &mid - Rat::new(1.into(), 2.into())).round();
        let mut c = Vector::new();
        add_scaled(&mut c, &outs[i], &rat(1));
        add_scaled(&mut c, &outs[i + 1], &rat(-1));
        for (bias, sign) in [(&m + rat(1), 1), (m.clone(), -1)] {
            let mut input = Vector::new();
            add(&mut input, x, -s.clone());
            add(&mut input, one, bias);
            let mut out = Vector::new();
            add_scaled(&mut out, &c, &rat(sign));
            mb.unit(input, Rat::zero(), out);
        }
    }
}

struct Lowerer<'a> {
    plan: &'a Plan,
    schedule: &'a Schedule,
    layout: &'a Layout,
    t: Targets<'a>,
    d: usize,
    opts: &'a LowerOptions,
}

/// Lowers a scheduled, laid-out plan to a model.
pub fn layout_to_model(plan: &Plan, schedule: &Schedule, layout: &Layout) -> Result<Model, CompileError> {
    layout_to_model_with(plan, schedule, layout, &LowerOptions::default())
}

/// [`layout_to_model`] with lowering choices.
pub fn layout_to_model_with(plan: &Plan, schedule: &Schedule, layout: &Layout, opts: &LowerOptions) -> Result<Model, CompileError> {
    let d = layout.labels.len();
    let lw = Lowerer { plan, schedule, layout, t: Targets { plan, layout }, d, opts };
    let mut layers: Vec<Layer> = (0..schedule.layers).map(|_| Layer::default()).collect();
    for (id, node) in plan.nodes.iter().enumerate() {
        let Some(slot) = schedule.slot[id] else { continue };
        let layer = &mut layers[slot.layer()];
        match &node.kind {
            NodeKind::Aggregate { sel, value, default } => {
                debug_assert_eq!(slot.sublayer(), Sublayer::Attn);
                layer.attn.push(lw.aggregate_head(id, sel, value, default)?);
            }
            NodeKind::Width { sel } => {
                layer.attn.push(lw.width_head(id, sel)?);
                layer.mlps.push(lw.width_decoder(id)?);
            }
            NodeKind::Mlp { args, table } => layer.mlps.push(lw.map_mlp(id, args, table)?),
            _ => {}
        }
    }
    let mut loops = Vec::new();
    for (k, lp) in plan.loops.iter().enumerate() {
        let commit = lw.commit(k)?;
        layers[schedule.commits[k].layer()].mlps.push(commit);
        let stop = match &lp.stop {
            crate::plan::LoopStopPlan::Fixed(n) => LoopStop::Fixed(*n),
            crate::plan::LoopStopPlan::Until { halt, max } => {
                let halt_dim = match &layout.dims[*halt] {
                    Dims::Cat(m) => *m.get(&Value::int(1)).ok_or_else(|| CompileError::internal("halting state has no value 1".into()))?,
                    Dims::Num(dd) => *dd,
                };
                LoopStop::Until { halt_dim, max: *max }
            }
        };
        loops.push(LoopSpec { layers: schedule.loops[k].clone(), stop });
    }
    let (token_embed, pos_embed) = lw.embeddings()?;
    let out = plan.output;
    let output = match &layout.dims[out] {
        Dims::Cat(m) => Readout {
            name: format!("%{}", plan.nodes[out].name),
            encoding: Encoding::Cat,
            dims: m.values().copied().collect(),
            values: m.keys().cloned().collect(),
        },
        Dims::Num(dd) => Readout {
            name: format!("%{}", plan.nodes[out].name),
            encoding: Encoding::Num,
            dims: vec![*dd],
            values: plan.nodes[out].set.clone(),
        },
    };
    let model = Model {
        format_version: FORMAT_VERSION,
        program: plan.program.clone(),
        max_len: plan.max_len,
        causal: plan.causal,
        basis: layout.labels.clone(),
        vocab: plan.vocab.clone(),
        token_embed,
        pos_embed,
        layers,
        loops,
        output,
        softmax_beta: opts.softmax_beta.clone(),
    };
    model.validate().map_err(CompileError::model)?;
    Ok(model)
}

impl Lowerer<'_> {
    fn name(&self, id: NodeId) -> String {
        format!("%{}", self.plan.nodes[id].name)
    }

    /// One-hot dimensions of a categorical node.
    fn cat_dims(&self, id: NodeId) -> Result<&BTreeMap<Value, usize>, CompileError> {
        match &self.layout.dims[id] {
            Dims::Cat(m) => Ok(m),
            Dims::Num(_) => Err(CompileError::internal(format!("{} should be categorical here", self.name(id)))),
        }
    }

    /// Query and key maps for a selector; `bos_score` is BOS's score for a non-BOS query.
    fn score_maps(&self, sel: &Selector, bos_score: Rat) -> Result<(Vec<(usize, usize, Rat)>, Vec<(usize, usize, Rat)>, usize), CompileError> {
        let (mut wq, mut wk) = (Vec::new(), Vec::new());
        let mut col = 0;
        for lit in &sel.literals {
            let qd = self.cat_dims(lit.query)?;
            let kd = self.cat_dims(lit.key)?;
            for (u, qdim) in qd {
                wq.push((*qdim, col, rat(1)));
                for (a, kdim) in kd {
                    if lit.selected.contains(&(a.clone(), u.clone())) {
                        wk.push((*kdim, col, rat(1)));
                    }
                }
                col += 1;
            }
        }
        // The BOS column: BOS's score for real queries, and +1 more for the BOS
        // query itself so that BOS attends to BOS alone.
        wq.push((self.layout.one, col, bos_score));
        wq.push((self.layout.bos, col, rat(1)));
        wk.push((self.layout.bos, col, rat(1)));
        Ok((wq, wk, col + 1))
    }

    fn aggregate_head(&self, id: NodeId, sel: &Selector, value: &Operand, default: &Value) -> Result<Head, CompileError> {
        let r = sel.literals.len() as i64;
        let (wq, wk, h) = self.score_maps(sel, rat(r) - Rat::new(1.into(), 2.into()))?;
        let d = self.d;
        let node = &self.plan.nodes[id];
        let mut wv = Vec::new();
        let mut wo = Vec::new();
        // Head value space = residual space restricted to the written dims.
        let mut cols: BTreeMap<usize, usize> = BTreeMap::new();
        let col_of = |dim: usize, cols: &mut BTreeMap<usize, usize>| {
            let n = cols.len();
            *cols.entry(dim).or_insert(n)
        };
        let base_default = self.t.write(id, default);
        match (&self.layout.dims[value.node], node.enc) {
            (Dims::Cat(m), _) => {
                for (b, bdim) in m {
                    let v = value.apply(b);
                    let mut delta = self.t.write(id, &v);
                    add_scaled(&mut delta, &base_default, &rat(-1));
                    for (dim, x) in delta {
                        let c = col_of(dim, &mut cols);
                        wv.push((*bdim, c, x));
                    }
                }
            }
            (Dims::Num(x), Encoding::Num) => {
                let (a, c0) = crate::plan::affine1_of(value, &self.plan.nodes[value.node].set)
                    .ok_or_else(|| CompileError::internal(format!("{}: non-affine folded value", self.name(id))))?;
                let dflt = default.as_num().cloned().unwrap_or_default();
                let out = match &self.layout.dims[id] {
                    Dims::Num(o) => *o,
                    Dims::Cat(_) => return Err(CompileError::internal("numeric aggregate with categorical dims".into())),
                };
                // Fan-out to states initialised from this value.
                let mut outs: Vec<usize> = vec![out];
                for (dim, _) in self.t.write(id, &Value::int(1)) {
                    if dim != out {
                        outs.push(dim);
                    }
                }
                for o in outs {
                    let c = col_of(o, &mut cols);
                    wv.push((*x, c, a.clone()));
                    let k = &c0 - &dflt;
                    if !k.is_zero() {
                        wv.push((self.layout.one, c, k.clone()));
                        wv.push((self.layout.bos, c, -k));
                    }
                }
            }
            (Dims::Num(_), Encoding::Cat) => {
                return Err(CompileError::internal(format!("{}: categorical aggregate of a number", self.name(id))))
            }
        }
        for (dim, c) in &cols {
            wo.push((*c, *dim, rat(1)));
        }
        let hv = cols.len();
        Ok(Head {
            w_q: Matrix::from_triplets(d, h, wq).map_err(CompileError::model)?,
            w_k: Matrix::from_triplets(d, h, wk).map_err(CompileError::model)?,
            w_v: Matrix::from_triplets(d, hv, wv).map_err(CompileError::model)?,
            w_o: Matrix::from_triplets(hv, d, wo).map_err(CompileError::model)?,
            instructions: vec![self.name(id)],
        })
    }

    fn width_head(&self, id: NodeId, sel: &Selector) -> Result<Head, CompileError> {
        let r = sel.literals.len() as i64;
        let (wq, wk, h) = self.score_maps(sel, rat(r))?;
        let d = self.d;
        let scratch = self.layout.scratch[&id];
        Ok(Head {
            w_q: Matrix::from_triplets(d, h, wq).map_err(CompileError::model)?,
            w_k: Matrix::from_triplets(d, h, wk).map_err(CompileError::model)?,
            w_v: Matrix::from_triplets(d, 1, vec![(self.layout.bos, 0, rat(1))]).map_err(CompileError::model)?,
            w_o: Matrix::from_triplets(1, d, vec![(0, scratch, rat(1))]).map_err(CompileError::model)?,
            instructions: vec![self.name(id)],
        })
    }

    /// Decodes w from 1/(w+1) exactly on the width's value set, and zeroes the scratch.
    fn width_decoder(&self, id: NodeId) -> Result<Mlp, CompileError> {
        let scratch = self.layout.scratch[&id];
        let set = &self.plan.nodes[id].set;
        // Points in increasing 1/(w+1), i.e. decreasing w.
        let mut pts: Vec<(Rat, Vector)> = set
            .iter()
            .map(|w| {
                let wn = w.as_num().cloned().unwrap_or_default();
                (rat(1) / (wn + rat(1)), self.t.write(id, w))
            })
            .collect();
        pts.sort_by(|a, b| a.0.cmp(&b.0));
        let xs: Vec<Rat> = pts.iter().map(|p| p.0.clone()).collect();
        let outs: Vec<Vector> = pts.into_iter().map(|p| p.1).collect();
        let mut mb = MlpBuilder::default();
        // At BOS the head leaves 1 in the scratch dimension.
        match self.opts.width_decoder {
            WidthDecoder::Interpolant => piecewise(&mut mb, self.layout.one, self.layout.bos, scratch, &rat(1), None, &xs, &outs),
            WidthDecoder::Ramp => ramps(&mut mb, self.layout.one, self.layout.bos, scratch, &xs, &outs),
        }
        // Scratch back to zero everywhere (it is ≥ 0, so relu is the identity).
        let mut input = Vector::new();
        add(&mut input, scratch, rat(1));
        let mut output = Vector::new();
        add(&mut output, scratch, rat(-1));
        mb.unit(input, Rat::zero(), output);
        mb.build(self.d, vec![self.name(id)])
    }

    fn map_mlp(&self, id: NodeId, args: &[Operand], table: &BTreeMap<Vec<Value>, Value>) -> Result<Mlp, CompileError> {
        let mut mb = MlpBuilder::default();
        let (one, bos) = (self.layout.one, self.layout.bos);
        let write = |v: &Value| self.t.write(id, v);
        match args {
            [a] => match &self.layout.dims[a.node] {
                Dims::Cat(m) => {
                    // One unit per distinct output, fed by every input value mapping to it.
                    let mut by_out: BTreeMap<&Value, Vector> = BTreeMap::new();
                    for (b, dim) in m {
                        let out = &table[&vec![b.clone()]];
                        add(by_out.entry(out).or_default(), *dim, rat(1));
                    }
                    for (out, input) in by_out {
                        mb.unit(input, Rat::zero(), write(out));
                    }
                }
                Dims::Num(x) => {
                    let set = &self.plan.nodes[a.node].set;
                    let xs: Vec<Rat> = set.iter().map(|v| v.as_num().cloned().unwrap_or_default()).collect();
                    let outs: Vec<Vector> = set.iter().map(|v| write(&table[&vec![v.clone()]])).collect();
                    piecewise(&mut mb, one, bos, *x, &Rat::zero(), None, &xs, &outs);
                }
            },
            [a, b] => match (&self.layout.dims[a.node], &self.layout.dims[b.node]) {
                (Dims::Cat(ma), Dims::Cat(mb_)) => {
                    for (u, da) in ma {
                        for (v, db) in mb_ {
                            let out = write(&table[&vec![u.clone(), v.clone()]]);
                            let mut input = Vector::new();
                            add(&mut input, *da, rat(1));
                            add(&mut input, *db, rat(1));
                            add(&mut input, one, rat(-1));
                            mb.unit(input, Rat::zero(), out);
                        }
                    }
                }
                (Dims::Cat(mc), Dims::Num(x)) | (Dims::Num(x), Dims::Cat(mc)) => {
                    let cat_first = matches!(self.layout.dims[a.node], Dims::Cat(_));
                    let (cat_node, num_node) = if cat_first { (a.node, b.node) } else { (b.node, a.node) };
                    let _ = cat_node;
                    let set = &self.plan.nodes[num_node].set;
                    let xs: Vec<Rat> = set.iter().map(|v| v.as_num().cloned().unwrap_or_default()).collect();
                    let span = &xs[xs.len() - 1] - &xs[0];
                    let m = span.max(-xs[0].clone()).max(Rat::zero()) + rat(1);
                    for (c, cdim) in mc {
                        let outs: Vec<Vector> = set
                            .iter()
                            .map(|xv| {
                                let key = if cat_first { vec![c.clone(), xv.clone()] } else { vec![xv.clone(), c.clone()] };
                                write(&table[&key])
                            })
                            .collect();
                        piecewise(&mut mb, one, bos, *x, &Rat::zero(), Some((*cdim, m.clone())), &xs, &outs);
                    }
                }
                (Dims::Num(x), Dims::Num(y)) => {
                    // Affine: f = α·x + β·y + γ (the plan only allows affine num × num).
                    let xs = &self.plan.nodes[a.node].set;
                    let ys = &self.plan.nodes[b.node].set;
                    let pts: Vec<(Value, Value, Rat)> = table
                        .iter()
                        .map(|(k, v)| (k[0].clone(), k[1].clone(), v.as_num().cloned().unwrap_or_default()))
                        .collect();
                    let (al, be, ga) = crate::plan::fit_affine2(&pts).ok_or_else(|| CompileError::UnsupportedSeqmap {
                        name: self.plan.nodes[id].name.clone(),
                        reason: format!(
                            "it is not affine in two numerical inputs ({} × {} values); one MLP layer computes only affine functions of two numbers",
                            xs.len(),
                            ys.len()
                        ),
                    })?;
                    let out = match &self.layout.dims[id] {
                        Dims::Num(o) => *o,
                        Dims::Cat(_) => {
                            return Err(CompileError::UnsupportedSeqmap {
                                name: self.plan.nodes[id].name.clone(),
                                reason: "a categorical result of two numerical inputs needs the inputs decoded first".into(),
                            })
                        }
                    };
                    let mut lin = Vector::new();
                    add(&mut lin, *x, al);
                    add(&mut lin, *y, be);
                    let fan: Vec<usize> = self.t.write(id, &Value::int(1)).keys().copied().collect();
                    let mut pos = Vector::new();
                    let mut neg = Vector::new();
                    for o in &fan {
                        add(&mut pos, *o, rat(1));
                        add(&mut neg, *o, rat(-1));
                    }
                    let mut lin_neg = Vector::new();
                    add_scaled(&mut lin_neg, &lin, &rat(-1));
                    mb.unit(lin, Rat::zero(), pos.clone());
                    mb.unit(lin_neg, Rat::zero(), neg);
                    if !ga.is_zero() {
                        let mut cin = Vector::new();
                        add(&mut cin, one, rat(1));
                        add(&mut cin, bos, rat(-1));
                        let mut cout = Vector::new();
                        add_scaled(&mut cout, &pos, &ga);
                        mb.unit(cin, Rat::zero(), cout);
                    }
                    let _ = out;
                }
            },
            _ => return Err(CompileError::internal("an MLP takes one or two arguments".into())),
        }
        mb.build(self.d, vec![self.name(id)])
    }

    /// The loop's commit: next state as a difference, body values back to baseline.
    fn commit(&self, k: usize) -> Result<Mlp, CompileError> {
        let lp = &self.plan.loops[k];
        // The linear map, as a list of (source dim, contribution vector).
        let mut lin: BTreeMap<usize, Vector> = BTreeMap::new();
        let mut constant = Vector::new();
        let contribute = |src: usize, dst: usize, x: Rat, lin: &mut BTreeMap<usize, Vector>| add(lin.entry(src).or_default(), dst, x);
        for (s, n) in &lp.next {
            if s == n {
                continue;
            }
            match (&self.layout.dims[*s], &self.layout.dims[*n]) {
                // The state's own dimensions, and those of the later loops'
                // states initialised from it (`Targets::write`).
                (Dims::Cat(ms), Dims::Cat(mn)) => {
                    for (u, dim) in ms {
                        for (to, x) in self.t.write(*s, u) {
                            contribute(*dim, to, -x, &mut lin);
                        }
                    }
                    for (v, dim) in mn {
                        if !ms.contains_key(v) {
                            return Err(CompileError::internal(format!("next value {v} outside state set")));
                        }
                        for (to, x) in self.t.write(*s, v) {
                            contribute(*dim, to, x, &mut lin);
                        }
                    }
                }
                (Dims::Num(ds), Dims::Num(dn)) => {
                    for (to, _) in self.t.write(*s, &Value::int(1)) {
                        contribute(*ds, to, rat(-1), &mut lin);
                        contribute(*dn, to, rat(1), &mut lin);
                    }
                }
                _ => return Err(CompileError::internal("state and next value differ in encoding".into())),
            }
        }
        for (id, node) in self.plan.nodes.iter().enumerate() {
            if node.region != crate::plan::Region::Loop(k) || self.schedule.slot[id].is_none() {
                continue;
            }
            let base = self.t.baseline(id);
            match &self.layout.dims[id] {
                Dims::Cat(m) => {
                    for dim in m.values() {
                        // Each one-hot value goes back to the baseline one-hot.
                        contribute(*dim, *dim, rat(-1), &mut lin);
                        for (bd, bx) in &base {
                            contribute(*dim, *bd, bx.clone(), &mut lin);
                        }
                    }
                }
                Dims::Num(dn) => {
                    contribute(*dn, *dn, rat(-1), &mut lin);
                    add_scaled(&mut constant, &base, &rat(1));
                }
            }
        }
        let mut mb = MlpBuilder::default();
        for (src, out) in lin {
            let num_src = self.is_num_dim(src);
            let mut input = Vector::new();
            add(&mut input, src, rat(1));
            mb.unit(input.clone(), Rat::zero(), out.clone());
            if num_src {
                // relu(x) − relu(−x) = x for a signed number.
                let mut neg_in = Vector::new();
                add(&mut neg_in, src, rat(-1));
                let mut neg_out = Vector::new();
                add_scaled(&mut neg_out, &out, &rat(-1));
                mb.unit(neg_in, Rat::zero(), neg_out);
            }
        }
        if !constant.is_empty() {
            let mut cin = Vector::new();
            add(&mut cin, self.layout.one, rat(1));
            add(&mut cin, self.layout.bos, rat(-1));
            mb.unit(cin, Rat::zero(), constant);
        }
        mb.build(self.d, vec![format!("loop {k} commit")])
    }

    fn is_num_dim(&self, dim: usize) -> bool {
        self.layout.dims.iter().any(|d| matches!(d, Dims::Num(x) if *x == dim))
    }

    fn embeddings(&self) -> Result<(Matrix, Matrix), CompileError> {
        let plan = self.plan;
        let d = self.d;
        let mut tok = Vec::new();
        let mut pos = Vec::new();
        // Every position has `one`; BOS (row 0 of the token embedding) has `bos`.
        for r in 0..=plan.vocab.len() {
            tok.push((r, self.layout.one, rat(1)));
        }
        tok.push((0, self.layout.bos, rat(1)));
        for (id, node) in plan.nodes.iter().enumerate() {
            match &node.kind {
                NodeKind::Tokens => {
                    for (k, v) in plan.vocab.iter().enumerate() {
                        for (dim, x) in self.t.write(id, v) {
                            tok.push((k + 1, dim, x));
                        }
                    }
                }
                NodeKind::Indices => {
                    for p in 1..=plan.max_len {
                        for (dim, x) in self.t.write(id, &Value::int(p as i64 - 1)) {
                            pos.push((p, dim, x));
                        }
                    }
                }
                NodeKind::Const(v) => {
                    for p in 1..=plan.max_len {
                        for (dim, x) in self.t.write(id, v) {
                            pos.push((p, dim, x));
                        }
                    }
                }
                NodeKind::State { init: StateInit::Const(v), .. } => {
                    for p in 1..=plan.max_len {
                        for (dim, x) in self.t.write(id, v) {
                            pos.push((p, dim, x));
                        }
                    }
                }
                NodeKind::Aggregate { default, .. } => {
                    // The default as a baseline (see the module docs), in the
                    // aggregate's dimensions and those of the states it initialises.
                    for p in 1..=plan.max_len {
                        for (dim, x) in self.t.write(id, default) {
                            pos.push((p, dim, x));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok((
            Matrix::from_triplets(plan.vocab.len() + 1, d, tok).map_err(CompileError::model)?,
            Matrix::from_triplets(plan.max_len + 1, d, pos).map_err(CompileError::model)?,
        ))
    }
}
