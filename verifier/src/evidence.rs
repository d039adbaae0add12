//! The differential run: the model against the interpreter on many inputs.
//!
//! This is evidence, not proof, and it is reported apart from the block
//! verdicts. It also serves to turn a failed local check into a concrete
//! counterexample: the first input where model and program disagree.

use crate::Evidence;
use tfc_ir::check::{all_inputs, random_input, SplitMix};
use tfc_ir::forward::{Attention, ForwardOptions, PreparedModel};
use tfc_ir::model::Model;
use tfc_ir::{interp, Program, Rat, Value};

/// A disagreement.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// The input.
    pub input: Vec<Value>,
    /// First differing position.
    pub position: usize,
    /// Interpreter's value there.
    pub expected: String,
    /// Model's value there (or its error).
    pub actual: String,
}

/// Runs up to `budget` inputs (all when there are fewer), shortest first,
/// then random ones; returns the evidence and the first mismatch.
pub fn differential(prog: &Program, model: &Model, budget: usize, seconds: f64) -> (Evidence, Option<Mismatch>) {
    let start = std::time::Instant::now();
    let mut ev = Evidence::default();
    let Ok(pm) = PreparedModel::<Rat>::new(model) else {
        return (ev, None);
    };
    let inputs: Vec<Vec<Value>> = match all_inputs(prog, budget) {
        Some(all) => {
            ev.exhaustive = true;
            all
        }
        None => {
            let mut rng = SplitMix(0x5eed_7fc);
            let mut v = all_inputs(&Program { max_len: 2.min(prog.max_len), ..prog.clone() }, budget / 4).unwrap_or_default();
            while v.len() < budget {
                let len = 1 + rng.below(prog.max_len);
                v.push(random_input(prog, len, &mut rng));
            }
            v
        }
    };
    let mut first = None;
    let opts = ForwardOptions::default();
    let total = inputs.len();
    for (k, input) in inputs.into_iter().enumerate() {
        // Evidence is bounded in time; a run cut short is reported as sampled.
        if k > 0 && start.elapsed().as_secs_f64() > seconds {
            if k < total {
                ev.exhaustive = false;
            }
            break;
        }
        let Ok(run) = interp::run(prog, &input, &interp::RunOptions::default()) else {
            ev.skipped += 1;
            continue;
        };
        ev.inputs += 1;
        let got = pm.run(&input, Attention::Hard, &opts);
        let diff = match &got {
            Ok(r) => r.outputs.iter().zip(&run.output).position(|(a, b)| a != b).map(|p| (p, r.outputs[p].to_string())),
            Err(e) => Some((0, format!("error: {e}"))),
        };
        if let Some((p, actual)) = diff {
            ev.mismatches += 1;
            if first.is_none() {
                first = Some(Mismatch { input: input.clone(), position: p, expected: run.output[p].to_string(), actual });
            }
        }
    }
    (ev, first)
}

/// A second, targeted search used to confirm a failed local check: long
/// inputs only (lengths from max_len/2 up), where failures at high
/// positions and indices live, fixed seed, bounded in count and time.
pub fn long_inputs(prog: &Program, model: &Model, budget: usize, seconds: f64) -> Option<Mismatch> {
    let start = std::time::Instant::now();
    let pm = PreparedModel::<Rat>::new(model).ok()?;
    let mut rng = SplitMix(0x10c0_4e57);
    let lo = (prog.max_len / 2).max(1);
    let opts = ForwardOptions::default();
    for k in 0..budget {
        if k > 0 && start.elapsed().as_secs_f64() > seconds {
            break;
        }
        let len = lo + rng.below(prog.max_len - lo + 1);
        let input = random_input(prog, len, &mut rng);
        let Ok(run) = interp::run(prog, &input, &interp::RunOptions::default()) else { continue };
        let got = pm.run(&input, Attention::Hard, &opts);
        let diff = match &got {
            Ok(r) => r.outputs.iter().zip(&run.output).position(|(a, b)| a != b).map(|p| (p, r.outputs[p].to_string())),
            Err(e) => Some((0, format!("error: {e}"))),
        };
        if let Some((position, actual)) = diff {
            return Some(Mismatch { input, position, expected: run.output[position].to_string(), actual });
        }
    }
    None
}
