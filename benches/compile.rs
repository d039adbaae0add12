//! Compile time: parse + check + compile (all four stages, exact rational
//! weights) of every Tracr library program in corpus/tracr, and of sort
//! at ANCHORS' growth point (vocab {1..30}, n = 40,
//! benches/programs/sort_v30_n40.ir).
//!
//! Targets (issue 3, "Speed"): every library program under 20 ms, sort at
//! vocab 30, n 40 under 200 ms. Tracr (../shared/ANCHORS.md): 5–11 s per
//! program end to end; its compile proper 0.01 s (small programs) to 17 s
//! (sort, vocab 30, n 40).
//!
//! `cargo bench --bench compile -- --quick`. Reading the file is outside the
//! measured loop; dropping the model is inside it.

use criterion::{criterion_group, criterion_main, Criterion};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn compile_text(bytes: &[u8]) -> tfc_ir::model::Model {
    let (_, program) = tfc_ir::parse_bytes(bytes).expect("parses");
    let checked = tfc_ir::check(&program).expect("checks");
    tfc_compiler::compile(&checked).expect("compiles").model
}

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

fn bench_library(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile/tracr");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for path in tracr_files() {
        let name = path.file_stem().expect("stem").to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).expect("read");
        group.bench_function(name, |b| b.iter(|| compile_text(std::hint::black_box(&bytes))));
    }
    group.finish();
}

fn bench_growth(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/programs/sort_v30_n40.ir");
    let bytes = std::fs::read(&path).expect("read");
    let mut group = c.benchmark_group("compile/growth");
    // The fewest samples criterion allows: one compile takes seconds today.
    group.sample_size(10).warm_up_time(Duration::from_millis(1)).measurement_time(Duration::from_secs(2));
    group.bench_function("sort_v30_n40", |b| b.iter(|| compile_text(std::hint::black_box(&bytes))));
    group.finish();
}

// No plots: they add nothing here, and criterion 0.5's plotter panics on the
// single sample `--quick` takes of a multi-second compile.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench_library, bench_growth
}
criterion_main!(benches);
