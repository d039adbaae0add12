//! The schedule is valid and as shallow as the plan allows.
//!
//! For every corpus program: every node runs after its inputs are ready,
//! heads in attention sublayers and MLPs in MLP sublayers, and no node
//! could run a layer earlier (so the depth is the critical path: every
//! node sits at the earliest slot its inputs permit, and the last one
//! fixes the depth). The lower bound is recomputed here by a longest-path
//! pass over the plan written independently of the scheduler.

use tfc_compiler::plan::{NodeKind, Plan, Region};
use tfc_compiler::schedule::Sublayer;

fn corpus_files() -> Vec<std::path::PathBuf> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../corpus");
    let mut out = Vec::new();
    for dir in ["tracr", "programs", "loops"] {
        for e in std::fs::read_dir(format!("{root}/{dir}")).expect("corpus dir").flatten() {
            if e.path().extension().is_some_and(|x| x == "ir") {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Earliest layer count by longest path: a head needs a layer after every
/// input that an MLP produced and the same layer as one a head produced
/// only if... (a head's output is readable by the next layer's head, or by
/// the MLP of its own layer). Counted in sublayer steps.
fn lower_bound(plan: &Plan) -> usize {
    // step(n): number of sublayers (attn = even, mlp = odd) up to and including n.
    let mut finish: Vec<i64> = vec![-1; plan.nodes.len()];
    let mut region_start: i64 = 0;
    let mut last_region = None;
    let mut max_finish: i64 = -1;
    for (id, n) in plan.nodes.iter().enumerate() {
        if last_region != Some(n.region) {
            // A new region (segment or loop) starts on a fresh layer after everything before.
            if max_finish >= 0 {
                region_start = (max_finish / 2 + 1) * 2;
                if let Some(Region::Loop(_)) = last_region {
                    // the loop's commit needs the MLP slot after its last node
                }
            }
            last_region = Some(n.region);
        }
        let ready = plan.inputs(id).iter().map(|&i| finish[i]).max().unwrap_or(-1).max(region_start - 1);
        let f = match n.kind {
            NodeKind::Aggregate { .. } => {
                let s = ready + 1;
                if s % 2 == 1 { s + 1 } else { s }
            }
            NodeKind::Width { .. } => {
                let s = ready + 1;
                (if s % 2 == 1 { s + 1 } else { s }) + 1
            }
            NodeKind::Mlp { .. } => {
                let s = ready + 1;
                if s % 2 == 0 { s + 1 } else { s }
            }
            _ => -1,
        };
        finish[id] = f;
        max_finish = max_finish.max(f);
    }
    ((max_finish + 2) / 2).max(0) as usize
}

#[test]
fn schedules_are_valid_and_as_shallow_as_the_critical_path() {
    let mut checked_programs = 0;
    for f in corpus_files() {
        let src = std::fs::read_to_string(&f).unwrap();
        let Ok(p) = tfc_ir::parse(&src) else { continue };
        let Ok(c) = tfc_ir::check(&p) else { continue };
        let compiled = tfc_compiler::compile(&c).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let (plan, s) = (&compiled.plan, &compiled.schedule);
        let ready = |i: usize| -> i64 {
            match (s.slot[i], &plan.nodes[i].kind) {
                (None, _) => -1,
                (Some(x), NodeKind::Width { .. }) => x.0 as i64 + 1,
                (Some(x), _) => x.0 as i64,
            }
        };
        for (id, n) in plan.nodes.iter().enumerate() {
            let Some(slot) = s.slot[id] else { continue };
            // Right kind of sublayer.
            let want = if matches!(n.kind, NodeKind::Mlp { .. }) { Sublayer::Mlp } else { Sublayer::Attn };
            assert_eq!(slot.sublayer(), want, "{}: %{} in the wrong sublayer", f.display(), n.name);
            // After its inputs.
            for i in plan.inputs(id) {
                assert!(ready(i) < slot.0 as i64, "{}: %{} runs before its input %{}", f.display(), n.name, plan.nodes[i].name);
            }
        }
        // Loops aside (their blocks add a commit), depth equals the lower bound.
        if plan.loops.is_empty() {
            assert_eq!(s.layers, lower_bound(plan), "{}: depth {} is not the critical path", f.display(), s.layers);
        }
        checked_programs += 1;
    }
    assert!(checked_programs >= 30, "only {checked_programs} programs checked");
}

#[test]
fn independent_instructions_share_a_layer() {
    // Two aggregates of the same inputs run as two heads of one layer.
    let src = "program two { vocab {1, 2} max_len 3
      %t = tokens
      %i = indices
      %a = select %i, %i, le
      %b = select %t, %t, eq
      %x = aggregate %a, %t : num
      %y = aggregate %b, %i : num
      %z = seqmap %x, %y { x + y } : num
      output %z }";
    let c = tfc_ir::check(&tfc_ir::parse(src).unwrap()).unwrap();
    let m = tfc_compiler::compile(&c).unwrap().model;
    assert_eq!(m.layers.len(), 1);
    assert_eq!(m.layers[0].attn.len(), 2);
    assert_eq!(m.layers[0].mlps.len(), 1);
}
