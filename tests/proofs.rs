//! `proofs/` re-checked by the `z3` and `cvc5` command-line solvers
//! (`scripts/check-proofs.sh`, proofs/README.md), independently of the Z3
//! library the verifier links. The solvers are required: `.ci/run` installs
//! them, and a machine without them fails here rather than skipping.

use std::path::Path;
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn require_solvers() {
    for s in ["z3", "cvc5"] {
        let found = Command::new(s).arg("--version").output().is_ok_and(|o| o.status.success());
        assert!(found, "`{s}` is not installed or not on PATH: install both solvers (`apt-get install z3 cvc5`, as .ci/run does); this test does not skip");
    }
}

fn check_proofs(args: &[&str]) -> (Output, String) {
    let out = Command::new("bash")
        .arg(root().join("scripts/check-proofs.sh"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("bash runs scripts/check-proofs.sh");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out, text)
}

/// `N passed, M failed` from the last line of stdout.
fn summary(out: &Output) -> Option<(usize, usize)> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last()?;
    let (p, f) = line.split_once(" passed, ")?;
    Some((p.trim().parse().ok()?, f.strip_suffix(" failed")?.trim().parse().ok()?))
}

#[test]
fn every_checked_in_query_gets_its_expected_answer_from_z3_and_cvc5() {
    require_solvers();
    let (out, text) = check_proofs(&[]);
    let (passed, failed) = summary(&out).unwrap_or_else(|| panic!("no `N passed, M failed` line from check-proofs.sh:\n{text}"));
    assert_eq!(failed, 0, "solver answers differ from the expected ones:\n{text}");
    assert!(passed >= 2, "no proofs/**/*.smt2 file was checked (regenerate with scripts/regen-proofs.sh):\n{text}");
    assert!(out.status.success(), "check-proofs.sh exited {:?}:\n{text}", out.status);
}

#[test]
fn a_wrong_expected_answer_and_an_empty_tree_are_rejected() {
    require_solvers();
    let dir = std::env::temp_dir().join(format!("tfc-proofs-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let wrong = dir.join("wrong");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&wrong).unwrap();
    std::fs::create_dir_all(&empty).unwrap();
    // x = 3 and x > 6349 has no solution, but the file claims `sat`.
    std::fs::write(
        wrong.join("claims_sat.smt2"),
        "; a deliberately wrong expectation\n; expected: sat\n(set-logic QF_LRA)\n(declare-const x Real)\n(assert (= x 3.0))\n(assert (> x 6349.0))\n(check-sat)\n",
    )
    .unwrap();
    let (out, text) = check_proofs(&[wrong.to_str().unwrap()]);
    assert!(!out.status.success(), "a wrong expectation passed:\n{text}");
    assert_eq!(summary(&out), Some((0, 2)), "{text}");
    assert!(text.contains("claims_sat.smt2 z3: expected sat, got: unsat"), "{text}");
    assert!(text.contains("claims_sat.smt2 cvc5: expected sat, got: unsat"), "{text}");

    let (out, text) = check_proofs(&[empty.to_str().unwrap()]);
    assert!(!out.status.success(), "zero files passed:\n{text}");
    assert_eq!(summary(&out), Some((0, 0)), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
