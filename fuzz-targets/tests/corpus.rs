//! The fuzz targets in `make test`: each runs over its committed corpus
//! (`fuzz-targets/corpus/<target>/`, including every input a fuzzer once found failing), then
//! over seeded mutations of it, a few seconds in all. `FUZZ_MUTATIONS` sets how many per
//! target (default 3,000); `make fuzz` runs the same targets under libFuzzer for as long as
//! asked.
use std::path::Path;

use frontdesk_fuzz_targets::TARGETS;

/// Fragments that matter to the parsers, spliced in by the mutations.
const TOKENS: &[&[u8]] = &[
    b"%",
    b"%2e",
    b"%2F",
    b"%25",
    b"%3B",
    b"%C0%AF",
    b"%EF%BD%81",
    b";",
    b"/",
    b"//",
    b"/..",
    b"/./",
    b"\\",
    b"\0",
    b"\r\n",
    b"\n",
    b"{",
    b"}",
    b"{id}",
    b"\"",
    b":",
    b"- ",
    b"---\n",
    b"  ",
    b"[",
    b"]",
    b"null",
    b"0",
    b"-1",
    b"18446744073709551616",
    b"\xff",
    "\u{ff41}".as_bytes(),
];

fn mutate(rng: &mut fastrand::Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut data = corpus[rng.usize(..corpus.len())].clone();
    for _ in 0..rng.usize(1..=4) {
        let at = rng.usize(..=data.len());
        match rng.u8(..6) {
            0 if !data.is_empty() => {
                let i = rng.usize(..data.len());
                data[i] ^= 1 << rng.u8(..8);
            }
            1 => data.insert(at, rng.u8(..)),
            2 if !data.is_empty() => {
                let end = (at + rng.usize(..16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 => {
                let token = TOKENS[rng.usize(..TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            4 if !data.is_empty() => {
                let start = rng.usize(..data.len());
                let end = (start + rng.usize(..64)).min(data.len());
                let piece = data[start..end].to_vec();
                data.splice(at..at, piece);
            }
            _ => {
                let other = &corpus[rng.usize(..corpus.len())];
                let cut = rng.usize(..=other.len());
                data.truncate(at);
                data.extend_from_slice(&other[cut..]);
            }
        }
    }
    data
}

#[test]
fn every_target_holds_over_its_corpus_and_mutations_of_it() {
    let mutations: usize = std::env::var("FUZZ_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        corpus.sort();
        assert!(!corpus.is_empty(), "{name}: the corpus is empty");
        for input in &corpus {
            target(input);
        }
        // Seeded: a failure here reproduces; the input is printed to add to the corpus.
        let mut rng = fastrand::Rng::with_seed(0x5eed ^ name.len() as u64);
        for _ in 0..mutations {
            let input = mutate(&mut rng, &corpus);
            let outcome = std::panic::catch_unwind(|| target(&input));
            if outcome.is_err() {
                panic!(
                    "target {name} failed on {:?}; add it to fuzz-targets/corpus/{name}/",
                    String::from_utf8_lossy(&input)
                );
            }
        }
    }
}
