//! `tfc verify` at -O1: the model is proved against the optimized program
//! and that program is tied to the source (docs/VERIFY.md, "Optimized
//! models"); a tie that is only a sample is `unknown`, never `proved`.

use std::process::{Command, Output};

fn tfc(args: &[&str]) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tfc")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("tfc runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, text)
}

/// The verdict about the source: the line before the last, which is the
/// precision summary (issue 5: `tfc verify` ends with it).
fn verdict_line(s: &str) -> &str {
    let lines: Vec<&str> = s.lines().collect();
    assert!(lines.last().is_some_and(|l| l.starts_with("precision: ")), "the last line is the precision summary: {s}");
    lines.get(lines.len().wrapping_sub(2)).copied().unwrap_or("")
}

// sort's inputs: vocab {1, 2, 3}, lengths 1..5: 3 + 9 + 27 + 81 + 243 = 363.

#[test]
fn verify_ties_an_optimized_model_to_the_source_exhaustively() {
    let (out, text) = tfc(&["verify", "corpus/tracr/sort.ir"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("blocks checked against the optimized program:"), "{text}");
    assert!(text.contains("source: the optimized program agrees with the source on all 363 admitted inputs"), "{text}");
    assert!(verdict_line(&text).starts_with("proved: "), "{text}");
}

#[test]
fn verify_with_only_a_sampled_tie_is_unknown() {
    // 363 inputs over a budget of 10, and the optimized model holds values
    // the source does not name (the two widths width-lex-split adds), so no
    // direct proof either: the model is proved against the optimized
    // program, and that is all.
    let (out, text) = tfc(&["verify", "corpus/tracr/sort_freq.ir", "--link-inputs", "10"]);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("proved against the optimized program:"), "{text}");
    assert!(text.contains("sampled, not a proof"), "{text}");
    assert!(verdict_line(&text).starts_with("unknown: "), "{text}");
}

#[test]
fn verify_unoptimized_is_against_the_source_itself() {
    let (out, text) = tfc(&["verify", "-O0", "corpus/tracr/sort.ir"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("blocks checked against the source program:"), "{text}");
    assert!(text.contains("source: the proof is against the source program itself"), "{text}");
}

#[test]
fn verify_ties_by_a_direct_proof_when_there_are_too_many_inputs() {
    // 4^1 + ... + 4^10 inputs: far over the budget; the optimized program
    // keeps the source's names, so the verifier proves the model against
    // the source too.
    let (out, text) = tfc(&["verify", "corpus/tracr/shuffle_dyck2_n10.ir"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("source: the model is also proved against the source program directly"), "{text}");
}

#[test]
fn verify_json_says_what_the_proof_is_against() {
    let (out, text) = tfc(&["verify", "corpus/tracr/sort.ir", "--json", "--evidence-inputs", "0"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["verdict"], "proved");
    assert_eq!(v["proved_against"], "optimized");
    assert_eq!(v["link"]["kind"], "exhaustive");
    assert_eq!(v["link"]["inputs"], 363);
    assert_eq!(v["report"]["verdict"], "proved");
}

#[test]
fn verify_a_stored_optimized_model() {
    let dir = std::env::temp_dir().join(format!("tfc-verify-link-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let m = dir.join("sort.json");
    let m = m.to_str().unwrap();
    let (out, text) = tfc(&["compile", "corpus/tracr/sort.ir", "-o", m]);
    assert!(out.status.success(), "{text}");
    // Its basis names the optimized program's values: proved against that, tied exhaustively.
    let (out, text) = tfc(&["verify", "corpus/tracr/sort.ir", "--model", m]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("[stored model]") && text.contains("all 363 admitted inputs"), "{text}");
    // At -O0 only the source is tried, and the model does not fit it.
    let (out, text) = tfc(&["verify", "-O0", "corpus/tracr/sort.ir", "--model", m]);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
