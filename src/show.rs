//! `tfc show --stage weights`: a model's weights in the program's own terms.
//!
//! For each head, the score table over the values its query and key maps
//! read (found from the weights' support, as the verifier does), and for
//! each MLP the dimensions it reads and writes. Raw matrices are in the
//! JSON (`tfc compile -o`).

use std::collections::BTreeSet;
use std::fmt::Write;
use tfc_ir::model::{Matrix, Model};
use tfc_ir::Checked;

fn support_rows(m: &Matrix) -> BTreeSet<usize> {
    m.entries.iter().map(|e| e.0).collect()
}

fn support_cols(m: &Matrix) -> BTreeSet<usize> {
    m.entries.iter().map(|e| e.1).collect()
}

/// Renders every head and MLP.
pub fn weights(model: &Model, _checked: &Checked) -> String {
    let mut out = String::new();
    let label = |d: &usize| model.basis[*d].clone();
    let _ = writeln!(out, "model {}: d_model {}, {} layer(s)", model.program, model.basis.len(), model.layers.len());
    for (li, layer) in model.layers.iter().enumerate() {
        for (hi, h) in layer.attn.iter().enumerate() {
            let _ = writeln!(out, "layer {li} head {hi} [{}]", h.instructions.join(", "));
            let q: Vec<usize> = support_rows(&h.w_q).into_iter().collect();
            let k: Vec<usize> = support_rows(&h.w_k).into_iter().collect();
            // Score of one query dimension against one key dimension.
            let score = |qd: usize, kd: usize| {
                let mut s = tfc_ir::Rat::default();
                for (qi, qc, qv) in &h.w_q.entries {
                    if *qi != qd {
                        continue;
                    }
                    for (ki, kc, kv) in &h.w_k.entries {
                        if *ki == kd && kc == qc {
                            s += qv * kv;
                        }
                    }
                }
                s
            };
            let _ = writeln!(out, "  scores (rows: key dims, columns: query dims)");
            let _ = writeln!(out, "  {:>16} | {}", "", q.iter().map(|d| format!("{:>10}", label(d))).collect::<Vec<_>>().join(" "));
            for kd in &k {
                let row: Vec<String> = q.iter().map(|qd| format!("{:>10}", tfc_ir::model::rat_to_string(&score(*qd, *kd)))).collect();
                let _ = writeln!(out, "  {:>16} | {}", label(kd), row.join(" "));
            }
            let reads: Vec<String> = support_rows(&h.w_v).iter().map(label).collect();
            let writes: Vec<String> = support_cols(&h.w_o).iter().map(label).collect();
            let _ = writeln!(out, "  value reads [{}], writes [{}]", reads.join(", "), writes.join(", "));
        }
        for (mi, m) in layer.mlps.iter().enumerate() {
            let reads: Vec<String> = support_rows(&m.w_in).iter().map(label).collect();
            let writes: Vec<String> = support_cols(&m.w_out).iter().map(label).collect();
            let _ = writeln!(
                out,
                "layer {li} mlp {mi} [{}]: hidden {}, reads [{}], writes [{}]",
                m.instructions.join(", "),
                m.hidden(),
                reads.join(", "),
                writes.join(", ")
            );
        }
    }
    out
}
