//! tfc's compiler: a checked program to the weights of a transformer.
//!
//! The pipeline is four pure stages, each from one printable data type to
//! the next, so that any stage can be inspected alone (`tfc show --stage`):
//!
//! 1. [`plan::program_to_plan`]: [`Checked`] → [`plan::Plan`] — which
//!    computations need weights; maps folded into their readers; selectors
//!    normalised to conjunctions of literals.
//! 2. [`schedule::plan_to_schedule`]: → [`schedule::Schedule`] — each head
//!    and MLP in the earliest sublayer its inputs allow.
//! 3. [`layout::schedule_to_layout`]: → [`layout::Layout`] — the labelled
//!    residual basis.
//! 4. [`lower::layout_to_model`]: → [`Model`] — exact rational weights.
//!
//! [`compile`] chains them. The constructions and the invariants they keep
//! are documented in `docs/LOWERING.md`.

#![warn(missing_docs)]

pub mod diff;
pub mod export;
pub mod layout;
pub mod lower;
pub mod optimize;
pub mod plan;
pub mod schedule;

use tfc_ir::ast::Span;
use tfc_ir::check::Checked;
use tfc_ir::model::{Model, ModelError};

/// Why a program could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// A selector combination one head cannot compute.
    #[error("selector of `%{name}` cannot be one head: {reason}")]
    UnsupportedSelector {
        /// The aggregate or width using it.
        name: String,
        /// Where.
        span: Span,
        /// Why.
        reason: String,
    },
    /// A `seqmap` one MLP layer cannot compute.
    #[error("`%{name}` cannot be one MLP: {reason}")]
    UnsupportedSeqmap {
        /// The seqmap.
        name: String,
        /// Why.
        reason: String,
    },
    /// The model would exceed a documented size limit.
    #[error("the model would be too large: {0}")]
    TooLarge(String),
    /// A bug in the compiler (always).
    #[error("internal compiler error (a bug): {0}")]
    Internal(String),
}

impl CompileError {
    fn internal(msg: String) -> CompileError {
        CompileError::Internal(msg)
    }
    fn model(e: ModelError) -> CompileError {
        CompileError::Internal(format!("built an invalid model: {e}"))
    }
    /// A stable code for the CLI.
    pub fn code(&self) -> &'static str {
        match self {
            CompileError::UnsupportedSelector { .. } => "C0001",
            CompileError::UnsupportedSeqmap { .. } => "C0002",
            CompileError::TooLarge(_) => "C0003",
            CompileError::Internal(_) => "C0900",
        }
    }
}

/// The most residual dimensions a compiled model may have.
pub const MAX_D_MODEL: usize = 20_000;

/// Every stage's output, for inspection.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// Stage 1.
    pub plan: plan::Plan,
    /// Stage 2.
    pub schedule: schedule::Schedule,
    /// Stage 3.
    pub layout: layout::Layout,
    /// Stage 4.
    pub model: Model,
}

/// Compiles a checked program.
pub fn compile(checked: &Checked) -> Result<Compiled, CompileError> {
    compile_lowered(checked, &lower::LowerOptions::default())
}

/// [`compile`] with lowering choices ([`lower::LowerOptions`]).
pub fn compile_lowered(checked: &Checked, lower_opts: &lower::LowerOptions) -> Result<Compiled, CompileError> {
    let plan = plan::program_to_plan(checked)?;
    let schedule = schedule::plan_to_schedule(&plan);
    // Check sizes before allocating weights.
    let d: usize = 2 + plan.nodes.iter().map(|n| if n.enc == tfc_ir::ast::Encoding::Cat { n.set.len() } else { 1 }).sum::<usize>();
    if d > MAX_D_MODEL {
        return Err(CompileError::TooLarge(format!("d_model would be {d}, above the limit of {MAX_D_MODEL}")));
    }
    let layout = layout::schedule_to_layout(&plan, &schedule);
    let model = lower::layout_to_model_with(&plan, &schedule, &layout, lower_opts)?;
    Ok(Compiled { plan, schedule, layout, model })
}

/// Options of [`compile_with`].
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// 0: no optimization; 1: the e-graph optimizer (docs/OPTIMIZER.md).
    pub opt_level: u8,
    /// Ask egg for the rewrite chain from the source to the result.
    pub explain: bool,
    /// Lowering choices (`tfc compile --target`).
    pub lower: lower::LowerOptions,
}

impl Default for CompileOptions {
    fn default() -> CompileOptions {
        CompileOptions { opt_level: 1, explain: false, lower: lower::LowerOptions::default() }
    }
}

/// Model sizes, for the optimization report.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Sizes {
    /// Layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP blocks.
    pub mlps: usize,
    /// Residual width.
    pub d_model: usize,
    /// Parameters.
    pub params: u64,
}

impl Sizes {
    fn of(m: &Model) -> Sizes {
        let s = m.stats();
        Sizes { layers: s.layers, heads: s.heads, mlps: s.mlps, d_model: s.d_model, params: s.params }
    }
    fn key(&self) -> (usize, usize, u64) {
        (self.layers, self.d_model, self.params)
    }
}

/// A compiled program with the optimizer's report.
#[derive(Clone, Debug)]
pub struct CompiledWith {
    /// The stages of the program that was lowered.
    pub compiled: Compiled,
    /// The program that was lowered (the optimized one, or the source).
    pub checked: Checked,
    /// What the optimizer did; `None` at `-O0`.
    pub report: Option<optimize::OptReport>,
    /// Sizes of the unoptimized model.
    pub before: Sizes,
    /// Sizes of the model returned.
    pub after: Sizes,
}

/// Compiles with options: at `opt_level` 1 the program is optimized first
/// ([`optimize::optimize`]), validated against the source, and kept only
/// when its model is no larger by (layers, d_model, parameters) than the
/// unoptimized one; otherwise the source is compiled and the report says why.
pub fn compile_with(checked: &Checked, opts: &CompileOptions) -> Result<CompiledWith, CompileError> {
    let base = compile_lowered(checked, &opts.lower)?;
    let before = Sizes::of(&base.model);
    if opts.opt_level == 0 {
        let after = before.clone();
        return Ok(CompiledWith { compiled: base, checked: checked.clone(), report: None, before, after });
    }
    let mut opt = optimize::optimize(checked, &optimize::Limits::from_env(), opts.explain);
    if opt.report.optimized {
        match compile_lowered(&opt.checked, &opts.lower) {
            Ok(c) => {
                let after = Sizes::of(&c.model);
                if after.key() <= before.key() {
                    return Ok(CompiledWith { compiled: c, checked: opt.checked, report: Some(opt.report), before, after });
                }
                opt.report.optimized = false;
                opt.report.fallback = Some(format!(
                    "the optimized model is not smaller (layers, d_model, params: {:?} against {:?}); kept the source",
                    after.key(),
                    before.key()
                ));
            }
            Err(e) => {
                opt.report.optimized = false;
                opt.report.fallback = Some(format!("the optimized program does not compile: {e}; kept the source"));
            }
        }
    }
    let after = before.clone();
    Ok(CompiledWith { compiled: base, checked: checked.clone(), report: Some(opt.report), before, after })
}
