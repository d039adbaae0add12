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

/// The ramp decoder's breakpoints, worked out on paper for `length` at
/// max_len 2 (widths 1 and 2, points 1/3 and 1/2; `length` is never 0):
/// one gap, D = 1/2 − 1/3 = 1/6. The slope s is the smallest power of two
/// with 1/s ≤ D/4 = 1/24: s = 32. The zone's integer m is the one nearest
/// s·(1/3 + 1/2)/2 − 1/2 = 32·5/12 − 1/2 = 12.83…, so m = 13: the ramp is
/// relu(14 − 32x) − relu(13 − 32x), 1 below 13/32 = 0.406 and 0 above
/// 14/32 = 0.4375, both inside (1/3, 1/2) and at least 1/6/4 = 0.042 from
/// each point (0.073 from 1/3, 0.0625 from 1/2).
#[test]
fn ramp_breakpoints_match_the_hand_derivation() {
    use num_traits::ToPrimitive;
    use tfc_compiler::lower::{LowerOptions, WidthDecoder};
    let mut prog = load(Path::new("corpus/tracr/length.ir")).unwrap().program;
    prog.max_len = 2;
    let checked = tfc_ir::check(&prog).unwrap();
    let opts = LowerOptions { width_decoder: WidthDecoder::Ramp, softmax_beta: None };
    let model = tfc_compiler::compile_lowered(&checked, &opts).unwrap().model;
    let mlp = &model.layers[0].mlps[0];
    let scratch = model.basis.iter().position(|b| b.starts_with("scratch")).unwrap();
    let one = model.basis.iter().position(|b| b == "one").unwrap();
    // (weight on the scratch, weight on `one`) of every unit reading the scratch negatively.
    let mut ramps: Vec<(f64, f64)> = (0..mlp.w_in.cols)
        .filter_map(|u| {
            let w = |d: usize| mlp.w_in.entries.iter().find(|e| e.0 == d && e.1 == u).map(|e| e.2.to_f64().unwrap());
            match (w(scratch), w(one)) {
                (Some(s), Some(b)) if s < 0.0 => Some((s, b)),
                _ => None,
            }
        })
        .collect();
    ramps.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(ramps, vec![(-32.0, 13.0), (-32.0, 14.0)]);
}

/// Where `length`'s width stops being decodable in bf16 with the ramp
/// decoder, by a plain oracle. `length` is categorical: one output
/// dimension per width 1..=n, read by argmax (the first maximum). The head
/// delivers x = fl(1/(w+1)) (w + 1 exact ties, e = 1 each, their sum exact).
/// The paper formula: with the points sorted ascending (largest width
/// first) and ramp_i = relu(m_i+1 − s_i·x) − relu(m_i − s_i·x) on the gap
/// between points i and i+1, the dimension of the width at point j gets
/// +ramp_j − ramp_{j−1}, and the top point's (width 1) also the constant
/// unit's 1. In bf16, in the forward pass's order: each unit is
/// (m+1) + (−s·x) with one rounding (s·x is exact, s a power of two); each
/// output dimension adds its terms in unit order — the constant unit, then
/// gap j−1's −A, +B, then gap j's +A, −B — rounding each add. The oracle's
/// first failing width must be the tool's observed first failing length
/// (every input of length n has width n), and the analytic safe length
/// must lie below it.
#[test]
fn ramp_decoder_breaks_in_bf16_where_a_plain_oracle_says() {
    use half::bf16;
    let n = 80usize;
    // Points 1/(w+1) for the widths 1..=n, ascending (largest width first).
    let ws: Vec<u64> = (1..=n as u64).rev().collect();
    let pt = |w: u64| num_rational::Ratio::new(1i64, w as i64 + 1);
    let mut gaps = vec![];
    for k in 0..ws.len() - 1 {
        let (lo, hi) = (pt(ws[k]), pt(ws[k + 1]));
        let d = hi - lo;
        let mut s = num_rational::Ratio::from_integer(1i64);
        while num_rational::Ratio::from_integer(1i64) / s > d / 4 {
            s *= 2;
        }
        let m = (s * (lo + hi) / 2 - num_rational::Ratio::new(1, 2)).round();
        gaps.push((*s.numer() as f32, *m.numer() as f32));
    }
    let decode = |w: u64| -> u64 {
        let x = bf16::from_f32(1.0) / bf16::from_f32((w + 1) as f32);
        let units: Vec<(bf16, bf16)> = gaps
            .iter()
            .map(|&(s, m)| {
                let sx = x * bf16::from_f32(-s);
                ((bf16::from_f32(m + 1.0) + sx).max(bf16::ZERO), (bf16::from_f32(m) + sx).max(bf16::ZERO))
            })
            .collect();
        let add = |acc: bf16, t: bf16| if t == bf16::ZERO { acc } else { acc + t };
        let mut best: Option<(u64, bf16)> = None;
        for v in 1..=n as u64 {
            let j = ws.iter().position(|&x| x == v).unwrap();
            let mut acc = bf16::ZERO;
            if j == ws.len() - 1 {
                acc = add(acc, bf16::ONE);
            }
            if j >= 1 {
                let (a, b) = units[j - 1];
                acc = add(add(acc, -a), b);
            }
            if j < units.len() {
                let (a, b) = units[j];
                acc = add(add(acc, a), -b);
            }
            if best.map_or(true, |(_, bv)| acc > bv) {
                best = Some((v, acc));
            }
        }
        best.unwrap().0
    };
    let oracle_first = (1..=n as u64).find(|&w| decode(w) != w).map(|w| w as usize);
    let path = Path::new("corpus/tracr/length.ir");
    let (model, _) = compile_target(path, "bf16", Some(n));
    let mut prog = load(path).unwrap().program;
    prog.max_len = n;
    let checked = tfc_ir::check(&prog).unwrap();
    let beta = num_traits::ToPrimitive::to_f64(model.softmax_beta.as_ref().unwrap()).unwrap();
    let r = tfc_verifier::precision::report(&checked, &model, &[Format::Bf16], beta, 2).unwrap();
    let f = &r.formats[0];
    assert_eq!(f.observed_first_failure.as_ref().map(|o| o.len), oracle_first, "tool vs oracle");
    assert!(oracle_first.is_some_and(|o| f.analytic_max_len < o), "analytic {} vs oracle {oracle_first:?}", f.analytic_max_len);
    // And the point alone is not what breaks it: fl(1/(w+1)) is within
    // u·x = x/256 of x, and the zones keep D/4 = 1/(4(w+1)(w+2)) away, so
    // every point with w + 2 < 64 is inside its flat stretch.
    assert!(oracle_first.unwrap() < 62);
}
