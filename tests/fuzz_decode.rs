//! A time-bounded fuzzer for event and label decoding: mutations of real
//! events (byte flips, insertions, deletions, truncation, splices of two
//! events, deep nesting, huge numbers, odd escapes) and arbitrary bytes,
//! fed to the decoders for `DRIFTWARDEN_FUZZ_SECONDS` (default 20).
//!
//! Every input must decode without panicking, and each result must be an
//! event of a known model or an error with a known reason. (cargo-fuzz needs a nightly compiler; this runs on the stable one in CI,
//! seeded, so a failure prints the seed and input that reproduce it.)

#[path = "support/service.rs"]
mod service;

use std::time::{Duration, Instant};

use driftwarden::demo::generator::Generator;
use driftwarden::event::{FeatureLayout, decode_label_message, decode_message};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use service::Scratch;

const REASONS: [&str; 9] = [
    "too_large",
    "invalid_json",
    "not_an_object",
    "missing_model",
    "unknown_model",
    "wrong_type",
    "bad_timestamp",
    "missing_id",
    "missing_label",
];

fn budget() -> Duration {
    let seconds = std::env::var("DRIFTWARDEN_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(seconds)
}

/// Seed inputs: real events (single and batched) and labels.
fn corpus() -> Vec<Vec<u8>> {
    let mut generator = Generator::new(7, service::START_MS, service::test_plan());
    let mut corpus: Vec<Vec<u8>> = (0..32)
        .map(|i| serde_json::to_vec(&generator.event(i % 2 == 0)).unwrap())
        .collect();
    let batch: Vec<serde_json::Value> = (0..4).map(|_| generator.event(false)).collect();
    corpus.push(serde_json::to_vec(&batch).unwrap());
    corpus.push(br#"{"model":"churn","id":"req-1","label":1,"timestamp":1796292000000}"#.to_vec());
    corpus.push(br#"[{"model":"churn","id":"req-2","label":0.5}]"#.to_vec());
    corpus
}

const TOKENS: [&[u8]; 16] = [
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"\\u0000",
    b"\\ud800",
    b"1e999",
    b"-0",
    b"null",
    b"true",
    b"\"model\"",
    b"\"features\"",
    b"99999999999999999999999",
];

fn mutate(rng: &mut Xoshiro256PlusPlus, corpus: &[Vec<u8>]) -> Vec<u8> {
    let pick = |rng: &mut Xoshiro256PlusPlus, n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
    let mut input = corpus[pick(rng, corpus.len())].clone();
    let rounds = 1 + pick(rng, 8);
    for _ in 0..rounds {
        let at = pick(rng, input.len() + 1);
        match pick(rng, 8) {
            0 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] ^= 1 << pick(rng, 8);
            }
            1 => input.insert(at, rng.next_u64() as u8),
            2 if at < input.len() => {
                input.remove(at);
            }
            3 => input.truncate(at),
            4 => {
                let token = TOKENS[pick(rng, TOKENS.len())];
                input.splice(at..at, token.iter().copied());
            }
            5 => {
                let other = &corpus[pick(rng, corpus.len())];
                let from = pick(rng, other.len());
                input.splice(at..at, other[from..].iter().copied());
            }
            6 => {
                let depth = pick(rng, 2_000);
                let nested: Vec<u8> = std::iter::repeat_n(b'[', depth)
                    .chain(std::iter::repeat_n(b']', depth))
                    .collect();
                input.splice(at..at, nested);
            }
            _ => {
                let len = pick(rng, 64);
                input = (0..len).map(|_| rng.next_u64() as u8).collect();
            }
        }
    }
    input
}

#[test]
fn decoding_survives_mutated_and_arbitrary_input_for_the_time_budget() {
    let scratch = Scratch::new("fuzz");
    let (baseline, _) = service::sample_baseline(&scratch.0, 500);
    let layout = FeatureLayout::from_baseline(&baseline);
    let lookup = |model: &str, _: Option<&str>| (model == "churn").then_some(&layout);
    let corpus = corpus();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let deadline = Instant::now() + budget();
    let (mut inputs, mut events, mut rejected) = (0u64, 0u64, 0u64);
    while Instant::now() < deadline {
        for _ in 0..256 {
            let input = mutate(&mut rng, &corpus);
            let shown = || format!("seed {seed}, input {:?}", String::from_utf8_lossy(&input));
            for result in decode_message(&input, 0, 64 << 10, &lookup) {
                match result {
                    Ok(event) => {
                        assert_eq!(event.model, "churn", "{}", shown());
                        events += 1;
                    }
                    Err(error) => {
                        assert!(REASONS.contains(&error.reason()), "{error}: {}", shown());
                        assert!(!error.to_string().is_empty());
                        rejected += 1;
                    }
                }
            }
            for result in decode_label_message(&input, 0, 64 << 10) {
                if let Err(error) = result {
                    assert!(REASONS.contains(&error.reason()), "{error}: {}", shown());
                }
            }
            inputs += 1;
        }
    }
    eprintln!("seed {seed}: {inputs} inputs, {events} events decoded, {rejected} rejected");
    assert!(inputs > 1_000, "the fuzzer ran ({inputs} inputs)");
    assert!(events > 0 && rejected > 0, "both outcomes were reached");
}
