//! The model IR: a transformer's weights as exact rationals over a
//! labelled residual basis, and its JSON form.
//!
//! A [`Model`] is plain data. The compiler builds one, the verifier reads
//! one, and a person (or a Python script) can open its JSON file, read
//! every weight with the name of the residual dimension it touches, and
//! edit it. That is why:
//!
//! - every weight is an exact rational ([`Rat`]), written in JSON as a
//!   string `"-3/2"` or `"7"` (never a JSON number, which most readers would
//!   turn into a float);
//! - matrices are sparse ([`Matrix`]): compiled weights are almost all
//!   zero, and a list of `[row, col, "value"]` triples is both small and
//!   readable;
//! - every residual dimension has a label (`basis`), and every head and MLP
//!   block names the program instructions it implements.
//!
//! Nothing in a model file is trusted: [`Model::from_json`] checks every
//! shape, index and number (see [`Model::validate`]) and reports problems
//! as a [`ModelError`], never a panic. The forward pass that gives a model
//! its meaning lives in [`crate::forward`]; the format and the semantics
//! are documented in `docs/MODEL.md`.

use crate::ast::Encoding;
use crate::value::{fmt_rat, Rat, Value};
use num_bigint::BigInt;
use num_traits::Zero;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

/// The JSON format version this crate reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The most decimal digits a numerator or a denominator may have in a
/// model file. Compiled weights are small; a longer number is far more
/// likely to be an attack on the exact arithmetic (every later operation
/// on it is slow) than a real weight.
pub const MAX_RAT_DIGITS: usize = 512;

/// The largest residual width, vocabulary, head width or hidden width a
/// model may declare. Checked before anything is allocated from those
/// sizes, so a file claiming a 10^12-wide matrix is an error, not an
/// out-of-memory abort.
pub const MAX_DIM: usize = 1 << 20;

/// The largest `max_len` a model may declare.
pub const MAX_SEQ_LEN: usize = 1 << 16;

// ---------------------------------------------------------------------------
// Sparse matrices and vectors
// ---------------------------------------------------------------------------

/// A sparse matrix of exact rationals.
///
/// Invariant (checked by [`Model::validate`], kept by every constructor
/// here): `entries` is sorted by `(row, col)`, has no duplicates, no zero
/// values, and every index is in range.
///
/// JSON: `{"rows": 3, "cols": 2, "entries": [[0, 1, "-3/2"], [2, 0, "1"]]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// The nonzero entries `(row, col, value)`, sorted by `(row, col)`.
    #[serde(with = "matrix_entries")]
    pub entries: Vec<(usize, usize, Rat)>,
}

impl Matrix {
    /// The `rows × cols` zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Matrix {
        Matrix { rows, cols, entries: Vec::new() }
    }

    /// Builds a matrix from triplets in any order: duplicates are summed
    /// and zeros dropped, so a lowering pass can simply add contributions.
    pub fn from_triplets(
        rows: usize,
        cols: usize,
        triplets: impl IntoIterator<Item = (usize, usize, Rat)>,
    ) -> Result<Matrix, ModelError> {
        let mut entries: Vec<(usize, usize, Rat)> = Vec::new();
        for (k, (i, j, v)) in triplets.into_iter().enumerate() {
            if i >= rows || j >= cols {
                return Err(ModelError::EntryOutOfRange {
                    at: "matrix".into(),
                    entry: k,
                    index: format!("({i}, {j})"),
                    shape: format!("{rows}×{cols}"),
                });
            }
            entries.push((i, j, v));
        }
        entries.sort_by_key(|e| (e.0, e.1));
        let mut merged: Vec<(usize, usize, Rat)> = Vec::with_capacity(entries.len());
        for (i, j, v) in entries {
            match merged.last_mut() {
                Some(last) if last.0 == i && last.1 == j => last.2 += v,
                _ => merged.push((i, j, v)),
            }
        }
        merged.retain(|e| !e.2.is_zero());
        Ok(Matrix { rows, cols, entries: merged })
    }

    /// Builds a matrix from dense rows (all of length `cols`).
    pub fn from_dense(cols: usize, dense: &[Vec<Rat>]) -> Result<Matrix, ModelError> {
        let mut triplets = Vec::new();
        for (i, row) in dense.iter().enumerate() {
            if row.len() != cols {
                return Err(ModelError::Shape {
                    at: format!("dense row {i}"),
                    expected: format!("{cols} columns"),
                    found: format!("{} columns", row.len()),
                });
            }
            for (j, v) in row.iter().enumerate() {
                if !v.is_zero() {
                    triplets.push((i, j, v.clone()));
                }
            }
        }
        Matrix::from_triplets(dense.len(), cols, triplets)
    }

    /// The dense form, row by row (allocates `rows × cols`).
    pub fn to_dense(&self) -> Vec<Vec<Rat>> {
        let mut dense = vec![vec![Rat::zero(); self.cols]; self.rows];
        for (i, j, v) in &self.entries {
            dense[*i][*j] = v.clone();
        }
        dense
    }

    /// The entry at `(i, j)` (zero when absent).
    pub fn get(&self, i: usize, j: usize) -> Rat {
        match self.entries.binary_search_by(|e| (e.0, e.1).cmp(&(i, j))) {
            Ok(k) => self.entries[k].2.clone(),
            Err(_) => Rat::zero(),
        }
    }

    /// The nonzero entries of row `i`, in column order.
    pub fn row(&self, i: usize) -> &[(usize, usize, Rat)] {
        let start = self.entries.partition_point(|e| e.0 < i);
        let end = self.entries.partition_point(|e| e.0 <= i);
        &self.entries[start..end]
    }

    /// The number of nonzero entries.
    pub fn nnz(&self) -> usize {
        self.entries.len()
    }

    /// The dense parameter count `rows · cols` (zeros included).
    pub fn dense_len(&self) -> u64 {
        (self.rows as u64).saturating_mul(self.cols as u64)
    }

    /// Checks the shape and the entry invariant; `at` names the matrix in
    /// errors (`layers[0].attn[1].w_q`).
    fn check(&self, at: &str, rows: Option<usize>, cols: Option<usize>) -> Result<(), ModelError> {
        check_dim(at, "rows", self.rows)?;
        check_dim(at, "cols", self.cols)?;
        let rows_ok = rows.unwrap_or(self.rows) == self.rows;
        let cols_ok = cols.unwrap_or(self.cols) == self.cols;
        if !rows_ok || !cols_ok {
            let show = |n: Option<usize>, have: usize| n.unwrap_or(have).to_string();
            return Err(ModelError::Shape {
                at: at.to_string(),
                expected: format!("{}×{}", show(rows, self.rows), show(cols, self.cols)),
                found: format!("{}×{}", self.rows, self.cols),
            });
        }
        for (k, (i, j, v)) in self.entries.iter().enumerate() {
            if *i >= self.rows || *j >= self.cols {
                return Err(ModelError::EntryOutOfRange {
                    at: at.to_string(),
                    entry: k,
                    index: format!("({i}, {j})"),
                    shape: format!("{}×{}", self.rows, self.cols),
                });
            }
            if v.is_zero() {
                return Err(ModelError::ZeroEntry { at: at.to_string(), entry: k });
            }
            if k > 0 {
                let (pi, pj, _) = &self.entries[k - 1];
                if (pi, pj) >= (i, j) {
                    return Err(ModelError::UnsortedEntries { at: at.to_string(), entry: k });
                }
            }
        }
        Ok(())
    }
}

/// A sparse vector of exact rationals (used for MLP biases).
///
/// Invariant: `entries` sorted by index, no duplicates, no zeros, indices
/// below `len`.
///
/// JSON: `{"len": 4, "entries": [[1, "1/2"], [3, "-1"]]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseVec {
    /// The dimension.
    pub len: usize,
    /// The nonzero entries `(index, value)`, sorted by index.
    #[serde(with = "vec_entries")]
    pub entries: Vec<(usize, Rat)>,
}

impl SparseVec {
    /// The zero vector of dimension `len`.
    pub fn zeros(len: usize) -> SparseVec {
        SparseVec { len, entries: Vec::new() }
    }

    /// Builds a vector from pairs in any order (duplicates summed, zeros
    /// dropped).
    pub fn from_pairs(
        len: usize,
        pairs: impl IntoIterator<Item = (usize, Rat)>,
    ) -> Result<SparseVec, ModelError> {
        let m = Matrix::from_triplets(1, len, pairs.into_iter().map(|(j, v)| (0, j, v))).map_err(
            |e| match e {
                ModelError::EntryOutOfRange { entry, index, .. } => {
                    ModelError::EntryOutOfRange { at: "vector".into(), entry, index, shape: len.to_string() }
                }
                other => other,
            },
        )?;
        Ok(SparseVec { len, entries: m.entries.into_iter().map(|(_, j, v)| (j, v)).collect() })
    }

    /// Builds a vector from its dense form.
    pub fn from_dense(dense: &[Rat]) -> SparseVec {
        SparseVec {
            len: dense.len(),
            entries: dense
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_zero())
                .map(|(j, v)| (j, v.clone()))
                .collect(),
        }
    }

    /// The dense form.
    pub fn to_dense(&self) -> Vec<Rat> {
        let mut dense = vec![Rat::zero(); self.len];
        for (j, v) in &self.entries {
            dense[*j] = v.clone();
        }
        dense
    }

    /// The entry at `j` (zero when absent).
    pub fn get(&self, j: usize) -> Rat {
        match self.entries.binary_search_by(|e| e.0.cmp(&j)) {
            Ok(k) => self.entries[k].1.clone(),
            Err(_) => Rat::zero(),
        }
    }

    fn check(&self, at: &str, len: usize) -> Result<(), ModelError> {
        check_dim(at, "len", self.len)?;
        if self.len != len {
            return Err(ModelError::Shape {
                at: at.to_string(),
                expected: len.to_string(),
                found: self.len.to_string(),
            });
        }
        for (k, (j, v)) in self.entries.iter().enumerate() {
            if *j >= self.len {
                return Err(ModelError::EntryOutOfRange {
                    at: at.to_string(),
                    entry: k,
                    index: j.to_string(),
                    shape: self.len.to_string(),
                });
            }
            if v.is_zero() {
                return Err(ModelError::ZeroEntry { at: at.to_string(), entry: k });
            }
            if k > 0 && self.entries[k - 1].0 >= *j {
                return Err(ModelError::UnsortedEntries { at: at.to_string(), entry: k });
            }
        }
        Ok(())
    }
}

fn check_dim(at: &str, what: &str, n: usize) -> Result<(), ModelError> {
    if n > MAX_DIM {
        return Err(ModelError::Limit { what: format!("{at}.{what}"), value: n, limit: MAX_DIM });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

/// One attention head. For query position i and key position j the score
/// is `(x_i W_q) · (x_j W_k)`; the head writes `(Σ_j a_ij x_j W_v) W_o`
/// into the residual, with `a` the attention pattern (hard or softmax,
/// see [`crate::forward`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// Query map, d × h.
    pub w_q: Matrix,
    /// Key map, d × h.
    pub w_k: Matrix,
    /// Value map, d × h_v.
    pub w_v: Matrix,
    /// Output map, h_v × d.
    pub w_o: Matrix,
    /// The program instructions this head implements (their IR names,
    /// e.g. `%out`), for diagnostics and `tfc show`.
    #[serde(default)]
    pub instructions: Vec<String>,
}

/// One ReLU MLP block: `relu(x W_in + b_in) W_out + b_out`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mlp {
    /// Input map, d × hidden.
    pub w_in: Matrix,
    /// Input bias, length hidden.
    pub b_in: SparseVec,
    /// Output map, hidden × d.
    pub w_out: Matrix,
    /// Output bias, length d.
    pub b_out: SparseVec,
    /// The program instructions this block implements.
    #[serde(default)]
    pub instructions: Vec<String>,
}

impl Mlp {
    /// The hidden width.
    pub fn hidden(&self) -> usize {
        self.w_in.cols
    }
}

/// One layer: an attention sublayer (heads side by side) followed by an
/// MLP sublayer (blocks side by side). Either may be empty. All heads read
/// the same residual and their outputs are summed into it; likewise all
/// MLP blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// The heads of the attention sublayer.
    #[serde(default)]
    pub attn: Vec<Head>,
    /// The blocks of the MLP sublayer.
    #[serde(default)]
    pub mlps: Vec<Mlp>,
}

/// A block of layers run repeatedly with shared weights.
///
/// JSON: `{"layers": {"start": 1, "end": 3}, "stop": {"fixed": 4}}` or
/// `"stop": {"until": {"halt_dim": 7, "max": 100}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopSpec {
    /// The layers of the body, as indices into [`Model::layers`].
    pub layers: Range<usize>,
    /// When to stop.
    pub stop: LoopStop,
}

/// When a loop stops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LoopStop {
    /// Run the body exactly this many times.
    Fixed(usize),
    /// Before each run, stop when residual dimension `halt_dim` is 1 (in
    /// floating point: above 1/2) at every non-BOS position. Needing more
    /// than `max` runs is an error.
    Until {
        /// The residual dimension holding the halting flag.
        halt_dim: usize,
        /// The most runs allowed.
        max: usize,
    },
}

/// How the output value is read from the final residual.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Readout {
    /// The program's name for the output value (e.g. `%out`).
    pub name: String,
    /// `cat`: argmax over `dims`, decoding `dims[i]` as `values[i]`.
    /// `num`: the number in the single dimension `dims[0]`.
    #[serde(with = "encoding_serde")]
    pub encoding: Encoding,
    /// The residual dimensions read.
    pub dims: Vec<usize>,
    /// For `cat`, the value of each dimension. For `num`, the output's
    /// value set: exact runs decode the number itself, floating-point runs
    /// decode to the nearest element of this set.
    #[serde(with = "value_serde::vec")]
    pub values: Vec<Value>,
}

/// A compiled transformer.
///
/// The residual stream has dimension `d = basis.len()`. Positions are
/// numbered with BOS at 0 and the input tokens at 1..=n.
///
/// Read files with [`Model::from_json`], which validates; deserialising
/// with serde directly skips [`Model::validate`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Always [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The source program's name.
    pub program: String,
    /// The longest input (BOS not counted).
    pub max_len: usize,
    /// Whether attention is causal (query i sees keys j ≤ i).
    pub causal: bool,
    /// One label per residual dimension, e.g. `one`, `bos`, `tokens:3`,
    /// `indices:0`, `%tgt:2`, `%acc`.
    pub basis: Vec<String>,
    /// The input tokens; token `vocab[k]` embeds as row `k + 1` of
    /// `token_embed`.
    #[serde(with = "value_serde::vec")]
    pub vocab: Vec<Value>,
    /// Token embedding, (vocab.len() + 1) × d; row 0 is BOS.
    pub token_embed: Matrix,
    /// Position embedding, (max_len + 1) × d; row p is sequence position p,
    /// so row 0 is BOS's position and row p ≥ 1 is program index p − 1.
    pub pos_embed: Matrix,
    /// The layers, in order.
    pub layers: Vec<Layer>,
    /// Loops over layer ranges, sorted and non-overlapping.
    #[serde(default)]
    pub loops: Vec<LoopSpec>,
    /// How the output is read.
    pub output: Readout,
    /// The softmax inverse temperature the model was lowered for (set by
    /// `tfc compile --target`, docs/PRECISION.md); hard attention ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_rat_serde")]
    pub softmax_beta: Option<Rat>,
}

/// Size figures, counted as Tracr counts them so that they compare.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStats {
    /// Layers, each an attention sublayer followed by an MLP sublayer
    /// (either may be empty). A loop body counts once.
    pub layers: usize,
    /// Attention heads in all layers.
    pub heads: usize,
    /// MLP blocks in all layers.
    pub mlps: usize,
    /// Residual width.
    pub d_model: usize,
    /// The hidden width of every MLP block, in layer order.
    pub hidden: Vec<usize>,
    /// Every entry of every weight matrix and bias, zeros included (the
    /// dense count): both embeddings, W_q W_k W_v W_o of every head,
    /// W_in b_in W_out b_out of every MLP block. The readout has no weights.
    pub params: u64,
}

impl Model {
    /// The residual width d.
    pub fn d_model(&self) -> usize {
        self.basis.len()
    }

    /// The index of the dimension labelled `label`.
    pub fn basis_index(&self, label: &str) -> Option<usize> {
        self.basis.iter().position(|l| l == label)
    }

    /// Checks everything a forward pass relies on: the version, the size
    /// limits, every matrix's shape against `d = basis.len()` and its entry
    /// invariant, unique basis labels and vocabulary, loop ranges (in
    /// bounds, non-empty, sorted, non-overlapping) and the readout.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.format_version != FORMAT_VERSION {
            return Err(ModelError::UnsupportedVersion {
                found: self.format_version,
                supported: FORMAT_VERSION,
            });
        }
        let d = self.basis.len();
        check_dim("basis", "len", d)?;
        check_dim("vocab", "len", self.vocab.len())?;
        if self.max_len > MAX_SEQ_LEN {
            return Err(ModelError::Limit {
                what: "max_len".into(),
                value: self.max_len,
                limit: MAX_SEQ_LEN,
            });
        }
        if self.max_len == 0 {
            return Err(ModelError::Invalid { at: "max_len".into(), problem: "must be at least 1".into() });
        }
        if self.vocab.is_empty() {
            return Err(ModelError::Invalid { at: "vocab".into(), problem: "is empty".into() });
        }
        let mut seen = HashSet::new();
        for label in &self.basis {
            if !seen.insert(label.as_str()) {
                return Err(ModelError::Invalid {
                    at: "basis".into(),
                    problem: format!("label {label:?} appears twice"),
                });
            }
        }
        let mut seen_tokens = HashSet::new();
        for token in &self.vocab {
            if !seen_tokens.insert(token) {
                return Err(ModelError::Invalid {
                    at: "vocab".into(),
                    problem: format!("token {token} appears twice"),
                });
            }
        }
        self.token_embed.check("token_embed", Some(self.vocab.len() + 1), Some(d))?;
        self.pos_embed.check("pos_embed", Some(self.max_len + 1), Some(d))?;
        for (l, layer) in self.layers.iter().enumerate() {
            for (h, head) in layer.attn.iter().enumerate() {
                let at = |name: &str| format!("layers[{l}].attn[{h}].{name}");
                head.w_q.check(&at("w_q"), Some(d), None)?;
                head.w_k.check(&at("w_k"), Some(d), Some(head.w_q.cols))?;
                head.w_v.check(&at("w_v"), Some(d), None)?;
                head.w_o.check(&at("w_o"), Some(head.w_v.cols), Some(d))?;
            }
            for (b, mlp) in layer.mlps.iter().enumerate() {
                let at = |name: &str| format!("layers[{l}].mlps[{b}].{name}");
                mlp.w_in.check(&at("w_in"), Some(d), None)?;
                mlp.b_in.check(&at("b_in"), mlp.w_in.cols)?;
                mlp.w_out.check(&at("w_out"), Some(mlp.w_in.cols), Some(d))?;
                mlp.b_out.check(&at("b_out"), d)?;
            }
        }
        let mut previous_end = 0;
        for (k, lp) in self.loops.iter().enumerate() {
            let bad = |problem: String| Err(ModelError::BadLoop { index: k, problem });
            if lp.layers.start >= lp.layers.end {
                return bad(format!("layer range {}..{} is empty", lp.layers.start, lp.layers.end));
            }
            if lp.layers.end > self.layers.len() {
                return bad(format!(
                    "layer range {}..{} goes past the last layer ({} layers)",
                    lp.layers.start,
                    lp.layers.end,
                    self.layers.len()
                ));
            }
            if lp.layers.start < previous_end {
                return bad(format!(
                    "layer range {}..{} overlaps or precedes the previous loop (which ends at {})",
                    lp.layers.start, lp.layers.end, previous_end
                ));
            }
            previous_end = lp.layers.end;
            if let LoopStop::Until { halt_dim, .. } = lp.stop {
                if halt_dim >= d {
                    return bad(format!("halt_dim {halt_dim} is not a residual dimension (d = {d})"));
                }
            }
        }
        self.check_readout()
    }

    fn check_readout(&self) -> Result<(), ModelError> {
        let out = &self.output;
        let bad = |problem: String| Err(ModelError::BadReadout { problem });
        let d = self.basis.len();
        if let Some(&dim) = out.dims.iter().find(|&&dim| dim >= d) {
            return bad(format!("dimension {dim} is not a residual dimension (d = {d})"));
        }
        match out.encoding {
            Encoding::Cat => {
                if out.dims.is_empty() {
                    return bad("a categorical readout needs at least one dimension".into());
                }
                if out.dims.len() != out.values.len() {
                    return bad(format!(
                        "{} dimensions but {} values (a categorical readout needs one value per dimension)",
                        out.dims.len(),
                        out.values.len()
                    ));
                }
                let dims: HashSet<_> = out.dims.iter().collect();
                if dims.len() != out.dims.len() {
                    return bad("a dimension is read twice".into());
                }
                let values: HashSet<_> = out.values.iter().collect();
                if values.len() != out.values.len() {
                    return bad("a value appears twice".into());
                }
            }
            Encoding::Num => {
                if out.dims.len() != 1 {
                    return bad(format!(
                        "a numerical readout reads exactly one dimension, not {}",
                        out.dims.len()
                    ));
                }
                if out.values.is_empty() {
                    return bad(
                        "a numerical readout needs its value set (for floating-point decoding)".into()
                    );
                }
                if let Some(v) = out.values.iter().find(|v| !v.is_num()) {
                    return bad(format!("numerical readout value {v} is not a number"));
                }
            }
        }
        Ok(())
    }

    /// Size figures (see [`ModelStats`]).
    pub fn stats(&self) -> ModelStats {
        let d = self.basis.len() as u64;
        let mut params = self.token_embed.dense_len().saturating_add(self.pos_embed.dense_len());
        let mut hidden = Vec::new();
        let (mut heads, mut mlps) = (0, 0);
        for layer in &self.layers {
            for head in &layer.attn {
                heads += 1;
                for m in [&head.w_q, &head.w_k, &head.w_v, &head.w_o] {
                    params = params.saturating_add(m.dense_len());
                }
            }
            for mlp in &layer.mlps {
                mlps += 1;
                hidden.push(mlp.hidden());
                params = params
                    .saturating_add(mlp.w_in.dense_len())
                    .saturating_add(mlp.b_in.len as u64)
                    .saturating_add(mlp.w_out.dense_len())
                    .saturating_add(d);
            }
        }
        ModelStats { layers: self.layers.len(), heads, mlps, d_model: self.basis.len(), hidden, params }
    }

    /// Parses a model from JSON and validates it.
    pub fn from_json(text: &str) -> Result<Model, ModelError> {
        // Read the version first, so that a file from a newer tfc says so
        // instead of failing on whichever field changed.
        #[derive(Deserialize)]
        struct VersionProbe {
            format_version: Option<serde_json::Value>,
        }
        let probe: VersionProbe = serde_json::from_str(text).map_err(|e| json_error(e, None))?;
        if let Some(version) = probe.format_version {
            match version.as_u64() {
                Some(v) if v == FORMAT_VERSION as u64 => {}
                Some(v) => {
                    return Err(ModelError::UnsupportedVersion {
                        found: u32::try_from(v).unwrap_or(u32::MAX),
                        supported: FORMAT_VERSION,
                    })
                }
                // Not a number: the full parse below reports the type error.
                None => {}
            }
        }
        LAST_RAT_ERROR.with(|slot| slot.borrow_mut().take());
        let model: Model = serde_json::from_str(text).map_err(|e| {
            let rat = LAST_RAT_ERROR.with(|slot| slot.borrow_mut().take());
            json_error(e, rat)
        })?;
        model.validate()?;
        Ok(model)
    }

    /// The model as pretty JSON: objects and long arrays one item per
    /// line, short arrays (such as one `[row, col, "value"]` entry) on one.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        let compact = serde_json::to_string(self).expect("a model always serialises");
        pretty_json(&compact, 72)
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a model file or a `Model` value was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The text is not JSON (a syntax error, or it ends early).
    #[error("malformed json at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// The text is JSON but not a model: a missing or unknown field, a
    /// wrong type (for instance a weight written as a JSON number).
    #[error("json is not a model at line {line}, column {column}: {message}")]
    Schema {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was expected.
        message: String,
    },
    /// A string that should hold a rational does not.
    #[error("bad rational \"{}\" at line {line}, column {column}: {error}", shorten(.text))]
    BadRational {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The string as written.
        text: String,
        /// What is wrong with it.
        error: RatError,
    },
    /// The file was written for another format version.
    #[error("unsupported model format version {found} (this tfc reads version {supported})")]
    UnsupportedVersion {
        /// The file's `format_version`.
        found: u32,
        /// The version this crate reads.
        supported: u32,
    },
    /// A size is beyond the documented limits ([`MAX_DIM`],
    /// [`MAX_SEQ_LEN`]); checked before anything is allocated from it.
    #[error("{what} is {value}, more than the limit of {limit}")]
    Limit {
        /// Which size.
        what: String,
        /// Its value.
        value: usize,
        /// The limit.
        limit: usize,
    },
    /// A matrix or vector has the wrong shape for the residual width or
    /// for the matrix it is paired with.
    #[error("{at} has shape {found}, expected {expected}")]
    Shape {
        /// Which matrix, e.g. `layers[0].attn[1].w_k`.
        at: String,
        /// The shape it must have.
        expected: String,
        /// The shape it has.
        found: String,
    },
    /// A sparse entry's index is outside its matrix or vector.
    #[error("{at}: entry {entry} at {index} is outside the {shape} shape")]
    EntryOutOfRange {
        /// Which matrix or vector.
        at: String,
        /// The entry's position in `entries`.
        entry: usize,
        /// Its index.
        index: String,
        /// The shape.
        shape: String,
    },
    /// Sparse entries out of order or duplicated.
    #[error("{at}: entry {entry} is not after the one before it (entries must be sorted by index, without duplicates)")]
    UnsortedEntries {
        /// Which matrix or vector.
        at: String,
        /// The first entry out of order.
        entry: usize,
    },
    /// A sparse entry holding zero (zeros are left out).
    #[error("{at}: entry {entry} is zero (sparse entries must be nonzero)")]
    ZeroEntry {
        /// Which matrix or vector.
        at: String,
        /// The entry's position in `entries`.
        entry: usize,
    },
    /// A loop's layer range or halting dimension is wrong.
    #[error("loops[{index}]: {problem}")]
    BadLoop {
        /// Which loop.
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// The readout's dimensions or values are wrong.
    #[error("output: {problem}")]
    BadReadout {
        /// What is wrong.
        problem: String,
    },
    /// Any other field with a wrong value (`max_len` 0, an empty or
    /// repeated vocabulary, a repeated basis label).
    #[error("{at} {problem}")]
    Invalid {
        /// Which field.
        at: String,
        /// What is wrong.
        problem: String,
    },
}

/// Why a string is not a rational.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RatError {
    /// Not of the form `-?DIGITS` or `-?DIGITS/DIGITS` (so no `1e5`,
    /// `0.5`, `nan`, `inf`, `+1` or spaces).
    #[error("expected an integer or a fraction p/q, such as \"-3\" or \"7/2\"")]
    Malformed,
    /// `p/0`.
    #[error("the denominator is zero")]
    ZeroDenominator,
    /// A numerator or denominator longer than [`MAX_RAT_DIGITS`].
    #[error("a number with {digits} digits, more than the limit of {limit}")]
    TooManyDigits {
        /// How many digits it has.
        digits: usize,
        /// The limit.
        limit: usize,
    },
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= 40 {
        text.to_string()
    } else {
        let head: String = text.chars().take(37).collect();
        format!("{head}...")
    }
}

thread_local! {
    // serde's error type can only carry a message, so the rational parser
    // leaves its structured error here for `from_json` to pick up. It is
    // cleared before every parse, and only a parse on this thread sets it.
    static LAST_RAT_ERROR: RefCell<Option<(String, RatError)>> = const { RefCell::new(None) };
}

fn json_error(e: serde_json::Error, rat: Option<(String, RatError)>) -> ModelError {
    use serde_json::error::Category;
    let (line, column) = (e.line(), e.column());
    match e.classify() {
        Category::Data => match rat {
            Some((text, error)) => ModelError::BadRational { line, column, text, error },
            None => ModelError::Schema { line, column, message: strip_position(&e) },
        },
        Category::Syntax | Category::Eof | Category::Io => {
            ModelError::Json { line, column, message: strip_position(&e) }
        }
    }
}

/// serde_json's message without its " at line L column C" suffix (the
/// error variants carry the position themselves).
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(k) => text[..k].to_string(),
        None => text,
    }
}

/// Parses a rational written as in a model file: `-?DIGITS` or
/// `-?DIGITS/DIGITS`, each part at most [`MAX_RAT_DIGITS`] digits, the
/// denominator nonzero. Fractions need not be in lowest terms.
pub fn parse_rat_strict(text: &str) -> Result<Rat, RatError> {
    let body = text.strip_prefix('-').unwrap_or(text);
    let negative = body.len() != text.len();
    let (numer, denom) = match body.split_once('/') {
        Some((n, d)) => (n, Some(d)),
        None => (body, None),
    };
    let digits = |s: &str| -> Result<BigInt, RatError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RatError::Malformed);
        }
        if s.len() > MAX_RAT_DIGITS {
            return Err(RatError::TooManyDigits { digits: s.len(), limit: MAX_RAT_DIGITS });
        }
        s.parse::<BigInt>().map_err(|_| RatError::Malformed)
    };
    let n = digits(numer)?;
    let d = match denom {
        Some(d) => digits(d)?,
        None => BigInt::from(1),
    };
    if d.is_zero() {
        return Err(RatError::ZeroDenominator);
    }
    let r = Rat::new(n, d);
    Ok(if negative { -r } else { r })
}

/// Writes a rational as a model file does: `p` or `p/q` in lowest terms.
pub fn rat_to_string(r: &Rat) -> String {
    let mut s = String::new();
    // Writing into a String cannot fail.
    let _ = fmt_rat(r, &mut s);
    s
}

// ---------------------------------------------------------------------------
// serde helpers
// ---------------------------------------------------------------------------

/// Serde for a [`Rat`] field written as a string (`"-3/2"`): use
/// `#[serde(with = "tfc_ir::model::rat_serde")]`. Reading accepts exactly
/// what [`parse_rat_strict`] accepts.
pub mod rat_serde {
    use super::*;

    /// Writes `r` as `"p"` or `"p/q"`.
    pub fn serialize<S: Serializer>(r: &Rat, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rat_to_string(r))
    }

    /// Reads a rational string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Rat, D::Error> {
        d.deserialize_str(RatVisitor)
    }

    pub(super) struct RatVisitor;

    impl<'de> Visitor<'de> for RatVisitor {
        type Value = Rat;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a rational written as a string, such as \"-3/2\"")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Rat, E> {
            parse_rat_strict(text).map_err(|error| {
                let message = format!("bad rational {:?}: {error}", shorten(text));
                LAST_RAT_ERROR.with(|slot| *slot.borrow_mut() = Some((text.to_string(), error)));
                E::custom(message)
            })
        }
    }

    /// A rational as a serde value (for tuples such as matrix entries).
    pub(super) struct RatDe(pub Rat);

    impl<'de> Deserialize<'de> for RatDe {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RatDe, D::Error> {
            d.deserialize_str(RatVisitor).map(RatDe)
        }
    }

    pub(super) struct RatSer<'a>(pub &'a Rat);

    impl Serialize for RatSer<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize(self.0, s)
        }
    }
}

/// Serde for an optional [`Rat`] written as a string or absent.
pub mod opt_rat_serde {
    use super::*;

    /// Writes `Some(r)` as a rational string (`None` is skipped by the field).
    pub fn serialize<S: Serializer>(r: &Option<Rat>, s: S) -> Result<S::Ok, S::Error> {
        match r {
            Some(r) => rat_serde::serialize(r, s),
            None => s.serialize_none(),
        }
    }

    /// Reads a rational string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Rat>, D::Error> {
        rat_serde::deserialize(d).map(Some)
    }
}

/// Serde for [`Value`]s: a number as a rational string (`"3"`, `"-1/2"`),
/// a symbol as `{"sym": "a"}`, so that the two can never be confused (the
/// symbol `"3"` is `{"sym": "3"}`).
pub mod value_serde {
    use super::rat_serde::{RatSer, RatVisitor};
    use super::*;
    use serde::ser::SerializeMap;

    /// Writes one value.
    pub fn serialize<S: Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
        ValueSer(v).serialize(s)
    }

    /// Reads one value.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        ValueDe::deserialize(d).map(|v| v.0)
    }

    struct ValueSer<'a>(&'a Value);

    impl Serialize for ValueSer<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                Value::Num(r) => RatSer(r).serialize(s),
                Value::Sym(text) => {
                    let mut map = s.serialize_map(Some(1))?;
                    map.serialize_entry("sym", text)?;
                    map.end()
                }
            }
        }
    }

    struct ValueDe(Value);

    impl<'de> Deserialize<'de> for ValueDe {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ValueDe, D::Error> {
            d.deserialize_any(ValueVisitor).map(ValueDe)
        }
    }

    struct ValueVisitor;

    impl<'de> Visitor<'de> for ValueVisitor {
        type Value = Value;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a value: a rational string such as \"-3/2\", or {\"sym\": \"a\"}")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Value, E> {
            RatVisitor.visit_str(text).map(Value::Num)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut sym: Option<String> = None;
            while let Some(key) = map.next_key::<String>()? {
                if key != "sym" {
                    return Err(de::Error::unknown_field(&key, &["sym"]));
                }
                if sym.is_some() {
                    return Err(de::Error::duplicate_field("sym"));
                }
                sym = Some(map.next_value()?);
            }
            sym.map(Value::Sym).ok_or_else(|| de::Error::missing_field("sym"))
        }
    }

    /// Serde for a `Vec<Value>` field.
    pub mod vec {
        use super::*;

        /// Writes the values as a JSON array.
        pub fn serialize<S: Serializer>(vs: &[Value], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(vs.len()))?;
            for v in vs {
                seq.serialize_element(&ValueSer(v))?;
            }
            seq.end()
        }

        /// Reads a JSON array of values.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
            let vs: Vec<ValueDe> = Vec::deserialize(d)?;
            Ok(vs.into_iter().map(|v| v.0).collect())
        }
    }
}

mod matrix_entries {
    use super::rat_serde::{RatDe, RatSer};
    use super::*;

    pub fn serialize<S: Serializer>(entries: &[(usize, usize, Rat)], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(entries.len()))?;
        for (i, j, v) in entries {
            seq.serialize_element(&(i, j, RatSer(v)))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(usize, usize, Rat)>, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Vec<(usize, usize, Rat)>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of [row, col, \"rational\"] entries")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // No size hint is trusted: the list grows as it is read.
                let mut out = Vec::new();
                while let Some((i, j, v)) = seq.next_element::<(usize, usize, RatDe)>()? {
                    out.push((i, j, v.0));
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Entries)
    }
}

mod vec_entries {
    use super::rat_serde::{RatDe, RatSer};
    use super::*;

    pub fn serialize<S: Serializer>(entries: &[(usize, Rat)], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(entries.len()))?;
        for (j, v) in entries {
            seq.serialize_element(&(j, RatSer(v)))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(usize, Rat)>, D::Error> {
        let raw: Vec<(usize, RatDe)> = Vec::deserialize(d)?;
        Ok(raw.into_iter().map(|(j, v)| (j, v.0)).collect())
    }
}

mod encoding_serde {
    use super::*;

    pub fn serialize<S: Serializer>(e: &Encoding, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&e.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Encoding, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "cat" => Ok(Encoding::Cat),
            "num" => Ok(Encoding::Num),
            _ => Err(de::Error::unknown_variant(&text, &["cat", "num"])),
        }
    }
}

/// Re-indents compact JSON: a container whose compact text fits in
/// `width` characters stays on one line (with `", "` and `": "`
/// separators), a longer one gets one item per line. Works on the text
/// alone, so the struct field order serde wrote is kept.
fn pretty_json(compact: &str, width: usize) -> String {
    let bytes = compact.as_bytes();
    // Pair every opening bracket with its closing one, skipping strings.
    let mut close_of = vec![0usize; bytes.len()];
    let mut stack = Vec::new();
    let mut in_string = false;
    let mut k = 0;
    while k < bytes.len() {
        let c = bytes[k];
        if in_string {
            if c == b'\\' {
                k += 1;
            } else if c == b'"' {
                in_string = false;
            }
        } else {
            match c {
                b'"' => in_string = true,
                b'[' | b'{' => stack.push(k),
                b']' | b'}' => {
                    if let Some(open) = stack.pop() {
                        close_of[open] = k;
                    }
                }
                _ => {}
            }
        }
        k += 1;
    }

    fn inline(out: &mut String, text: &str) {
        // Copy `text`, adding a space after separators outside strings.
        let mut in_string = false;
        let mut escaped = false;
        for c in text.chars() {
            out.push(c);
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                }
            } else if c == '"' {
                in_string = true;
            } else if c == ',' || c == ':' {
                out.push(' ');
            }
        }
    }

    let mut out = String::with_capacity(compact.len() * 2);
    let mut indent = 0usize;
    let newline = |out: &mut String, indent: usize| {
        out.push('\n');
        for _ in 0..indent {
            out.push_str("  ");
        }
    };
    let mut in_string = false;
    let mut k = 0;
    while k < bytes.len() {
        let c = bytes[k];
        if in_string {
            // Copy string bodies byte-exact (they may hold any UTF-8).
            let start = k;
            while k < bytes.len() {
                if bytes[k] == b'\\' {
                    k += 2;
                    continue;
                }
                if bytes[k] == b'"' {
                    break;
                }
                k += 1;
            }
            out.push_str(&compact[start..k.min(bytes.len())]);
            if k < bytes.len() {
                out.push('"');
            }
            in_string = false;
            k += 1;
            continue;
        }
        match c {
            b'"' => {
                out.push('"');
                in_string = true;
            }
            b'[' | b'{' => {
                let close = close_of[k];
                if close == k + 1 || close - k < width {
                    inline(&mut out, &compact[k..=close]);
                    k = close + 1;
                    continue;
                }
                out.push(c as char);
                indent += 1;
                newline(&mut out, indent);
            }
            b']' | b'}' => {
                indent = indent.saturating_sub(1);
                newline(&mut out, indent);
                out.push(c as char);
            }
            b',' => {
                out.push(',');
                newline(&mut out, indent);
            }
            b':' => out.push_str(": "),
            _ => out.push(c as char),
        }
        k += 1;
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i64, d: i64) -> Rat {
        Rat::new(n.into(), d.into())
    }

    /// A small valid model: d = 3 (`one`, `tokens:a`, `tokens:b`), one
    /// head, one MLP, one loop, a categorical readout.
    fn sample() -> Model {
        Model {
            softmax_beta: None,
            format_version: FORMAT_VERSION,
            program: "sample".into(),
            max_len: 2,
            causal: true,
            basis: vec!["one".into(), "tokens:a".into(), "tokens:\"b\"".into()],
            vocab: vec![Value::sym("a, [b]: {é}\\\"\n"), Value::sym("3"), Value::ratio(-3, 2)],
            token_embed: Matrix::from_triplets(
                4,
                3,
                [(0, 0, r(1, 1)), (1, 1, r(1, 1)), (2, 2, r(1, 1)), (3, 0, r(-1, 2))],
            )
            .unwrap(),
            pos_embed: Matrix::zeros(3, 3),
            layers: vec![Layer {
                attn: vec![Head {
                    w_q: Matrix::from_triplets(3, 1, [(0, 0, r(5, 3))]).unwrap(),
                    w_k: Matrix::from_triplets(3, 1, [(1, 0, r(1, 1))]).unwrap(),
                    w_v: Matrix::from_triplets(3, 2, [(1, 1, r(1, 1))]).unwrap(),
                    w_o: Matrix::from_triplets(2, 3, [(1, 2, r(7, 1))]).unwrap(),
                    instructions: vec!["%x".into()],
                }],
                mlps: vec![Mlp {
                    w_in: Matrix::from_triplets(3, 2, [(0, 1, r(1, 1))]).unwrap(),
                    b_in: SparseVec::from_pairs(2, [(0, r(1, 4))]).unwrap(),
                    w_out: Matrix::zeros(2, 3),
                    b_out: SparseVec::zeros(3),
                    instructions: vec![],
                }],
            }],
            loops: vec![LoopSpec { layers: 0..1, stop: LoopStop::Until { halt_dim: 0, max: 3 } }],
            output: Readout {
                name: "%out".into(),
                encoding: Encoding::Cat,
                dims: vec![1, 2],
                values: vec![Value::sym("a"), Value::sym("b")],
            },
        }
    }

    #[test]
    fn json_round_trip_is_identity() {
        let m = sample();
        m.validate().unwrap();
        let text = m.to_json();
        let back = Model::from_json(&text).unwrap();
        assert_eq!(back, m);
        // Rationals are strings, symbols are tagged, entries are triples.
        assert!(text.contains(r#"[3, 0, "-1/2"]"#), "{text}");
        assert!(text.contains(r#"{"sym": "3"}"#), "{text}");
        assert!(text.contains(r#""-3/2""#), "{text}");
        assert!(text.contains(r#""stop": {"until": {"halt_dim": 0, "max": 3}}"#), "{text}");
        assert!(text.contains(r#""layers": {"start": 0, "end": 1}"#), "{text}");
        // And the pretty form is stable.
        assert_eq!(back.to_json(), text);
    }

    #[test]
    fn stats_count_dense_parameters() {
        let s = sample().stats();
        // Embeddings 4·3 + 3·3; head 3·1 + 3·1 + 3·2 + 2·3; MLP 3·2 + 2 + 2·3 + 3.
        assert_eq!(s.params, 12 + 9 + (3 + 3 + 6 + 6) + (6 + 2 + 6 + 3));
        assert_eq!((s.layers, s.heads, s.mlps, s.d_model), (1, 1, 1, 3));
        assert_eq!(s.hidden, vec![2]);
    }

    #[test]
    fn triplets_are_summed_sorted_and_zero_free() {
        let m = Matrix::from_triplets(
            2,
            2,
            [(1, 1, r(1, 1)), (0, 1, r(1, 2)), (1, 1, r(-1, 1)), (0, 1, r(1, 2))],
        )
        .unwrap();
        assert_eq!(m.entries, vec![(0, 1, r(1, 1))]);
        assert_eq!(m.get(0, 1), r(1, 1));
        assert_eq!(m.get(1, 1), r(0, 1));
        assert!(matches!(
            Matrix::from_triplets(2, 2, [(2, 0, r(1, 1))]),
            Err(ModelError::EntryOutOfRange { .. })
        ));
        assert_eq!(Matrix::from_dense(2, &m.to_dense()).unwrap(), m);
    }

    #[test]
    fn strict_rationals() {
        assert_eq!(parse_rat_strict("-6/4"), Ok(r(-3, 2)));
        assert_eq!(parse_rat_strict("0"), Ok(r(0, 1)));
        for bad in ["", "-", "1/", "/2", "1e5", "0.5", "nan", "inf", "+1", " 1", "1/-2", "--1", "1/2/3"] {
            assert_eq!(parse_rat_strict(bad), Err(RatError::Malformed), "{bad:?}");
        }
        assert_eq!(parse_rat_strict("1/0"), Err(RatError::ZeroDenominator));
        let huge = "9".repeat(MAX_RAT_DIGITS + 1);
        assert_eq!(
            parse_rat_strict(&huge),
            Err(RatError::TooManyDigits { digits: MAX_RAT_DIGITS + 1, limit: MAX_RAT_DIGITS })
        );
        assert!(parse_rat_strict(&"9".repeat(MAX_RAT_DIGITS)).is_ok());
    }

    /// Replaces the first occurrence of `from` in the sample's JSON.
    fn mutate(from: &str, to: &str) -> Result<Model, ModelError> {
        let text = sample().to_json();
        assert!(text.contains(from), "{from} not in {text}");
        Model::from_json(&text.replacen(from, to, 1))
    }

    #[test]
    fn malformed_files_give_the_right_error() {
        let text = sample().to_json();
        // Not JSON.
        assert!(matches!(Model::from_json(""), Err(ModelError::Json { .. })));
        assert!(matches!(Model::from_json(&text[..text.len() / 2]), Err(ModelError::Json { .. })));
        assert!(matches!(Model::from_json("{\"a\": NaN}"), Err(ModelError::Json { .. })));
        assert!(matches!(Model::from_json(&"[".repeat(10_000)), Err(ModelError::Json { .. })));
        // JSON, but not a model.
        assert!(matches!(Model::from_json("[]"), Err(ModelError::Schema { .. })));
        assert!(matches!(mutate("\"causal\": true", "\"causal\": 1"), Err(ModelError::Schema { .. })));
        assert!(matches!(mutate("\"causal\": true", "\"caual\": true"), Err(ModelError::Schema { .. })));
        assert!(matches!(mutate("\"max_len\": 2", "\"max_len\": -2"), Err(ModelError::Schema { .. })));
        // Weights as JSON numbers are refused, floats and integers alike.
        assert!(matches!(mutate(r#""-1/2""#, "-0.5"), Err(ModelError::Schema { .. })));
        assert!(matches!(mutate(r#""-1/2""#, "1"), Err(ModelError::Schema { .. })));
        // Bad rationals, with the reason.
        let bad = |to: &str| mutate(r#""-1/2""#, to);
        assert!(matches!(
            bad(r#""1/0""#),
            Err(ModelError::BadRational { error: RatError::ZeroDenominator, .. })
        ));
        assert!(matches!(bad(r#""nan""#), Err(ModelError::BadRational { error: RatError::Malformed, .. })));
        assert!(matches!(bad(r#""1e5""#), Err(ModelError::BadRational { error: RatError::Malformed, .. })));
        let huge = format!("\"{}\"", "7".repeat(600));
        match bad(&huge) {
            Err(e @ ModelError::BadRational { error: RatError::TooManyDigits { digits: 600, .. }, .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("600 digits") && msg.contains("line"), "{msg}");
                assert!(msg.len() < 200, "the message quotes a shortened number: {msg}");
            }
            other => panic!("{other:?}"),
        }
        // A bad rational in the vocabulary too.
        assert!(matches!(mutate(r#""-3/2""#, r#""3/0""#), Err(ModelError::BadRational { .. })));
        // Versions.
        assert!(matches!(
            mutate("\"format_version\": 1", "\"format_version\": 2"),
            Err(ModelError::UnsupportedVersion { found: 2, supported: 1 })
        ));
    }

    #[test]
    fn wrong_shapes_and_entries_are_rejected() {
        // token_embed must have vocab + 1 = 4 rows.
        assert!(matches!(mutate("\"rows\": 4", "\"rows\": 3"), Err(ModelError::Shape { .. })));
        assert!(matches!(mutate("\"rows\": 4", "\"rows\": 5"), Err(ModelError::Shape { .. })));
        assert!(matches!(
            mutate(r#"[3, 0, "-1/2"]"#, r#"[3, 3, "-1/2"]"#),
            Err(ModelError::EntryOutOfRange { .. })
        ));
        // Unsorted, duplicate and zero entries.
        assert!(matches!(
            mutate(r#"[3, 0, "-1/2"]"#, r#"[0, 0, "-1/2"]"#),
            Err(ModelError::UnsortedEntries { .. })
        ));
        assert!(matches!(mutate(r#"[3, 0, "-1/2"]"#, r#"[3, 0, "0"]"#), Err(ModelError::ZeroEntry { .. })));
        // Absurd sizes are refused before anything is allocated.
        assert!(matches!(mutate("\"rows\": 4", "\"rows\": 4000000000000"), Err(ModelError::Limit { .. })));
        assert!(matches!(mutate("\"max_len\": 2", "\"max_len\": 0"), Err(ModelError::Invalid { .. })));
        // Loops and readout.
        assert!(matches!(mutate("\"end\": 1", "\"end\": 2"), Err(ModelError::BadLoop { .. })));
        assert!(matches!(mutate("\"end\": 1", "\"end\": 0"), Err(ModelError::BadLoop { .. })));
        assert!(matches!(mutate("\"halt_dim\": 0", "\"halt_dim\": 3"), Err(ModelError::BadLoop { .. })));
        assert!(matches!(mutate("\"dims\": [1, 2]", "\"dims\": [1, 3]"), Err(ModelError::BadReadout { .. })));
        assert!(matches!(mutate("\"dims\": [1, 2]", "\"dims\": [1]"), Err(ModelError::BadReadout { .. })));
        // Duplicate basis labels.
        assert!(matches!(mutate("\"tokens:a\"", "\"one\""), Err(ModelError::Invalid { .. })));
        // Overlapping loops.
        let mut m = sample();
        m.layers.push(Layer::default());
        m.loops.push(LoopSpec { layers: 0..2, stop: LoopStop::Fixed(1) });
        assert!(matches!(m.validate(), Err(ModelError::BadLoop { index: 1, .. })));
    }

    #[test]
    fn no_truncation_or_corruption_panics() {
        // Every prefix, and every byte replaced by a few troublemakers,
        // must give a model or an error, never a panic.
        let text = sample().to_json();
        let bytes = text.as_bytes();
        // (The text minus its final newline is still the whole model.)
        for end in 0..text.trim_end().len() {
            if text.is_char_boundary(end) {
                assert!(Model::from_json(&text[..end]).is_err());
            }
        }
        for k in 0..bytes.len() {
            for b in [b'0', b'9', b'-', b'/', b'"', b'[', b'}', b',', b'x'] {
                let mut mutated = bytes.to_vec();
                mutated[k] = b;
                if let Ok(t) = std::str::from_utf8(&mutated) {
                    let _ = Model::from_json(t);
                }
            }
        }
    }

    #[test]
    fn error_messages_are_lowercase_and_located() {
        let e = mutate(r#""-1/2""#, r#""1/0""#).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("bad rational \"1/0\" at line "), "{msg}");
        assert!(msg.ends_with("the denominator is zero"), "{msg}");
    }
}
