//! Optimization time per Tracr library program (issue 6, "Speed":
//! saturation under 100 ms for every library program). Two groups:
//! `optimize/saturate` is conversion + saturation + extraction + checking
//! + the interpreter's translation validation (the whole `optimize`), and
//! the report's `saturation_ms` is printed once per program for the
//! saturation alone.
//!
//! `cargo bench --bench optimize -- --quick`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tfc_compiler::optimize::{optimize, Limits};

fn tracr_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/tracr");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus/tracr")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ir"))
        .collect();
    files.sort();
    files
}

fn bench_optimize(c: &mut Criterion) {
    let mut group = c.benchmark_group("optimize/tracr");
    group.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    let limits = Limits::from_env();
    for path in tracr_files() {
        let name = path.file_stem().expect("stem").to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).expect("reads");
        let checked = tfc_ir::check(&tfc_ir::parse(&text).expect("parses")).expect("checks");
        let r = optimize(&checked, &limits, false).report;
        eprintln!("{name}: saturation {:.3} ms ({}, {} iterations, {} e-nodes), whole optimize {:.1} ms", r.saturation_ms, r.stop, r.iterations, r.egraph_nodes, r.total_ms);
        group.bench_function(&name, |b| b.iter(|| optimize(&checked, &limits, false)));
    }
    group.finish();
}

criterion_group!(benches, bench_optimize);
criterion_main!(benches);
