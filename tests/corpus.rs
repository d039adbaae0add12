//! End-to-end: `tfc test corpus/` over the whole regression corpus, at the
//! default level (-O1, the optimizer on) and at -O0.
//!
//! The corpus files carry their own expectations; this test runs the real
//! binary over them, so `cargo test` fails whenever `tfc test` would. The
//! `; stats:` (-O1) and `; stats-O0:` lines are checked at both levels; the
//! `; run:` and `; verify:` lines run against the model of the level.

use std::process::Command;

fn corpus_passes(level: &[&str]) {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO_BIN_EXE_tfc"))
        .arg("test")
        .args(level)
        .arg("corpus")
        .current_dir(root)
        .output()
        .expect("tfc runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout.lines().last().unwrap_or("");
    let (passed, failed) = parse_summary(summary).unwrap_or_else(|| panic!("no summary line in:\n{stdout}\n{stderr}"));
    assert!(passed >= 40, "the corpus shrank to {passed} files:\n{stdout}");
    assert_eq!(failed, 0, "corpus failures ({level:?}):\n{stdout}\n{stderr}");
    assert!(out.status.success(), "tfc test {level:?} exited {:?}:\n{stdout}\n{stderr}", out.status);
}

#[test]
fn the_corpus_passes() {
    corpus_passes(&[]);
}

#[test]
fn the_corpus_passes_unoptimized() {
    corpus_passes(&["-O0"]);
}

fn parse_summary(line: &str) -> Option<(usize, usize)> {
    let (p, f) = line.split_once(" passed, ")?;
    Some((p.trim().parse().ok()?, f.trim_end_matches(" failed").trim().parse().ok()?))
}
