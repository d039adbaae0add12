//! Export: a compiled [`Model`] as dense f32 safetensors plus a JSON config,
//! for tools outside Rust (`tfc export prog.ir --safetensors out/`).
//!
//! [`export_safetensors`] writes two files into a directory:
//!
//! * `model.safetensors`: every weight matrix and bias, dense, little-endian
//!   `F32`, each exact rational rounded once to the nearest f32 (ties to
//!   even, as [`tfc_ir::forward::Scalar::from_rat`] does for the f32
//!   forward pass). Tensor names: `token_embed` `[V+1, d]`, `pos_embed`
//!   `[max_len+1, d]`, and per layer `L`, head `H`, MLP block `M`:
//!   `layers.L.attn.H.{w_q [d,h], w_k [d,h], w_v [d,hv], w_o [hv,d]}` and
//!   `layers.L.mlp.M.{w_in [d,hidden], b_in [hidden], w_out [hidden,d], b_out [d]}`.
//! * `config.json`: an [`ExportConfig`]: everything else the forward pass
//!   needs (causal mask, loops, readout, the inverse temperature) and what a
//!   reader needs to feed it tokens and read its output (vocabularies as
//!   display strings, basis labels).
//!
//! The forward pass the files mean is docs/MODEL.md's float forward pass
//! with softmax attention; `python/tfc_numpy.py` is a NumPy reference.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tfc_ir::ast::Encoding;
use tfc_ir::forward::Scalar;
use tfc_ir::model::{LoopStop, Matrix, Model, ModelError, SparseVec};
use tfc_ir::{Rat, Value};

/// The version of the export layout (`config.json`'s `format_version`).
pub const EXPORT_FORMAT_VERSION: u32 = 1;

/// The file name of the weights inside the export directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// The file name of the config inside the export directory.
pub const CONFIG_FILE: &str = "config.json";

/// The most scalars an export may hold (dense, 4 bytes each: 1 GiB).
/// Checked before any dense tensor is allocated.
pub const MAX_EXPORT_PARAMS: u64 = 1 << 28;

/// What the program promises about its inputs beyond the model's own
/// checks (vocabulary, 1 ≤ length ≤ `max_len`). A [`Model`] does not record
/// these, so [`export_safetensors_with`] takes them from the program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputRules {
    /// The `distinct_tokens` header: tokens pairwise distinct.
    pub distinct_tokens: bool,
}

impl InputRules {
    /// The rules a program's header states.
    pub fn of(program: &tfc_ir::Program) -> InputRules {
        InputRules { distinct_tokens: program.distinct }
    }
}

/// What [`export_safetensors`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportSummary {
    /// Path of `model.safetensors`.
    pub weights: PathBuf,
    /// Path of `config.json`.
    pub config: PathBuf,
    /// Number of tensors written.
    pub tensors: usize,
    /// Number of f32 scalars written (the dense parameter count).
    pub params: u64,
}

/// Why a model could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The model does not validate.
    #[error("invalid model: {0}")]
    Model(#[from] ModelError),
    /// The inverse temperature is not a positive finite number.
    #[error("the inverse temperature must be a positive finite number, got {0}")]
    BadBeta(f64),
    /// A weight or a readout value is beyond f32's range.
    #[error("{tensor}[{index}] = {value} is beyond the range of f32")]
    NotFinite {
        /// The tensor (or `readout.values`).
        tensor: String,
        /// The flat index inside it.
        index: usize,
        /// The exact value.
        value: String,
    },
    /// The dense tensors would be too large.
    #[error("the model has {params} parameters; a dense f32 export allows at most {limit}")]
    TooLarge {
        /// The dense parameter count.
        params: u64,
        /// [`MAX_EXPORT_PARAMS`].
        limit: u64,
    },
    /// The output directory could not be created.
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The safetensors encoder refused the tensors (a bug).
    #[error("cannot encode {}: {message}", path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// The encoder's message.
        message: String,
    },
}

/// `config.json`.
///
/// Values (tokens, outputs) are written as their display strings, as the
/// CLI prints them: a number as a rational in lowest terms (`3`, `-5/2`), a
/// symbol bare when it is an identifier (`a`) and quoted otherwise (`"("`,
/// `"3"`), so display strings never clash. A parallel list of kinds
/// (`"num"` / `"sym"`) says which is which.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Always `"tfc-safetensors"`.
    pub format: String,
    /// [`EXPORT_FORMAT_VERSION`].
    pub format_version: u32,
    /// The source program's name.
    pub program: String,
    /// Always `"F32"`.
    pub dtype: String,
    /// The longest input, BOS not counted.
    pub max_len: usize,
    /// Whether query i sees only keys j ≤ i (BOS is always visible).
    pub causal: bool,
    /// Residual width d.
    pub d_model: usize,
    /// One label per residual dimension.
    pub basis: Vec<String>,
    /// The input vocabulary (display strings): token `vocab[k]` embeds as
    /// row `k + 1` of `token_embed`; row 0 is BOS.
    pub vocab: Vec<String>,
    /// `"num"` or `"sym"` for each entry of `vocab`.
    pub vocab_kinds: Vec<String>,
    /// Input precondition: the tokens of an input are pairwise distinct
    /// (the program's `distinct_tokens` header). The weights are only
    /// meant for such inputs; a loader should refuse others, as tfc does.
    pub distinct_tokens: bool,
    /// The BOS token's row of `token_embed` and its position (both 0).
    pub bos: Bos,
    /// `token_embed`'s name and shape.
    pub token_embed: TensorRef,
    /// `pos_embed`'s name and shape.
    pub pos_embed: TensorRef,
    /// The layers, in order.
    pub layers: Vec<LayerConfig>,
    /// Layer ranges run repeatedly.
    pub loops: Vec<LoopConfig>,
    /// How the output is read; its `values` are the output vocabulary.
    pub readout: ReadoutConfig,
    /// `"softmax"`: weights `softmax(beta · scores)`.
    pub attention: String,
    /// The default inverse temperature β.
    pub beta: f64,
    /// The dense parameter count (every scalar in the weights file).
    pub params: u64,
}

/// The BOS convention.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bos {
    /// Row of `token_embed` (0).
    pub token_row: usize,
    /// Position, i.e. row of `pos_embed` (0).
    pub position: usize,
}

/// A tensor's name in the weights file and its shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorRef {
    /// The tensor name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
}

/// One layer: an attention sublayer, then an MLP sublayer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    /// The heads, side by side.
    pub attn: Vec<HeadConfig>,
    /// The MLP blocks, side by side.
    pub mlps: Vec<MlpConfig>,
}

/// One attention head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadConfig {
    /// `[d, d_head]`.
    pub w_q: String,
    /// `[d, d_head]`.
    pub w_k: String,
    /// `[d, d_value]`.
    pub w_v: String,
    /// `[d_value, d]`.
    pub w_o: String,
    /// Query/key width h.
    pub d_head: usize,
    /// Value width h_v.
    pub d_value: usize,
    /// The IR instructions it implements (informative).
    pub instructions: Vec<String>,
}

/// One MLP block: `relu(x W_in + b_in) W_out + b_out`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// `[d, hidden]`.
    pub w_in: String,
    /// `[hidden]`.
    pub b_in: String,
    /// `[hidden, d]`.
    pub w_out: String,
    /// `[d]`.
    pub b_out: String,
    /// The hidden width (may be 0).
    pub hidden: usize,
    /// The IR instructions it implements (informative).
    pub instructions: Vec<String>,
}

/// A loop: layers `start..end` run repeatedly with the same weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopConfig {
    /// First layer of the body.
    pub start: usize,
    /// One past the last layer of the body.
    pub end: usize,
    /// `"fixed"` or `"until"`.
    pub stop: String,
    /// For `fixed`: the number of runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<usize>,
    /// For `until`: before each run, stop when `x[p][halt_dim] > 0.5` at
    /// every non-BOS position p.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt_dim: Option<usize>,
    /// For `until`: `basis[halt_dim]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt_label: Option<String>,
    /// For `until`: the most runs; needing more is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<usize>,
}

/// How the output is read at every non-BOS position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadoutConfig {
    /// The program's name for the output value.
    pub name: String,
    /// `"cat"` (argmax over `dims`, first maximum wins, `dims[i]` means
    /// `values[i]`) or `"num"` (the one dimension `dims[0]`, decoded to the
    /// nearest of `values`, ties to the smaller).
    pub encoding: String,
    /// The residual dimensions read.
    pub dims: Vec<usize>,
    /// `basis[dims[i]]`.
    pub dim_labels: Vec<String>,
    /// The output vocabulary (display strings); ascending for `num`.
    pub values: Vec<String>,
    /// `"num"` or `"sym"` for each entry of `values`.
    pub value_kinds: Vec<String>,
    /// For `num`: `values` as floats (nearest f64), for nearest-value
    /// decoding. Absent for `cat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_values: Option<Vec<f64>>,
}

fn kind(v: &Value) -> String {
    if v.is_num() { "num" } else { "sym" }.to_string()
}

/// A dense f32 tensor under construction.
struct Dense {
    name: String,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl safetensors::View for &Dense {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn to_f32(tensor: &str, index: usize, r: &Rat) -> Result<f32, ExportError> {
    let x = <f32 as Scalar>::from_rat(r);
    if x.is_finite() {
        Ok(x)
    } else {
        Err(ExportError::NotFinite { tensor: tensor.to_string(), index, value: tfc_ir::model::rat_to_string(r) })
    }
}

fn dense_matrix(name: String, m: &Matrix) -> Result<Dense, ExportError> {
    let mut values = vec![0f32; m.rows * m.cols];
    for (i, j, r) in &m.entries {
        let index = i * m.cols + j;
        values[index] = to_f32(&name, index, r)?;
    }
    Ok(Dense { data: values.iter().flat_map(|x| x.to_le_bytes()).collect(), shape: vec![m.rows, m.cols], name })
}

fn dense_vector(name: String, v: &SparseVec) -> Result<Dense, ExportError> {
    let mut values = vec![0f32; v.len];
    for (j, r) in &v.entries {
        values[*j] = to_f32(&name, *j, r)?;
    }
    Ok(Dense { data: values.iter().flat_map(|x| x.to_le_bytes()).collect(), shape: vec![v.len], name })
}

/// The config [`export_safetensors_with`] writes for `model` at inverse
/// temperature `beta` (the model is assumed valid).
pub fn export_config(model: &Model, beta: f64, rules: InputRules) -> Result<ExportConfig, ExportError> {
    let d = model.d_model();
    let layers = model
        .layers
        .iter()
        .enumerate()
        .map(|(l, layer)| LayerConfig {
            attn: layer
                .attn
                .iter()
                .enumerate()
                .map(|(h, head)| HeadConfig {
                    w_q: format!("layers.{l}.attn.{h}.w_q"),
                    w_k: format!("layers.{l}.attn.{h}.w_k"),
                    w_v: format!("layers.{l}.attn.{h}.w_v"),
                    w_o: format!("layers.{l}.attn.{h}.w_o"),
                    d_head: head.w_q.cols,
                    d_value: head.w_v.cols,
                    instructions: head.instructions.clone(),
                })
                .collect(),
            mlps: layer
                .mlps
                .iter()
                .enumerate()
                .map(|(m, mlp)| MlpConfig {
                    w_in: format!("layers.{l}.mlp.{m}.w_in"),
                    b_in: format!("layers.{l}.mlp.{m}.b_in"),
                    w_out: format!("layers.{l}.mlp.{m}.w_out"),
                    b_out: format!("layers.{l}.mlp.{m}.b_out"),
                    hidden: mlp.hidden(),
                    instructions: mlp.instructions.clone(),
                })
                .collect(),
        })
        .collect();
    let loops = model
        .loops
        .iter()
        .map(|lp| {
            let (start, end) = (lp.layers.start, lp.layers.end);
            match lp.stop {
                LoopStop::Fixed(times) => LoopConfig {
                    start,
                    end,
                    stop: "fixed".into(),
                    times: Some(times),
                    halt_dim: None,
                    halt_label: None,
                    max: None,
                },
                LoopStop::Until { halt_dim, max } => LoopConfig {
                    start,
                    end,
                    stop: "until".into(),
                    times: None,
                    halt_dim: Some(halt_dim),
                    halt_label: Some(model.basis[halt_dim].clone()),
                    max: Some(max),
                },
            }
        })
        .collect();
    let out = &model.output;
    // A num readout's values are a set: write them in ascending order, so
    // that "ties go to the smaller value" is "the first nearest" for any
    // reader (a cat readout's order is its dims' order and is kept).
    let mut values = out.values.clone();
    if out.encoding == Encoding::Num {
        values.sort();
    }
    let num_values = match out.encoding {
        Encoding::Cat => None,
        Encoding::Num => Some(
            values
                .iter()
                .enumerate()
                .filter_map(|(k, v)| v.as_num().map(|r| (k, r)))
                .map(|(k, r)| {
                    let x = <f64 as Scalar>::from_rat(r);
                    if x.is_finite() {
                        Ok(x)
                    } else {
                        Err(ExportError::NotFinite { tensor: "readout.values".into(), index: k, value: tfc_ir::model::rat_to_string(r) })
                    }
                })
                .collect::<Result<Vec<f64>, ExportError>>()?,
        ),
    };
    let readout = ReadoutConfig {
        name: out.name.clone(),
        encoding: match out.encoding {
            Encoding::Cat => "cat",
            Encoding::Num => "num",
        }
        .into(),
        dims: out.dims.clone(),
        dim_labels: out.dims.iter().map(|&k| model.basis[k].clone()).collect(),
        values: values.iter().map(|v| v.to_string()).collect(),
        value_kinds: values.iter().map(kind).collect(),
        num_values,
    };
    Ok(ExportConfig {
        format: "tfc-safetensors".into(),
        format_version: EXPORT_FORMAT_VERSION,
        program: model.program.clone(),
        dtype: "F32".into(),
        max_len: model.max_len,
        causal: model.causal,
        d_model: d,
        basis: model.basis.clone(),
        vocab: model.vocab.iter().map(|v| v.to_string()).collect(),
        vocab_kinds: model.vocab.iter().map(kind).collect(),
        distinct_tokens: rules.distinct_tokens,
        bos: Bos { token_row: 0, position: 0 },
        token_embed: TensorRef { name: "token_embed".into(), shape: vec![model.token_embed.rows, d] },
        pos_embed: TensorRef { name: "pos_embed".into(), shape: vec![model.pos_embed.rows, d] },
        layers,
        loops,
        readout,
        attention: "softmax".into(),
        beta,
        params: model.stats().params,
    })
}

/// Writes `dir/model.safetensors` (dense f32 weights) and `dir/config.json`
/// ([`ExportConfig`]) for `model`, with `beta` as the default inverse
/// temperature. Creates `dir` if needed; replaces existing files.
///
/// A model alone carries no input precondition, so the config says
/// `distinct_tokens: false`; exporting a program that has the
/// `distinct_tokens` header, use [`export_safetensors_with`] (the CLI does).
pub fn export_safetensors(model: &Model, beta: f64, dir: &Path) -> Result<ExportSummary, ExportError> {
    export_safetensors_with(model, beta, InputRules::default(), dir)
}

/// [`export_safetensors`], recording the program's input rules in the config.
pub fn export_safetensors_with(model: &Model, beta: f64, rules: InputRules, dir: &Path) -> Result<ExportSummary, ExportError> {
    model.validate()?;
    if !(beta.is_finite() && beta > 0.0) {
        return Err(ExportError::BadBeta(beta));
    }
    let params = model.stats().params;
    if params > MAX_EXPORT_PARAMS {
        return Err(ExportError::TooLarge { params, limit: MAX_EXPORT_PARAMS });
    }
    let config = export_config(model, beta, rules)?;

    let mut tensors = vec![
        dense_matrix("token_embed".into(), &model.token_embed)?,
        dense_matrix("pos_embed".into(), &model.pos_embed)?,
    ];
    for (l, layer) in model.layers.iter().enumerate() {
        for (h, head) in layer.attn.iter().enumerate() {
            for (w, m) in [("w_q", &head.w_q), ("w_k", &head.w_k), ("w_v", &head.w_v), ("w_o", &head.w_o)] {
                tensors.push(dense_matrix(format!("layers.{l}.attn.{h}.{w}"), m)?);
            }
        }
        for (k, mlp) in layer.mlps.iter().enumerate() {
            tensors.push(dense_matrix(format!("layers.{l}.mlp.{k}.w_in"), &mlp.w_in)?);
            tensors.push(dense_vector(format!("layers.{l}.mlp.{k}.b_in"), &mlp.b_in)?);
            tensors.push(dense_matrix(format!("layers.{l}.mlp.{k}.w_out"), &mlp.w_out)?);
            tensors.push(dense_vector(format!("layers.{l}.mlp.{k}.b_out"), &mlp.b_out)?);
        }
    }

    std::fs::create_dir_all(dir).map_err(|source| ExportError::CreateDir { path: dir.to_path_buf(), source })?;
    let weights = dir.join(WEIGHTS_FILE);
    let config_path = dir.join(CONFIG_FILE);
    let metadata: HashMap<String, String> = [
        ("format".to_string(), "pt".to_string()),
        ("tfc_format".to_string(), "tfc-safetensors".to_string()),
        ("tfc_format_version".to_string(), EXPORT_FORMAT_VERSION.to_string()),
        ("program".to_string(), model.program.clone()),
    ]
    .into_iter()
    .collect();
    let bytes = safetensors::serialize(tensors.iter().map(|t| (t.name.as_str(), t)), &Some(metadata))
        .map_err(|e| ExportError::Encode { path: weights.clone(), message: e.to_string() })?;
    std::fs::write(&weights, bytes).map_err(|source| ExportError::Write { path: weights.clone(), source })?;
    let mut text = serde_json::to_string_pretty(&config)
        .map_err(|e| ExportError::Encode { path: config_path.clone(), message: e.to_string() })?;
    text.push('\n');
    std::fs::write(&config_path, text).map_err(|source| ExportError::Write { path: config_path.clone(), source })?;
    Ok(ExportSummary { weights, config: config_path, tensors: tensors.len(), params })
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::SafeTensors;

    const SORT_UNIQUE: &str = "program sort_unique {
  vocab {1..5}
  max_len 5
  distinct_tokens

  %tok  = tokens
  %idx  = indices
  %lt   = select %tok, %tok, lt
  %tgt  = width %lt
  %pick = select %tgt, %idx, eq
  %out  = aggregate %pick, %tok default 0 : cat
  output %out
}
";

    fn compiled(src: &str) -> Model {
        let prog = tfc_ir::parse(src).expect("parses");
        let checked = tfc_ir::check(&prog).expect("checks");
        crate::compile(&checked).expect("compiles").model
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tfc-export-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn read_f32(view: &safetensors::tensor::TensorView<'_>) -> Vec<f32> {
        assert_eq!(view.dtype(), safetensors::Dtype::F32);
        view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }

    fn check_matrix(st: &SafeTensors<'_>, name: &str, m: &Matrix) {
        let view = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(view.shape(), &[m.rows, m.cols], "{name}");
        let data = read_f32(&view);
        let dense = m.to_dense();
        for (i, row) in dense.iter().enumerate() {
            for (j, r) in row.iter().enumerate() {
                assert_eq!(data[i * m.cols + j], <f32 as Scalar>::from_rat(r), "{name}[{i}, {j}]");
            }
        }
    }

    fn check_vector(st: &SafeTensors<'_>, name: &str, v: &SparseVec) {
        let view = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(view.shape(), &[v.len], "{name}");
        let data = read_f32(&view);
        for (j, r) in v.to_dense().iter().enumerate() {
            assert_eq!(data[j], <f32 as Scalar>::from_rat(r), "{name}[{j}]");
        }
    }

    #[test]
    fn export_writes_every_tensor_with_its_shape_and_values() {
        let model = compiled(SORT_UNIQUE);
        let dir = temp_dir("sort-unique");
        let summary = export_safetensors(&model, 100.0, &dir).expect("exports");
        let bytes = std::fs::read(&summary.weights).expect("weights written");
        let st = SafeTensors::deserialize(&bytes).expect("valid safetensors");
        let d = model.d_model();

        // Shapes of the embeddings, then every value of every tensor.
        assert_eq!(st.tensor("token_embed").unwrap().shape(), &[model.vocab.len() + 1, d]);
        assert_eq!(st.tensor("pos_embed").unwrap().shape(), &[model.max_len + 1, d]);
        check_matrix(&st, "token_embed", &model.token_embed);
        check_matrix(&st, "pos_embed", &model.pos_embed);
        let mut expected_tensors = 2;
        let mut nonzero_seen = 0;
        for (l, layer) in model.layers.iter().enumerate() {
            for (h, head) in layer.attn.iter().enumerate() {
                for (w, m) in [("w_q", &head.w_q), ("w_k", &head.w_k), ("w_v", &head.w_v), ("w_o", &head.w_o)] {
                    check_matrix(&st, &format!("layers.{l}.attn.{h}.{w}"), m);
                    nonzero_seen += m.nnz();
                }
                assert_eq!(head.w_q.rows, d);
                expected_tensors += 4;
            }
            for (k, mlp) in layer.mlps.iter().enumerate() {
                check_matrix(&st, &format!("layers.{l}.mlp.{k}.w_in"), &mlp.w_in);
                check_vector(&st, &format!("layers.{l}.mlp.{k}.b_in"), &mlp.b_in);
                check_matrix(&st, &format!("layers.{l}.mlp.{k}.w_out"), &mlp.w_out);
                check_vector(&st, &format!("layers.{l}.mlp.{k}.b_out"), &mlp.b_out);
                nonzero_seen += mlp.w_in.nnz();
                expected_tensors += 4;
            }
        }
        assert!(model.layers.iter().any(|l| !l.attn.is_empty()) && model.layers.iter().any(|l| !l.mlps.is_empty()));
        assert!(nonzero_seen > 0);
        assert_eq!(st.len(), expected_tensors);
        assert_eq!(summary.tensors, expected_tensors);
        let total: usize = st.tensors().iter().map(|(_, v)| v.shape().iter().product::<usize>()).sum();
        assert_eq!(total as u64, model.stats().params);
        assert_eq!(summary.params, model.stats().params);

        // A few values by hand: BOS's token row sets `one` and `bos`.
        let one = model.basis_index("one").expect("one");
        let bos = model.basis_index("bos").expect("bos");
        let te = read_f32(&st.tensor("token_embed").unwrap());
        assert_eq!(te[one], 1.0);
        assert_eq!(te[bos], 1.0);
        // The width decoder has non-integer weights (1/(w+1) steps): they
        // are the f32 nearest to the rational.
        let (name, cols, i, j, r) = model
            .layers
            .iter()
            .enumerate()
            .flat_map(|(l, layer)| layer.mlps.iter().enumerate().map(move |(k, m)| (l, k, m)))
            .flat_map(|(l, k, m)| m.w_in.entries.iter().map(move |(i, j, r)| (format!("layers.{l}.mlp.{k}.w_in"), m.w_in.cols, *i, *j, r)))
            .find(|e| !e.4.is_integer())
            .expect("a non-integer MLP weight");
        let got = read_f32(&st.tensor(&name).unwrap())[i * cols + j];
        let want = num_traits::ToPrimitive::to_f64(r).expect("finite");
        assert!(got != want.round() as f32 && (got as f64 - want).abs() <= want.abs() * f32::EPSILON as f64, "{name}[{i}, {j}]: {got} vs {want}");

        // The config round-trips and describes the same shapes.
        let text = std::fs::read_to_string(&summary.config).expect("config written");
        let config: ExportConfig = serde_json::from_str(&text).expect("config parses");
        assert_eq!(config, export_config(&model, 100.0, InputRules::default()).unwrap());
        assert_eq!(config.d_model, d);
        assert_eq!(config.basis, model.basis);
        assert_eq!(config.vocab, vec!["1", "2", "3", "4", "5"]);
        assert!(config.vocab_kinds.iter().all(|k| k == "num"));
        assert_eq!(config.beta, 100.0);
        assert!(config.causal == model.causal);
        assert_eq!(config.readout.encoding, "cat");
        assert_eq!(config.readout.dims, model.output.dims);
        for (lc, layer) in config.layers.iter().zip(&model.layers) {
            for (hc, head) in lc.attn.iter().zip(&layer.attn) {
                assert_eq!(st.tensor(&hc.w_k).unwrap().shape(), &[d, hc.d_head]);
                assert_eq!(st.tensor(&hc.w_o).unwrap().shape(), &[hc.d_value, d]);
                assert_eq!(hc.d_head, head.w_k.cols);
            }
            for (mc, mlp) in lc.mlps.iter().zip(&layer.mlps) {
                assert_eq!(st.tensor(&mc.b_in).unwrap().shape(), &[mc.hidden]);
                assert_eq!(mc.hidden, mlp.hidden());
            }
        }
        assert!(!config.distinct_tokens);

        // With the program's header, the precondition is recorded.
        let prog = tfc_ir::parse(SORT_UNIQUE).unwrap();
        let rules = InputRules::of(&prog);
        assert!(rules.distinct_tokens);
        export_safetensors_with(&model, 100.0, rules, &dir).expect("exports");
        let config: ExportConfig = serde_json::from_str(&std::fs::read_to_string(&summary.config).unwrap()).unwrap();
        assert!(config.distinct_tokens);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn export_config_writes_symbols_and_num_readouts() {
        // pair_balance over a vocabulary mixing a bare and a quoted symbol.
        let model = compiled(
            "program balance {
  vocab {\"(\", a}
  max_len 5
  %tok    = tokens
  %idx    = indices
  %bopen  = map %tok { x == \"(\" } : num
  %prev   = select %idx, %idx, le
  %opens  = aggregate %prev, %bopen default 0 : num
  %bal    = seqmap %opens, %opens { 2 * x + -1 * y } : num
  output %bal
}
",
        );
        let config = export_config(&model, 50.0, InputRules::default()).expect("config");
        assert_eq!(config.vocab, vec!["\"(\"", "a"]);
        assert_eq!(config.vocab_kinds, vec!["sym", "sym"]);
        assert_eq!(config.beta, 50.0);
        let r = &config.readout;
        assert_eq!(r.encoding, "num");
        assert_eq!(r.dims.len(), 1);
        assert!(r.values.iter().any(|v| v == "1/3"), "{:?}", r.values);
        assert!(r.value_kinds.iter().all(|k| k == "num"));
        let nums = r.num_values.as_ref().expect("num values");
        assert_eq!(nums.len(), r.values.len());
        let third = r.values.iter().position(|v| v == "1/3").unwrap();
        assert_eq!(nums[third], 1.0 / 3.0);
        assert!(nums.windows(2).all(|w| w[0] < w[1]), "ascending: {nums:?}");
    }

    #[test]
    fn export_config_writes_loops() {
        let fixed = compiled(include_str!("../../corpus/loops/parity.ir"));
        let config = export_config(&fixed, 100.0, InputRules::default()).expect("config");
        assert_eq!(config.loops.len(), 1);
        let lp = &config.loops[0];
        assert_eq!((lp.stop.as_str(), lp.times, lp.halt_dim, lp.max), ("fixed", Some(8), None, None));
        assert!(lp.start < lp.end && lp.end <= config.layers.len());

        let until = compiled(include_str!("../../corpus/loops/subleq.ir"));
        let config = export_config(&until, 100.0, InputRules::default()).expect("config");
        let lp = &config.loops[0];
        assert_eq!((lp.stop.as_str(), lp.times, lp.max), ("until", None, Some(64)));
        let halt = lp.halt_dim.expect("halt_dim");
        assert_eq!(lp.halt_label.as_deref(), Some(until.basis[halt].as_str()));
        let text = serde_json::to_string(&config).unwrap();
        assert!(!text.contains("\"times\""), "absent fields are left out: {text}");
    }

    #[test]
    fn export_refuses_bad_beta_and_reports_io_errors() {
        let model = compiled(SORT_UNIQUE);
        assert!(matches!(export_safetensors(&model, f64::NAN, Path::new("unused")), Err(ExportError::BadBeta(_))));
        assert!(matches!(export_safetensors(&model, 0.0, Path::new("unused")), Err(ExportError::BadBeta(_))));
        // A directory that is a file: an error, not a panic.
        let file = temp_dir("not-a-dir");
        std::fs::write(&file, b"x").expect("temp file");
        let err = export_safetensors(&model, 100.0, &file).expect_err("cannot write into a file");
        assert!(matches!(err, ExportError::CreateDir { .. } | ExportError::Write { .. }), "{err}");
        assert!(err.to_string().contains(&file.display().to_string()));
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn export_refuses_invalid_models() {
        let mut model = compiled(SORT_UNIQUE);
        model.token_embed.cols += 1;
        assert!(matches!(export_safetensors(&model, 100.0, Path::new("unused")), Err(ExportError::Model(_))));
    }
}
