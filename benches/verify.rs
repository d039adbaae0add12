//! Verify time: every corpus program, and sort and hist over a grid of
//! max_len × vocabulary sizes, to show that the compositional checks grow
//! polynomially where exhaustive checking grows as vocab^max_len.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::Duration;

fn checked(src: &str) -> Option<(tfc_ir::Checked, tfc_ir::model::Model)> {
    let p = tfc_ir::parse(src).ok()?;
    let c = tfc_ir::check(&p).ok()?;
    let m = tfc_compiler::compile(&c).ok()?.model;
    Some((c, m))
}

fn vocab(v: usize) -> String {
    format!("{{1..{v}}}")
}

fn sort(v: usize, n: usize) -> String {
    format!(
        "program sort {{ vocab {} max_len {n}
  %tok = tokens
  %idx = indices
  %key = seqmap %tok, %idx {{ x + y / {n} }} : cat
  %lt = select %key, %key, lt
  %tgt = width %lt
  %pick = select %tgt, %idx, eq
  %out = aggregate %pick, %tok default 0 : cat
  output %out }}",
        vocab(v)
    )
}

fn hist(v: usize, n: usize) -> String {
    format!(
        "program hist {{ vocab {} max_len {n}
  %tok = tokens
  %same = select %tok, %tok, eq
  %hist = width %same
  output %hist }}",
        vocab(v)
    )
}

fn opts() -> tfc_verifier::Options {
    // The proofs only: the differential run is evidence, timed apart.
    tfc_verifier::Options { evidence_inputs: 0, evidence_seconds: 0.0, ..tfc_verifier::Options::default() }
}

fn corpus(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify_corpus");
    g.sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(300));
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus");
    let mut files: Vec<_> = ["tracr", "programs", "loops"]
        .iter()
        .flat_map(|d| std::fs::read_dir(format!("{root}/{d}")).unwrap().flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ir"))
        .collect();
    files.sort();
    for f in files {
        let Some((ch, m)) = checked(&std::fs::read_to_string(&f).unwrap()) else { continue };
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        g.bench_function(name, |b| b.iter(|| tfc_verifier::verify(&ch, &m, &opts()).unwrap()));
    }
    g.finish();
}

fn grid(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify_grid");
    g.sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(300));
    for (prog, make) in [("hist", hist as fn(usize, usize) -> String), ("sort", sort)] {
        for v in [4, 16, 64] {
            for n in [8, 16, 32, 64, 128] {
                // sort's keys number v·n; past the checker's categorical limit (4096)
                // the program does not check, and the grid says so by omission.
                let Some((ch, m)) = checked(&make(v, n)) else { continue };
                if prog == "sort" && v * n > 1024 {
                    continue; // score tables of (v·n)² entries: minutes per run, see docs/VERIFY.md
                }
                g.bench_with_input(BenchmarkId::new(format!("{prog}_v{v}"), n), &n, |b, _| {
                    b.iter(|| tfc_verifier::verify(&ch, &m, &opts()).unwrap())
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, corpus, grid);
criterion_main!(benches);
