//! The precision report's key property: the analytic bound is never beaten
//! by an observation. For every corpus program that compiles and has at
//! least one head, in every float format at β = 100, the analytic safe
//! length is at most the observed first failing length.
//!
//! Hand-derived case (`length`, bf16): the width head gives BOS the weight
//! 1/(w+1). The scores are exact in bf16 (integers 0..=2), so the w + 1
//! winners tie exactly, e^{-100} underflows bf16's exp to 0, and the sum is
//! exactly w + 1: the head delivers fl(1/(w+1)), off by at most half an ulp,
//! ulp(x) = 2^{floor(log2 x) − 7}. The points 1/(w+1) and 1/(w+2) are
//! 1/((w+1)(w+2)) apart, so the point alone stays decodable while
//! 2^{floor(log2 x) − 8} < 1/(2(w+1)(w+2)). For w + 1 in [2^k, 2^{k+1})
//! (x not a power of two) floor(log2 x) = −k − 1, so the condition is
//! (w+1)(w+2) < 2^{k+8}: for k = 3 (w + 1 = 8..15) 15·16 = 240 < 2^11; the
//! first w that fails it is w + 1 = 257 (257·258 = 66306 ≥ 2^16 = 65536,
//! k = 8). So the point representation is not what limits bf16 at max_len
//! 12: x = 1/13 has ulp 2^-11, half of it 2.4e-4, against a half-spacing of
//! 1/(2·13·14) = 2.7e-3. What limits it is the decoder: its interpolant
//! has coefficients up to n(n+1) = 156, and its rounding bound (γ terms
//! over those coefficients, ~2^-8 · 156) exceeds the 1/2 decoding margin
//! already at w = 1. So the tool reports an analytic bf16 length of 0 for
//! `length` at max_len 12 — conservative — while no observed run fails.

use std::path::Path;
use tfc_ir::forward::Format;

const FORMATS: [Format; 5] = [Format::F32, Format::F16, Format::Bf16, Format::Fp8E4M3, Format::Fp8E5M2];

fn load(path: &Path) -> Option<tfc_ir::Checked> {
    let bytes = std::fs::read(path).ok()?;
    let (_, prog) = tfc_ir::parse_bytes(&bytes).ok()?;
    tfc_ir::check(&prog).ok()
}

#[test]
fn analytic_bound_never_beaten_by_observation() {
    let mut checked_programs = 0;
    for dir in ["corpus/tracr", "corpus/programs", "corpus/loops"] {
        let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for path in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "ir")) {
            let Some(checked) = load(&path) else { continue };
            let Ok(compiled) = tfc_compiler::compile(&checked) else { continue };
            let model = &compiled.model;
            if model.layers.iter().all(|l| l.attn.is_empty()) {
                continue;
            }
            let r = match tfc_verifier::precision::report(&checked, model, &FORMATS, 100.0, 20) {
                Ok(r) => r,
                Err(e) => panic!("{}: {e}", path.display()),
            };
            checked_programs += 1;
            for f in &r.formats {
                if let Some(obs) = &f.observed_first_failure {
                    assert!(
                        f.analytic_max_len < obs.len,
                        "{} {}: analytic safe length {} but a run fails at length {} on {:?}",
                        path.display(),
                        f.format,
                        f.analytic_max_len,
                        obs.len,
                        obs.input
                    );
                }
                for h in &r.heads {
                    let a = h.analytic_max_len[&f.format];
                    assert!(a >= f.analytic_max_len, "{}: a head's bound is below the model's", path.display());
                }
            }
        }
    }
    assert!(checked_programs >= 10, "only {checked_programs} programs checked");
}

#[test]
fn length_in_bf16_matches_the_hand_derivation() {
    let mut checked = load(Path::new("corpus/tracr/length.ir")).unwrap();
    let mut prog = checked.program.clone();
    prog.max_len = 12;
    checked = tfc_ir::check(&prog).unwrap();
    let model = tfc_compiler::compile(&checked).unwrap().model;
    let r = tfc_verifier::precision::report(&checked, &model, &[Format::Bf16, Format::F32], 100.0, 20).unwrap();
    let bf = &r.formats[0];
    // Decoder-limited, as derived above: 0, and the reason names the decoder.
    assert_eq!(bf.analytic_max_len, 0);
    assert!(bf.limited_by.as_deref().unwrap_or("").contains("decoded width"), "{:?}", bf.limited_by);
    // The observation is no earlier than the bound (here: none up to 12).
    assert!(bf.observed_first_failure.as_ref().map_or(true, |o| o.len > bf.analytic_max_len));
    // f32: 24 bits cover it all.
    assert_eq!(r.formats[1].analytic_max_len, 12);
    // The head: gap 1 (BOS and every key tie at 1, an unselected key would be 0;
    // the BOS query scores 2 on BOS against 1), scores up to 2.
    assert_eq!(r.heads[0].gap, "1");
}

/// `tfc compile --target FORMAT` as a user runs it: the model it writes and
/// its exit code (0: certified up to max_len, 1: short of it).
fn compile_target(path: &Path, format: &str, max_len: Option<usize>) -> (tfc_ir::model::Model, i32) {
    let out = std::env::temp_dir().join(format!("tfc-target-{}-{format}-{}.json", path.file_stem().unwrap().to_string_lossy(), max_len.unwrap_or(0)));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tfc"));
    // -O0: the model is then of the source program, which the report reads.
    cmd.arg("compile").arg(path).arg("-O0").arg("--target").arg(format).arg("-o").arg(&out);
    if let Some(n) = max_len {
        cmd.arg("--max-len").arg(n.to_string());
    }
    let status = cmd.output().expect("run tfc");
    let code = status.status.code().unwrap_or(-1);
    assert!(code == 0 || code == 1, "{}: tfc compile --target {format} exited {code}: {}", path.display(), String::from_utf8_lossy(&status.stderr));
    let model = tfc_ir::model::Model::from_json(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    (model, code)
}

/// The same property on the models certified lowering builds (ramp
/// decoders, power-of-two β): in every format, at the β the model records,
/// no run fails at or below the analytic length. Certified lowering also
/// never does worse in its format than the default lowering, and its exit
/// code says whether it reached max_len.
#[test]
fn certified_models_are_never_beaten_by_observation() {
    let mut n = 0;
    for dir in ["corpus/tracr", "corpus/programs"] {
        let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for path in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "ir")) {
            let Some(checked) = load(&path) else { continue };
            let Ok(default) = tfc_compiler::compile(&checked) else { continue };
            if default.model.layers.iter().all(|l| l.attn.is_empty()) {
                continue;
            }
            let (model, code) = compile_target(&path, "bf16", None);
            let beta: f64 = num_traits::ToPrimitive::to_f64(model.softmax_beta.as_ref().expect("--target records beta")).unwrap();
            let r = tfc_verifier::precision::report(&checked, &model, &FORMATS, beta, 20).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
            for f in &r.formats {
                if let Some(obs) = &f.observed_first_failure {
                    assert!(f.analytic_max_len < obs.len, "{} --target bf16, {} at beta {beta}: analytic {} but a run fails at {} on {:?}", path.display(), f.format, f.analytic_max_len, obs.len, obs.input);
                }
            }
            let bf = r.formats.iter().find(|f| f.format == "bf16").unwrap();
            assert_eq!(code == 0, bf.analytic_max_len == model.max_len, "{}: exit code {code} against a bf16 safe length {}", path.display(), bf.analytic_max_len);
            let d = tfc_verifier::precision::analytic(&checked, &default.model, Format::Bf16, 100.0).unwrap().0;
            assert!(bf.analytic_max_len >= d, "{}: --target bf16 certifies {} but the default lowering {d}", path.display(), bf.analytic_max_len);
        }
    }
    assert!(n >= 10, "only {n} programs checked");
}

/// Longer lengths, where the formats actually break: the width programs
/// compiled with `--max-len 24`, by default and for bf16.
#[test]
fn bounds_hold_at_longer_lengths() {
    for name in ["length", "hist", "count", "sort_unique", "frac_prevs"] {
        let path = Path::new("corpus/tracr").join(format!("{name}.ir"));
        let mut checked = load(&path).unwrap();
        let mut prog = checked.program.clone();
        prog.max_len = 24;
        checked = tfc_ir::check(&prog).unwrap();
        let default = tfc_compiler::compile(&checked).unwrap().model;
        let (target, _) = compile_target(&path, "bf16", Some(24));
        let tb = num_traits::ToPrimitive::to_f64(target.softmax_beta.as_ref().unwrap()).unwrap();
        for (what, model, beta) in [("default", &default, 100.0), ("--target bf16", &target, tb)] {
            let r = tfc_verifier::precision::report(&checked, model, &FORMATS, beta, 10).unwrap_or_else(|e| panic!("{name}: {e}"));
            for f in &r.formats {
                if let Some(obs) = &f.observed_first_failure {
                    assert!(f.analytic_max_len < obs.len, "{name} at max_len 24, {what}, {}: analytic {} but a run fails at {} on {:?}", f.format, f.analytic_max_len, obs.len, obs.input);
                }
            }
        }
    }
}
