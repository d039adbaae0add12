//! Forward-pass throughput in f32 (positions per second): sort over vocab
//! {1..4} at max_len 64 (benches/programs/sort_v4_n64.ir), softmax at
//! inverse temperature 100, on one full-length input.
//!
//! Two implementations of the same forward pass (docs/MODEL.md) over the
//! same weights, each exact rational rounded once to f32:
//!
//! * `sparse`: tfc's own `tfc_ir::forward::PreparedModel::<f32>` (CSR
//!   weights, queries' zero coordinates skipped);
//! * `dense`: the baseline below, every matrix a dense row-major
//!   `Vec<f32>` and every product a plain dense loop, as a framework would
//!   run the model exported with `tfc export --safetensors`.
//!
//! Both include the embedding, every head (softmax) and MLP block (ReLU),
//! and the categorical readout; the input's 64 token positions are the
//! throughput's elements (BOS is extra work, not counted). Before timing,
//! both must decode the correctly sorted output.
//!
//! `cargo bench --bench forward -- --quick`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;
use std::time::Duration;
use tfc_ir::forward::{Attention, ForwardOptions, PreparedModel, Scalar};
use tfc_ir::model::{Matrix, Model, SparseVec};
use tfc_ir::{Encoding, Value};

const BETA: f64 = 100.0;

/// A row-major dense matrix.
struct Dense {
    rows: usize,
    cols: usize,
    w: Vec<f32>,
}

impl Dense {
    fn from(m: &Matrix) -> Dense {
        let mut w = vec![0.0f32; m.rows * m.cols];
        for (i, j, r) in &m.entries {
            w[i * m.cols + j] = f32::from_rat(r);
        }
        Dense { rows: m.rows, cols: m.cols, w }
    }
}

fn dense_vec(v: &SparseVec) -> Vec<f32> {
    let mut out = vec![0.0f32; v.len];
    for (j, r) in &v.entries {
        out[*j] = f32::from_rat(r);
    }
    out
}

/// `out (n × w.cols) += x (n × w.rows) · w`, dense.
fn matmul_add(x: &[f32], n: usize, w: &Dense, out: &mut [f32]) {
    let (k, m) = (w.rows, w.cols);
    for i in 0..n {
        let xi = &x[i * k..(i + 1) * k];
        let oi = &mut out[i * m..(i + 1) * m];
        for (kk, &a) in xi.iter().enumerate() {
            let wrow = &w.w[kk * m..(kk + 1) * m];
            for (o, &b) in oi.iter_mut().zip(wrow) {
                *o += a * b;
            }
        }
    }
}

fn matmul(x: &[f32], n: usize, w: &Dense) -> Vec<f32> {
    let mut out = vec![0.0f32; n * w.cols];
    matmul_add(x, n, w, &mut out);
    out
}

struct DenseHead {
    w_q: Dense,
    w_k: Dense,
    w_v: Dense,
    w_o: Dense,
}

struct DenseMlp {
    w_in: Dense,
    b_in: Vec<f32>,
    w_out: Dense,
    b_out: Vec<f32>,
}

struct DenseModel<'m> {
    model: &'m Model,
    d: usize,
    token_embed: Dense,
    pos_embed: Dense,
    layers: Vec<(Vec<DenseHead>, Vec<DenseMlp>)>,
}

impl<'m> DenseModel<'m> {
    fn new(model: &'m Model) -> DenseModel<'m> {
        assert!(model.loops.is_empty(), "the dense baseline runs loop-free models only");
        assert_eq!(model.output.encoding, Encoding::Cat, "the dense baseline decodes categorical outputs only");
        DenseModel {
            model,
            d: model.basis.len(),
            token_embed: Dense::from(&model.token_embed),
            pos_embed: Dense::from(&model.pos_embed),
            layers: model
                .layers
                .iter()
                .map(|l| {
                    let heads = l
                        .attn
                        .iter()
                        .map(|h| DenseHead {
                            w_q: Dense::from(&h.w_q),
                            w_k: Dense::from(&h.w_k),
                            w_v: Dense::from(&h.w_v),
                            w_o: Dense::from(&h.w_o),
                        })
                        .collect();
                    let mlps = l
                        .mlps
                        .iter()
                        .map(|m| DenseMlp {
                            w_in: Dense::from(&m.w_in),
                            b_in: dense_vec(&m.b_in),
                            w_out: Dense::from(&m.w_out),
                            b_out: dense_vec(&m.b_out),
                        })
                        .collect();
                    (heads, mlps)
                })
                .collect(),
        }
    }

    /// Token rows: 0 = BOS, k + 1 = vocab[k].
    fn rows(&self, tokens: &[Value]) -> Vec<usize> {
        std::iter::once(0)
            .chain(tokens.iter().map(|t| 1 + self.model.vocab.iter().position(|v| v == t).expect("known token")))
            .collect()
    }

    fn run(&self, tokens: &[Value]) -> Vec<Value> {
        let rows = self.rows(tokens);
        let (n, d) = (rows.len(), self.d);
        let beta = BETA as f32;
        let mut x = vec![0.0f32; n * d];
        for (p, &r) in rows.iter().enumerate() {
            for c in 0..d {
                x[p * d + c] = self.token_embed.w[r * d + c] + self.pos_embed.w[p * d + c];
            }
        }
        let mut scores = vec![0.0f32; n];
        for (heads, mlps) in &self.layers {
            if !heads.is_empty() {
                let mut delta = vec![0.0f32; n * d];
                for head in heads {
                    let (h, hv) = (head.w_q.cols, head.w_v.cols);
                    let q = matmul(&x, n, &head.w_q);
                    let k = matmul(&x, n, &head.w_k);
                    let v = matmul(&x, n, &head.w_v);
                    let mut z = vec![0.0f32; n * hv];
                    for i in 0..n {
                        let keys = if self.model.causal { i + 1 } else { n };
                        let qi = &q[i * h..(i + 1) * h];
                        let mut max = f32::NEG_INFINITY;
                        for j in 0..keys {
                            let kj = &k[j * h..(j + 1) * h];
                            let s: f32 = qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * beta;
                            scores[j] = s;
                            max = max.max(s);
                        }
                        let mut sum = 0.0f32;
                        for s in &mut scores[..keys] {
                            *s = (*s - max).exp();
                            sum += *s;
                        }
                        let zi = &mut z[i * hv..(i + 1) * hv];
                        for j in 0..keys {
                            let a = scores[j] / sum;
                            for (zc, &vc) in zi.iter_mut().zip(&v[j * hv..(j + 1) * hv]) {
                                *zc += a * vc;
                            }
                        }
                    }
                    matmul_add(&z, n, &head.w_o, &mut delta);
                }
                x.iter_mut().zip(&delta).for_each(|(a, b)| *a += b);
            }
            if !mlps.is_empty() {
                let mut delta = vec![0.0f32; n * d];
                for mlp in mlps {
                    let mut hid = matmul(&x, n, &mlp.w_in);
                    let hw = mlp.w_in.cols;
                    for p in 0..n {
                        for (hc, b) in hid[p * hw..(p + 1) * hw].iter_mut().zip(&mlp.b_in) {
                            *hc = (*hc + b).max(0.0);
                        }
                    }
                    matmul_add(&hid, n, &mlp.w_out, &mut delta);
                    for p in 0..n {
                        for (o, b) in delta[p * d..(p + 1) * d].iter_mut().zip(&mlp.b_out) {
                            *o += b;
                        }
                    }
                }
                x.iter_mut().zip(&delta).for_each(|(a, b)| *a += b);
            }
        }
        let out = &self.model.output;
        (1..n)
            .map(|p| {
                let xp = &x[p * d..(p + 1) * d];
                let mut best = 0;
                for k in 1..out.dims.len() {
                    if xp[out.dims[k]] > xp[out.dims[best]] {
                        best = k;
                    }
                }
                out.values[best].clone()
            })
            .collect()
    }
}

fn sort_model() -> Model {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/programs/sort_v4_n64.ir");
    let bytes = std::fs::read(&path).expect("read");
    let (_, program) = tfc_ir::parse_bytes(&bytes).expect("parses");
    let checked = tfc_ir::check(&program).expect("checks");
    tfc_compiler::compile(&checked).expect("compiles").model
}

/// 64 tokens from {1..4}, from a fixed linear congruential generator.
fn input(len: usize) -> Vec<Value> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            Value::int(1 + (state >> 33) as i64 % 4)
        })
        .collect()
}

fn bench_forward(c: &mut Criterion) {
    let model = sort_model();
    let tokens = input(model.max_len);
    let mut sorted = tokens.clone();
    sorted.sort();
    let sparse = PreparedModel::<f32>::new(&model).expect("prepares");
    let dense = DenseModel::new(&model);
    let attention = Attention::Softmax { beta: BETA };
    let opts = ForwardOptions::default();
    assert_eq!(sparse.run(&tokens, attention, &opts).expect("runs").outputs, sorted, "sparse f32 output is not sorted");
    assert_eq!(dense.run(&tokens), sorted, "dense f32 output is not sorted");
    let s = model.stats();
    println!(
        "sort_v4_n64: d_model {}, heads {}, MLP hidden {:?}, params {} (nonzero: {})",
        s.d_model,
        s.heads,
        s.hidden,
        s.params,
        nonzeros(&model)
    );

    let mut group = c.benchmark_group("forward_f32/sort_v4_n64");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(tokens.len() as u64));
    group.bench_function("sparse (PreparedModel<f32>)", |b| {
        b.iter(|| sparse.run(std::hint::black_box(&tokens), attention, &opts).expect("runs").outputs)
    });
    group.bench_function("dense baseline", |b| b.iter(|| dense.run(std::hint::black_box(&tokens))));
    group.finish();
}

fn nonzeros(m: &Model) -> usize {
    let mut n = m.token_embed.nnz() + m.pos_embed.nnz();
    for l in &m.layers {
        for h in &l.attn {
            n += h.w_q.nnz() + h.w_k.nnz() + h.w_v.nnz() + h.w_o.nnz();
        }
        for b in &l.mlps {
            n += b.w_in.nnz() + b.b_in.entries.len() + b.w_out.nnz() + b.b_out.entries.len();
        }
    }
    n
}

// No plots: they add nothing here, and criterion 0.5's plotter panics on the
// single sample `--quick` takes of a multi-second compile.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench_forward
}
criterion_main!(benches);
