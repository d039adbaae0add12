//! `tfc precision` time (issue 5, "Speed"): the whole report — analytic
//! bounds, minimum β and mantissa searches, observed runs in f32, f16,
//! bf16, fp8 e4m3 and e5m2 at every length up to max_len on adversarial
//! and 50 random inputs per length — for sort and hist at vocabulary 3,
//! max_len 64 (the CLI's defaults, β = 100), with the default lowering and
//! with the certified (`--target bf16`-style: ramp decoder) one.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::Duration;
use tfc_compiler::lower::{LowerOptions, WidthDecoder};
use tfc_ir::forward::Format;

const FORMATS: [Format; 5] = [Format::F32, Format::F16, Format::Bf16, Format::Fp8E4M3, Format::Fp8E5M2];

fn sort(n: usize) -> String {
    format!(
        "program sort {{ vocab {{1, 2, 3}} max_len {n}
  %tok = tokens
  %idx = indices
  %key = seqmap %tok, %idx {{ x + y / {n} }} : cat
  %lt = select %key, %key, lt
  %tgt = width %lt
  %pick = select %tgt, %idx, eq
  %out = aggregate %pick, %tok default 0 : cat
  output %out }}"
    )
}

fn hist(n: usize) -> String {
    format!(
        "program hist {{ vocab {{1, 2, 3}} max_len {n}
  %tok = tokens
  %same = select %tok, %tok, eq
  %hist = width %same
  output %hist }}"
    )
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("precision_report");
    g.sample_size(10).measurement_time(Duration::from_secs(20)).warm_up_time(Duration::from_secs(1));
    for (name, src) in [("hist", hist(64)), ("sort", sort(64))] {
        let checked = tfc_ir::check(&tfc_ir::parse(&src).unwrap()).unwrap();
        for (lowering, decoder) in [("default", WidthDecoder::Interpolant), ("ramp", WidthDecoder::Ramp)] {
            let opts = LowerOptions { width_decoder: decoder, softmax_beta: None };
            let model = tfc_compiler::compile_lowered(&checked, &opts).unwrap().model;
            g.bench_with_input(BenchmarkId::new(format!("{name}_n64"), lowering), &model, |b, m| {
                b.iter(|| tfc_verifier::precision::report(&checked, m, &FORMATS, 100.0, 50).unwrap())
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
