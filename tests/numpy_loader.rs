//! End-to-end: every corpus sample run through `tfc export --safetensors`
//! and the NumPy loader (`python/tfc_numpy.py`), via `python/check_corpus.py`.
//!
//! NumPy is a test requirement (`.ci/run` installs it): when it is missing
//! this test fails and says how to install it; it never skips.

use std::process::Command;

#[test]
fn the_numpy_loader_reproduces_the_corpus() {
    let root = env!("CARGO_MANIFEST_DIR");
    let numpy = Command::new("python3").args(["-c", "import numpy"]).output();
    match numpy {
        Err(e) => panic!("cannot run python3 ({e}): the NumPy loader test needs python3 with NumPy"),
        Ok(o) if !o.status.success() => panic!(
            "NumPy is not installed for python3: install it with `python3 -m pip install numpy` \
             (.ci/run does this)\n{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Ok(_) => {}
    }
    let out = Command::new("python3")
        .arg("python/check_corpus.py")
        .env("TFC_BIN", env!("CARGO_BIN_EXE_tfc"))
        .current_dir(root)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout.lines().last().unwrap_or("");
    let (passed, failed) =
        parse_summary(summary).unwrap_or_else(|| panic!("no `N passed, M failed` line from check_corpus.py:\n{stdout}\n{stderr}"));
    assert_eq!(failed, 0, "NumPy loader failures:\n{stdout}\n{stderr}");
    assert!(passed >= 30, "only {passed} corpus sample runs were checked:\n{stdout}\n{stderr}");
    assert!(out.status.success(), "check_corpus.py exited {:?}:\n{stdout}\n{stderr}", out.status);
}

fn parse_summary(line: &str) -> Option<(usize, usize)> {
    let (p, f) = line.split_once(" passed, ")?;
    Some((p.trim().parse().ok()?, f.trim_end_matches(" failed").trim().parse().ok()?))
}
