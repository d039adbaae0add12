//! The optimizer end to end (issue 6): every optimized corpus model proved
//! by the verifier against the optimized program and tied to the source,
//! and random small programs optimized, checked against the source by the
//! interpreter, compiled, and proved by the verifier.

use proptest::prelude::*;
use std::path::Path;
use tfc_compiler::optimize::{agree_on_all, optimize, Limits};
use tfc_compiler::{compile_with, CompileOptions};
use tfc_ir::check::{check, Checked};
use tfc_verifier::{verify, Options, Verdict};

fn checked(src: &str) -> Option<Checked> {
    check(&tfc_ir::parse(src).ok()?).ok()
}

fn verdict(c: &Checked, model: &tfc_ir::model::Model, opts: &Options) -> Result<Verdict, String> {
    verify(c, model, opts).map(|r| r.verdict).map_err(|e| e.to_string())
}

/// Every corpus program the optimizer changes: its model is proved against
/// the optimized program, and the optimized program is tied to the source
/// by a proof: agreement on every input (at most 100,000 of them, as
/// `tfc verify` does), or the verifier proving the model against the source
/// directly. Nothing unknown passes.
#[test]
fn optimize_corpus_models_are_proved_and_tied_to_the_source() {
    let mut rows = vec![];
    let mut bad = vec![];
    let opts = Options { evidence_inputs: 300, evidence_seconds: 3.0, ..Options::default() };
    for dir in ["corpus/tracr", "corpus/programs"] {
        let mut files: Vec<_> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files.into_iter().filter(|f| f.extension().is_some_and(|e| e == "ir")) {
            // Negative programs in the corpus do not check or compile; they are not this test's.
            let Some(c) = checked(&std::fs::read_to_string(&f).unwrap()) else { continue };
            let Ok(w) = compile_with(&c, &CompileOptions { opt_level: 1, explain: false, ..Default::default() }) else { continue };
            let r = w.report.as_ref().unwrap();
            if let Some(fb) = &r.fallback {
                if fb.contains("a bug") {
                    bad.push(format!("{}: {fb}", f.display()));
                }
            }
            if !r.optimized {
                continue;
            }
            let against_opt = verdict(&w.checked, &w.compiled.model, &opts);
            let tie = match agree_on_all(&c.program, &w.checked.program, 100_000) {
                Ok(Some(n)) => format!("exhaustive on {n} inputs"),
                Ok(None) => match verdict(&c, &w.compiled.model, &opts) {
                    Ok(Verdict::Proved) => "direct proof against the source".into(),
                    other => {
                        bad.push(format!("{}: not tied to the source (too many inputs, direct proof {other:?})", f.display()));
                        "none".into()
                    }
                },
                Err(e) => {
                    bad.push(format!("{}: the optimized program differs from the source: {e}", f.display()));
                    "differs".into()
                }
            };
            rows.push(format!("{}: optimized {against_opt:?}; tie: {tie}", f.display()));
            if against_opt != Ok(Verdict::Proved) {
                bad.push(format!("{}: against the optimized program {against_opt:?}", f.display()));
            }
        }
    }
    eprintln!("{}", rows.join("\n"));
    assert!(rows.len() >= 10, "only {} corpus programs were optimized:\n{}", rows.len(), rows.join("\n"));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Random small programs that check and compile by construction:
/// numerical maps (linear and not), seqmaps, constants, numerical
/// aggregates under several selectors, widths, conjunctions, and sort-like
/// composite categorical keys `x + y/3` compared under a predicate (what
/// `width-lex-split` rewrites).
///
/// Restrictions, so that every generated program is one the pipeline must
/// settle (a failure to check, compile or prove is then a failure):
/// a `seqmap` of two `num` values has an affine body (one MLP computes no
/// other: plan.rs); non-linear bodies of two values take a `cat` operand;
/// there are no categorical aggregates (whether one always sees one value
/// is a whole-sequence property the verifier may leave to a bounded model
/// check, which can time out: `unknown`); no loops (the optimizer does not
/// touch them); and no `tokens : num` / `indices : num`: a model that
/// embeds tokens or indices as numbers is labelled `tokens` / `indices`,
/// which the verifier's basis reader refuses ("names no program value"),
/// at -O0 as much as at -O1 — a gap between layout.rs and
/// verifier/src/basis.rs, not the optimizer's; the numbers here come from
/// `map %tc { x } : num` instead.
fn program() -> impl Strategy<Value = String> {
    let bodies1 = prop::sample::select(vec!["x", "x * 0", "x + 1", "x - x", "2 * x - x", "min(x, 2)", "x * x", "(x + 1) - 1", "x == 1"]);
    let affine2 = prop::sample::select(vec!["x + y", "x + (y + (-x))", "y", "x", "x - y + y", "x * 0 + y * 0", "2 * x - y"]);
    let mixed2 = prop::sample::select(vec!["x * y", "max(x, y)", "x * y + y", "min(x, y) * 0"]);
    let preds = prop::sample::select(vec!["eq", "lt", "le", "true", "false", "ne", "gt"]);
    let step = (0u8..8, any::<prop::sample::Index>(), any::<prop::sample::Index>(), bodies1, affine2, mixed2, preds, 0i64..3);
    (prop::collection::vec(step, 1..7), any::<bool>()).prop_map(|(steps, causal)| {
        let mut vals: Vec<String> = vec!["t".into(), "i".into()];
        // Numbers from maps of the categorical embeddings, not `tokens : num`
        // (see the restrictions above).
        let mut lines = vec!["%tc = tokens".to_string(), "%ic = indices".to_string(), "%t = map %tc { x } : num".to_string(), "%i = map %ic { x } : num".to_string()];
        for (k, (op, a, b, f1, f2, g2, p, c)) in steps.into_iter().enumerate() {
            let (x, y) = (a.get(&vals).clone(), b.get(&vals).clone());
            let n = format!("v{k}");
            match op {
                0 => lines.push(format!("%{n} = map %{x} {{ {f1} }} : num")),
                1 => lines.push(format!("%{n} = seqmap %{x}, %{y} {{ {f2} }} : num")),
                2 => lines.push(format!("%{n} = const {c} : num")),
                3 => {
                    let kq = if k % 2 == 0 { "%tc, %ic" } else { "%ic, %ic" };
                    lines.push(format!("%s{k} = select {kq}, {p}"));
                    lines.push(format!("%{n} = aggregate %s{k}, %{x} default 0 : num"));
                }
                4 => {
                    lines.push(format!("%s{k} = select %ic, %ic, {p}"));
                    lines.push(format!("%w{k} = width %s{k}"));
                    lines.push(format!("%{n} = map %w{k} {{ x }} : num"));
                }
                5 => {
                    lines.push(format!("%s{k}a = select %tc, %tc, {p}"));
                    lines.push(format!("%s{k}b = select %ic, %ic, true"));
                    lines.push(format!("%s{k} = and %s{k}a, %s{k}b"));
                    lines.push(format!("%{n} = aggregate %s{k}, %{y} default 0 : num"));
                }
                6 => lines.push(format!("%{n} = seqmap %tc, %{x} {{ {g2} }} : num")),
                _ => {
                    // A composite key made distinct as in Tracr's make_sort.
                    lines.push(format!("%key{k} = seqmap %tc, %ic {{ x + y / 3 }} : cat"));
                    lines.push(format!("%s{k} = select %key{k}, %key{k}, {p}"));
                    lines.push(format!("%w{k} = width %s{k}"));
                    lines.push(format!("%{n} = map %w{k} {{ x }} : num"));
                }
            }
            vals.push(n);
        }
        let out = vals.last().unwrap().clone();
        format!("program r {{ vocab {{0, 1}} max_len 3 {}\n {}\n output %{out} }}", if causal { "causal" } else { "" }, lines.join("\n "))
    })
}

proptest! {
    // 64 cases keep `cargo test` quick (about 10 s in release);
    // TFC_PROPTEST_CASES=2000 runs a deeper search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("TFC_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]
    #[test]
    fn optimize_random_programs_agree_with_the_source_and_verify(src in program()) {
        let p = tfc_ir::parse(&src).expect("generated programs parse");
        let c = match check(&p) {
            Ok(c) => c,
            Err(ds) => return Err(TestCaseError::fail(format!("a generated program does not check: {:?}\n{src}", ds.iter().map(|d| &d.message).collect::<Vec<_>>()))),
        };
        let o = optimize(&c, &Limits::from_env(), false);
        if let Some(f) = &o.report.fallback {
            prop_assert!(!f.contains("a bug"), "{f}\n{src}");
        }
        // optimize validates already; check again independently here: every
        // input (vocab {0, 1}, max_len 3: 14 inputs), so this is a proof.
        prop_assert_eq!(agree_on_all(&c.program, &o.checked.program, 1_000), Ok(Some(14)), "{}", src);
        // The optimized program compiles, and its model is proved against it.
        let compiled = tfc_compiler::compile(&o.checked);
        prop_assert!(compiled.is_ok(), "the optimized program does not compile: {:?}\n{}\n{src}", compiled.err(), tfc_ir::print(&o.checked.program));
        let m = compiled.unwrap().model;
        let opts = Options { evidence_inputs: 14, evidence_seconds: 2.0, ..Options::default() };
        let r = verify(&o.checked, &m, &opts);
        prop_assert!(r.is_ok(), "the verifier refused the model: {:?}\n{src}", r.err());
        let r = r.unwrap();
        let why: Vec<String> = r.blocks.iter().filter(|b| b.verdict != Verdict::Proved).map(|b| format!("{} {}: {}", b.kind, b.instructions.join(","), b.detail)).collect();
        prop_assert_eq!(r.verdict, Verdict::Proved, "{:?}\n{}\n{}", why, tfc_ir::print(&o.checked.program), src);
    }
}
