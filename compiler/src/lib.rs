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
    let plan = plan::program_to_plan(checked)?;
    let schedule = schedule::plan_to_schedule(&plan);
    // Check sizes before allocating weights.
    let d: usize = 2 + plan.nodes.iter().map(|n| if n.enc == tfc_ir::ast::Encoding::Cat { n.set.len() } else { 1 }).sum::<usize>();
    if d > MAX_D_MODEL {
        return Err(CompileError::TooLarge(format!("d_model would be {d}, above the limit of {MAX_D_MODEL}")));
    }
    let layout = layout::schedule_to_layout(&plan, &schedule);
    let model = lower::layout_to_model(&plan, &schedule, &layout)?;
    Ok(Compiled { plan, schedule, layout, model })
}
