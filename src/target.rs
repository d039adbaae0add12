//! Certified lowering, `tfc compile --target FORMAT` (docs/PRECISION.md,
//! "Certified lowering"): among the lowering choices that leave the model
//! exact under hard attention — the width decoder's construction and the
//! softmax inverse temperature, a power of two so that β·score is an exact
//! scaling — pick the one whose analytic precision bound
//! (`tfc_verifier::precision`) holds in that format up to the longest
//! length, and say how far that is and what breaks first beyond it.
//!
//! The choice is made by the verifier's bound, not by test runs: the
//! figure reported is a proof (under the bound's stated scope), and the
//! model is re-verified exactly like any other.

use tfc_compiler::lower::{LowerOptions, WidthDecoder};
use tfc_compiler::{compile_with, CompileError, CompileOptions, CompiledWith};
use tfc_ir::check::Checked;
use tfc_ir::forward::Format;
use tfc_ir::Rat;

/// The inverse temperatures tried: 2^0 ..= 2^12 (and the default, 100).
pub const BETA_EXPONENTS: std::ops::RangeInclusive<i32> = 0..=12;

/// The outcome of a certified compile.
pub struct Certified {
    /// The chosen model (its `softmax_beta` set).
    pub with: CompiledWith,
    /// The format certified for.
    pub format: Format,
    /// The chosen inverse temperature.
    pub beta: f64,
    /// The chosen width decoder.
    pub decoder: WidthDecoder,
    /// The optimization level of the chosen model.
    pub opt_level: u8,
    /// The analytic safe length in `format` at `beta`.
    pub safe_len: usize,
    /// What fails first beyond `safe_len` (`None` when it reaches max_len).
    pub limited_by: Option<String>,
    /// Every candidate: (decoder, beta, safe length, params).
    pub candidates: Vec<(WidthDecoder, f64, usize, u64)>,
}

/// Compiles `checked` for `format`: the candidate (optimization level,
/// width decoder, β) with the longest analytic safe length, then the
/// fewest parameters, then the β nearest the default 100 (so a program
/// nothing can certify gets the default lowering), then the higher level.
pub fn certify(checked: &Checked, opts: &CompileOptions, format: Format) -> Result<Certified, CompileError> {
    let mut best: Option<(usize, u64, f64, WidthDecoder, Option<String>, CompiledWith, u8)> = None;
    let mut candidates = vec![];
    // At -O1 the unoptimized program is a candidate too: the optimizer's
    // cost model knows sizes, not precision (sort's width split adds a head
    // that bf16 cannot carry as far).
    let levels: Vec<u8> = if opts.opt_level == 0 { vec![0] } else { vec![opts.opt_level, 0] };
    for (level, decoder) in levels.iter().flat_map(|l| [(*l, WidthDecoder::Ramp), (*l, WidthDecoder::Interpolant)]) {
        let o = CompileOptions { opt_level: level, lower: LowerOptions { width_decoder: decoder, softmax_beta: None }, ..opts.clone() };
        let with = compile_with(checked, &o)?;
        let params = with.compiled.model.stats().params;
        // The powers of two, and the default 100 (so the target is never
        // worse than the default lowering).
        let betas = BETA_EXPONENTS.map(|k| 2f64.powi(k)).chain(std::iter::once(crate::DEFAULT_BETA));
        for beta in betas {
            let (n, why) = tfc_verifier::precision::analytic(&with.checked, &with.compiled.model, format, beta).unwrap_or((0, Some("not analysed".into())));
            candidates.push((decoder, beta, n, params));
            let better = match &best {
                None => true,
                Some((bn, bp, bb, ..)) => (n, std::cmp::Reverse(params), std::cmp::Reverse(ordered(distance(beta)))) > (*bn, std::cmp::Reverse(*bp), std::cmp::Reverse(ordered(distance(*bb)))),
            };
            if better {
                best = Some((n, params, beta, decoder, why, with.clone(), level));
            }
        }
    }
    let (safe_len, _, beta, decoder, limited_by, mut with, opt_level) = best.expect("at least one candidate");
    with.compiled.model.softmax_beta = Some(Rat::from_integer((beta as i64).into())); // every candidate is an integer
    Ok(Certified { with, format, beta, decoder, opt_level, safe_len, limited_by, candidates })
}

/// How far β is from the default 100, in octaves: among candidates the
/// bound cannot tell apart, the one nearest the β everyone runs.
fn distance(beta: f64) -> f64 {
    (beta / crate::DEFAULT_BETA).log2().abs()
}

/// An f64 ≥ 0 as a totally ordered key.
fn ordered(x: f64) -> u64 {
    x.to_bits()
}
