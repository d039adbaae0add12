//! Precision report: where hard-attention selection stops holding in
//! floating-point softmax (DESIGN.md section 6, docs/PRECISION.md).
//!
//! **Analytic part.** From the exact weights and the value sets (enumerated
//! as the block checks do), every head gets its score gap Δ (the smallest
//! difference between a level that can win — BOS or above — and the next
//! level below it), its largest score, the largest value reaching its
//! output, and its width. For a format (p significand bits, u = 2^-p,
//! underflow error η, largest finite value) and an inverse temperature β
//! the bound of a head at sequence length n is worked out in
//! [`head_bound`] (every step is stated there); the error reaching its
//! output must stay below its consumer's margin. MLP blocks are bounded by
//! running interval-style error propagation on every input combination
//! ([`mlp_bound`]); a width decoder gets its head's error on the scratch
//! input. The analytic safe length is the largest n ≤ max_len for which
//! every block's bound holds at every length up to n.
//!
//! Scope, honestly: each block is bounded with exact inputs (rounded into
//! the format) plus, for a width decoder, its own head's error; errors of
//! one block are not propagated into the scores or values of later blocks.
//! Models with loops are not analysed (safe length 0). The corpus test
//! checks that no observation beats the bound.
//!
//! **Observed part.** [`observe`] runs the model in the format at every
//! length, on adversarial inputs (constant sequences, which select every
//! key under equality selectors; vocabulary cycles; the longest inputs)
//! and random ones, against the reference interpreter.
//!
//! This module is the verifier's one use of floating point: the bound is
//! evaluated in f64 on exact magnitudes, each rounded outward by a relative
//! 2^-50 (far below every term's slack).

use crate::blocks::{dot, vecmat, Ctx, Vector};
use crate::Options;
use num_traits::{Signed, ToPrimitive, Zero};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tfc_ir::ast::{Encoding, Op};
use tfc_ir::check::{all_lets, random_input, Checked, SplitMix};
use tfc_ir::forward::{Attention, ForwardOptions, Format, Fp8E4M3, Fp8E5M2, PreparedModel};
use tfc_ir::model::{Matrix, Mlp, Model};
use tfc_ir::{interp, Rat, Value};

/// A float format as the bound sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FormatSpec {
    /// Significand bits, hidden bit included.
    pub precision: u32,
    /// Absolute error one operation can add on underflow (half the
    /// smallest subnormal).
    pub eta: f64,
    /// Largest finite value.
    pub max: f64,
    /// Relative error of `exp` (f32's libm, ~1 ulp of f32, then rounded).
    pub exp_err: f64,
    /// The smallest normal exponent.
    pub min_exp: i32,
}

impl FormatSpec {
    /// The spec of a float format (`None` for exact).
    pub fn of(f: Format) -> Option<FormatSpec> {
        let (p, min_exp, max): (u32, i32, f64) = match f {
            Format::Exact => return None,
            Format::F64 => (53, -1022, f64::MAX),
            Format::F32 => (24, -126, f32::MAX as f64),
            Format::F16 => (11, -14, 65504.0),
            Format::Bf16 => (8, -126, 3.3895313892515355e38),
            Format::Fp8E4M3 => (4, -6, 448.0),
            Format::Fp8E5M2 => (3, -14, 57344.0),
        };
        let mut s = FormatSpec::bits(p);
        // Half the smallest subnormal, 2^(min_exp − p + 1) / 2.
        s.eta = 2f64.powi(min_exp - p as i32);
        s.max = max;
        s.min_exp = min_exp;
        Some(s)
    }
    /// An idealised format with `p` bits and unbounded exponent range.
    pub fn bits(p: u32) -> FormatSpec {
        let u = 2f64.powi(-(p as i32));
        // exp: f64's libm for f64 (about an ulp); f32's otherwise, rounded once more.
        let exp_err = if p >= 53 { 4.0 * u } else if p >= 24 { 4.0 * u } else { u + 2f64.powi(-21) };
        FormatSpec { precision: p, eta: 0.0, max: f64::INFINITY, exp_err, min_exp: -100_000 }
    }
    /// Exact real arithmetic (only softmax leakage remains).
    pub fn real() -> FormatSpec {
        FormatSpec { precision: u32::MAX, eta: 0.0, max: f64::INFINITY, exp_err: 0.0, min_exp: -100_000 }
    }
    fn u(&self) -> f64 {
        if self.precision == u32::MAX {
            0.0
        } else {
            2f64.powi(-(self.precision as i32))
        }
    }
}

/// γ_k = k·u/(1 − k·u), the relative error of k rounded operations (∞ when k·u ≥ 1/2).
fn gamma(k: usize, u: f64) -> f64 {
    let x = k as f64 * u;
    if x >= 0.5 {
        f64::INFINITY
    } else {
        x / (1.0 - x)
    }
}

/// A rational as f64, rounded up in magnitude (outward).
fn up(r: &Rat) -> f64 {
    let x = r.to_f64().unwrap_or(f64::INFINITY).abs();
    x * (1.0 + 2f64.powi(-50))
}

/// A rational as f64, rounded down in magnitude.
fn down(r: &Rat) -> f64 {
    let x = r.to_f64().unwrap_or(0.0).abs();
    x * (1.0 - 2f64.powi(-50))
}

/// What it takes for a set of rationals to be exact in a format: the most
/// significant bits of any of them (u32::MAX if one is not dyadic), the
/// lowest bit position used, and the largest magnitude.
#[derive(Clone, Copy, Debug)]
struct Exactness {
    sig_bits: u32,
    low_exp: i64,
    max_mag: f64,
}

impl Exactness {
    fn new() -> Exactness {
        Exactness { sig_bits: 0, low_exp: i64::MAX, max_mag: 0.0 }
    }
    fn note(&mut self, r: &Rat) {
        if r.is_zero() {
            return;
        }
        let d = r.denom();
        let one = num_bigint::BigInt::from(1);
        if (d & (d - &one)) != num_bigint::BigInt::from(0) {
            self.sig_bits = u32::MAX;
            return;
        }
        let k = d.bits() as i64 - 1;
        let n = r.numer().abs();
        let t = n.trailing_zeros().unwrap_or(0) as i64;
        let m = &n >> (t as usize);
        self.sig_bits = self.sig_bits.max(m.bits() as u32);
        self.low_exp = self.low_exp.min(t - k);
        self.max_mag = self.max_mag.max(up(r));
    }
    /// Whether every noted number is exactly representable in `f`.
    fn exact_in(&self, f: &FormatSpec) -> bool {
        f.precision != u32::MAX
            && self.sig_bits <= f.precision
            && (self.low_exp == i64::MAX || self.low_exp >= (f.min_exp as i64) - (f.precision as i64 - 1))
            && self.max_mag <= f.max
    }
}

/// `x · W` as the forward pass computes it (rows in order, per column),
/// noting every input, weight, product and partial sum.
fn note_vecmat(x: &Vector, w: &Matrix, ex: &mut Exactness) -> Vector {
    let mut out = Vector::new();
    for (i, j, v) in &w.entries {
        if let Some(xi) = x.get(i) {
            ex.note(xi);
            ex.note(v);
            let p = xi * v;
            ex.note(&p);
            let e = out.entry(*j).or_insert_with(Rat::zero);
            *e += p;
            ex.note(e);
        }
    }
    out
}

/// What a head computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// A categorical aggregate (read by argmax: margin 1/2).
    Cat,
    /// A numerical aggregate (decoded to the nearest value of its set).
    Num,
    /// A width (BOS gets 1/(w+1)), decoded by the MLP after it.
    Width,
}

/// The exact facts about one head.
#[derive(Clone, Debug)]
struct HeadFacts {
    layer: usize,
    index: usize,
    name: String,
    kind: HeadKind,
    gap: Rat,
    max_score: Rat,
    /// max Σ_c (|x|·|W_q|)_c (|y|·|W_k|)_c over query/key combinations.
    score_abs: Rat,
    /// max over value combinations and output dims of Σ_c |v_c|·|W_o[c,d]|.
    max_value: Rat,
    max_keys: usize,
    head_dim: usize,
    value_dim: usize,
    /// Most nonzero terms in a column of W_q, W_k, W_v.
    kq: usize,
    kk: usize,
    kv: usize,
    /// The largest magnitude in the written dims after the add.
    base: f64,
    /// Half the smallest spacing of the output's value set (cat: 1/2).
    margin: f64,
    /// Width: the value set, ascending.
    widths: Vec<Rat>,
    /// Width: the decoder (layer, mlp index) and the scratch dimension.
    decoder: Option<(usize, usize, usize)>,
    /// Width: the decoder's plan at each point 1/(w+1), in `widths` order.
    decoder_evals: Vec<MlpEval>,
    /// Whether every score is computed exactly (then equal scores give
    /// equal logits, and the winners tie exactly).
    scores: Exactness,
    /// Every W_v and W_o entry is ±2^k, each column of either has at most
    /// one entry, and (for a width) W_v reads only the `bos` dimension:
    /// a value's path from the residual to the head's output is exact.
    value_pow2: bool,
    /// The exact query and key vectors (|entries|, BOS included), for
    /// what input errors do to the scores.
    qvecs: Vec<Vec<(usize, f64)>>,
    kvecs: Vec<Vec<(usize, f64)>>,
}

/// The exact facts about one MLP block that is not a width decoder.
#[derive(Clone, Debug)]
struct MlpFacts {
    layer: usize,
    index: usize,
    name: String,
    /// The block's plan at every input combination.
    evals: Vec<MlpEval>,
    margin: f64,
}

/// Whether the exact score computation is small enough to replay.
fn q_budget(q: usize, k: usize, h: usize) -> bool {
    q.saturating_mul(k).saturating_mul(h.max(1)) <= 20_000_000
}

fn col_terms(m: &Matrix) -> usize {
    let mut c = vec![0usize; m.cols];
    for (_, j, _) in &m.entries {
        c[*j] += 1;
    }
    c.into_iter().max().unwrap_or(0)
}

fn abs_vecmat(x: &Vector, w: &Matrix) -> Vector {
    let mut out = Vector::new();
    for (i, j, v) in &w.entries {
        if let Some(xi) = x.get(i) {
            *out.entry(*j).or_insert_with(Rat::zero) += xi.abs() * v.abs();
        }
    }
    out
}

/// Half the smallest distance between two values of a numeric set (∞ for one value).
fn half_spacing(set: &[Value]) -> f64 {
    let mut xs: Vec<Rat> = set.iter().filter_map(|v| v.as_num().cloned()).collect();
    xs.sort();
    xs.windows(2).map(|w| down(&((&w[1] - &w[0]) / Rat::from_integer(2.into())))).fold(f64::INFINITY, f64::min)
}

/// Everything the bound needs, read from the model (or why it cannot be).
struct Facts {
    heads: Vec<HeadFacts>,
    mlps: Vec<MlpFacts>,
    max_len: usize,
    unsupported: Option<String>,
}

fn gather(checked: &Checked, model: &Model) -> Result<Facts, String> {
    let opts = Options::default();
    let basis = crate::basis::read_basis(&model.basis, checked)?;
    let lets = all_lets(&checked.program.body).into_iter().map(|l| (l.name.text.clone(), l)).collect();
    let ctx = Ctx { checked, basis, lets, opts: &opts, model };
    let mut facts = Facts { heads: vec![], mlps: vec![], max_len: model.max_len, unsupported: None };
    if !model.loops.is_empty() {
        facts.unsupported = Some("models with loops are not analysed (errors grow per iteration)".into());
    }
    let margin_of = |name: &str| -> (f64, f64) {
        let set = ctx.set_of(name);
        match ctx.group(name) {
            Some(crate::basis::Group::Num(_)) => {
                let base = set.iter().filter_map(|v| v.as_num()).map(up).fold(0.0, f64::max);
                (half_spacing(&set), base)
            }
            _ => (0.5, 1.0),
        }
    };
    for (li, layer) in model.layers.iter().enumerate() {
        for (hi, h) in layer.attn.iter().enumerate() {
            let name = h.instructions.first().map(|s| s.trim_start_matches('%').to_string()).unwrap_or_default();
            let op = ctx.lets.get(&name).map(|l| l.op.clone()).ok_or(format!("head {li}.{hi}: unknown instruction"))?;
            let kind = match &op {
                Op::Width(_) | Op::Length => HeadKind::Width,
                Op::Aggregate { .. } => match ctx.checked.get(&name).and_then(|i| i.enc()) {
                    Some(Encoding::Num) => HeadKind::Num,
                    _ => HeadKind::Cat,
                },
                _ => return Err(format!("head {li}.{hi} implements `%{name}`, not an aggregate or width")),
            };
            let read = |m: &Matrix| ctx.groups_read(m, false).map_err(|e| e.0);
            let (qg, kg, vg) = (read(&h.w_q)?, read(&h.w_k)?, read(&h.w_v)?);
            let too_many = || format!("`%{name}`: the score table is beyond the enumeration limit");
            let qcs = ctx.combos(&qg).ok_or_else(too_many)?;
            let kcs = ctx.combos(&kg).ok_or_else(too_many)?;
            let vcs = ctx.combos(&vg).ok_or_else(too_many)?;
            let mut key_res: Vec<Vector> = kcs.iter().map(|k| ctx.residual(k)).collect();
            key_res.push(ctx.bos_residual());
            let mut ex = Exactness::new();
            let kvecs: Vec<Vector> = key_res.iter().map(|x| note_vecmat(x, &h.w_k, &mut ex)).collect();
            let check_exact = q_budget(qcs.len(), kvecs.len(), h.w_q.cols);
            let kabs: Vec<Vector> = key_res.iter().map(|x| abs_vecmat(x, &h.w_k)).collect();
            let k_bos = kvecs.last().cloned().unwrap_or_default();
            let kabsvecs: Vec<Vec<(usize, f64)>> = kvecs.iter().map(|k| k.iter().map(|(c, v)| (*c, up(v))).collect()).collect();
            let mut qvecs: Vec<Vec<(usize, f64)>> = vec![];
            let mut gap: Option<Rat> = None;
            let mut max_score = Rat::zero();
            let mut score_abs = Rat::zero();
            let mut max_keys = 0usize;
            let mut take_gap = |g: Rat| {
                if g.is_positive() && gap.as_ref().map_or(true, |x| g < *x) {
                    gap = Some(g);
                }
            };
            let mut q_res: Vec<(Vector, bool)> = qcs.iter().map(|q| (ctx.residual(q), false)).collect();
            q_res.push((ctx.bos_residual(), true));
            let indices_keys = !kg.is_empty()
                && kg.iter().all(|g| g == "@indices" || matches!(ctx.lets.get(g).map(|l| &l.op), Some(Op::Indices)));
            for (x, is_bos) in &q_res {
                let q = note_vecmat(x, &h.w_q, &mut ex);
                qvecs.push(q.iter().map(|(c, v)| (*c, up(v))).collect());
                let qa = abs_vecmat(x, &h.w_q);
                if check_exact {
                    for k in &kvecs {
                        let mut acc = Rat::zero();
                        for (c, qc) in &q {
                            if let Some(kc) = k.get(c) {
                                let p = qc * kc;
                                ex.note(&p);
                                acc += p;
                                ex.note(&acc);
                            }
                        }
                    }
                } else {
                    ex.sig_bits = u32::MAX;
                }
                let s_bos = dot(&q, &k_bos);
                let scores: Vec<Rat> = kvecs.iter().map(|k| dot(&q, k)).collect();
                for (s, ka) in scores.iter().zip(&kabs) {
                    if s.abs() > max_score {
                        max_score = s.abs();
                    }
                    let a = dot(&qa, ka);
                    if a > score_abs {
                        score_abs = a;
                    }
                }
                if *is_bos {
                    // The BOS query attends to BOS alone: its gap to every other key.
                    for s in &scores[..scores.len() - 1] {
                        take_gap(&s_bos - s);
                    }
                    continue;
                }
                // Levels that can win (BOS is always visible): s_bos and above.
                let levels: BTreeSet<Rat> = scores.iter().cloned().collect();
                let lv: Vec<&Rat> = levels.iter().rev().collect();
                for w in lv.windows(2) {
                    if *w[0] >= s_bos {
                        take_gap(w[0] - w[1]);
                    }
                }
                let top = lv.first().cloned().cloned().unwrap_or_default();
                let selected = scores[..scores.len() - 1].iter().filter(|s| **s == top && top >= s_bos).count();
                max_keys = max_keys.max(if indices_keys { selected.min(model.max_len) } else if selected > 0 { model.max_len } else { 0 });
            }
            let mut max_value = Rat::zero();
            let mut v_res: Vec<Vector> = vcs.iter().map(|v| ctx.residual(v)).collect();
            v_res.push(ctx.bos_residual());
            for x in &v_res {
                let v = vecmat(x, &h.w_v);
                let va: Vector = v.iter().map(|(k, r)| (*k, r.abs())).collect();
                for (_, m) in abs_vecmat(&va, &h.w_o) {
                    if m > max_value {
                        max_value = m;
                    }
                }
            }
            let single_pow2 = |m: &Matrix| {
                let mut per_col = vec![0usize; m.cols];
                m.entries.iter().all(|(_, j, w)| {
                    per_col[*j] += 1;
                    is_pow2(w) && per_col[*j] <= 1
                })
            };
            let bos_dim = model.basis.iter().position(|b| b == "bos");
            let value_pow2 = single_pow2(&h.w_v)
                && single_pow2(&h.w_o)
                && (kind != HeadKind::Width || h.w_v.entries.iter().all(|(r, _, _)| Some(*r) == bos_dim));
            let (mut margin, mut base) = margin_of(&name);
            let mut widths = vec![];
            let mut decoder = None;
            let mut decoder_evals = vec![];
            if kind == HeadKind::Width {
                widths = ctx.set_of(&name).iter().filter_map(|v| v.as_num().cloned()).collect();
                widths.sort();
                let scratch = h.w_o.entries.first().map(|e| e.1).ok_or("a width head writes nothing")?;
                let mi = layer
                    .mlps
                    .iter()
                    .position(|m| m.instructions.first().map(|s| s.trim_start_matches('%')) == Some(name.as_str()))
                    .ok_or(format!("no decoder for `%{name}`"))?;
                decoder = Some((li, mi, scratch));
                let dm = &layer.mlps[mi];
                let dims: Vec<usize> = dm.w_out.entries.iter().map(|e| e.1).collect::<BTreeSet<_>>().into_iter().collect();
                let one = Rat::from_integer(1.into());
                let one_dim = model.basis.iter().position(|b| b == "one").unwrap_or(0);
                decoder_evals = widths
                    .iter()
                    .map(|w| {
                        let mut x = Vector::new();
                        x.insert(one_dim, one.clone());
                        x.insert(scratch, &one / (w + &one));
                        MlpEval::new(dm, &x, &dims)
                    })
                    .collect();
                margin = f64::INFINITY; // checked per length against the points 1/(w+1)
                base = 1.0;
            }
            facts.heads.push(HeadFacts {
                layer: li,
                index: hi,
                name: name.clone(),
                kind,
                gap: gap.unwrap_or_else(|| Rat::from_integer(1.into())),
                max_score,
                score_abs,
                max_value,
                max_keys,
                head_dim: h.w_q.cols,
                value_dim: h.w_v.cols,
                kq: col_terms(&h.w_q),
                kk: col_terms(&h.w_k),
                kv: col_terms(&h.w_v),
                base,
                margin,
                widths,
                decoder,
                decoder_evals,
                scores: ex,
                value_pow2,
                qvecs,
                kvecs: kabsvecs,
            });
        }
        for (mi, m) in layer.mlps.iter().enumerate() {
            let name = m.instructions.first().map(|s| s.trim_start_matches('%').to_string()).unwrap_or_default();
            if facts.heads.iter().any(|h| h.decoder.map(|d| (d.0, d.1)) == Some((li, mi))) {
                continue;
            }
            if name.starts_with("loop ") {
                continue; // loops are refused above
            }
            let g = ctx.groups_read(&m.w_in, false).map_err(|e| e.0)?;
            let combos = ctx.combos(&g).ok_or(format!("the MLP of `%{name}` reads too many combinations"))?;
            let out_dims = ctx.group(&name).map(|g| g.dims()).unwrap_or_default();
            let (margin, _) = margin_of(&name);
            facts.mlps.push(MlpFacts {
                layer: li,
                index: mi,
                name,
                evals: combos.iter().map(|c| MlpEval::new(m, &ctx.residual(c), &out_dims)).collect(),
                margin,
            });
        }
    }
    Ok(facts)
}

/// Whether `r` is exactly representable in `f` (normal or subnormal, in range).
fn representable(r: &Rat, f: &FormatSpec) -> bool {
    let mut ex = Exactness::new();
    ex.note(r);
    ex.exact_in(f)
}

/// Whether `r` is ±2^k: multiplying a float by it is exact (barring
/// overflow and underflow, which the callers bound separately).
fn is_pow2(r: &Rat) -> bool {
    let one = num_bigint::BigInt::from(1);
    let zero = num_bigint::BigInt::from(0);
    let p2 = |b: &num_bigint::BigInt| (b & (b - &one)) == zero;
    !r.is_zero() && p2(&r.numer().abs()) && p2(r.denom())
}

/// Sign and outward magnitude bounds of an exact rational.
#[derive(Clone, Copy, Debug)]
struct Mag {
    zero: bool,
    pos: bool,
    lo: f64,
    hi: f64,
}

impl Mag {
    fn of(r: &Rat) -> Mag {
        Mag { zero: r.is_zero(), pos: r.is_positive(), lo: down(r), hi: up(r) }
    }
}

fn exactness(r: &Rat) -> Exactness {
    let mut e = Exactness::new();
    e.note(r);
    e
}

/// Sterbenz's lemma on intervals: â + b̂ is computed exactly when â and b̂
/// have opposite signs and |b̂|/2 ≤ |â| ≤ 2|b̂|, here for every â within
/// `ea` of `a` and b̂ within `eb` of `b`.
fn sterbenz_exact(a: &Mag, ea: f64, b: &Mag, eb: f64) -> bool {
    if a.zero || b.zero || a.pos == b.pos {
        return false;
    }
    let slack = 2f64.powi(-48);
    let (alo, ahi) = (a.lo * (1.0 - slack) - ea, a.hi * (1.0 + slack) + ea);
    let (blo, bhi) = (b.lo * (1.0 - slack) - eb, b.hi * (1.0 + slack) + eb);
    alo > 0.0 && blo > 0.0 && 2.0 * alo >= bhi && ahi <= 2.0 * blo
}

/// One term `x·w` (or a constant, x = 1 with no error) of a sum the
/// forward pass accumulates left to right from 0, with everything about
/// it that does not depend on errors or the format computed once.
#[derive(Clone, Debug)]
struct TermPlan {
    /// The input dimension whose error enters this term linearly (`None`
    /// for a bias or an exact input).
    dim: Option<usize>,
    x_up: f64,
    x_ex: Exactness,
    w_up: f64,
    w_ex: Exactness,
    w_pow2: bool,
    /// Whether the term is a bias (added as stored, no product).
    constant: bool,
    prod_ex: Exactness,
    /// The exact term, and the exact partial sum before and after it.
    term: Mag,
    before: Mag,
    after: Mag,
    after_ex: Exactness,
}

/// A left-to-right sum's plan.
#[derive(Clone, Debug, Default)]
struct SumPlan {
    terms: Vec<TermPlan>,
    exact: Rat,
}

impl SumPlan {
    fn push(&mut self, dim: Option<usize>, x: &Rat, w: &Rat, constant: bool) {
        let t = x * w;
        let before = Mag::of(&self.exact);
        self.exact += &t;
        self.terms.push(TermPlan {
            dim,
            x_up: up(x),
            x_ex: exactness(x),
            w_up: up(w),
            w_ex: exactness(w),
            w_pow2: is_pow2(w),
            constant,
            prod_ex: exactness(&t),
            term: Mag::of(&t),
            before,
            after: Mag::of(&self.exact),
            after_ex: exactness(&self.exact),
        });
    }

    /// The independent error of the computed sum (rounding of weights,
    /// products and additions), given each term's input error `e_of(k)`
    /// (linear, counted by the caller) and extra independent error
    /// `ind_of(k)`, and whether it overflows. Terms with `skip(k)` are not
    /// computed (an exact zero the forward pass skips).
    fn rounding(&self, f: &FormatSpec, e_of: &dyn Fn(usize) -> f64, ind_of: &dyn Fn(usize) -> f64, skip: &dyn Fn(usize) -> bool) -> (f64, f64, usize) {
        let u = f.u();
        let (mut err, mut lin, mut mag, mut n) = (0f64, 0f64, 0f64, 0usize);
        for (k, t) in self.terms.iter().enumerate() {
            if skip(k) {
                continue;
            }
            let e = e_of(k);
            let w_ok = t.w_ex.exact_in(f);
            let (mut te, t_lin);
            if t.constant {
                te = if w_ok { 0.0 } else { u * t.w_up };
                t_lin = 0.0;
                mag += t.w_up;
            } else {
                let xa = t.x_up + e;
                let wa = t.w_up * (1.0 + if w_ok { 0.0 } else { u });
                te = if w_ok { 0.0 } else { u * t.w_up * xa };
                let prod_ok = (w_ok && t.w_pow2) || (e == 0.0 && w_ok && t.x_ex.exact_in(f) && t.prod_ex.exact_in(f));
                if !prod_ok {
                    te += u * xa * wa + f.eta;
                } else if !t.w_pow2 || e > 0.0 {
                    te += f.eta; // an exact product may still underflow
                }
                t_lin = t.w_up * e;
                mag += xa * wa;
            }
            te += ind_of(k);
            let sterbenz = n >= 1 && sterbenz_exact(&t.before, err + lin, &t.term, t_lin + te);
            err += te;
            lin += t_lin;
            // 0 + t is exact; so is a sum of exact operands whose exact
            // result is representable, and (Sterbenz) a difference of two
            // floats within a factor 2; every other addition rounds once.
            let exact_so_far = err == 0.0 && lin == 0.0 && t.after_ex.exact_in(f);
            if n >= 1 && !exact_so_far && !sterbenz {
                err += u * (t.after.hi + lin + err) + f.eta;
            }
            n += 1;
        }
        (err, mag + err, n)
    }
}

/// One hidden unit's plan.
#[derive(Clone, Debug)]
struct UnitPlan {
    sum: SumPlan,
    z: Mag,
    /// (input dim, W_di) of the inputs that may carry an error.
    linear: Vec<(usize, f64)>,
}

/// One output dimension's plan.
#[derive(Clone, Debug)]
struct OutPlan {
    dim: usize,
    /// The units feeding it, in the forward pass's order, as a sum of
    /// h_i·W_ic; `units[k]` is the unit of term k.
    sum: SumPlan,
    units: Vec<usize>,
    w: Vec<f64>,
    x: Mag,
    /// The exact new residual value x_c + y_c.
    new: Mag,
}

/// An MLP block at one exact input, precomputed for [`MlpEval::eval`].
///
/// First-order affine error analysis, sound because ReLU is piecewise
/// linear: per hidden unit, ẑ_i − z_i = Σ_d W_di·ε_d + r_i, where ε_d is
/// the (unknown, shared) error of input d and r_i collects the rounding of
/// weights, products and partial sums (a [`SumPlan`], in the forward
/// pass's order). A unit whose pre-activation stays positive under the
/// whole error bound is the identity, so its linear error part goes on to
/// the output with its exact coefficients; one that stays ≤ 0 computes an
/// exact 0 (and the forward pass skips it); any other unit passes an
/// independent error of its full bound. The output y_c then has error
/// Σ_d |Σ_{i active} W_ic·W_di|·e_d + Σ_i |W_ic|·r_i + its own rounding:
/// a decoder whose units cancel each other's input dependence (the two
/// units of a ramp) is charged nothing for it. Finally the add into the
/// residual rounds once, unless the residual held an exact 0 there.
#[derive(Clone, Debug)]
struct MlpEval {
    units: Vec<UnitPlan>,
    outs: Vec<OutPlan>,
}

impl MlpEval {
    fn new(m: &Mlp, x: &Vector, out_dims: &[usize]) -> MlpEval {
        let hidden = m.w_in.cols;
        let mut terms: Vec<Vec<(usize, &Rat)>> = vec![vec![]; hidden];
        for (d, i, w) in &m.w_in.entries {
            terms[*i].push((*d, w));
        }
        let bias: BTreeMap<usize, &Rat> = m.b_in.entries.iter().map(|(i, b)| (*i, b)).collect();
        let one = Rat::from_integer(1.into());
        let mut units = Vec::with_capacity(hidden);
        let mut h_exact = Vec::with_capacity(hidden);
        for (i, ts) in terms.iter_mut().enumerate() {
            ts.sort_by_key(|t| t.0);
            let mut sum = SumPlan::default();
            let mut linear = vec![];
            for &(d, w) in ts.iter() {
                let xd = x.get(&d).cloned().unwrap_or_default();
                sum.push(Some(d), &xd, w, false);
                linear.push((d, w.to_f64().unwrap_or(f64::INFINITY)));
            }
            if let Some(b) = bias.get(&i) {
                sum.push(None, &one, b, true);
            }
            let z = Mag::of(&sum.exact);
            h_exact.push(if sum.exact.is_positive() { sum.exact.clone() } else { Rat::zero() });
            units.push(UnitPlan { sum, z, linear });
        }
        let mut by_out: BTreeMap<usize, Vec<(usize, &Rat)>> = BTreeMap::new();
        for (i, c, w) in &m.w_out.entries {
            by_out.entry(*c).or_default().push((*i, w));
        }
        let mut outs = vec![];
        for &c in out_dims {
            let mut ts = by_out.get(&c).cloned().unwrap_or_default();
            ts.sort_by_key(|t| t.0);
            let mut sum = SumPlan::default();
            let mut us = vec![];
            let mut ws = vec![];
            for (i, w) in ts {
                sum.push(None, &h_exact[i], w, false);
                us.push(i);
                ws.push(w.to_f64().unwrap_or(f64::INFINITY));
            }
            if let Some((_, b)) = m.b_out.entries.iter().find(|(j, _)| *j == c) {
                sum.push(None, &one, b, true);
                us.push(usize::MAX);
                ws.push(0.0);
            }
            let xc = x.get(&c).cloned().unwrap_or_default();
            let new = Mag::of(&(&xc + &sum.exact));
            outs.push(OutPlan { dim: c, sum, units: us, w: ws, x: Mag::of(&xc), new });
        }
        MlpEval { units, outs }
    }

    /// The largest error of each output dimension of the residual after
    /// the block, its input dimension d carrying an error of at most
    /// `in_err(d)`; `Err` on overflow or an unbounded bound (the analysis
    /// is described on [`MlpEval`]).
    fn eval(&self, in_err: &dyn Fn(usize) -> f64, f: &FormatSpec) -> Result<BTreeMap<usize, f64>, String> {
        let slack = 1.0 + 2f64.powi(-48);
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            Active,
            Off,
            Unsure,
        }
        // Per unit: state, linear max, rest.
        let mut st = Vec::with_capacity(self.units.len());
        for u in &self.units {
            let e_of = |k: usize| u.sum.terms[k].dim.map_or(0.0, in_err);
            let skip = |k: usize| {
                let t = &u.sum.terms[k];
                !t.constant && t.term.zero && e_of(k) == 0.0
            };
            let (rest, mag, _) = u.sum.rounding(f, &e_of, &|_| 0.0, &skip);
            if mag * (1.0 + 2.0 * f.u()) > f.max {
                return Err(format!("an MLP pre-activation of magnitude {mag:.3e} overflows"));
            }
            let lin: f64 = u.linear.iter().map(|(d, w)| w.abs() * in_err(*d)).sum::<f64>() * slack;
            let bound = (lin + rest) * slack;
            let s = if u.z.pos && u.z.lo > bound {
                State::Active
            } else if (u.z.zero && bound == 0.0) || (!u.z.zero && !u.z.pos && bound <= u.z.lo) {
                State::Off
            } else {
                State::Unsure
            };
            st.push((s, lin, rest));
        }
        let mut errs = BTreeMap::new();
        for o in &self.outs {
            let c = o.dim;
            let ec = in_err(c);
            // Linear coefficients per input dim: the old residual value goes
            // through the add (coefficient 1), then W_ic·W_di over active units.
            let mut coef: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
            if ec > 0.0 {
                coef.insert(c, (1.0, 1.0));
            }
            let mut prop = 0f64;
            for (k, &i) in o.units.iter().enumerate() {
                if i == usize::MAX {
                    continue;
                }
                let (s, lin, rest) = st[i];
                let w = o.w[k];
                match s {
                    State::Off => {}
                    State::Active => {
                        for (d, wd) in &self.units[i].linear {
                            let p = w * wd;
                            let slot = coef.entry(*d).or_insert((0.0, 0.0));
                            slot.0 += p;
                            slot.1 += p.abs();
                        }
                        prop += w.abs() * rest;
                    }
                    State::Unsure => prop += w.abs() * (lin + rest),
                }
            }
            for (d, (sum, abs)) in &coef {
                // f64 sums of the products: their own rounding, outward.
                prop += (sum.abs() + abs * 2f64.powi(-50)) * in_err(*d);
            }
            let e_h = |k: usize| {
                let i = o.units[k];
                if i == usize::MAX {
                    0.0
                } else {
                    st[i].1 + st[i].2
                }
            };
            let skip = |k: usize| {
                let i = o.units[k];
                i != usize::MAX && st[i].0 == State::Off
            };
            let (acc_err, mag, n) = o.sum.rounding(f, &e_h, &|_| 0.0, &skip);
            if mag * (1.0 + 2.0 * f.u()) > f.max {
                return Err(format!("an MLP output of magnitude {mag:.3e} overflows"));
            }
            let pre = (prop + acc_err) * slack;
            // x̂_c + ŷ_c rounds once, unless one of them is an exact 0 (the
            // forward pass skips a zero delta; 0 + y is exact).
            let add = if (o.x.zero && ec == 0.0) || n == 0 { 0.0 } else { f.u() * (o.new.hi + pre) + f.eta };
            let total = (pre + add) * slack;
            if !total.is_finite() {
                return Err("the rounding bound is unbounded (too few bits)".into());
            }
            errs.insert(c, total);
        }
        Ok(errs)
    }
}


/// The head's bound at length n: `Ok(error reaching its output)` or why it fails.
///
/// Derivation (β' = β(1 ± u) is β rounded into the format):
/// 1. Scores: q·k from rounded weights and inputs, h terms:
///    |ŝ − s| ≤ δ_s = γ_{kq+kk+h+3}·S_abs + (2(kq+kk+h)+4)·η, S_abs the
///    largest Σ_c (|x||W_q|)_c (|y||W_k|)_c. Logits t = β·s rounded once
///    more: |t̂ − β's| ≤ E_t = β'δ_s + u·β'(S_max + δ_s) + η.
/// 2. Required: 2E_t < β'Δ/2, so the winning keys (those at the top exact
///    level, all tied) stay above every other key by β'Δ − 2E_t ≥ β'Δ/2.
/// 3. After subtracting the max (relative u) and exp (relative ε_x, plus
///    η): a loser's e ≤ L = e^{−(β'Δ − 2E_t)(1−u)}(1+ε_x) + η; a winner's
///    e ∈ [W = e^{−2E_t(1+u)}(1−ε_x), 1+ε_x].
/// 4. Leakage: with m ≥ 1 winners and at most n losers (n + 1 keys with
///    BOS), the loser mass λ = Σ_L e / Σ e ≤ nL/(mW + nL) ≤ nL/(W + nL)
///    (x/(c+x) grows in x and falls in c). For L = e^{−βΔ}, W = 1 this is
///    n·e^{−βΔ}/(1 + n·e^{−βΔ}) ≤ n·e^{−βΔ}, the (n−1)·e^{−βΔ} of the
///    theory up to the count of losers.
/// 5. Among winners each weight is within (ρ−1)/m of uniform,
///    ρ = (1+ε_x)/W, so ‖a − a*‖₁ ≤ (ρ − 1) + 2λ (λ taken from the
///    winners, λ put on losers); the sum of n + 1 terms and the division
///    add γ_{n+4} relative and (n+2)η.
/// 6. Output: Σ_j a_j v_j with |v| ≤ V (V bounds Σ_c |v_c||W_o[c,d]|):
///    error ≤ ‖â − a*‖₁·V + γ_{n+kv+hv+5}·V·(1 + ‖â − a*‖₁) +
///    u·(base + V) (the add into the residual) + (n+hv+2)·η.
fn head_bound(h: &HeadFacts, model: &Model, inp: &[f64], n: usize, beta: f64, f: &FormatSpec, width: Option<&Rat>) -> Result<f64, String> {
    let u = f.u();
    // A power-of-two β is exact in every format (within its range), and
    // so is the scaling β·ŝ: the logits then carry only the scores' error.
    let beta_pow2 = beta > 0.0 && beta.log2().fract() == 0.0 && beta <= f.max;
    let ub = if beta_pow2 { 0.0 } else { u };
    let (bl, br) = (beta * (1.0 - ub), beta * (1.0 + ub));
    let (smax, sabs, gap, v) = (up(&h.max_score), up(&h.score_abs), down(&h.gap), up(&h.max_value));
    let (d_in, v_in) = input_effect(h, model, inp);
    let exact = h.scores.exact_in(f) && d_in == 0.0;
    let ks = h.kq + h.kk + h.head_dim;
    let ds = if exact {
        0.0
    } else {
        let rounding = if h.scores.exact_in(f) { 0.0 } else { gamma(ks + 3, u) * (sabs + d_in) + (2 * ks + 4) as f64 * f.eta };
        d_in + rounding
    };
    if br * (smax + ds) * (1.0 + u) > f.max {
        return Err(format!("logits up to {:.3e} overflow", br * smax));
    }
    let et = br * ds + ub * br * (smax + ds) + f.eta;
    let bd = bl * gap;
    if !(2.0 * et < bd / 2.0) {
        return Err(format!("logit rounding {et:.3e} is not below a quarter of the gap β·Δ = {bd:.3e}"));
    }
    let raw_loser = (-(bd - 2.0 * et) * (1.0 - u)).exp() * (1.0 + f.exp_err) + 2f64.powi(-150);
    // e below half the smallest subnormal rounds to 0.
    let loser = if exact && raw_loser < f.eta { 0.0 } else { raw_loser + f.eta };
    // Exact scores: equal scores give equal logits, so the winners' e are all exactly e^0 = 1.
    let wmin = if exact { 1.0 } else { (-(2.0 * et * (1.0 + u))).exp() * (1.0 - f.exp_err) };
    let rho1 = if exact { 0.0 } else { (1.0 + f.exp_err) / wmin - 1.0 };
    // Losers negligible: with exact scores the winners' e are exactly 1, and
    // when all losers together stay below 2^-(p+1) every partial sum of the
    // e's (in key order) rounds to the exact count of winners so far (an
    // integer ≤ 2^p is exact, and adding less than half an ulp of it
    // rounds back to it): the sum is exactly m and every winner's weight
    // is fl(1/m), within u/m of 1/m; a loser's weight is at most L(1+u).
    // (Zero losers, e rounding to 0, is the case L = 0.)
    let nf = n as f64;
    let negligible = exact
        && f.precision != u32::MAX
        && ((n + 1) as f64) <= 2f64.powi(f.precision as i32)
        && nf * loser * (1.0 + 2.0 * u) < 2f64.powi(-(f.precision as i32) - 1);
    let lam = if negligible { 0.0 } else { nf * loser / (wmin + nf * loser) };
    // A categorical aggregate's winners all carry the same value (the
    // verifier proves it single-valued), so how the weight spreads among
    // them does not matter, only the mass the losers take and the total.
    let spread = if h.kind == HeadKind::Cat { 0.0 } else { rho1 };
    let l1 = if negligible {
        u + nf * loser * (1.0 + u)
    } else {
        spread + 2.0 * lam + gamma(n + 4, u) * (1.0 + spread + 2.0 * lam) + (n + 2) as f64 * f.eta
    };
    let e_out = match width {
        Some(w) => {
            // Only BOS carries a value (the verifier proves the keys' values zero).
            let p = up(&(Rat::from_integer(1.into()) / (w + Rat::from_integer(1.into()))));
            let e_bos = if negligible { u * p } else { l1 };
            if negligible && h.value_pow2 {
                // v_BOS = bos·W_v and the W_o projection are single ±2^k
                // products: exact. The scratch held an exact 0, so the add
                // is exact too: the output is â_BOS·V.
                e_bos * v + (h.kv + h.value_dim + 3) as f64 * f.eta
            } else {
                e_bos + gamma(h.kv + h.value_dim + 3, u) * (p + e_bos) * v + (h.kv + h.value_dim + 3) as f64 * f.eta
            }
        }
        None if negligible => {
            // Σ_j â_j v_j over at most n + 1 keys: the weights' error, the
            // products (exact when the value path is ±2^k), and the partial
            // sums, the k-th of which is at most (k/m)·V(1+u) in magnitude
            // among winners (Σ_k k/m ≤ (n + 2)/2 over m ≤ n + 1 winners).
            let prod = if h.value_pow2 { 0.0 } else { gamma(h.kv + h.value_dim + 3, u) * v * (1.0 + l1) };
            l1 * v
                + prod
                + u * v * (1.0 + u) * (n + 2) as f64 / 2.0
                + u * (h.base + v * (1.0 + l1))
                + (n + h.value_dim + 4) as f64 * f.eta
        }
        None => {
            l1 * v
                + gamma(n + h.kv + h.value_dim + 5, u) * v * (1.0 + l1)
                + u * (h.base + v)
                + (n + h.value_dim + 2) as f64 * f.eta
        }
    };
    // Errors already in the values (from earlier blocks), weighted by
    // attention weights that sum to at most 1 + l1.
    let e_out = e_out + v_in * (1.0 + l1);
    if !e_out.is_finite() {
        return Err("the rounding bound is unbounded (too few bits)".into());
    }
    if h.kind != HeadKind::Width && !(e_out < h.margin) {
        return Err(format!("output error {e_out:.3e} is not below the consumer's margin {:.3e}", h.margin));
    }
    Ok(e_out)
}

/// What the errors `inp` already in the residual do to a head: the largest
/// score perturbation δ_in = Σ_c (max|q_c|·Δk_c + Δq_c·max|k_c| + Δq_c·Δk_c),
/// with Δq_c = Σ_d |W_q[d,c]|·e_d (and Δk the same), and the largest error
/// of a value at the output, max_d Σ_c Δv_c·|W_o[c,d]|.
fn input_effect(h: &HeadFacts, model: &Model, inp: &[f64]) -> (f64, f64) {
    let head = &model.layers[h.layer].attn[h.index];
    let spread = |m: &Matrix| {
        let mut out = vec![0f64; m.cols];
        for (d, c, w) in &m.entries {
            let e = inp.get(*d).copied().unwrap_or(0.0);
            if e > 0.0 {
                out[*c] += up(w) * e;
            }
        }
        out
    };
    let (dq, dk, dv) = (spread(&head.w_q), spread(&head.w_k), spread(&head.w_v));
    // |q̂·k̂ − q·k| ≤ Σ_c |q_c|Δk_c + Δq_c|k_c| + Δq_cΔk_c, maximised over
    // the actual query and key vectors (one-hot ones touch few c).
    let worst = |vs: &[Vec<(usize, f64)>], d: &[f64]| vs.iter().map(|v| v.iter().map(|(c, x)| x * d[*c]).sum::<f64>()).fold(0.0, f64::max);
    let mut d_in = worst(&h.qvecs, &dk) + worst(&h.kvecs, &dq);
    for c in 0..dq.len() {
        d_in += dq[c] * dk[c];
    }
    let mut vo = vec![0f64; head.w_o.cols];
    for (c, d, w) in &head.w_o.entries {
        vo[*d] += dv[*c] * up(w);
    }
    (d_in * (1.0 + 2f64.powi(-48)), vo.into_iter().fold(0.0, f64::max) * (1.0 + 2f64.powi(-48)))
}

/// A width head and its decoder at length n: the errors of the residual
/// dimensions the decoder writes (its outputs and the scratch), the
/// largest over the widths ≤ n. `before` are the residual's errors before
/// the attention sublayer, `after` after it.
fn width_bound(h: &HeadFacts, model: &Model, before: &[f64], after: &[f64], n: usize, beta: f64, f: &FormatSpec) -> Result<BTreeMap<usize, f64>, String> {
    let Some((_, _, scratch)) = h.decoder else { return Err("no decoder".into()) };
    let one = Rat::from_integer(1.into());
    let pts: Vec<Rat> = h.widths.iter().map(|w| &one / (w + &one)).collect();
    let spacing = {
        let vals: Vec<Value> = h.widths.iter().map(|w| Value::Num(w.clone())).collect();
        half_spacing(&vals)
    };
    let one_dim = model.basis.iter().position(|b| b == "one").unwrap_or(0);
    let mut worst: BTreeMap<usize, f64> = BTreeMap::new();
    for (k, (w, p)) in h.widths.iter().zip(&pts).enumerate() {
        if *w > Rat::from_integer(n.into()) {
            continue;
        }
        let e = head_bound(h, model, before, n, beta, f, Some(w))? + before.get(scratch).copied().unwrap_or(0.0);
        // The point 1/(w+1) must stay nearer its own knot than its neighbours'.
        let near = [k.checked_sub(1), Some(k + 1)]
            .into_iter()
            .flatten()
            .filter_map(|j| pts.get(j))
            .map(|q| down(&((q - p).abs() / Rat::from_integer(2.into()))))
            .fold(f64::INFINITY, f64::min);
        if !(e < near) {
            return Err(format!("1/(w+1) at w = {w} is off by up to {e:.3e}, not below half the distance to the next point, {near:.3e}"));
        }
        let mut x = Vector::new();
        x.insert(one_dim, one.clone());
        x.insert(scratch, p.clone());
        let errs = h.decoder_evals[k].eval(&|dim| if dim == scratch { e } else { after.get(dim).copied().unwrap_or(0.0) }, f)?;
        for (dim, d) in errs {
            if dim != scratch && !(d < spacing.min(0.5)) {
                return Err(format!("the decoded width at w = {w} is off by up to {d:.3e}, not below {:.3e}", spacing.min(0.5)));
            }
            let slot = worst.entry(dim).or_insert(0.0);
            *slot = slot.max(d);
        }
    }
    Ok(worst)
}

/// Any other MLP block on every input combination, its inputs carrying the
/// residual's errors `inp`: the errors of the dimensions it writes.
fn other_mlp_bound(mf: &MlpFacts, inp: &[f64], f: &FormatSpec) -> Result<BTreeMap<usize, f64>, String> {
    let mut worst: BTreeMap<usize, f64> = BTreeMap::new();
    for ev in &mf.evals {
        let errs = ev.eval(&|dim| inp.get(dim).copied().unwrap_or(0.0), f)?;
        for (dim, d) in errs {
            if !(d < mf.margin) {
                return Err(format!("output error {d:.3e} not below the margin {:.3e}", mf.margin));
            }
            let slot = worst.entry(dim).or_insert(0.0);
            *slot = slot.max(d);
        }
    }
    Ok(worst)
}

/// The errors of the embedded residual: each weight rounded into the
/// format, and the token and position rows added once where both write.
fn embed_errors(model: &Model, f: &FormatSpec) -> Vec<f64> {
    let d = model.basis.len();
    let u = f.u();
    let (mut tmax, mut pmax, mut e) = (vec![0f64; d], vec![0f64; d], vec![0f64; d]);
    let mut tok = vec![false; d];
    let mut pos = vec![false; d];
    for (_, c, w) in &model.token_embed.entries {
        tok[*c] = true;
        tmax[*c] = tmax[*c].max(up(w));
        if !representable(w, f) {
            e[*c] = e[*c].max(u * up(w));
        }
    }
    let mut pe = vec![0f64; d];
    for (_, c, w) in &model.pos_embed.entries {
        pos[*c] = true;
        pmax[*c] = pmax[*c].max(up(w));
        if !representable(w, f) {
            pe[*c] = pe[*c].max(u * up(w));
        }
    }
    for c in 0..d {
        e[c] += pe[c];
        if tok[c] && pos[c] {
            e[c] += u * (tmax[c] + pmax[c] + e[c]) + f.eta;
        }
    }
    e
}

/// One head of the report.
#[derive(Clone, Debug, Serialize)]
pub struct HeadReport {
    /// Layer (0-based).
    pub layer: usize,
    /// Head index in the layer.
    pub head: usize,
    /// The instruction (`%name`).
    pub instruction: String,
    /// cat, num or width.
    pub kind: HeadKind,
    /// The score gap Δ (exact, as a rational string) and as a number.
    pub gap: String,
    /// Largest |score|.
    pub max_score: String,
    /// Largest |value| reaching the output (Σ_c |v_c||W_o|).
    pub max_value: String,
    /// Most keys one query can select at once.
    pub max_keys: usize,
    /// Smallest β for which this head's bound holds at max_len in exact arithmetic.
    pub min_beta: Option<f64>,
    /// Fewest significand bits for which the head's bound holds at max_len and the given β.
    pub min_mantissa_bits: Option<u32>,
    /// Per format: the largest length up to which this head's bound holds.
    pub analytic_max_len: BTreeMap<String, usize>,
}

/// A failing run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Failure {
    /// The input's length.
    pub len: usize,
    /// The input.
    pub input: Vec<String>,
    /// First wrong position (0-based).
    pub position: usize,
    /// The interpreter's output there.
    pub expected: String,
    /// The model's output there (or its error).
    pub actual: String,
}

/// One format of the report.
#[derive(Clone, Debug, Serialize)]
pub struct FormatReport {
    /// The format's name.
    pub format: String,
    /// Significand bits.
    pub mantissa_bits: u32,
    /// The largest n ≤ max_len such that every bound holds at every length up to n.
    pub analytic_max_len: usize,
    /// What fails first, past the analytic length.
    pub limited_by: Option<String>,
    /// The first failing length and input, `None` when no run failed.
    pub observed_first_failure: Option<Failure>,
    /// Per length 1..=max_len: the most wrong positions over the inputs run.
    pub wrong_positions: Vec<usize>,
    /// The smallest β (on a grid of 2^(1/8) steps from 2^-4 to 2^20) for
    /// which every bound holds at max_len in this format.
    pub min_beta: Option<f64>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct PrecisionReport {
    /// The program.
    pub program: String,
    /// The model's max_len.
    pub max_len: usize,
    /// The inverse temperature.
    pub beta: f64,
    /// Why the analysis does not apply (safe lengths are then 0).
    pub unsupported: Option<String>,
    /// Per head.
    pub heads: Vec<HeadReport>,
    /// Per format.
    pub formats: Vec<FormatReport>,
    /// Fewest significand bits (unbounded exponent) for which every bound holds at max_len.
    pub min_mantissa_bits: Option<u32>,
    /// Smallest β for which every bound holds at max_len in exact arithmetic.
    pub min_beta: Option<f64>,
    /// The head whose bound fails first (in the narrowest format).
    pub weakest_head: Option<String>,
    /// Formats whose analytic bound covers every length up to max_len.
    pub analytic_ok: Vec<String>,
    /// Formats in which no observed run failed up to max_len.
    pub observed_ok: Vec<String>,
}

/// Every bound at length n, with the errors of each block carried into the
/// blocks after it (per residual dimension, uniform over positions):
/// `Err((block, why))` for the first that fails.
fn all_bounds(facts: &Facts, model: &Model, n: usize, beta: f64, f: &FormatSpec) -> Result<(), (String, String)> {
    if let Some(why) = &facts.unsupported {
        return Err(("model".into(), why.clone()));
    }
    let mut e = embed_errors(model, f);
    for li in 0..model.layers.len() {
        let before = e.clone();
        let mut widths = vec![];
        for h in facts.heads.iter().filter(|h| h.layer == li) {
            let label = || format!("layer {} head {} (%{})", h.layer, h.index, h.name);
            if h.kind == HeadKind::Width {
                let mut worst = 0f64;
                for w in h.widths.iter().filter(|w| **w <= Rat::from_integer(n.into())) {
                    worst = worst.max(head_bound(h, model, &before, n, beta, f, Some(w)).map_err(|x| (label(), x))?);
                }
                if let Some((_, _, scratch)) = h.decoder {
                    e[scratch] += worst;
                }
                widths.push(h);
            } else {
                let eo = head_bound(h, model, &before, n, beta, f, None).map_err(|x| (label(), x))?;
                let head = &model.layers[li].attn[h.index];
                for d in head.w_o.entries.iter().map(|t| t.1).collect::<BTreeSet<_>>() {
                    e[d] += eo;
                }
            }
        }
        let after = e.clone();
        for h in widths {
            let errs = width_bound(h, model, &before, &after, n, beta, f).map_err(|x| (format!("layer {} head {} (%{})", h.layer, h.index, h.name), x))?;
            for (d, x) in errs {
                e[d] = x;
            }
        }
        for mf in facts.mlps.iter().filter(|m| m.layer == li) {
            let errs = other_mlp_bound(mf, &after, f).map_err(|x| (format!("layer {} mlp {} (%{})", mf.layer, mf.index, mf.name), x))?;
            for (d, x) in errs {
                e[d] = x;
            }
        }
    }
    Ok(())
}

/// One head alone, its inputs exact (the per-head figures of the report).
fn head_ok(h: &HeadFacts, model: &Model, n: usize, beta: f64, f: &FormatSpec) -> bool {
    let zeros = vec![0f64; model.basis.len()];
    match h.kind {
        HeadKind::Width => width_bound(h, model, &zeros, &zeros, n, beta, f).is_ok(),
        _ => head_bound(h, model, &zeros, n, beta, f, None).is_ok(),
    }
}

/// The largest L ≤ max_len with `ok(n)` for every n in 1..=L.
fn safe_len(max_len: usize, ok: impl Fn(usize) -> bool) -> usize {
    (1..=max_len).take_while(|&n| ok(n)).last().unwrap_or(0)
}

fn beta_grid() -> impl Iterator<Item = f64> {
    (-32..=160).map(|k| 2f64.powf(k as f64 / 8.0))
}

/// Runs the model in `format` with softmax at `beta` at every length 1..=max_len
/// on adversarial and `randoms` random inputs per length (fixed seed),
/// against the interpreter.
pub fn observe(checked: &Checked, model: &Model, format: Format, beta: f64, randoms: usize) -> (Option<Failure>, Vec<usize>) {
    fn go<S: tfc_ir::forward::Scalar>(checked: &Checked, model: &Model, beta: f64, randoms: usize) -> (Option<Failure>, Vec<usize>) {
        let prog = &checked.program;
        let Ok(pm) = PreparedModel::<S>::new(model) else { return (None, vec![]) };
        let mut rng = SplitMix(0x9e15_1011 ^ model.max_len as u64);
        let mut first = None;
        let mut wrong = Vec::new();
        let vocab = &prog.vocab;
        for len in 1..=model.max_len {
            let mut inputs: Vec<Vec<Value>> = Vec::new();
            if !prog.distinct {
                for t in vocab.iter().take(6) {
                    inputs.push(vec![t.clone(); len]);
                }
                // Half and half: the most keys tied on two values.
                if vocab.len() >= 2 {
                    inputs.push((0..len).map(|i| vocab[usize::from(i >= len / 2)].clone()).collect());
                }
            }
            if prog.distinct && len > vocab.len() {
                wrong.push(0);
                continue;
            }
            inputs.push((0..len).map(|i| vocab[i % vocab.len()].clone()).collect());
            inputs.push((0..len).map(|i| vocab[(vocab.len() - 1) - i % vocab.len()].clone()).collect());
            for _ in 0..randoms {
                inputs.push(random_input(prog, len, &mut rng));
            }
            let mut worst = 0;
            for input in inputs {
                if input.len() != len {
                    continue;
                }
                let Ok(want) = interp::run(prog, &input, &interp::RunOptions::default()) else { continue };
                let got = pm.run(&input, Attention::Softmax { beta }, &ForwardOptions::default());
                let (count, at) = match &got {
                    Ok(r) => {
                        let bad: Vec<usize> = (0..len).filter(|&p| r.outputs.get(p) != want.output.get(p)).collect();
                        (bad.len(), bad.first().map(|&p| (p, r.outputs[p].to_string())))
                    }
                    Err(e) => (len, Some((0, format!("error: {e}")))),
                };
                worst = worst.max(count);
                if let (None, Some((p, actual))) = (&first, at) {
                    first = Some(Failure {
                        len,
                        input: input.iter().map(|v| v.to_string()).collect(),
                        position: p,
                        expected: want.output[p].to_string(),
                        actual,
                    });
                }
            }
            wrong.push(worst);
        }
        (first, wrong)
    }
    match format {
        Format::Exact | Format::F64 => go::<f64>(checked, model, beta, randoms),
        Format::F32 => go::<f32>(checked, model, beta, randoms),
        Format::F16 => go::<tfc_ir::forward::f16>(checked, model, beta, randoms),
        Format::Bf16 => go::<tfc_ir::forward::bf16>(checked, model, beta, randoms),
        Format::Fp8E4M3 => go::<Fp8E4M3>(checked, model, beta, randoms),
        Format::Fp8E5M2 => go::<Fp8E5M2>(checked, model, beta, randoms),
    }
}

/// The analytic part alone, for one format: the largest n ≤ max_len such
/// that every bound holds at every length up to n, and what fails first
/// beyond it (`None` when the bound covers max_len).
pub fn analytic(checked: &Checked, model: &Model, format: Format, beta: f64) -> Result<(usize, Option<String>), String> {
    let facts = gather(checked, model)?;
    let Some(s) = FormatSpec::of(format) else { return Err("exact arithmetic has no precision bound".into()) };
    let n = safe_len(facts.max_len, |n| all_bounds(&facts, model, n, beta, &s).is_ok());
    let why = if n < facts.max_len {
        all_bounds(&facts, model, n + 1, beta, &s).err().map(|(b, why)| format!("at length {}: {b}: {why}", n + 1))
    } else {
        None
    };
    Ok((n, why))
}

/// One line for the end of `tfc verify`: per format, the analytic safe
/// length against max_len at `beta`.
pub fn summary_line(checked: &Checked, model: &Model, formats: &[Format], beta: f64) -> String {
    let facts = match gather(checked, model) {
        Ok(f) => f,
        Err(e) => return format!("precision: not analysed ({e})"),
    };
    if let Some(why) = &facts.unsupported {
        return format!("precision: not analysed ({why}); see `tfc precision` for observed runs");
    }
    let mut parts = vec![];
    let mut weakest: Option<(usize, String)> = None;
    for f in formats {
        let Some(s) = FormatSpec::of(*f) else { continue };
        let n = safe_len(facts.max_len, |n| all_bounds(&facts, model, n, beta, &s).is_ok());
        parts.push(format!("{} {n}", f.name()));
        if n < facts.max_len && weakest.as_ref().map_or(true, |w| n < w.0) {
            if let Err((b, _)) = all_bounds(&facts, model, n + 1, beta, &s) {
                weakest = Some((n, b));
            }
        }
    }
    let tail = weakest.map(|(_, b)| format!("; weakest block: {b}")).unwrap_or_default();
    format!(
        "precision: softmax (beta {beta}) proved to decode as hard attention up to length {} of max_len {}{tail} (`tfc precision` for details)",
        parts.join(", "),
        facts.max_len
    )
}

/// The precision report of a compiled model.
pub fn report(checked: &Checked, model: &Model, formats: &[Format], beta: f64, randoms: usize) -> Result<PrecisionReport, String> {
    let facts = gather(checked, model)?;
    let max_len = facts.max_len;
    let specs: Vec<(Format, FormatSpec)> = formats.iter().filter_map(|f| FormatSpec::of(*f).map(|s| (*f, s))).collect();
    let supported = facts.unsupported.is_none();
    let mut heads = Vec::new();
    for h in &facts.heads {
        let min_beta = beta_grid().find(|&b| head_ok(h, model, max_len, b, &FormatSpec::real()));
        let min_bits = (2..=53).find(|&p| head_ok(h, model, max_len, beta, &FormatSpec::bits(p)));
        let analytic = specs
            .iter()
            .map(|(f, s)| (f.name().to_string(), if supported { safe_len(max_len, |n| head_ok(h, model, n, beta, s)) } else { 0 }))
            .collect();
        heads.push(HeadReport {
            layer: h.layer,
            head: h.index,
            instruction: format!("%{}", h.name),
            kind: h.kind,
            gap: tfc_ir::model::rat_to_string(&h.gap),
            max_score: tfc_ir::model::rat_to_string(&h.max_score),
            max_value: tfc_ir::model::rat_to_string(&h.max_value),
            max_keys: h.max_keys,
            min_beta,
            min_mantissa_bits: min_bits,
            analytic_max_len: analytic,
        });
    }
    let mut out_formats = Vec::new();
    for (f, s) in &specs {
        let analytic = safe_len(max_len, |n| all_bounds(&facts, model, n, beta, s).is_ok());
        let limited_by = if analytic < max_len {
            all_bounds(&facts, model, analytic + 1, beta, s).err().map(|(b, why)| format!("at length {}: {b}: {why}", analytic + 1))
        } else {
            None
        };
        let (observed, wrong) = observe(checked, model, *f, beta, randoms);
        let min_beta = beta_grid().find(|&b| all_bounds(&facts, model, max_len, b, s).is_ok());
        out_formats.push(FormatReport {
            format: f.name().to_string(),
            mantissa_bits: s.precision,
            analytic_max_len: analytic,
            limited_by,
            observed_first_failure: observed,
            wrong_positions: wrong,
            min_beta,
        });
    }
    let min_beta = beta_grid().find(|&b| all_bounds(&facts, model, max_len, b, &FormatSpec::real()).is_ok());
    let min_bits = (2..=53).find(|&p| all_bounds(&facts, model, max_len, beta, &FormatSpec::bits(p)).is_ok());
    let weakest_head = heads
        .iter()
        .min_by_key(|h| (h.min_mantissa_bits.map_or(0, |b| u32::MAX - b), h.analytic_max_len.values().min().copied().unwrap_or(0)))
        .map(|h| format!("layer {} head {} ({})", h.layer, h.head, h.instruction));
    Ok(PrecisionReport {
        program: model.program.clone(),
        max_len,
        beta,
        unsupported: facts.unsupported.clone(),
        heads,
        analytic_ok: out_formats.iter().filter(|f| f.analytic_max_len == max_len).map(|f| f.format.clone()).collect(),
        observed_ok: out_formats.iter().filter(|f| f.observed_first_failure.is_none()).map(|f| f.format.clone()).collect(),
        formats: out_formats,
        min_mantissa_bits: min_bits,
        min_beta,
        weakest_head,
    })
}

/// The report as an SVG: wrong positions against length, one polyline per format.
pub fn plot_svg(r: &PrecisionReport) -> String {
    let (w, h, pad) = (640.0, 360.0, 50.0);
    let max_y = r.formats.iter().flat_map(|f| f.wrong_positions.iter().copied()).max().unwrap_or(0).max(1) as f64;
    let max_x = r.max_len.max(2) as f64;
    let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"];
    let sx = |x: f64| pad + (x - 1.0) / (max_x - 1.0) * (w - 2.0 * pad);
    let sy = |y: f64| h - pad - y / max_y * (h - 2.0 * pad);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{pad}\" y=\"20\">{}: wrong output positions (max over inputs) against length, softmax β = {}</text>\n\
         <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\">length</text><text x=\"5\" y=\"{pad}\">{max_y}</text><text x=\"5\" y=\"{}\">0</text>\n",
        xml(&r.program),
        r.beta,
        h - pad,
        w - pad,
        h - pad,
        h - pad,
        w / 2.0,
        h - 15.0,
        h - pad
    );
    for x in [1usize, r.max_len] {
        s += &format!("<text x=\"{}\" y=\"{}\">{x}</text>\n", sx(x as f64) - 4.0, h - pad + 15.0);
    }
    for (k, f) in r.formats.iter().enumerate() {
        let c = colors[k % colors.len()];
        let pts: Vec<String> =
            f.wrong_positions.iter().enumerate().map(|(i, y)| format!("{:.1},{:.1}", sx((i + 1) as f64), sy(*y as f64))).collect();
        s += &format!("<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>\n", pts.join(" "));
        s += &format!("<text x=\"{}\" y=\"{}\" fill=\"{c}\">{}</text>\n", w - pad + 5.0 - 40.0, pad + 15.0 * k as f64, xml(&f.format));
    }
    s + "</svg>\n"
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
