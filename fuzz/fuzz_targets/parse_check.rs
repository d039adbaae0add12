//! Any bytes: parse, check, and when the checker accepts, run a short
//! input. Nothing may panic, and a parsed program must print to text that
//! parses back to it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tfc_ir::check::{random_input, SplitMix};
use tfc_ir::interp::{self, RunOptions};
use tfc_ir::parser::MAX_SOURCE_BYTES;
use tfc_ir::{check, parse, parse_bytes, print};

fuzz_target!(|data: &[u8]| {
    let Ok((_, prog)) = parse_bytes(data) else { return };
    let printed = print(&prog);
    if printed.len() <= MAX_SOURCE_BYTES {
        assert_eq!(parse(&printed).as_ref(), Ok(&prog), "printed:\n{printed}");
    }
    if check(&prog).is_err() {
        return;
    }
    // The input is derived from the data, so a crash reproduces from it alone.
    let seed = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let mut rng = SplitMix(seed);
    let len = 1 + rng.below(prog.max_len.min(8));
    let input = random_input(&prog, len, &mut rng);
    let _ = interp::run(&prog, &input, &RunOptions { trace: rng.below(2) == 0 });
});
