//! One forward pass over a [`Model`], generic over the scalar.
//!
//! The same code runs a model two ways:
//!
//! - **exactly**, with [`Rat`] and [`Attention::Hard`]: for each query the
//!   keys with the maximum score share the attention equally (ties are
//!   averaged). This is the semantics the verifier proves things about,
//!   and the one the reference interpreter is compared with;
//! - **as hardware does**, with `f64`, `f32`, [`half::f16`](struct@half::f16) or
//!   [`half::bf16`] and [`Attention::Softmax`] at an inverse temperature
//!   β, rounding after every single operation. The precision report runs
//!   this to find where a format breaks.
//!
//! Every weight is converted to the scalar type once, with correct
//! rounding from its exact rational, when a [`PreparedModel`] is built;
//! running then uses sparse kernels (compiled weights are almost all zero,
//! so `x · W` visits only the nonzero entries of W, and skips rows where x
//! is zero). Skipping a zero product never changes a rounded result,
//! because adding an exact zero is exact. The order of every sum is fixed
//! (increasing index), so runs are deterministic.
//!
//! The semantics are spelled out in `docs/MODEL.md`.

use crate::ast::Encoding;
use crate::model::{LoopStop, Model, ModelError};
use crate::value::{Rat, Value};
pub use half::{bf16, f16};
use num_bigint::BigInt;
use num_integer::Integer;
use num_traits::{One, Signed, ToPrimitive, Zero};
use std::collections::HashMap;
use std::fmt;

// ---------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------

/// A number type a forward pass can run in.
///
/// Every operation returns the correctly rounded result in the type's own
/// format (exactly, for [`Rat`]); nothing is kept in higher precision
/// between operations. Implemented for [`Rat`], `f64`, `f32`, [`f16`](struct@f16) and
/// [`bf16`]; a narrower float format (fp8 e4m3 / e5m2) is one more
/// `emulated_float!` line, given a type with correctly rounding
/// `from_f32`/`to_f32` conversions.
pub trait Scalar: Clone + PartialEq + PartialOrd + fmt::Debug + Send + Sync + 'static {
    /// The name used by the CLI (`exact`, `f64`, `f32`, `f16`, `bf16`).
    const NAME: &'static str;
    /// Whether arithmetic is exact (no rounding, no `exp`).
    const EXACT: bool;
    /// 0.
    fn zero() -> Self;
    /// 1.
    fn one() -> Self;
    /// `r`, correctly rounded (round to nearest, ties to even; ±∞ beyond
    /// the format's range).
    fn from_rat(r: &Rat) -> Self;
    /// `n`, correctly rounded.
    fn from_usize(n: usize) -> Self {
        Self::from_rat(&Rat::from_integer(BigInt::from(n)))
    }
    /// `self + other`, rounded.
    fn add(&self, other: &Self) -> Self;
    /// `self - other`, rounded.
    fn sub(&self, other: &Self) -> Self;
    /// `self * other`, rounded.
    fn mul(&self, other: &Self) -> Self;
    /// `self / other`, rounded. Never called with a zero divisor on an
    /// exact type (the forward pass divides only by counts ≥ 1 and by
    /// softmax sums ≥ 1).
    fn div(&self, other: &Self) -> Self;
    /// `*self += other`, rounded (an in-place form so that big rationals
    /// need not be reallocated).
    fn add_assign(&mut self, other: &Self) {
        *self = self.add(other);
    }
    /// `max(self, 0)`; NaN stays NaN, as in PyTorch.
    fn relu(&self) -> Self {
        if *self < Self::zero() {
            Self::zero()
        } else {
            self.clone()
        }
    }
    /// The larger of the two (the first on ties or NaN).
    fn max_of(&self, other: &Self) -> Self {
        if *other > *self {
            other.clone()
        } else {
            self.clone()
        }
    }
    /// `e^self`, rounded; `None` for exact types, which cannot represent it.
    fn exp(&self) -> Option<Self>;
    /// Whether this is exactly zero (so a product with it can be skipped).
    fn is_zero(&self) -> bool;
    /// Not NaN and not ±∞.
    fn is_finite(&self) -> bool;
    /// The nearest `f64` (exact for every float type here).
    fn to_f64(&self) -> f64;
    /// The exact value, if finite.
    fn to_rat(&self) -> Option<Rat>;
}

/// Rounds `r` to a binary float with `precision` significand bits
/// (hidden bit included) and smallest normal exponent `min_exp`, to
/// nearest with ties to even, below `min_exp` onto the subnormal grid.
///
/// The exponent is not bounded above: the result is returned as an `f64`
/// (±∞ past f64's range), and the caller's conversion into the target
/// type turns values beyond its range into ±∞ (or whatever that format
/// does on overflow). Because the `f64` already has at most `precision`
/// bits, that conversion is exact whenever it does not overflow, so there
/// is exactly one rounding: no double-rounding error. `precision` ≤ 53
/// and `min_exp` ≥ −1022.
pub fn round_rat(r: &Rat, precision: u32, min_exp: i32) -> f64 {
    debug_assert!((1..=53).contains(&precision) && min_exp >= -1022);
    if Zero::is_zero(r) {
        return 0.0;
    }
    let negative = r.is_negative();
    let n = r.numer().abs();
    let d = r.denom().abs();
    // floor(log2(n/d)): n/d lies in [2^(e0-1), 2^(e0+1)).
    let e0 = n.bits() as i64 - d.bits() as i64;
    let at_least_2_e0 = if e0 >= 0 { n >= (&d << (e0 as usize)) } else { (&n << ((-e0) as usize)) >= d };
    let e = if at_least_2_e0 { e0 } else { e0 - 1 }.max(min_exp as i64);
    // q = round(n/d · 2^shift) is the significand, q < 2^precision (or
    // exactly 2^precision after rounding up, which is still exact).
    let shift = precision as i64 - 1 - e;
    let (num, den) = if shift >= 0 { (n << (shift as usize), d) } else { (n, d << ((-shift) as usize)) };
    let (mut q, rem) = num.div_rem(&den);
    let twice = rem << 1usize;
    if twice > den || (twice == den && q.is_odd()) {
        q += 1u32;
    }
    // q < 2^54, so this conversion is exact.
    let q = q.to_f64().unwrap_or(f64::INFINITY);
    let magnitude = ldexp(q, -shift);
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// `x · 2^k`, exact unless the result over- or underflows f64.
fn ldexp(mut x: f64, mut k: i64) -> f64 {
    fn pow2(k: i64) -> f64 {
        // 2^k for k in the normal range [-1022, 1023].
        f64::from_bits(((k + 1023) as u64) << 52)
    }
    while k > 1000 {
        x *= pow2(1000);
        k -= 1000;
        if x.is_infinite() {
            return x;
        }
    }
    while k < -1000 {
        x *= pow2(-1000);
        k += 1000;
        if x == 0.0 {
            return x;
        }
    }
    x * pow2(k)
}

impl Scalar for Rat {
    const NAME: &'static str = "exact";
    const EXACT: bool = true;
    fn zero() -> Self {
        <Rat as Zero>::zero()
    }
    fn one() -> Self {
        <Rat as One>::one()
    }
    fn from_rat(r: &Rat) -> Self {
        r.clone()
    }
    fn add(&self, other: &Self) -> Self {
        self + other
    }
    fn sub(&self, other: &Self) -> Self {
        self - other
    }
    fn mul(&self, other: &Self) -> Self {
        self * other
    }
    fn div(&self, other: &Self) -> Self {
        self / other
    }
    fn add_assign(&mut self, other: &Self) {
        *self += other;
    }
    fn exp(&self) -> Option<Self> {
        None
    }
    fn is_zero(&self) -> bool {
        Zero::is_zero(self)
    }
    fn is_finite(&self) -> bool {
        true
    }
    fn to_f64(&self) -> f64 {
        round_rat(self, 53, -1022)
    }
    fn to_rat(&self) -> Option<Rat> {
        Some(self.clone())
    }
}

/// Native IEEE types: Rust's `+ - * /` on `f64` and `f32` are correctly
/// rounded in their own format (SSE2 / NEON, no x87 excess precision).
/// `exp` is the platform libm's, accurate to about one ulp rather than
/// correctly rounded, as on real hardware.
macro_rules! native_float {
    ($t:ty, $name:literal, $precision:expr, $min_exp:expr) => {
        impl Scalar for $t {
            const NAME: &'static str = $name;
            const EXACT: bool = false;
            #[inline]
            fn zero() -> Self {
                0.0
            }
            #[inline]
            fn one() -> Self {
                1.0
            }
            fn from_rat(r: &Rat) -> Self {
                // Exact (or ±∞) once rounded to this format's precision.
                round_rat(r, $precision, $min_exp) as $t
            }
            #[inline]
            fn add(&self, other: &Self) -> Self {
                self + other
            }
            #[inline]
            fn sub(&self, other: &Self) -> Self {
                self - other
            }
            #[inline]
            fn mul(&self, other: &Self) -> Self {
                self * other
            }
            #[inline]
            fn div(&self, other: &Self) -> Self {
                self / other
            }
            #[inline]
            fn add_assign(&mut self, other: &Self) {
                *self += other;
            }
            #[inline]
            fn relu(&self) -> Self {
                if *self < 0.0 {
                    0.0
                } else {
                    *self
                }
            }
            #[inline]
            fn exp(&self) -> Option<Self> {
                Some(<$t>::exp(*self))
            }
            #[inline]
            fn is_zero(&self) -> bool {
                *self == 0.0
            }
            #[inline]
            fn is_finite(&self) -> bool {
                <$t>::is_finite(*self)
            }
            #[inline]
            fn to_f64(&self) -> f64 {
                *self as f64
            }
            fn to_rat(&self) -> Option<Rat> {
                Rat::from_float(*self as f64)
            }
        }
    };
}

native_float!(f64, "f64", 53, -1022);
native_float!(f32, "f32", 24, -126);

/// Emulated narrow formats: every operation is computed in `f32` and
/// rounded back. For `+ - * /` that is the correctly rounded result in the
/// narrow format, because f32's 24-bit significand has at least 2p + 2
/// bits for the narrow format's p (f16: p = 11, 2p + 2 = 24; bf16: p = 8;
/// fp8: p ≤ 4), and an exact operation rounded first to 2p + 2 bits and
/// then to p bits rounds the same as rounding once (Figueroa, "When is
/// double rounding innocuous?", 1995). One corner is outside that
/// theorem: bf16 shares f32's exponent range, so a product or quotient
/// that lands below 2^-126 (f32's subnormals, with fewer than 24 bits) can
/// double-round; no weight or activation of a compiled model is that
/// small. `exp` is f32's, rounded once more, so it can be off by one ulp
/// in the narrow format, as it is on hardware.
macro_rules! emulated_float {
    ($t:ty, $name:literal, $precision:expr, $min_exp:expr) => {
        impl Scalar for $t {
            const NAME: &'static str = $name;
            const EXACT: bool = false;
            #[inline]
            fn zero() -> Self {
                <$t>::from_f32(0.0)
            }
            #[inline]
            fn one() -> Self {
                <$t>::from_f32(1.0)
            }
            fn from_rat(r: &Rat) -> Self {
                // round_rat leaves at most p significand bits, so the value
                // is exact in f32 and exact (or out of range) in $t.
                <$t>::from_f32(round_rat(r, $precision, $min_exp) as f32)
            }
            #[inline]
            fn add(&self, other: &Self) -> Self {
                <$t>::from_f32(self.to_f32() + other.to_f32())
            }
            #[inline]
            fn sub(&self, other: &Self) -> Self {
                <$t>::from_f32(self.to_f32() - other.to_f32())
            }
            #[inline]
            fn mul(&self, other: &Self) -> Self {
                <$t>::from_f32(self.to_f32() * other.to_f32())
            }
            #[inline]
            fn div(&self, other: &Self) -> Self {
                <$t>::from_f32(self.to_f32() / other.to_f32())
            }
            #[inline]
            fn relu(&self) -> Self {
                if self.to_f32() < 0.0 {
                    Self::zero()
                } else {
                    *self
                }
            }
            #[inline]
            fn exp(&self) -> Option<Self> {
                Some(<$t>::from_f32(self.to_f32().exp()))
            }
            #[inline]
            fn is_zero(&self) -> bool {
                self.to_f32() == 0.0
            }
            #[inline]
            fn is_finite(&self) -> bool {
                self.to_f32().is_finite()
            }
            #[inline]
            fn to_f64(&self) -> f64 {
                self.to_f32() as f64
            }
            fn to_rat(&self) -> Option<Rat> {
                Rat::from_float(self.to_f32() as f64)
            }
        }
    };
}

/// An OCP FP8 value, held as the `f32` it stands for (every fp8 value is
/// exact in f32). `E4M3`: 4 exponent bits (bias 7), 3 fraction bits, so
/// p = 4 significand bits; smallest normal 2^-6, subnormals down to 2^-9,
/// largest finite 448 = 1.75 · 2^8, no infinities (overflow is NaN).
/// `E5M2`: IEEE-like, bias 15, 2 fraction bits (p = 3), smallest normal
/// 2^-14, subnormals down to 2^-16, largest finite 57344 = 1.75 · 2^15,
/// overflow to ±∞.
macro_rules! fp8_type {
    ($t:ident, $doc:literal, $precision:expr, $min_exp:expr, $max:expr, $overflow:expr) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Default)]
        pub struct $t(f32);

        impl $t {
            /// Significand bits, the hidden bit included.
            pub const PRECISION: u32 = $precision;
            /// The largest finite value.
            pub const MAX: f32 = $max;
            /// `x` rounded to nearest, ties to even (the OCP conversion
            /// without saturation): values past the largest finite one by
            /// half an ulp or more become the format's overflow value.
            pub fn from_f32(x: f32) -> $t {
                $t(round_f32_to(x, $precision, $min_exp, $max, $overflow))
            }
            /// The exact value.
            pub fn to_f32(self) -> f32 {
                self.0
            }
        }
    };
}

/// Rounds a finite `x` to `precision` significand bits with smallest
/// normal exponent `min_exp` (subnormal grid below), to nearest with ties
/// to even; a result above `max` is `overflow` (with x's sign, unless NaN).
/// Exact: scaling by a power of two is exact in f32 for the exponents
/// fp8 uses, and `round_ties_even` is exact.
fn round_f32_to(x: f32, precision: u32, min_exp: i32, max: f32, overflow: f32) -> f32 {
    if !x.is_finite() {
        return if x.is_nan() { f32::NAN } else { overflow.copysign(x) };
    }
    if x == 0.0 {
        return x;
    }
    // floor(log2 |x|) for normal f32; f32 subnormals are far below fp8's grid.
    let e = (((x.to_bits() >> 23) & 0xff) as i32 - 127).max(min_exp);
    let ulp = f32::from_bits(((e - (precision as i32 - 1) + 127) as u32) << 23);
    let r = (x / ulp).round_ties_even() * ulp;
    if r.abs() > max {
        if overflow.is_nan() {
            f32::NAN
        } else {
            overflow.copysign(x)
        }
    } else {
        r
    }
}

fp8_type!(Fp8E4M3, "OCP FP8 E4M3: p = 4, max 448, NaN on overflow, no infinities.", 4, -6, 448.0, f32::NAN);
fp8_type!(Fp8E5M2, "OCP FP8 E5M2: p = 3, max 57344, ±∞ on overflow.", 3, -14, 57344.0, f32::INFINITY);

emulated_float!(f16, "f16", 11, -14);
emulated_float!(bf16, "bf16", 8, -126);
emulated_float!(Fp8E4M3, "fp8e4m3", 4, -6);
emulated_float!(Fp8E5M2, "fp8e5m2", 3, -14);

// ---------------------------------------------------------------------------
// API types
// ---------------------------------------------------------------------------

/// How attention turns scores into weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Attention {
    /// The keys with the maximum score share the attention equally (ties
    /// averaged). The verifier's semantics; works with every scalar.
    Hard,
    /// `softmax(beta · scores)`, computed in the scalar type (scale,
    /// subtract the maximum, exponentiate, sum, divide). Needs a float
    /// scalar.
    Softmax {
        /// The inverse temperature β (finite, > 0).
        beta: f64,
    },
}

/// Options for a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForwardOptions {
    /// Keep the residual after the embedding and after every sublayer
    /// (for "the first layer where the residual stops matching").
    pub keep_residuals: bool,
}

/// A point in a run at which the residual is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// After the token and position embeddings.
    Embed,
    /// After the attention sublayer of `layer`, in the `iteration`-th run
    /// of its loop (0 outside loops).
    Attn {
        /// Index into [`Model::layers`].
        layer: usize,
        /// Which run of the enclosing loop (0-based; 0 outside loops).
        iteration: usize,
    },
    /// After the MLP sublayer of `layer`.
    Mlp {
        /// Index into [`Model::layers`].
        layer: usize,
        /// Which run of the enclosing loop (0-based; 0 outside loops).
        iteration: usize,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Embed => f.write_str("embedding"),
            Step::Attn { layer, iteration: 0 } => write!(f, "layer {layer} attention"),
            Step::Mlp { layer, iteration: 0 } => write!(f, "layer {layer} mlp"),
            Step::Attn { layer, iteration } => write!(f, "layer {layer} attention (loop run {iteration})"),
            Step::Mlp { layer, iteration } => write!(f, "layer {layer} mlp (loop run {iteration})"),
        }
    }
}

/// What a run computed.
#[derive(Clone, Debug, PartialEq)]
pub struct ForwardResult<S> {
    /// The decoded output at every input position (BOS excluded).
    pub outputs: Vec<Value>,
    /// The final residual, `[position][dim]`, position 0 being BOS.
    pub final_residual: Vec<Vec<S>>,
    /// With [`ForwardOptions::keep_residuals`]: the residual at every
    /// [`Step`] (`residuals[k][position][dim]`, position 0 = BOS), in run
    /// order; empty otherwise.
    pub residuals: Vec<Vec<Vec<S>>>,
    /// The step of each entry of `residuals` (filled in either way).
    pub steps: Vec<Step>,
    /// How many times each of [`Model::loops`] ran its body.
    pub loop_iterations: Vec<usize>,
}

/// Why a run failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ForwardError {
    /// The model does not validate.
    #[error("invalid model: {0}")]
    InvalidModel(#[from] ModelError),
    /// No input tokens (the program's inputs have length ≥ 1).
    #[error("the input is empty")]
    EmptyInput,
    /// More tokens than the model's `max_len`.
    #[error("the input has {len} tokens, more than the model's max_len of {max_len}")]
    TooLong {
        /// The input's length.
        len: usize,
        /// The model's limit.
        max_len: usize,
    },
    /// The run would hold more than [`MAX_ACTIVATIONS`] scalars in one
    /// activation matrix; refused before allocating.
    #[error("a run of {positions} positions through a layer {width} wide is more than the limit of {limit} activations")]
    TooLarge {
        /// Input tokens plus BOS.
        positions: usize,
        /// The widest residual, head or hidden layer.
        width: usize,
        /// [`MAX_ACTIVATIONS`].
        limit: usize,
    },
    /// A token outside the model's vocabulary.
    #[error("token {token} at index {index} is not in the model's vocabulary")]
    UnknownToken {
        /// Its index in the input (0-based, BOS not counted).
        index: usize,
        /// The token.
        token: Value,
    },
    /// Softmax asked of an exact scalar, which has no `exp`.
    #[error("softmax attention needs a floating-point format; the {scalar} scalar runs hard attention only")]
    SoftmaxNeedsFloat {
        /// The scalar's name.
        scalar: &'static str,
    },
    /// An inverse temperature that is not finite and positive.
    #[error("the inverse temperature must be finite and positive, not {beta}")]
    BadBeta {
        /// The value given.
        beta: f64,
    },
    /// An `until` loop still not halted after its maximum number of runs.
    #[error("loop {index} has not halted after its maximum of {max} runs")]
    LoopDidNotHalt {
        /// Which of [`Model::loops`].
        index: usize,
        /// Its maximum.
        max: usize,
    },
    /// In exact mode, two categorical readout dimensions share the
    /// maximum, so the output is not determined (a wrong model; float
    /// modes take the first, as `argmax` does).
    #[error("the output at index {index} is ambiguous: {first} and {second} score the same")]
    AmbiguousReadout {
        /// The input index (0-based).
        index: usize,
        /// The first value with the maximum (boxed to keep the error small).
        first: Box<Value>,
        /// Another value with the maximum.
        second: Box<Value>,
    },
    /// A readout dimension holds NaN or ±∞ (a float format overflowed).
    #[error("the output at index {index} is not finite (the format overflowed)")]
    NonFinite {
        /// The input index (0-based).
        index: usize,
    },
}

// ---------------------------------------------------------------------------
// Prepared model
// ---------------------------------------------------------------------------

/// A sparse matrix in compressed-row form with weights already in `S`.
#[derive(Clone, Debug)]
struct Csr<S> {
    cols: usize,
    /// `(row, start, end)` for every row with a nonzero entry; the row's
    /// entries are `col_idx[start..end]`, `vals[start..end]`.
    rows: Vec<(usize, usize, usize)>,
    col_idx: Vec<usize>,
    vals: Vec<S>,
}

impl<S: Scalar> Csr<S> {
    fn new(m: &crate::model::Matrix) -> Csr<S> {
        let mut rows = Vec::new();
        let mut col_idx = Vec::with_capacity(m.entries.len());
        let mut vals = Vec::with_capacity(m.entries.len());
        for (k, (i, j, v)) in m.entries.iter().enumerate() {
            if rows.last().map(|e: &(usize, usize, usize)| e.0) != Some(*i) {
                rows.push((*i, k, k));
            }
            // Validated entries are sorted, so this row is the last one.
            if let Some(last) = rows.last_mut() {
                last.2 = k + 1;
            }
            col_idx.push(*j);
            vals.push(S::from_rat(v));
        }
        Csr { cols: m.cols, rows, col_idx, vals }
    }

    /// `out += x · W`, visiting only nonzero weights and nonzero `x[row]`;
    /// each output column accumulates in increasing row order.
    #[inline]
    fn mul_add(&self, x: &[S], out: &mut [S]) {
        for &(row, start, end) in &self.rows {
            let xr = &x[row];
            if xr.is_zero() {
                continue;
            }
            for k in start..end {
                out[self.col_idx[k]].add_assign(&xr.mul(&self.vals[k]));
            }
        }
    }

    /// Adds row `row` of W into `out`.
    fn add_row(&self, row: usize, out: &mut [S]) {
        if let Ok(r) = self.rows.binary_search_by(|e| e.0.cmp(&row)) {
            let (_, start, end) = self.rows[r];
            for k in start..end {
                out[self.col_idx[k]].add_assign(&self.vals[k]);
            }
        }
    }
}

#[derive(Clone, Debug)]
struct PreparedHead<S> {
    w_q: Csr<S>,
    w_k: Csr<S>,
    w_v: Csr<S>,
    w_o: Csr<S>,
}

#[derive(Clone, Debug)]
struct PreparedMlp<S> {
    w_in: Csr<S>,
    b_in: Vec<(usize, S)>,
    w_out: Csr<S>,
    b_out: Vec<(usize, S)>,
}

#[derive(Clone, Debug)]
struct PreparedLayer<S> {
    heads: Vec<PreparedHead<S>>,
    mlps: Vec<PreparedMlp<S>>,
}

/// A validated model with its weights converted to `S` and laid out for
/// sparse products. Build it once and call [`PreparedModel::run`] for
/// every input (differential tests, benchmarks, precision sweeps).
#[derive(Clone, Debug)]
pub struct PreparedModel<'m, S> {
    model: &'m Model,
    d: usize,
    token_embed: Csr<S>,
    pos_embed: Csr<S>,
    layers: Vec<PreparedLayer<S>>,
    vocab_index: HashMap<&'m Value, usize>,
    /// The widest activation a position holds: d, or a head's or an MLP
    /// block's inner width.
    widest: usize,
}

/// The most scalars one activation matrix of a run (positions × width) may
/// hold. A model file can declare widths up to [`crate::model::MAX_DIM`];
/// this refuses a run that would need gigabytes before allocating them.
pub const MAX_ACTIVATIONS: usize = 1 << 28;

impl<'m, S: Scalar> PreparedModel<'m, S> {
    /// Validates `model` and converts its weights to `S`.
    pub fn new(model: &'m Model) -> Result<PreparedModel<'m, S>, ForwardError> {
        model.validate()?;
        let sparse = |v: &crate::model::SparseVec| -> Vec<(usize, S)> {
            v.entries.iter().map(|(j, r)| (*j, S::from_rat(r))).collect()
        };
        let layers = model
            .layers
            .iter()
            .map(|layer| PreparedLayer {
                heads: layer
                    .attn
                    .iter()
                    .map(|h| PreparedHead {
                        w_q: Csr::new(&h.w_q),
                        w_k: Csr::new(&h.w_k),
                        w_v: Csr::new(&h.w_v),
                        w_o: Csr::new(&h.w_o),
                    })
                    .collect(),
                mlps: layer
                    .mlps
                    .iter()
                    .map(|m| PreparedMlp {
                        w_in: Csr::new(&m.w_in),
                        b_in: sparse(&m.b_in),
                        w_out: Csr::new(&m.w_out),
                        b_out: sparse(&m.b_out),
                    })
                    .collect(),
            })
            .collect();
        let widest = model
            .layers
            .iter()
            .flat_map(|l| {
                let heads = l.attn.iter().map(|h| h.w_q.cols.max(h.w_v.cols));
                heads.chain(l.mlps.iter().map(|m| m.w_in.cols))
            })
            .fold(model.basis.len(), usize::max);
        Ok(PreparedModel {
            model,
            widest,
            d: model.basis.len(),
            token_embed: Csr::new(&model.token_embed),
            pos_embed: Csr::new(&model.pos_embed),
            layers,
            vocab_index: model.vocab.iter().enumerate().map(|(k, v)| (v, k)).collect(),
        })
    }

    /// The model this was prepared from.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// Runs the model on `tokens` (BOS not included: it is prepended here)
    /// and decodes the output.
    pub fn run(
        &self,
        tokens: &[Value],
        attention: Attention,
        opts: &ForwardOptions,
    ) -> Result<ForwardResult<S>, ForwardError> {
        let mut result = self.residuals(tokens, attention, opts)?;
        result.outputs = self.decode(&result.final_residual)?;
        Ok(result)
    }

    /// Runs the model without decoding: `outputs` is left empty. Use with
    /// [`PreparedModel::decode`] to inspect a run whose readout fails.
    pub fn residuals(
        &self,
        tokens: &[Value],
        attention: Attention,
        opts: &ForwardOptions,
    ) -> Result<ForwardResult<S>, ForwardError> {
        let m = self.model;
        let softmax_beta = match attention {
            Attention::Hard => None,
            Attention::Softmax { beta } => {
                if S::EXACT {
                    return Err(ForwardError::SoftmaxNeedsFloat { scalar: S::NAME });
                }
                if !(beta.is_finite() && beta > 0.0) {
                    return Err(ForwardError::BadBeta { beta });
                }
                // beta is finite, so from_float succeeds.
                Some(S::from_rat(&Rat::from_float(beta).unwrap_or_else(<Rat as One>::one)))
            }
        };
        if tokens.is_empty() {
            return Err(ForwardError::EmptyInput);
        }
        if tokens.len() > m.max_len {
            return Err(ForwardError::TooLong { len: tokens.len(), max_len: m.max_len });
        }
        if (tokens.len() + 1).saturating_mul(self.widest) > MAX_ACTIVATIONS {
            return Err(ForwardError::TooLarge {
                positions: tokens.len() + 1,
                width: self.widest,
                limit: MAX_ACTIVATIONS,
            });
        }
        let mut rows = Vec::with_capacity(tokens.len() + 1);
        rows.push(0);
        for (index, token) in tokens.iter().enumerate() {
            match self.vocab_index.get(token) {
                Some(&k) => rows.push(k + 1),
                None => return Err(ForwardError::UnknownToken { index, token: token.clone() }),
            }
        }

        let (n, d) = (rows.len(), self.d);
        let mut run = Run {
            x: vec![S::zero(); n * d],
            n,
            d,
            causal: m.causal,
            beta: softmax_beta,
            keep: opts.keep_residuals,
            residuals: Vec::new(),
            steps: Vec::new(),
        };
        for (p, &row) in rows.iter().enumerate() {
            let xp = &mut run.x[p * d..(p + 1) * d];
            self.token_embed.add_row(row, xp);
            self.pos_embed.add_row(p, xp);
        }
        run.record(Step::Embed);

        let mut loop_iterations = vec![0; m.loops.len()];
        let mut layer = 0;
        while layer < self.layers.len() {
            let Some(k) = m.loops.iter().position(|lp| lp.layers.start == layer) else {
                run.layer(&self.layers[layer], layer, 0);
                layer += 1;
                continue;
            };
            let lp = &m.loops[k];
            let mut iteration = 0;
            loop {
                match lp.stop {
                    LoopStop::Fixed(times) if iteration == times => break,
                    LoopStop::Fixed(_) => {}
                    LoopStop::Until { halt_dim, max } => {
                        if run.halted(halt_dim) {
                            break;
                        }
                        if iteration == max {
                            return Err(ForwardError::LoopDidNotHalt { index: k, max });
                        }
                    }
                }
                for l in lp.layers.clone() {
                    run.layer(&self.layers[l], l, iteration);
                }
                iteration += 1;
            }
            loop_iterations[k] = iteration;
            layer = lp.layers.end;
        }

        let final_residual = run.x.chunks(d.max(1)).take(n).map(|c| c.to_vec()).collect();
        Ok(ForwardResult {
            outputs: Vec::new(),
            final_residual,
            residuals: run.residuals,
            steps: run.steps,
            loop_iterations,
        })
    }

    /// Decodes the output at every non-BOS position of a final residual
    /// (`[position][dim]`, position 0 = BOS).
    ///
    /// Categorical: the value of the readout dimension with the largest
    /// entry; in exact mode a tie is [`ForwardError::AmbiguousReadout`], in
    /// float modes the first wins. Numerical: in exact mode the number
    /// itself; in float modes the nearest element of the readout's value
    /// set (ties to the smaller). A NaN or ±∞ in a read dimension is
    /// [`ForwardError::NonFinite`].
    pub fn decode(&self, residual: &[Vec<S>]) -> Result<Vec<Value>, ForwardError> {
        let out = &self.model.output;
        let mut decoded = Vec::with_capacity(residual.len().saturating_sub(1));
        for (index, xp) in residual.iter().enumerate().skip(1).map(|(p, x)| (p - 1, x)) {
            let read = |dim: usize| -> Result<&S, ForwardError> {
                let v = &xp[dim];
                if v.is_finite() {
                    Ok(v)
                } else {
                    Err(ForwardError::NonFinite { index })
                }
            };
            match out.encoding {
                Encoding::Cat => {
                    let mut best = 0;
                    let mut best_value = read(out.dims[0])?;
                    let mut tie = None;
                    for (k, &dim) in out.dims.iter().enumerate().skip(1) {
                        let v = read(dim)?;
                        if v > best_value {
                            best = k;
                            best_value = v;
                            tie = None;
                        } else if v == best_value && tie.is_none() {
                            tie = Some(k);
                        }
                    }
                    if let (true, Some(k)) = (S::EXACT, tie) {
                        return Err(ForwardError::AmbiguousReadout {
                            index,
                            first: Box::new(out.values[best].clone()),
                            second: Box::new(out.values[k].clone()),
                        });
                    }
                    decoded.push(out.values[best].clone());
                }
                Encoding::Num => {
                    // Finite values always have an exact rational value.
                    let Some(x) = read(out.dims[0])?.to_rat() else {
                        return Err(ForwardError::NonFinite { index });
                    };
                    if S::EXACT {
                        decoded.push(Value::Num(x));
                        continue;
                    }
                    let mut best: Option<(Rat, &Rat)> = None;
                    for v in out.values.iter().filter_map(Value::as_num) {
                        let distance = (&x - v).abs();
                        let better = match &best {
                            None => true,
                            Some((bd, bv)) => distance < *bd || (distance == *bd && v < *bv),
                        };
                        if better {
                            best = Some((distance, v));
                        }
                    }
                    // Validation guarantees a nonempty numeric value set.
                    match best {
                        Some((_, v)) => decoded.push(Value::Num(v.clone())),
                        None => return Err(ForwardError::NonFinite { index }),
                    }
                }
            }
        }
        Ok(decoded)
    }
}

/// The state of one run: the residual `x` (`n` positions × `d`, flat).
struct Run<S> {
    x: Vec<S>,
    n: usize,
    d: usize,
    causal: bool,
    /// `Some(β)` for softmax, `None` for hard attention.
    beta: Option<S>,
    keep: bool,
    residuals: Vec<Vec<Vec<S>>>,
    steps: Vec<Step>,
}

impl<S: Scalar> Run<S> {
    fn record(&mut self, step: Step) {
        self.steps.push(step);
        if self.keep {
            let d = self.d.max(1);
            self.residuals.push(self.x.chunks(d).take(self.n).map(|c| c.to_vec()).collect());
        }
    }

    /// Whether `dim` holds "true" at every non-BOS position: exactly 1 in
    /// exact mode, above 1/2 in float modes.
    fn halted(&self, dim: usize) -> bool {
        (1..self.n).all(|p| {
            let v = &self.x[p * self.d + dim];
            if S::EXACT {
                *v == S::one()
            } else {
                v.to_f64() > 0.5
            }
        })
    }

    fn layer(&mut self, layer: &PreparedLayer<S>, index: usize, iteration: usize) {
        if !layer.heads.is_empty() {
            let delta = self.attention(&layer.heads);
            self.add(&delta);
        }
        self.record(Step::Attn { layer: index, iteration });
        if !layer.mlps.is_empty() {
            let delta = self.mlps(&layer.mlps);
            self.add(&delta);
        }
        self.record(Step::Mlp { layer: index, iteration });
    }

    /// `x += delta`, one rounding per dimension (the sublayer's outputs
    /// are summed first, as a dense implementation's matmul would).
    fn add(&mut self, delta: &[S]) {
        for (x, dx) in self.x.iter_mut().zip(delta) {
            if !dx.is_zero() {
                x.add_assign(dx);
            }
        }
    }

    /// `x · W` for every position: an `n × W.cols` dense result.
    fn project(&self, w: &Csr<S>) -> Vec<S> {
        let mut out = vec![S::zero(); self.n * w.cols];
        for p in 0..self.n {
            w.mul_add(&self.x[p * self.d..(p + 1) * self.d], &mut out[p * w.cols..(p + 1) * w.cols]);
        }
        out
    }

    /// The summed output of all heads of one attention sublayer.
    fn attention(&self, heads: &[PreparedHead<S>]) -> Vec<S> {
        let (n, d) = (self.n, self.d);
        let mut delta = vec![S::zero(); n * d];
        let mut scores: Vec<S> = Vec::with_capacity(n);
        for head in heads {
            let (h, hv) = (head.w_q.cols, head.w_v.cols);
            let q = self.project(&head.w_q);
            let k = self.project(&head.w_k);
            let v = self.project(&head.w_v);
            let mut z = vec![S::zero(); hv];
            for i in 0..n {
                let keys = if self.causal { i + 1 } else { n };
                // The query's nonzero coordinates: one-hot encodings make
                // this a handful, so a score costs a handful of products.
                let qi: Vec<(usize, &S)> =
                    q[i * h..(i + 1) * h].iter().enumerate().filter(|(_, s)| !s.is_zero()).collect();
                scores.clear();
                for j in 0..keys {
                    let kj = &k[j * h..(j + 1) * h];
                    let mut s = S::zero();
                    for &(c, qc) in &qi {
                        s.add_assign(&qc.mul(&kj[c]));
                    }
                    scores.push(s);
                }
                z.iter_mut().for_each(|zc| *zc = S::zero());
                match &self.beta {
                    None => {
                        // Hard: the maximal keys share the attention
                        // equally; sum their values, then divide once.
                        let max = scores.iter().skip(1).fold(scores[0].clone(), |m, s| m.max_of(s));
                        let mut count = 0usize;
                        for (j, s) in scores.iter().enumerate() {
                            if *s == max {
                                count += 1;
                                for (zc, vc) in z.iter_mut().zip(&v[j * hv..(j + 1) * hv]) {
                                    if !vc.is_zero() {
                                        zc.add_assign(vc);
                                    }
                                }
                            }
                        }
                        if count > 1 {
                            let count = S::from_usize(count);
                            for zc in z.iter_mut().filter(|zc| !zc.is_zero()) {
                                *zc = zc.div(&count);
                            }
                        }
                    }
                    Some(beta) => {
                        // Softmax as frameworks compute it: scale, subtract
                        // the maximum (so exp never overflows), exp, sum in
                        // key order, weight = e / sum, then Σ weight · v.
                        for s in scores.iter_mut() {
                            *s = s.mul(beta);
                        }
                        let max = scores.iter().skip(1).fold(scores[0].clone(), |m, s| m.max_of(s));
                        let mut sum = S::zero();
                        for s in scores.iter_mut() {
                            // Float scalars always have exp.
                            *s = s.sub(&max).exp().unwrap_or_else(S::zero);
                            sum.add_assign(s);
                        }
                        for (j, e) in scores.iter().enumerate() {
                            let weight = e.div(&sum);
                            if weight.is_zero() {
                                continue;
                            }
                            for (zc, vc) in z.iter_mut().zip(&v[j * hv..(j + 1) * hv]) {
                                if !vc.is_zero() {
                                    zc.add_assign(&weight.mul(vc));
                                }
                            }
                        }
                    }
                }
                head.w_o.mul_add(&z, &mut delta[i * d..(i + 1) * d]);
            }
        }
        delta
    }

    /// The summed output of all blocks of one MLP sublayer.
    fn mlps(&self, mlps: &[PreparedMlp<S>]) -> Vec<S> {
        let (n, d) = (self.n, self.d);
        let mut delta = vec![S::zero(); n * d];
        for mlp in mlps {
            let hidden = mlp.w_in.cols;
            let mut hbuf = vec![S::zero(); hidden];
            for p in 0..n {
                hbuf.iter_mut().for_each(|h| *h = S::zero());
                mlp.w_in.mul_add(&self.x[p * d..(p + 1) * d], &mut hbuf);
                for (j, b) in &mlp.b_in {
                    hbuf[*j].add_assign(b);
                }
                for h in hbuf.iter_mut() {
                    *h = h.relu();
                }
                let out = &mut delta[p * d..(p + 1) * d];
                mlp.w_out.mul_add(&hbuf, out);
                for (c, b) in &mlp.b_out {
                    out[*c].add_assign(b);
                }
            }
        }
        delta
    }
}

/// Validates `m`, converts its weights to `S` and runs it once on
/// `tokens` (BOS excluded). To run many inputs, build a [`PreparedModel`]
/// once instead.
pub fn run_model<S: Scalar>(
    m: &Model,
    tokens: &[Value],
    attn: Attention,
    opts: &ForwardOptions,
) -> Result<ForwardResult<S>, ForwardError> {
    PreparedModel::<S>::new(m)?.run(tokens, attn, opts)
}

/// A scalar chosen at run time (the CLI's `--format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Exact rationals ([`Rat`]).
    Exact,
    /// IEEE binary64.
    F64,
    /// IEEE binary32.
    F32,
    /// IEEE binary16 ([`f16`](struct@f16)).
    F16,
    /// bfloat16 ([`bf16`]).
    Bf16,
    /// OCP FP8 E4M3 ([`Fp8E4M3`]), emulated.
    Fp8E4M3,
    /// OCP FP8 E5M2 ([`Fp8E5M2`]), emulated.
    Fp8E5M2,
}

impl Format {
    /// Every format, exact first.
    pub const ALL: [Format; 7] =
        [Format::Exact, Format::F64, Format::F32, Format::F16, Format::Bf16, Format::Fp8E4M3, Format::Fp8E5M2];

    /// Significand bits, hidden bit included (`None` for exact).
    pub fn precision(self) -> Option<u32> {
        match self {
            Format::Exact => None,
            Format::F64 => Some(53),
            Format::F32 => Some(24),
            Format::F16 => Some(11),
            Format::Bf16 => Some(8),
            Format::Fp8E4M3 => Some(4),
            Format::Fp8E5M2 => Some(3),
        }
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Exact => <Rat as Scalar>::NAME,
            Format::F64 => <f64 as Scalar>::NAME,
            Format::F32 => <f32 as Scalar>::NAME,
            Format::F16 => <f16 as Scalar>::NAME,
            Format::Bf16 => <bf16 as Scalar>::NAME,
            Format::Fp8E4M3 => <Fp8E4M3 as Scalar>::NAME,
            Format::Fp8E5M2 => <Fp8E5M2 as Scalar>::NAME,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown format {s:?} (expected exact, f64, f32, f16, bf16, fp8e4m3 or fp8e5m2)"))
    }
}

/// The format-independent part of a run: decoded outputs and loop counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSummary {
    /// The decoded output at every input position.
    pub outputs: Vec<Value>,
    /// How many times each loop ran.
    pub loop_iterations: Vec<usize>,
}

/// [`run_model`] in a format chosen at run time.
pub fn run_model_in(
    format: Format,
    m: &Model,
    tokens: &[Value],
    attn: Attention,
) -> Result<RunSummary, ForwardError> {
    fn go<S: Scalar>(m: &Model, tokens: &[Value], attn: Attention) -> Result<RunSummary, ForwardError> {
        let r = run_model::<S>(m, tokens, attn, &ForwardOptions::default())?;
        Ok(RunSummary { outputs: r.outputs, loop_iterations: r.loop_iterations })
    }
    match format {
        Format::Exact => go::<Rat>(m, tokens, attn),
        Format::F64 => go::<f64>(m, tokens, attn),
        Format::F32 => go::<f32>(m, tokens, attn),
        Format::F16 => go::<f16>(m, tokens, attn),
        Format::Bf16 => go::<bf16>(m, tokens, attn),
        Format::Fp8E4M3 => go::<Fp8E4M3>(m, tokens, attn),
        Format::Fp8E5M2 => go::<Fp8E5M2>(m, tokens, attn),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Head, Layer, LoopSpec, Matrix, Mlp, Readout, SparseVec, FORMAT_VERSION};

    fn r(n: i64, d: i64) -> Rat {
        Rat::new(n.into(), d.into())
    }
    fn int(n: i64) -> Rat {
        r(n, 1)
    }
    fn m(rows: usize, cols: usize, entries: &[(usize, usize, Rat)]) -> Matrix {
        Matrix::from_triplets(rows, cols, entries.iter().cloned()).unwrap()
    }
    fn toks(xs: &[i64]) -> Vec<Value> {
        xs.iter().map(|&x| Value::int(x)).collect()
    }
    const SOFT: Attention = Attention::Softmax { beta: 100.0 };

    /// shift_by(1): every position copies the previous token; position 1
    /// (the first token) sees only BOS and itself and gets the default 0.
    ///
    /// Basis: 0 `one`, 1 `bos`, 2..=4 `pos:p` (p = 0..=2, one-hot of the
    /// sequence position, BOS at 0), 5..=6 `tokens:1`, `tokens:2`, 7..=9
    /// `out:0`, `out:1`, `out:2`.
    ///
    /// Head: the query at position p scores key position p − 1 with 1 and
    /// everything else with 0, except that position 1's query hits BOS
    /// (position 0). Value copies the key's token one-hot into `out:t`;
    /// BOS carries `out:0`.
    fn shift_model() -> Model {
        let d = 10;
        let basis =
            ["one", "bos", "pos:0", "pos:1", "pos:2", "tokens:1", "tokens:2", "out:0", "out:1", "out:2"];
        let token_embed = m(
            3,
            d,
            &[(0, 0, int(1)), (0, 1, int(1)), (1, 0, int(1)), (1, 5, int(1)), (2, 0, int(1)), (2, 6, int(1))],
        );
        let pos_embed = m(3, d, &[(0, 2, int(1)), (1, 3, int(1)), (2, 4, int(1))]);
        // q_p = e_p (query position one-hot), k_j = e_{j+1}: score 1 iff j = p − 1.
        let w_q = m(d, 3, &[(2, 0, int(1)), (3, 1, int(1)), (4, 2, int(1))]);
        let w_k = m(d, 3, &[(2, 1, int(1)), (3, 2, int(1))]);
        // Value: bos → out:0, tokens:t → out:t.
        let w_v = m(d, 3, &[(1, 0, int(1)), (5, 1, int(1)), (6, 2, int(1))]);
        let w_o = m(3, d, &[(0, 7, int(1)), (1, 8, int(1)), (2, 9, int(1))]);
        Model {
            softmax_beta: None,
            format_version: FORMAT_VERSION,
            program: "shift".into(),
            max_len: 2,
            causal: true,
            basis: basis.iter().map(|s| s.to_string()).collect(),
            vocab: toks(&[1, 2]),
            token_embed,
            pos_embed,
            layers: vec![Layer {
                attn: vec![Head { w_q, w_k, w_v, w_o, instructions: vec!["%shift".into()] }],
                mlps: vec![],
            }],
            loops: vec![],
            output: Readout {
                name: "%shift".into(),
                encoding: Encoding::Cat,
                dims: vec![7, 8, 9],
                values: toks(&[0, 1, 2]),
            },
        }
    }

    #[test]
    fn previous_token_head_exact_and_f32() {
        let model = shift_model();
        let exact =
            run_model::<Rat>(&model, &toks(&[2, 1]), Attention::Hard, &ForwardOptions::default()).unwrap();
        assert_eq!(exact.outputs, toks(&[0, 2]));
        // Position 2 reads out:2 = 1 exactly (one key wins).
        assert_eq!(exact.final_residual[2][9], int(1));
        let float = run_model::<f32>(&model, &toks(&[2, 1]), SOFT, &ForwardOptions::default()).unwrap();
        assert_eq!(float.outputs, toks(&[0, 2]));
        // Softmax leaks: the winner has e^0 = 1 against e^-100 per loser,
        // which underflows f32's exp to 0, so the copy is exact here too.
        assert_eq!(float.final_residual[2][9], 1.0);
        for fmt in Format::ALL.into_iter().skip(1) {
            assert_eq!(
                run_model_in(fmt, &model, &toks(&[1, 2]), SOFT).unwrap().outputs,
                toks(&[0, 1]),
                "{fmt}"
            );
        }
    }

    #[test]
    fn hard_attention_averages_ties() {
        // Non-causal, every score 0: each query averages all n + 1 keys.
        // Value: the `num` dim (3) carries the token; BOS carries 0.
        // Basis: 0 one, 1 bos, 2 x (the token as a number), 3 mean.
        let d = 4;
        let model = Model {
            softmax_beta: None,
            format_version: FORMAT_VERSION,
            program: "mean".into(),
            max_len: 3,
            causal: false,
            basis: ["one", "bos", "x", "mean"].iter().map(|s| s.to_string()).collect(),
            vocab: toks(&[1, 2, 4]),
            token_embed: m(
                4,
                d,
                &[(0, 0, int(1)), (0, 1, int(1)), (1, 2, int(1)), (2, 2, int(2)), (3, 2, int(4))],
            ),
            pos_embed: Matrix::zeros(4, d),
            layers: vec![Layer {
                attn: vec![Head {
                    w_q: Matrix::zeros(d, 1),
                    w_k: Matrix::zeros(d, 1),
                    w_v: m(d, 1, &[(2, 0, int(1))]),
                    w_o: m(1, d, &[(0, 3, int(1))]),
                    instructions: vec![],
                }],
                mlps: vec![],
            }],
            loops: vec![],
            output: Readout {
                name: "%mean".into(),
                encoding: Encoding::Num,
                dims: vec![3],
                values: vec![Value::ratio(7, 4), Value::int(2)],
            },
        };
        // Keys: BOS 0, 1, 2, 4 → mean 7/4 everywhere.
        let exact =
            run_model::<Rat>(&model, &toks(&[1, 2, 4]), Attention::Hard, &ForwardOptions::default()).unwrap();
        assert_eq!(exact.outputs, vec![Value::ratio(7, 4); 3]);
        // Causal: query p averages keys 0..=p: 0, 1/2, 1, 7/4.
        let mut causal = model.clone();
        causal.causal = true;
        let exact = run_model::<Rat>(&causal, &toks(&[1, 2, 4]), Attention::Hard, &ForwardOptions::default())
            .unwrap();
        assert_eq!(exact.outputs, vec![Value::ratio(1, 2), Value::int(1), Value::ratio(7, 4)]);
        // In f32, softmax of equal scores is exactly uniform too, and the
        // numerical readout snaps to the nearest value of the set {7/4, 2}.
        let float = run_model::<f32>(&causal, &toks(&[1, 2, 4]), SOFT, &ForwardOptions::default()).unwrap();
        assert_eq!(float.outputs, vec![Value::ratio(7, 4), Value::ratio(7, 4), Value::ratio(7, 4)]);
        assert_eq!(float.final_residual[1][3], 0.5);
        assert_eq!(float.final_residual[2][3], 1.0);
    }

    /// |x| as a ReLU MLP: relu(x) + relu(−x). Basis: 0 one, 1 x, 2 abs.
    fn abs_model() -> Model {
        let d = 3;
        let vocab = toks(&[-3, -1, 0, 2]);
        let token_embed = m(
            5,
            d,
            &vocab
                .iter()
                .enumerate()
                .map(|(k, v)| (k + 1, 1, v.as_num().unwrap().clone()))
                .chain([(0, 0, int(1)), (1, 0, int(1)), (2, 0, int(1)), (3, 0, int(1)), (4, 0, int(1))])
                .collect::<Vec<_>>(),
        );
        Model {
            softmax_beta: None,
            format_version: FORMAT_VERSION,
            program: "abs".into(),
            max_len: 4,
            causal: true,
            basis: ["one", "x", "abs"].iter().map(|s| s.to_string()).collect(),
            vocab,
            token_embed,
            pos_embed: Matrix::zeros(5, d),
            layers: vec![Layer {
                attn: vec![],
                mlps: vec![Mlp {
                    w_in: m(d, 2, &[(1, 0, int(1)), (1, 1, int(-1))]),
                    b_in: SparseVec::zeros(2),
                    w_out: m(2, d, &[(0, 2, int(1)), (1, 2, int(1))]),
                    b_out: SparseVec::zeros(d),
                    instructions: vec!["%abs".into()],
                }],
            }],
            loops: vec![],
            output: Readout {
                name: "%abs".into(),
                encoding: Encoding::Num,
                dims: vec![2],
                values: toks(&[0, 1, 2, 3]),
            },
        }
    }

    #[test]
    fn relu_mlp_computes_abs() {
        let model = abs_model();
        let input = toks(&[-3, 2, 0, -1]);
        let want = toks(&[3, 2, 0, 1]);
        let opts = ForwardOptions { keep_residuals: true };
        let exact = run_model::<Rat>(&model, &input, Attention::Hard, &opts).unwrap();
        assert_eq!(exact.outputs, want);
        assert_eq!(
            exact.steps,
            vec![Step::Embed, Step::Attn { layer: 0, iteration: 0 }, Step::Mlp { layer: 0, iteration: 0 }]
        );
        assert_eq!(exact.residuals.len(), 3);
        assert_eq!(exact.residuals[0][1], vec![int(1), int(-3), int(0)]);
        assert_eq!(exact.residuals[2][1], vec![int(1), int(-3), int(3)]);
        for fmt in [Format::F64, Format::F32, Format::F16, Format::Bf16] {
            assert_eq!(run_model_in(fmt, &model, &input, SOFT).unwrap().outputs, want, "{fmt}");
        }
    }

    #[test]
    fn bf16_rounds_after_every_operation() {
        let one = bf16::from_f32(1.0);
        let tiny = <bf16 as Scalar>::from_rat(&r(1, 512)); // 2^-9, exact in bf16
        assert_eq!(tiny.to_f32(), 1.0 / 512.0);
        // 1 + 2^-9: the ulp of bf16 at 1 is 2^-7, so this rounds to 1.
        assert_eq!(one.add(&tiny), one);
        assert_ne!(1.0f32.add(&(1.0 / 512.0)), 1.0);
        // Halfway (1 + 2^-8) ties to even, which is 1; just above goes up.
        assert_eq!(<bf16 as Scalar>::from_rat(&r(257, 256)).to_f32(), 1.0);
        assert_eq!(<bf16 as Scalar>::from_rat(&r(257 * 2 + 1, 512)).to_f32(), 1.0 + 1.0 / 128.0);

        // A model that adds 2^-8 to `acc` (starting at 1) four times in a
        // loop. Rounding once at the end would give 1 + 2^-6 (exact in
        // bf16); rounding after each addition gives 1, 1, 1, 1, since
        // every 1 + 2^-8 is a tie that goes to the even 1.
        let model = Model {
            softmax_beta: None,
            format_version: FORMAT_VERSION,
            program: "acc".into(),
            max_len: 1,
            causal: true,
            basis: vec!["acc".into()],
            vocab: toks(&[0]),
            token_embed: m(2, 1, &[(0, 0, int(1)), (1, 0, int(1))]),
            pos_embed: Matrix::zeros(2, 1),
            layers: vec![Layer {
                attn: vec![],
                mlps: vec![Mlp {
                    w_in: Matrix::zeros(1, 0),
                    b_in: SparseVec::zeros(0),
                    w_out: Matrix::zeros(0, 1),
                    b_out: SparseVec::from_pairs(1, [(0, r(1, 256))]).unwrap(),
                    instructions: vec![],
                }],
            }],
            loops: vec![LoopSpec { layers: 0..1, stop: LoopStop::Fixed(4) }],
            output: Readout {
                name: "%acc".into(),
                encoding: Encoding::Num,
                dims: vec![0],
                values: vec![Value::int(1), Value::ratio(65, 64)],
            },
        };
        let input = toks(&[0]);
        let exact = run_model::<Rat>(&model, &input, Attention::Hard, &ForwardOptions::default()).unwrap();
        assert_eq!(exact.outputs, vec![Value::ratio(65, 64)]);
        assert_eq!(exact.loop_iterations, vec![4]);
        let f32_run = run_model::<f32>(&model, &input, SOFT, &ForwardOptions::default()).unwrap();
        assert_eq!(f32_run.final_residual[1][0], 1.0 + 1.0 / 64.0);
        let bf = run_model::<bf16>(&model, &input, SOFT, &ForwardOptions::default()).unwrap();
        assert_eq!(bf.final_residual[1][0], one);
        assert_eq!(bf.outputs, vec![Value::int(1)]);
        // f16 has 10 fraction bits: 1 + 2^-8 is exact, so it gets it right.
        let h = run_model::<f16>(&model, &input, SOFT, &ForwardOptions::default()).unwrap();
        assert_eq!(h.outputs, vec![Value::ratio(65, 64)]);
    }

    #[test]
    fn until_loops_halt_or_fail() {
        // acc starts at 0 and the body adds 1/2; halt when acc == 1.
        let mut model = abs_model();
        model.basis = vec!["acc".into()];
        model.vocab = toks(&[0]);
        model.max_len = 2;
        model.token_embed = Matrix::zeros(2, 1);
        model.pos_embed = Matrix::zeros(3, 1);
        model.layers = vec![Layer {
            attn: vec![],
            mlps: vec![Mlp {
                w_in: Matrix::zeros(1, 0),
                b_in: SparseVec::zeros(0),
                w_out: Matrix::zeros(0, 1),
                b_out: SparseVec::from_pairs(1, [(0, r(1, 2))]).unwrap(),
                instructions: vec![],
            }],
        }];
        model.loops = vec![LoopSpec { layers: 0..1, stop: LoopStop::Until { halt_dim: 0, max: 5 } }];
        model.output =
            Readout { name: "%acc".into(), encoding: Encoding::Num, dims: vec![0], values: toks(&[1]) };
        let run =
            run_model::<Rat>(&model, &toks(&[0, 0]), Attention::Hard, &ForwardOptions::default()).unwrap();
        assert_eq!(run.loop_iterations, vec![2]);
        assert_eq!(run.outputs, toks(&[1, 1]));
        // f32 halts as soon as acc > 1/2, i.e. also after two runs.
        let run = run_model::<f32>(&model, &toks(&[0]), SOFT, &ForwardOptions::default()).unwrap();
        assert_eq!(run.loop_iterations, vec![2]);
        // With max 1 the exact loop cannot halt in time.
        model.loops[0].stop = LoopStop::Until { halt_dim: 0, max: 1 };
        assert_eq!(
            run_model::<Rat>(&model, &toks(&[0]), Attention::Hard, &ForwardOptions::default()),
            Err(ForwardError::LoopDidNotHalt { index: 0, max: 1 })
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        let model = shift_model();
        let opts = ForwardOptions::default();
        let run = |t: &[Value], a| run_model::<Rat>(&model, t, a, &opts).map(|r| r.outputs);
        assert_eq!(run(&[], Attention::Hard), Err(ForwardError::EmptyInput));
        assert_eq!(
            run(&toks(&[1, 1, 1]), Attention::Hard),
            Err(ForwardError::TooLong { len: 3, max_len: 2 })
        );
        assert_eq!(
            run(&[Value::int(1), Value::sym("a")], Attention::Hard),
            Err(ForwardError::UnknownToken { index: 1, token: Value::sym("a") })
        );
        assert_eq!(run(&toks(&[1]), SOFT), Err(ForwardError::SoftmaxNeedsFloat { scalar: "exact" }));
        let bad_beta = run_model::<f32>(&model, &toks(&[1]), Attention::Softmax { beta: f64::NAN }, &opts);
        assert!(matches!(bad_beta, Err(ForwardError::BadBeta { .. })));
        let mut broken = model.clone();
        broken.output.dims = vec![7, 8, 99];
        assert!(matches!(
            run_model::<f32>(&broken, &toks(&[1]), SOFT, &opts),
            Err(ForwardError::InvalidModel(ModelError::BadReadout { .. }))
        ));
        // A huge declared width is refused before anything is allocated.
        let mut wide = model.clone();
        wide.max_len = 300;
        wide.pos_embed.rows = 301;
        wide.layers[0].attn[0].w_q.cols = crate::model::MAX_DIM;
        wide.layers[0].attn[0].w_k.cols = crate::model::MAX_DIM;
        assert!(matches!(
            run_model::<f32>(&wide, &toks(&[1; 299]), SOFT, &opts),
            Err(ForwardError::TooLarge { positions: 300, .. })
        ));
        // An exact tie in the readout is reported, not guessed.
        let mut tie = model.clone();
        tie.output.dims = vec![7, 0, 9];
        assert!(matches!(
            run_model::<Rat>(&tie, &toks(&[1]), Attention::Hard, &opts),
            Err(ForwardError::AmbiguousReadout { index: 0, .. })
        ));
    }

    #[test]
    fn rounding_from_rationals_is_correct() {
        assert_eq!(<f32 as Scalar>::from_rat(&r(1, 3)), 1.0f32 / 3.0);
        assert_eq!(<f64 as Scalar>::from_rat(&r(1, 3)), 1.0f64 / 3.0);
        assert_eq!(<f64 as Scalar>::from_rat(&r(-7, 2)), -3.5);
        assert_eq!(<f16 as Scalar>::from_rat(&r(1, 3)), f16::from_f64(1.0 / 3.0));
        // 2^-24 is f16's smallest subnormal; 3·2^-26 rounds to it.
        assert_eq!(<f16 as Scalar>::from_rat(&r(3, 1 << 26)).to_f64(), 2f64.powi(-24));
        // 2^-26 is a quarter of it and rounds to zero.
        assert_eq!(<f16 as Scalar>::from_rat(&r(1, 1 << 26)).to_f64(), 0.0);
        // Overflow: 65520 is halfway between f16's max 65504 and 2^16, so it
        // rounds (to even) to infinity; 65519 rounds to 65504.
        assert!(<f16 as Scalar>::from_rat(&int(65520)).to_f32().is_infinite());
        assert_eq!(<f16 as Scalar>::from_rat(&int(65519)).to_f32(), 65504.0);
        // A number just above a tie at f32 precision: 1 + 2^-24 + 2^-80
        // must round up, which rounding through f64 (1 + 2^-24, a tie,
        // then to even = 1) would get wrong.
        let two = BigInt::from(2);
        let x = <Rat as One>::one() + Rat::new(1.into(), two.pow(24)) + Rat::new(1.into(), two.pow(80));
        assert_eq!(<f32 as Scalar>::from_rat(&x), 1.0 + f32::EPSILON);
        // f64 subnormals and huge values.
        assert_eq!(<f64 as Scalar>::from_rat(&Rat::new(1.into(), two.pow(1074))), f64::from_bits(1));
        assert_eq!(<f64 as Scalar>::from_rat(&Rat::new(1.into(), two.pow(1076))), 0.0);
        assert!(<f64 as Scalar>::from_rat(&Rat::from_integer(two.pow(1024))).is_infinite());
        assert_eq!(Scalar::to_f64(&Rat::from_integer(two.pow(1023))), 2f64.powi(1023));
    }

    #[test]
    fn rounding_from_rationals_agrees_with_hardware_division() {
        // p and q are exact in every format, and IEEE division is correctly
        // rounded, so p/q computed in the format must equal from_rat(p/q).
        for p in -60i64..=60 {
            for q in 1i64..=60 {
                let x = r(p, q);
                assert_eq!(<f64 as Scalar>::from_rat(&x), p as f64 / q as f64);
                assert_eq!(<f32 as Scalar>::from_rat(&x), p as f32 / q as f32);
                let h = |v: i64| <f16 as Scalar>::from_usize(v.unsigned_abs() as usize);
                let sign = if p < 0 { -1.0 } else { 1.0 };
                assert_eq!(<f16 as Scalar>::from_rat(&x).to_f32(), sign * h(p).div(&h(q)).to_f32());
                let b = |v: i64| <bf16 as Scalar>::from_usize(v.unsigned_abs() as usize);
                assert_eq!(<bf16 as Scalar>::from_rat(&x).to_f32(), sign * b(p).div(&b(q)).to_f32());
            }
        }
    }

    #[test]
    fn the_example_in_docs_model_md_is_this_model() {
        let doc = include_str!("../../docs/MODEL.md");
        let start = doc.find("```json\n").unwrap() + "```json\n".len();
        let end = start + doc[start..].find("```").unwrap();
        let model = Model::from_json(&doc[start..end]).unwrap();
        assert_eq!(model, shift_model());
        let run = run_model::<Rat>(&model, &toks(&[1, 2]), Attention::Hard, &ForwardOptions::default());
        assert_eq!(run.unwrap().outputs, toks(&[0, 1]));
    }

    #[test]
    fn fp8_e4m3_rounds_to_nearest_even() {
        let e = |x: f32| Fp8E4M3::from_f32(x).to_f32();
        // 3 fraction bits: at 1 the spacing is 2^-3 = 0.125. 1 + 2^-4 =
        // 1.0625 is halfway between 1 (1.000b) and 1.125 (1.001b): ties go
        // to the even significand, 1.
        assert_eq!(e(1.0625), 1.0);
        // 1 + 3/16 is halfway between 1.125 (1.001b) and 1.25 (1.010b): even is 1.25.
        assert_eq!(e(1.1875), 1.25);
        // 17 in [16, 32), spacing 2: halfway between 16 (1.000b·2^4) and 18
        // (1.001b·2^4): to 16.
        assert_eq!(e(17.0), 16.0);
        assert_eq!(e(19.0), 20.0); // halfway 18 (1.001b) / 20 (1.010b): even is 20
        // 300 in [256, 512), spacing 32: 300/32 = 9.375, nearest 9: 288.
        assert_eq!(e(300.0), 288.0);
        // β = 100 in [64, 128), spacing 8: 100/8 = 12.5, a tie: 12 → 96.
        assert_eq!(e(100.0), 96.0);
        // Largest finite 448 = 1.75·2^8 (q = 14 at spacing 32); 464 (q = 14.5)
        // ties to even q = 14 = 448; anything above rounds to q = 15 = 480,
        // which E4M3 lacks (that code is NaN): NaN, never ∞.
        assert_eq!(e(448.0), 448.0);
        assert_eq!(e(464.0), 448.0);
        assert!(e(465.0).is_nan());
        assert!(e(-1.0e6).is_nan());
        assert!(e(f32::INFINITY).is_nan());
        // Subnormals: the grid below 2^-6 is 2^-9. 2^-10 is halfway between 0
        // and 2^-9: even is 0; 3·2^-11 = 0.75·2^-9 goes up to 2^-9.
        assert_eq!(e(2f32.powi(-10)), 0.0);
        assert_eq!(e(3.0 * 2f32.powi(-11)), 2f32.powi(-9));
        assert_eq!(e(-5.0 * 2f32.powi(-9)), -5.0 * 2f32.powi(-9));
        // From exact rationals (no double rounding): 1/3 = 0.0101...b: at
        // [1/4, 1/2) the spacing is 2^-5, 1/3 · 32 = 10.67 → 11: 11/32.
        assert_eq!(<Fp8E4M3 as Scalar>::from_rat(&r(1, 3)).to_f32(), 11.0 / 32.0);
        assert!(<Fp8E4M3 as Scalar>::from_rat(&int(1000)).to_f32().is_nan());
        // Arithmetic rounds every operation: 1 + 1/16 → 1; 20 · 20 = 400 at
        // spacing 32 is 12.5 → 12: 384; 30 · 30 = 900 overflows to NaN.
        let x = |v: f32| Fp8E4M3::from_f32(v);
        assert_eq!(x(1.0).add(&x(0.0625)).to_f32(), 1.0);
        assert_eq!(x(20.0).mul(&x(20.0)).to_f32(), 384.0);
        assert!(!x(30.0).mul(&x(30.0)).is_finite());
    }

    #[test]
    fn fp8_e5m2_rounds_to_nearest_even() {
        let e = |x: f32| Fp8E5M2::from_f32(x).to_f32();
        // 2 fraction bits: spacing 2^-2 at 1. 1.125 is a tie between 1 (1.00b)
        // and 1.25 (1.01b): 1. 1.375 ties 1.25 (1.01b) / 1.5 (1.10b): 1.5.
        assert_eq!(e(1.125), 1.0);
        assert_eq!(e(1.375), 1.5);
        // 100 in [64, 128), spacing 16: 6.25 → 6: 96. 17 in [16, 32), spacing
        // 4: 4.25 → 4: 16.
        assert_eq!(e(100.0), 96.0);
        assert_eq!(e(17.0), 16.0);
        // Largest finite 57344 = 1.75·2^15 (q = 7 at spacing 8192). 60000 is
        // q = 7.32 → 57344; 61440 is q = 7.5, a tie to even q = 8 = 2^16,
        // past the range: +∞ (IEEE overflow), and so is anything larger.
        assert_eq!(e(57344.0), 57344.0);
        assert_eq!(e(60000.0), 57344.0);
        assert_eq!(e(61440.0), f32::INFINITY);
        assert_eq!(e(-1.0e6), f32::NEG_INFINITY);
        assert!(e(f32::NAN).is_nan());
        // Subnormal grid 2^-16: 2^-17 ties to 0, 3·2^-18 goes up to 2^-16.
        assert_eq!(e(2f32.powi(-17)), 0.0);
        assert_eq!(e(3.0 * 2f32.powi(-18)), 2f32.powi(-16));
        // 300 · 300 = 90000 overflows to ∞; from a rational too.
        let x = |v: f32| Fp8E5M2::from_f32(v);
        assert_eq!(x(256.0).mul(&x(256.0)).to_f32(), f32::INFINITY);
        assert!(<Fp8E5M2 as Scalar>::from_rat(&int(70000)).to_f32().is_infinite());
        // 1/3: [1/4, 1/2) spacing 2^-4, 16/3 = 5.33 → 5: 5/16.
        assert_eq!(<Fp8E5M2 as Scalar>::from_rat(&r(1, 3)).to_f32(), 5.0 / 16.0);
    }

    #[test]
    fn fp8_every_code_round_trips() {
        // Every finite E4M3 / E5M2 value, built from its fields, is a fixed point.
        for exp in 0..16i32 {
            for frac in 0..8 {
                let v = if exp == 0 { frac as f32 * 2f32.powi(-9) } else { (8 + frac) as f32 * 2f32.powi(exp - 10) };
                if v <= 448.0 {
                    assert_eq!(Fp8E4M3::from_f32(v).to_f32(), v);
                    assert_eq!(Fp8E4M3::from_f32(-v).to_f32(), -v);
                }
            }
        }
        for exp in 0..31i32 {
            for frac in 0..4 {
                let v = if exp == 0 { frac as f32 * 2f32.powi(-16) } else { (4 + frac) as f32 * 2f32.powi(exp - 17) };
                assert_eq!(Fp8E5M2::from_f32(v).to_f32(), v);
            }
        }
    }

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>(), Ok(f));
        }
        assert!("fp8".parse::<Format>().is_err());
    }
}
