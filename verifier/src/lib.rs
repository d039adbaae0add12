//! tfc's verifier: proves a model step-equivalent to its program, from the
//! weights alone.
//!
//! # What is proved
//!
//! Let the model's sublayers be blocks B_1 … B_K (attention, then MLP, per
//! layer; a loop's layers once, standing for every iteration). For a block
//! k let `enc_k(env)` be the residual that holds, at every non-BOS
//! position, the encodings (one-hot or number, as the basis labels say) of
//! the program values computed by blocks 1..k, the *baseline* in the
//! dimensions of values not computed yet (an aggregate's default, else 0),
//! and at BOS exactly `one = 1, bos = 1`. Block k is **step-equivalent**
//! when, for every input, `B_k(enc_{k−1}(env)) = enc_k(env')` under hard
//! attention (argmax, ties averaged) in exact rational arithmetic, where
//! env' adds the reference interpreter's values of the instructions block
//! k implements. By induction the model computes the program; for a loop,
//! the body is checked for every state in the declared state sets (closed
//! under the body, which the checker proves), so it holds for every
//! number of iterations.
//!
//! # How
//!
//! Compositionally, so that the cost does not grow with the number of
//! input sequences:
//!
//! * a **head** is decomposed, from the support of its weights, into the
//!   values its query, key and value maps read; its exact score table over
//!   those values' sets is checked against the instruction's selector
//!   (selected keys tie at the top, BOS strictly below them for an
//!   aggregate — level with them for a width — and every unselected key
//!   strictly below BOS), the BOS query must attend to BOS alone, and the
//!   value/output map must send every value to `enc(v) − enc(default)` in
//!   the instruction's dimensions and write nothing else;
//! * an **MLP** is checked on every combination of the values it reads,
//!   exactly, or with Z3 (linear real arithmetic over the ReLU network is
//!   exact) where the combinations are too many, as for a loop's commit;
//! * that a **categorical aggregate** always sees one value is a property
//!   of whole sequences: the checker's static arguments or its exhaustive
//!   search settle most; the rest are bounded-model-checked with Z3 for
//!   every length up to `max_len` ([`seq`]);
//! * the embedding, the readout, the loop structure and the basis labels
//!   are checked against the program.
//!
//! A local check that fails is confirmed with a concrete input (searched
//! by running the model against the interpreter); that input is the
//! counterexample. A failure no input was found for is `unknown`, as is
//! every timeout and limit. `unknown` is never success.
//!
//! **Architecture invariant:** this crate depends on `tfc-ir` and never on
//! `tfc-compiler`; it reads nothing of the compiler's but the model.
//! All its arithmetic is exact; no floating point appears here.

#![warn(missing_docs)]

pub mod basis;
mod blocks;
pub mod evidence;
pub mod precision;
pub mod seq;
pub mod smt;

pub use blocks::verify;
use serde::Serialize;
use std::path::PathBuf;
use tfc_ir::Value;

/// A block's (or the model's) verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Step-equivalent for every input.
    Proved,
    /// Not decided (timeout, limit, or a failed check no input realizes).
    Unknown,
    /// Wrong on a concrete input.
    Refuted,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Proved => "proved",
            Verdict::Unknown => "unknown",
            Verdict::Refuted => "refuted",
        })
    }
}

/// Options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Per solver query, in milliseconds.
    pub timeout_ms: u32,
    /// The most value combinations a block check enumerates before it
    /// turns to Z3 (or gives up, as `unknown`).
    pub enum_limit: usize,
    /// Write every solver query here as an SMT-LIB2 file.
    pub emit_smt: Option<PathBuf>,
    /// Inputs for the differential run (all of them when there are fewer).
    pub evidence_inputs: usize,
    /// The most seconds the differential run may take.
    pub evidence_seconds: f64,
}

impl Default for Options {
    fn default() -> Options {
        Options { timeout_ms: 10_000, enum_limit: 200_000, emit_smt: None, evidence_inputs: 2_000, evidence_seconds: 10.0 }
    }
}

/// One block's result.
#[derive(Clone, Debug, Serialize)]
pub struct BlockReport {
    /// The layer (0-based); `None` for the embedding and readout.
    pub layer: Option<usize>,
    /// `embed`, `attn`, `mlp`, `readout`, `structure`.
    pub kind: String,
    /// The IR instructions the block implements.
    pub instructions: Vec<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// How it was decided (`enumeration`, `z3`, `checker`, ...).
    pub method: String,
    /// What was checked, or why it failed.
    pub detail: String,
    /// Wall time in milliseconds.
    pub time_ms: f64,
}

/// A concrete input on which the model and the program disagree.
#[derive(Clone, Debug, Serialize)]
pub struct Counterexample {
    /// The input tokens.
    pub input: Vec<String>,
    /// The first position (0-based) where the outputs differ.
    pub position: usize,
    /// The interpreter's output there.
    pub expected: String,
    /// The model's output there.
    pub actual: String,
    /// The block whose local check failed.
    pub block: String,
    /// Its instruction.
    pub instruction: String,
    /// The failed check, e.g. the query and key values whose score is on the wrong side.
    pub check: String,
}

/// The second line of evidence: the model run against the interpreter.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Evidence {
    /// Inputs run.
    pub inputs: usize,
    /// Whether that was every admitted input.
    pub exhaustive: bool,
    /// Inputs where model and interpreter disagreed.
    pub mismatches: usize,
    /// Inputs the interpreter rejects (e.g. a loop that does not halt), skipped.
    pub skipped: usize,
}

/// The whole result.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The program's name.
    pub program: String,
    /// The worst block verdict.
    pub verdict: Verdict,
    /// Every block, in model order.
    pub blocks: Vec<BlockReport>,
    /// Where refuted.
    pub counterexample: Option<Counterexample>,
    /// The differential run, reported apart from the proofs.
    pub evidence: Evidence,
    /// SMT-LIB2 files written.
    pub smt_files: Vec<String>,
}

impl Report {
    /// Counts of (proved, refuted, unknown) blocks.
    pub fn counts(&self) -> (usize, usize, usize) {
        let c = |v| self.blocks.iter().filter(|b| b.verdict == v).count();
        (c(Verdict::Proved), c(Verdict::Refuted), c(Verdict::Unknown))
    }
}

/// Why the verifier refused to look at a model at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The model does not belong to the program or is malformed.
    #[error("the model does not fit the program: {0}")]
    Mismatch(String),
}

/// Formats a value sequence.
pub(crate) fn seq_string(v: &[Value]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}
