//! Stage 3, `schedule_to_layout`: the labelled residual basis.
//!
//! Every dimension has a name a person can read: `one` (1 everywhere),
//! `bos` (1 at the BOS position only), `tokens:<v>`, `indices:<i>`,
//! `%name:<v>` for each value of a categorical node, `%name` for a
//! numerical one, and `scratch.w<k>` for the 1/(w+1) that a `width` head
//! hands to its decoding MLP. Only materialized, live nodes get
//! dimensions (the plan has already dropped dead values and folded maps).
//! Scratch dimensions are restored to zero by the decoder in the same
//! layer, so widths in different layers share them.

use crate::plan::{NodeId, NodeKind, Plan};
use crate::schedule::Schedule;
use std::collections::BTreeMap;
use std::fmt;
use tfc_ir::ast::Encoding;
use tfc_ir::Value;

/// Where one node's value lives.
#[derive(Clone, Debug, PartialEq)]
pub enum Dims {
    /// One dimension per value (one-hot).
    Cat(BTreeMap<Value, usize>),
    /// One dimension holding the number.
    Num(usize),
}

/// The residual basis.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Label of each dimension.
    pub labels: Vec<String>,
    /// The `one` dimension.
    pub one: usize,
    /// The `bos` dimension.
    pub bos: usize,
    /// Each node's dimensions.
    pub dims: Vec<Dims>,
    /// Each `width` node's scratch dimension.
    pub scratch: BTreeMap<NodeId, usize>,
}

fn label_value(v: &Value) -> String {
    v.to_string()
}

/// Lays out the residual stream.
pub fn schedule_to_layout(plan: &Plan, schedule: &Schedule) -> Layout {
    let mut labels = vec!["one".to_string(), "bos".to_string()];
    let mut dims = Vec::new();
    for node in &plan.nodes {
        let prefix = match node.kind {
            NodeKind::Tokens => "tokens".to_string(),
            NodeKind::Indices => "indices".to_string(),
            _ => format!("%{}", node.name),
        };
        let d = match node.enc {
            Encoding::Cat => {
                let mut m = BTreeMap::new();
                for v in &node.set {
                    m.insert(v.clone(), labels.len());
                    labels.push(format!("{prefix}:{}", label_value(v)));
                }
                Dims::Cat(m)
            }
            Encoding::Num => {
                labels.push(prefix);
                Dims::Num(labels.len() - 1)
            }
        };
        dims.push(d);
    }
    // Scratch: the k-th width head of a layer uses scratch.w<k>.
    let mut scratch = BTreeMap::new();
    let mut per_layer: BTreeMap<usize, usize> = BTreeMap::new();
    let mut pool: Vec<usize> = Vec::new();
    for (id, node) in plan.nodes.iter().enumerate() {
        if let (NodeKind::Width { .. }, Some(s)) = (&node.kind, schedule.slot[id]) {
            let k = per_layer.entry(s.layer()).or_insert(0);
            if *k == pool.len() {
                pool.push(labels.len());
                labels.push(format!("scratch.w{k}"));
            }
            scratch.insert(id, pool[*k]);
            *k += 1;
        }
    }
    Layout { labels, one: 0, bos: 1, dims, scratch }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "layout: d_model {}", self.labels.len())?;
        for (i, l) in self.labels.iter().enumerate() {
            writeln!(f, "  {i:>4}  {l}")?;
        }
        Ok(())
    }
}
