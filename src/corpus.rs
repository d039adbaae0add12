//! `tfc test`: the corpus runner.
//!
//! Every `.ir` file under the given paths carries its expectations in
//! comment lines (docs/IR.md, "Expectations"). The runner parses them
//! with plain line matching (no dependency on the IR parser, so a broken
//! parser cannot hide an expectation), checks each one, and reports one
//! line per failure with file and line, then `N passed, M failed` over
//! files. A file without a single expectation fails: a check that cannot
//! fail is a defect. `--bless` rewrites the outputs of the `run` lines
//! that disagree, for deliberate changes only, and says what it rewrote.
//!
//! `; stats: layers=3 heads=2 mlps=2 d_model=36 params=3982` (any subset
//! of the keys, at least one) checks the size figures of the model `tfc
//! compile` builds by default (`-O1`, the optimizer on); `; stats-O0:` the
//! same figures at `-O0` ([`tfc_ir::model::ModelStats`], counted as Tracr
//! counts them). Both are checked whatever level the runner is at. Sizes
//! are a measurement, not a semantic value, so they are the one
//! expectation that `--bless` is meant to fill from the tool: it rewrites
//! a disagreeing stats line with the actual figures for the keys it names,
//! and a bare `; stats:` with `layers heads d_model params`.
//!
//! The `; run:` lines run the model compiled at the runner's level (`tfc
//! test` is -O1, `tfc test -O0` turns the optimizer off), and `; verify:`
//! is the verdict of `tfc verify` at that level: against the source
//! program (docs/VERIFY.md, "Optimized models").

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tfc_ir::value::{fmt_seq, parse_value};
use tfc_ir::{check, interp, Value};

/// One expectation line.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// `; run: IN => OUT`
    Run {
        /// The input as written.
        input: String,
        /// The expected output as written.
        output: String,
    },
    /// `; run: IN => error CODE`
    RunError {
        /// The input as written.
        input: String,
        /// The expected code.
        code: String,
    },
    /// `; error: CODE`
    Error(String),
    /// `; warning: CODE`
    Warning(String),
    /// `; verify: proved|refuted|unknown` — the verdict of `tfc verify`.
    Verify(String),
    /// `; stats: layers=L heads=H mlps=M d_model=D params=P`, any subset;
    /// `None` for a key the line does not name. `; stats-O0:` is the same
    /// for the unoptimized model.
    Stats {
        /// `true` for `; stats-O0:` (the -O0 model), `false` for `; stats:` (-O1).
        o0: bool,
        /// Layers (attention sublayer + MLP sublayer).
        layers: Option<usize>,
        /// Attention heads.
        heads: Option<usize>,
        /// MLP blocks.
        mlps: Option<usize>,
        /// Residual width.
        d_model: Option<usize>,
        /// Dense parameter count.
        params: Option<u64>,
    },
    /// `; precision: FORMAT=ANALYTIC/OBSERVED …` (src/corpus_precision.rs).
    Precision(std::collections::BTreeMap<String, crate::corpus_precision::Figures>),
    /// `; precision-target: FORMAT=LENGTH …`.
    PrecisionTarget(std::collections::BTreeMap<String, usize>),
    /// An expectation line that names a known kind but cannot be read
    /// (e.g. `; stats: depth=3`): a failure, never silently skipped.
    Unreadable(String),
}

/// The keys of a `; stats:` line, in the order `--bless` writes them.
const STATS_KEYS: [&str; 5] = ["layers", "heads", "mlps", "d_model", "params"];

fn parse_stats(text: &str, o0: bool) -> Expect {
    let mut got: [Option<u64>; 5] = [None; 5];
    for item in text.split_whitespace() {
        let Some((key, value)) = item.split_once('=') else {
            return Expect::Unreadable(format!("stats: `{item}` is not KEY=NUMBER"));
        };
        let Some(k) = STATS_KEYS.iter().position(|&s| s == key) else {
            return Expect::Unreadable(format!("stats: unknown key `{key}` (known: {})", STATS_KEYS.join(", ")));
        };
        let Ok(n) = value.replace('_', "").parse::<u64>() else {
            return Expect::Unreadable(format!("stats: `{value}` is not a number"));
        };
        if got[k].replace(n).is_some() {
            return Expect::Unreadable(format!("stats: `{key}` given twice"));
        }
    }
    let small = |v: Option<u64>| v.map(|n| n as usize);
    Expect::Stats { o0, layers: small(got[0]), heads: small(got[1]), mlps: small(got[2]), d_model: small(got[3]), params: got[4] }
}

/// The `; stats:` line for `stats`, naming the keys of `want` (or the
/// default four when it names none).
fn stats_line(want: [bool; 5], stats: &tfc_compiler::Sizes, o0: bool) -> String {
    let want = if want.iter().any(|&w| w) { want } else { [true, true, false, true, true] };
    let actual = [stats.layers as u64, stats.heads as u64, stats.mlps as u64, stats.d_model as u64, stats.params];
    let items: Vec<String> =
        (0..5).filter(|&k| want[k]).map(|k| format!("{}={}", STATS_KEYS[k], actual[k])).collect();
    format!("; {}: {}", if o0 { "stats-O0" } else { "stats" }, items.join(" "))
}

/// An expectation with its 1-based line number.
#[derive(Clone, Debug)]
pub struct Located {
    /// Line in the file.
    pub line: usize,
    /// What is expected.
    pub expect: Expect,
}

/// Reads the expectation lines of a corpus file.
pub fn expectations(src: &str) -> Vec<Located> {
    let mut out = Vec::new();
    for (i, raw) in src.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with(";;") {
            continue;
        }
        let Some(rest) = line.strip_prefix(';') else { continue };
        let rest = rest.trim();
        let expect = if let Some(r) = rest.strip_prefix("run:") {
            let Some((input, output)) = r.split_once("=>") else { continue };
            let output = output.trim();
            match output.strip_prefix("error ") {
                Some(code) => Expect::RunError { input: input.trim().into(), code: code.trim().into() },
                None => Expect::Run { input: input.trim().into(), output: output.into() },
            }
        } else if let Some(code) = rest.strip_prefix("error:") {
            Expect::Error(code.trim().into())
        } else if let Some(code) = rest.strip_prefix("warning:") {
            Expect::Warning(code.trim().into())
        } else if let Some(r) = rest.strip_prefix("stats:") {
            parse_stats(r, false)
        } else if let Some(r) = rest.strip_prefix("stats-O0:") {
            parse_stats(r, true)
        } else if let Some(v) = rest.strip_prefix("verify:") {
            Expect::Verify(v.trim().into())
        } else if let Some(r) = rest.strip_prefix("precision-target:") {
            crate::corpus_precision::parse_target_line(r).map_or_else(Expect::Unreadable, Expect::PrecisionTarget)
        } else if let Some(r) = rest.strip_prefix("precision:") {
            crate::corpus_precision::parse_line(r).map_or_else(Expect::Unreadable, Expect::Precision)
        } else {
            continue;
        };
        out.push(Located { line: i + 1, expect });
    }
    out
}

/// Parses a space-separated input or output as values.
pub fn parse_seq(text: &str) -> Option<Vec<Value>> {
    text.split_whitespace().map(parse_value).collect()
}

/// The result of one file.
#[derive(Debug, Default)]
pub struct FileReport {
    /// How many expectations held.
    pub checks_passed: usize,
    /// `(line, message)` for each that did not.
    pub failures: Vec<(usize, String)>,
    /// Rewritten source, when blessing changed something.
    pub blessed: Option<String>,
}

/// Checks every expectation of one file, running and verifying the model
/// compiled at `opt_level`.
pub fn run_file(path: &Path, bless: bool, opt_level: u8) -> FileReport {
    let mut rep = FileReport::default();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            rep.failures.push((0, format!("cannot read: {e}")));
            return rep;
        }
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let exps = expectations(&text);
    if exps.is_empty() {
        rep.failures.push((1, "no expectations (`; run:`, `; error:`, `; warning:`, `; stats:`, `; verify:`): a corpus file must check something".into()));
        return rep;
    }
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut changed = false;

    // Diagnostics from parsing and checking.
    let (program, diags) = match tfc_ir::parse_bytes(&bytes) {
        Err(d) => (None, vec![d]),
        Ok((_, p)) => match check(&p) {
            Ok(c) => (Some(p), c.warnings),
            Err(ds) => (None, ds),
        },
    };
    let errors: BTreeSet<&str> = diags.iter().filter(|d| d.is_error()).map(|d| d.code).collect();
    let warnings: BTreeSet<&str> = diags.iter().filter(|d| !d.is_error()).map(|d| d.code).collect();
    let expected_errors: BTreeSet<&str> = exps
        .iter()
        .filter_map(|e| match &e.expect {
            Expect::Error(c) => Some(c.as_str()),
            _ => None,
        })
        .collect();
    for e in &exps {
        match &e.expect {
            Expect::Error(code) => {
                if errors.contains(code.as_str()) {
                    rep.checks_passed += 1;
                } else {
                    rep.failures.push((e.line, format!("expected error {code}, got {}", describe(&diags))));
                }
            }
            Expect::Warning(code) => {
                if warnings.contains(code.as_str()) {
                    rep.checks_passed += 1;
                } else {
                    rep.failures.push((e.line, format!("expected warning {code}, got {}", describe(&diags))));
                }
            }
            _ => {}
        }
    }
    for code in errors.difference(&expected_errors) {
        let d = diags.iter().find(|d| d.code == *code).expect("code came from diags");
        let (line, _) = tfc_ir::diag::line_col(&text, d.span.start);
        rep.failures.push((line, format!("unexpected error {code}: {}", d.message)));
    }

    // The compiled models: -O1 (for `; stats:`, and the runs at -O1) with the
    // -O0 sizes it measured on the way (`; stats-O0:`), and at the runner's
    // level for the sample runs (exact, and f32 at the default beta) and the verdict.
    let checked = program.as_ref().and_then(|p| check(p).ok());
    let wants_model = exps.iter().any(|e| matches!(e.expect, Expect::Run { .. } | Expect::Stats { .. } | Expect::Verify(_) | Expect::Precision(_) | Expect::PrecisionTarget(_)));
    let (o1, at_level) = match &checked {
        Some(c) if wants_model => {
            let compile = |level: u8| tfc_compiler::compile_with(c, &tfc_compiler::CompileOptions { opt_level: level, explain: false, ..Default::default() });
            match compile(1) {
                Ok(w1) => {
                    let at = if opt_level == 1 { None } else { compile(opt_level).ok() };
                    (Some(w1), at)
                }
                Err(err) => {
                    rep.failures.push((1, format!("does not compile: {err}")));
                    (None, None)
                }
            }
        }
        _ => (None, None),
    };
    let with = at_level.as_ref().or(o1.as_ref());
    let model = with.map(|w| w.compiled.model.clone());
    // Size figures, and the verifier's verdict.
    for e in &exps {
        match &e.expect {
            Expect::Verify(want) => {
                let (Some(w), Some(c)) = (with, &checked) else {
                    rep.failures.push((e.line, "verify: the program does not compile".into()));
                    continue;
                };
                // The differential run is evidence only; keep it short here.
                let opts = tfc_verifier::Options { evidence_inputs: 300, evidence_seconds: 3.0, ..tfc_verifier::Options::default() };
                match crate::pipeline::verify_compiled(c, w, opt_level, &opts, crate::pipeline::DEFAULT_LINK_INPUTS) {
                    Ok(r) if r.verdict.to_string() == *want => rep.checks_passed += 1,
                    Ok(r) => {
                        let why: Vec<String> = r.report.blocks.iter().filter(|b| b.verdict != tfc_verifier::Verdict::Proved).map(|b| format!("{} {}: {}", b.kind, b.instructions.join(","), b.detail)).take(3).collect();
                        rep.failures.push((e.line, format!("verify at -O{opt_level}: expected {want}, got {} ({}; source: {})", r.verdict, why.join("; "), r.link)));
                    }
                    Err(err) => rep.failures.push((e.line, format!("verify: expected {want}, the verifier refused: {err}"))),
                }
            }
            Expect::Unreadable(msg) => rep.failures.push((e.line, msg.clone())),
            Expect::Precision(want) => {
                // Like `; stats:`, the figures are those of the default
                // (-O1) model whatever level the runner is at; the report
                // reads the program that model was lowered from.
                let Some(w) = o1.as_ref() else {
                    rep.failures.push((e.line, "precision: the program does not compile".into()));
                    continue;
                };
                match crate::corpus_precision::measure(&w.checked, &w.compiled.model) {
                    Err(err) => rep.failures.push((e.line, format!("precision: {err}"))),
                    Ok(got) => {
                        let broken = crate::corpus_precision::invariant(&got);
                        if !broken.is_empty() {
                            rep.failures.extend(broken.into_iter().map(|b| (e.line, b)));
                            continue;
                        }
                        let wrong: Vec<String> = want
                            .iter()
                            .filter(|(k, w)| got.get(*k) != Some(*w))
                            .map(|(k, w)| format!("{k} {}/{:?} -> {:?}", w.analytic, w.observed, got.get(k).map(|g| (g.analytic, g.observed))))
                            .collect();
                        let full = crate::corpus_precision::line(&got);
                        if bless && lines[e.line - 1].trim() != full {
                            // Blessing writes every format, not only those named.
                            lines[e.line - 1] = full;
                            changed = true;
                            rep.checks_passed += 1;
                        } else if wrong.is_empty() {
                            rep.checks_passed += 1;
                        } else {
                            rep.failures.push((e.line, format!("precision: expected vs measured: {}", wrong.join(", "))));
                        }
                    }
                }
            }
            Expect::PrecisionTarget(want) => {
                let Some(c) = &checked else {
                    rep.failures.push((e.line, "precision-target: the program does not check".into()));
                    continue;
                };
                let mut got = std::collections::BTreeMap::new();
                let mut failed = false;
                for k in want.keys() {
                    match crate::corpus_precision::measure_target(c, k, 1) {
                        Ok(n) => {
                            got.insert(k.clone(), n);
                        }
                        Err(err) => {
                            rep.failures.push((e.line, format!("precision-target: {k}: {err}")));
                            failed = true;
                        }
                    }
                }
                if failed {
                    continue;
                }
                if got == *want {
                    rep.checks_passed += 1;
                } else if bless {
                    lines[e.line - 1] = crate::corpus_precision::target_line(&got);
                    changed = true;
                    rep.checks_passed += 1;
                } else {
                    let wrong: Vec<String> = want.iter().filter(|(k, w)| got.get(*k) != Some(*w)).map(|(k, w)| format!("{k} {w} -> {}", got[k])).collect();
                    rep.failures.push((e.line, format!("precision-target: expected vs certified: {}", wrong.join(", "))));
                }
            }
            Expect::Stats { o0, layers, heads, mlps, d_model, params } => {
                let Some(w) = &o1 else {
                    rep.failures.push((e.line, "stats: the program does not compile, so it has no sizes".into()));
                    continue;
                };
                let s = if *o0 { &w.before } else { &w.after };
                let want = [layers.map(|v| v as u64), heads.map(|v| v as u64), mlps.map(|v| v as u64), d_model.map(|v| v as u64), *params];
                let actual = [s.layers as u64, s.heads as u64, s.mlps as u64, s.d_model as u64, s.params];
                let wrong: Vec<String> = (0..5)
                    .filter_map(|k| match want[k] {
                        Some(w) if w != actual[k] => Some(format!("{} {w} -> {}", STATS_KEYS[k], actual[k])),
                        _ => None,
                    })
                    .collect();
                let which = if *o0 { "stats-O0" } else { "stats" };
                if want.iter().all(Option::is_none) && !bless {
                    rep.failures.push((e.line, format!("{which}: names no figure (`--bless` fills them in)")));
                } else if wrong.is_empty() && want.iter().any(Option::is_some) {
                    rep.checks_passed += 1;
                } else if bless {
                    lines[e.line - 1] = stats_line(want.map(|w| w.is_some()), s, *o0);
                    changed = true;
                    rep.checks_passed += 1;
                } else {
                    rep.failures.push((e.line, format!("{which}: expected vs compiled: {}", wrong.join(", "))));
                }
            }
            _ => {}
        }
    }
    let prepared_exact = model.as_ref().and_then(|m| tfc_ir::forward::PreparedModel::<tfc_ir::Rat>::new(m).ok());
    let prepared_f32 = model.as_ref().and_then(|m| tfc_ir::forward::PreparedModel::<f32>::new(m).ok());

    // Sample runs.
    for e in &exps {
        let (input, want) = match &e.expect {
            Expect::Run { input, output } => (input, Ok(output)),
            Expect::RunError { input, code } => (input, Err(code)),
            _ => continue,
        };
        let Some(prog) = &program else {
            rep.failures.push((e.line, "the program does not check, so it cannot run".into()));
            continue;
        };
        let Some(tokens) = parse_seq(input) else {
            rep.failures.push((e.line, format!("cannot read input `{input}`")));
            continue;
        };
        let got = interp::run(prog, &tokens, &interp::RunOptions::default());
        match (want, got) {
            (Ok(out), Ok(run)) => {
                let expected = parse_seq(out);
                if let (Some(pe), Some(pf)) = (&prepared_exact, &prepared_f32) {
                    use tfc_ir::forward::{Attention, ForwardOptions};
                    let opts = ForwardOptions::default();
                    for (what, got) in [
                        ("compiled (exact)", pe.run(&tokens, Attention::Hard, &opts).map(|r| r.outputs)),
                        ("compiled (f32)", pf.run(&tokens, Attention::Softmax { beta: crate::DEFAULT_BETA }, &opts).map(|r| r.outputs)),
                    ] {
                        match got {
                            Ok(o) if Some(&o) == expected.as_ref() => rep.checks_passed += 1,
                            Ok(o) => rep.failures.push((e.line, format!("run `{input}`: expected `{out}`, {what} model gives `{}`", fmt_seq(&o)))),
                            Err(err) => rep.failures.push((e.line, format!("run `{input}`: {what} model fails: {err}"))),
                        }
                    }
                }
                if expected.as_ref() == Some(&run.output) {
                    rep.checks_passed += 1;
                } else if bless {
                    lines[e.line - 1] = format!("; run: {input} => {}", fmt_seq(&run.output));
                    changed = true;
                    rep.checks_passed += 1;
                } else {
                    rep.failures.push((e.line, format!("run `{input}`: expected `{out}`, interpreter gives `{}`", fmt_seq(&run.output))));
                }
            }
            (Ok(out), Err(d)) => rep.failures.push((e.line, format!("run `{input}`: expected `{out}`, got error {}: {}", d.code, d.message))),
            (Err(code), Err(d)) if d.code == code => rep.checks_passed += 1,
            (Err(code), Err(d)) => rep.failures.push((e.line, format!("run `{input}`: expected error {code}, got error {}: {}", d.code, d.message))),
            (Err(code), Ok(run)) => rep.failures.push((e.line, format!("run `{input}`: expected error {code}, got `{}`", fmt_seq(&run.output)))),
        }
    }
    if changed {
        let mut s = lines.join("\n");
        if text.ends_with('\n') {
            s.push('\n');
        }
        rep.blessed = Some(s);
    }
    rep
}

fn describe(diags: &[tfc_ir::Diagnostic]) -> String {
    if diags.is_empty() {
        return "no diagnostics".into();
    }
    diags.iter().map(|d| format!("{} ({})", d.code, d.message)).collect::<Vec<_>>().join("; ")
}

/// Every `.ir` file under `paths`, sorted.
pub fn collect(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out);
    }
    out.sort();
    out
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                walk(&e.path(), out);
            }
        }
    } else if p.extension().is_some_and(|e| e == "ir") {
        out.push(p.to_path_buf());
    }
}
