//! Stage 2, `plan_to_schedule`: which sublayer computes each node.
//!
//! Time is counted in *slots*: slot 2L is the attention sublayer of layer
//! L, slot 2L+1 its MLP sublayer. A node is placed in the earliest slot of
//! its kind after all its inputs are ready (heads in even slots, MLPs in
//! odd ones; `width` takes a head slot and the MLP slot right after it),
//! so independent nodes share a layer as parallel heads or side-by-side
//! MLP blocks, and the depth is the critical path of the plan: no
//! schedule can be shallower, because every node waits only for its inputs.
//!
//! A loop's body is a block of layers of its own that runs repeatedly; the
//! code before a loop runs in earlier layers and the code after it in later
//! ones. The block ends with a *commit* MLP that writes the next state as
//! a difference and restores the body's dimensions (see `lower.rs`).

use crate::plan::{NodeId, NodeKind, Plan, Region};
use std::fmt;
use std::ops::Range;

/// Attention or MLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sublayer {
    /// The attention sublayer.
    Attn,
    /// The MLP sublayer.
    Mlp,
}

/// A (layer, sublayer) position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(pub usize);

impl Slot {
    /// The layer.
    pub fn layer(self) -> usize {
        self.0 / 2
    }
    /// Attention or MLP.
    pub fn sublayer(self) -> Sublayer {
        if self.0 % 2 == 0 {
            Sublayer::Attn
        } else {
            Sublayer::Mlp
        }
    }
}

/// Where every node runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// The slot of each node's head or MLP; `None` for embedded nodes
    /// (tokens, indices, constants, loop state).
    pub slot: Vec<Option<Slot>>,
    /// Layer ranges of the loops, in plan order.
    pub loops: Vec<Range<usize>>,
    /// The slot of each loop's commit MLP.
    pub commits: Vec<Slot>,
    /// Total layers.
    pub layers: usize,
}

/// The slot after which a node's value can be read (`-1` for embeddings).
fn ready(plan: &Plan, slot: &[Option<Slot>], n: NodeId) -> i64 {
    match (slot[n], &plan.nodes[n].kind) {
        (None, _) => -1,
        (Some(s), NodeKind::Width { .. }) => s.0 as i64 + 1,
        (Some(s), _) => s.0 as i64,
    }
}

/// Schedules a plan.
pub fn plan_to_schedule(plan: &Plan) -> Schedule {
    let mut slot: Vec<Option<Slot>> = vec![None; plan.nodes.len()];
    let mut loops = Vec::new();
    let mut commits = Vec::new();
    // Regions in execution order: segment 0, loop 0, segment 1, loop 1, ...
    let mut regions = Vec::new();
    for k in 0..=plan.loops.len() {
        regions.push(Region::Segment(k));
        if k < plan.loops.len() {
            regions.push(Region::Loop(k));
        }
    }
    let mut cursor: i64 = 0; // first slot of the current region (always even)
    for region in regions {
        let mut end = cursor - 1;
        for (id, node) in plan.nodes.iter().enumerate() {
            if node.region != region {
                continue;
            }
            let kind_is_head = matches!(node.kind, NodeKind::Aggregate { .. } | NodeKind::Width { .. });
            let kind_is_mlp = matches!(node.kind, NodeKind::Mlp { .. });
            if !kind_is_head && !kind_is_mlp {
                continue;
            }
            let r = plan.inputs(id).iter().map(|&i| ready(plan, &slot, i)).max().unwrap_or(-1).max(cursor - 1);
            let mut s = r + 1;
            if kind_is_head && s % 2 == 1 {
                s += 1;
            }
            if kind_is_mlp && s % 2 == 0 {
                s += 1;
            }
            slot[id] = Some(Slot(s as usize));
            end = end.max(ready(plan, &slot, id));
        }
        match region {
            Region::Loop(_) => {
                // The commit comes after everything in the body.
                let mut c = end + 1;
                if c % 2 == 0 {
                    c += 1;
                }
                let first = (cursor / 2) as usize;
                let last = (c / 2) as usize;
                loops.push(first..last + 1);
                commits.push(Slot(c as usize));
                cursor = (last as i64 + 1) * 2;
            }
            Region::Segment(_) => {
                if end >= cursor {
                    cursor = (end / 2 + 1) * 2;
                }
            }
        }
    }
    Schedule { slot, loops, commits, layers: (cursor / 2) as usize }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "schedule: {} layer(s)", self.layers)?;
        for (k, r) in self.loops.iter().enumerate() {
            writeln!(f, "  loop {k}: layers {}..{} (commit in layer {} mlp)", r.start, r.end, self.commits[k].layer())?;
        }
        Ok(())
    }
}

/// Prints the schedule with the plan's names, layer by layer.
pub fn describe(plan: &Plan, s: &Schedule) -> String {
    let mut out = s.to_string();
    for layer in 0..s.layers {
        let names = |sub: Sublayer| -> Vec<String> {
            let mut v: Vec<String> = plan
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    let sl = s.slot[i]?;
                    let here = sl.layer() == layer && sl.sublayer() == sub;
                    let width_mlp = matches!(n.kind, NodeKind::Width { .. }) && sub == Sublayer::Mlp && sl.layer() == layer;
                    if here || width_mlp {
                        Some(match (&n.kind, sub) {
                            (NodeKind::Width { .. }, Sublayer::Attn) => format!("%{} (width head)", n.name),
                            (NodeKind::Width { .. }, Sublayer::Mlp) => format!("%{} (width decode)", n.name),
                            _ => format!("%{}", n.name),
                        })
                    } else {
                        None
                    }
                })
                .collect();
            for (k, c) in s.commits.iter().enumerate() {
                if sub == Sublayer::Mlp && c.layer() == layer {
                    v.push(format!("loop {k} commit"));
                }
            }
            v
        };
        out.push_str(&format!("  layer {layer}: attn [{}]  mlp [{}]\n", names(Sublayer::Attn).join(", "), names(Sublayer::Mlp).join(", ")));
    }
    out
}
