//! Compiling at an optimization level, and verifying what was compiled
//! against the *source* program (docs/VERIFY.md, "Optimized models").
//!
//! At `-O1` the model is the lowering of the optimized program, so the
//! verifier proves it against that program, exactly. What the proof then
//! says about the program the user wrote depends on how the optimized
//! program is tied to it, and [`Link`] says which tie holds:
//!
//! * [`Link::Source`]: nothing was rewritten (`-O0`, or the optimizer kept
//!   the source); the proof is against the source.
//! * [`Link::Exhaustive`]: the interpreter runs both programs on every
//!   admitted input (at most `link_inputs` of them) and they agree. The
//!   input domain is finite and the interpreter is the programs' meaning,
//!   so this is a proof that the two are the same function, and the model
//!   is proved against the source.
//! * [`Link::Direct`]: too many inputs to enumerate, but the verifier also
//!   proves the model against the source itself (it can when the optimizer
//!   kept the source's names for every value the model holds: the
//!   verifier evaluates elementwise chains of the source, so fused or
//!   folded maps do not stop it).
//! * [`Link::Sampled`]: neither; the two programs agree on a random
//!   sample only. That is evidence, not a proof, so the verdict against the
//!   source is `unknown` even though the model is proved against the
//!   optimized program (`-O0` gives a model whose proof is against the
//!   source).
//! * [`Link::Disagree`]: an input on which they differ (an optimizer bug):
//!   `refuted`.
//! * [`Link::NotTied`]: the model is not proved against the optimized
//!   program; its verdict stands.

use serde::Serialize;
use tfc_compiler::{CompileOptions, CompiledWith};
use tfc_ir::model::Model;
use tfc_ir::Checked;
use tfc_verifier::{Report, Verdict};

/// The most inputs on which `tfc verify` runs the source and the optimized
/// program against each other to prove them equal (`--link-inputs`).
pub const DEFAULT_LINK_INPUTS: usize = 100_000;

/// Compiles `c` at `opt_level` (docs/OPTIMIZER.md), rendering a compile
/// error as the CLI does; `Err` is the exit code.
pub fn compile_at(path: &str, c: &Checked, opt_level: u8, explain: bool) -> Result<CompiledWith, u8> {
    tfc_compiler::compile_with(c, &CompileOptions { opt_level, explain, ..Default::default() }).map_err(|e| {
        eprintln!("error[{}]: {path}: {e}", e.code());
        if let tfc_compiler::CompileError::UnsupportedSelector { .. } = e {
            eprintln!("  = hint: compute a combined value with seqmap and select on it");
        }
        crate::exit::BAD_INPUT
    })
}

/// How the program the model was proved against is tied to the source.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Link {
    /// The proof is against the source program itself (nothing was rewritten,
    /// or a stored model that fits the source).
    Source,
    /// The two programs agree on every admitted input (a proof).
    Exhaustive {
        /// How many inputs.
        inputs: usize,
    },
    /// The model was also proved against the source directly.
    Direct,
    /// Agreement on a random sample only (not a proof).
    Sampled {
        /// How many inputs the optimizer's validation ran.
        inputs: usize,
        /// Why the direct proof against the source did not succeed.
        direct: String,
    },
    /// The two programs differ (an optimizer bug), or the model differs from the source.
    Disagree {
        /// The input and both outputs.
        detail: String,
    },
    /// Not tied: the model is not proved against the optimized program, so
    /// there is nothing to carry over to the source.
    NotTied,
}

impl std::fmt::Display for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Link::Source => write!(f, "the proof is against the source program itself"),
            Link::Exhaustive { inputs } => write!(
                f,
                "the optimized program agrees with the source on all {inputs} admitted inputs (interpreter, exhaustive), so the proof holds for the source"
            ),
            Link::Direct => write!(f, "the model is also proved against the source program directly"),
            Link::Sampled { inputs, direct } => write!(
                f,
                "the optimized program agrees with the source on {inputs} random inputs only (sampled, not a proof), and a direct proof against the source did not succeed ({direct}); -O0 gives a model proved against the source"
            ),
            Link::Disagree { detail } => write!(f, "the model's program differs from the source: {detail}"),
            Link::NotTied => write!(f, "not carried over to the source: the model is not proved against the optimized program"),
        }
    }
}

/// The verdict against the source program, with the proof it rests on.
#[derive(Clone, Debug, Serialize)]
pub struct SourceVerdict {
    /// The verdict about the source program: `proved` only when the model is
    /// proved against its program and that program is tied to the source by
    /// a proof ([`Link`]).
    pub verdict: Verdict,
    /// The optimization level the model was compiled at (`None` for a stored model).
    pub opt_level: Option<u8>,
    /// `source` or `optimized`: the program [`SourceVerdict::report`] is against.
    pub proved_against: &'static str,
    /// How that program relates to the source.
    pub link: Link,
    /// The verifier's report against that program.
    pub report: Report,
    /// SMT-LIB files the direct proof against the source wrote (under
    /// `--emit-smt DIR/source/`), when it ran.
    pub source_smt_files: Vec<String>,
}

/// Ties a model proved (or not) against the optimized program `opt` to the
/// source `src` (module docs).
#[allow(clippy::too_many_arguments)]
fn tie(
    src: &Checked,
    opt: &Checked,
    m: &Model,
    report: &Report,
    sampled: usize,
    opts: &tfc_verifier::Options,
    link_inputs: usize,
    smt: &mut Vec<String>,
) -> (Verdict, Link) {
    if report.verdict != Verdict::Proved {
        return (report.verdict, Link::NotTied);
    }
    // The direct proof's queries go to their own directory: they have the
    // same names as the first proof's.
    let mut direct_opts = opts.clone();
    direct_opts.emit_smt = opts.emit_smt.as_ref().map(|d| d.join("source"));
    match tfc_compiler::optimize::agree_on_all(&src.program, &opt.program, link_inputs) {
        Err(detail) => (Verdict::Refuted, Link::Disagree { detail }),
        Ok(Some(inputs)) => (Verdict::Proved, Link::Exhaustive { inputs }),
        Ok(None) => match tfc_verifier::verify(src, m, &direct_opts).inspect(|r| smt.extend(r.smt_files.iter().cloned())) {
            Ok(r) if r.verdict == Verdict::Proved => (Verdict::Proved, Link::Direct),
            Ok(r) if r.verdict == Verdict::Refuted => {
                let detail = match &r.counterexample {
                    Some(c) => format!(
                        "on input `{}` the model gives {} at position {}, the source {}",
                        c.input.join(" "),
                        c.actual,
                        c.position,
                        c.expected
                    ),
                    None => "the verifier refuted the model against the source".into(),
                };
                (Verdict::Refuted, Link::Disagree { detail })
            }
            Ok(r) => {
                let why: Vec<String> = r
                    .blocks
                    .iter()
                    .filter(|b| b.verdict != Verdict::Proved)
                    .map(|b| format!("{} {}: {}", b.kind, b.instructions.join(","), b.detail))
                    .take(2)
                    .collect();
                (Verdict::Unknown, Link::Sampled { inputs: sampled, direct: format!("{}: {}", r.verdict, why.join("; ")) })
            }
            Err(e) => (Verdict::Unknown, Link::Sampled { inputs: sampled, direct: e.to_string() }),
        },
    }
}

/// Verifies a compiled model against the source `src`: against the
/// model's own program (`w.checked`), then ties that program to the source
/// (module docs). `Err` when the verifier refuses the model.
pub fn verify_compiled(
    src: &Checked,
    w: &CompiledWith,
    opt_level: u8,
    opts: &tfc_verifier::Options,
    link_inputs: usize,
) -> Result<SourceVerdict, tfc_verifier::VerifyError> {
    let m = &w.compiled.model;
    let opt_level = Some(opt_level);
    // Nothing rewritten, or rewritten into the same text: the source itself.
    let same = !w.report.as_ref().is_some_and(|r| r.optimized) || tfc_ir::print(&w.checked.program) == tfc_ir::print(&src.program);
    if same {
        let report = tfc_verifier::verify(src, m, opts)?;
        return Ok(SourceVerdict { verdict: report.verdict, opt_level, proved_against: "source", link: Link::Source, report, source_smt_files: vec![] });
    }
    let report = tfc_verifier::verify(&w.checked, m, opts)?;
    let sampled = w.report.as_ref().and_then(|r| r.validated).map_or(0, |v| v.inputs);
    let mut smt = vec![];
    let (verdict, link) = tie(src, &w.checked, m, &report, sampled, opts, link_inputs, &mut smt);
    Ok(SourceVerdict { verdict, opt_level, proved_against: "optimized", link, report, source_smt_files: smt })
}

/// Verifies a stored model against the source: directly when its basis
/// names the source's values; otherwise, at `opt_level` 1, against the
/// optimized source (a model from `tfc compile -o` at -O1 names the
/// optimized program's values), tied to the source as in [`verify_compiled`].
pub fn verify_stored(
    src: &Checked,
    m: &Model,
    opt_level: u8,
    opts: &tfc_verifier::Options,
    link_inputs: usize,
) -> Result<SourceVerdict, tfc_verifier::VerifyError> {
    let first = match tfc_verifier::verify(src, m, opts) {
        Ok(report) => {
            return Ok(SourceVerdict { verdict: report.verdict, opt_level: None, proved_against: "source", link: Link::Source, report, source_smt_files: vec![] })
        }
        Err(e) => e,
    };
    if opt_level == 0 {
        return Err(first);
    }
    let o = tfc_compiler::optimize::optimize(src, &tfc_compiler::optimize::Limits::from_env(), false);
    if !o.report.optimized {
        return Err(first);
    }
    let Ok(report) = tfc_verifier::verify(&o.checked, m, opts) else { return Err(first) };
    let sampled = o.report.validated.map_or(0, |v| v.inputs);
    let mut smt = vec![];
    let (verdict, link) = tie(src, &o.checked, m, &report, sampled, opts, link_inputs, &mut smt);
    Ok(SourceVerdict { verdict, opt_level: None, proved_against: "optimized", link, report, source_smt_files: smt })
}
