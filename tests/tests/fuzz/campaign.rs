//! The campaign runner and the byte-level mutations every target shares.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use test_support::synth::Rng;

/// A case slower than this counts as a hang.
const SLOW: Duration = Duration::from_secs(20);

pub(crate) struct Campaign {
    name: &'static str,
    pub(crate) rng: Rng,
    seed: u64,
    cases: usize,
    deadline: Option<Instant>,
}

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

impl Campaign {
    pub(crate) fn new(name: &'static str) -> Campaign {
        let seed = env("TRT_FUZZ_SEED").unwrap_or(0x5eed) ^ name.len() as u64;
        Campaign {
            name,
            rng: Rng::new(seed),
            seed,
            cases: env("TRT_FUZZ_CASES").unwrap_or(2000) as usize,
            deadline: env("TRT_FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s)),
        }
    }

    /// A campaign whose cases are slow (a network round trip each): `n` cases by default
    /// instead of [`TRT_FUZZ_CASES`]'s; a timed campaign (`TRT_FUZZ_SECONDS`) is unchanged.
    pub(crate) fn slow_cases(mut self, n: usize) -> Campaign {
        if env("TRT_FUZZ_CASES").is_none() {
            self.cases = n;
        }
        self
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n.max(1) as u64) as usize
    }

    /// Runs `case` on `count` generated inputs (or until the deadline).
    pub(crate) fn run(
        mut self,
        mut generate: impl FnMut(&mut Campaign) -> Vec<u8>,
        case: impl Fn(&[u8]),
    ) {
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let start = Instant::now();
        let mut done = 0usize;
        loop {
            match self.deadline {
                Some(d) if Instant::now() >= d => break,
                None if done >= self.cases => break,
                _ => {}
            }
            let input = generate(&mut self);
            let t = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| case(&input)));
            let slow = t.elapsed() > SLOW;
            if outcome.is_err() || slow {
                std::panic::set_hook(quiet);
                let what = outcome
                    .err()
                    .and_then(|p| {
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    })
                    .unwrap_or_default();
                let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-crashes");
                std::fs::create_dir_all(&dir).unwrap();
                let file = dir.join(format!("{}-{done}.bin", self.name));
                std::fs::write(&file, &input).unwrap();
                panic!(
                    "fuzz target {}: case {done} (seed {}) {}; input saved to {}\n{what}",
                    self.name,
                    self.seed,
                    if slow { "hung" } else { "panicked" },
                    file.display()
                );
            }
            done += 1;
        }
        std::panic::set_hook(quiet);
        println!(
            "fuzz target {}: {done} cases in {:.1} s, no panic, abort or hang (seed {})",
            self.name,
            start.elapsed().as_secs_f64(),
            self.seed
        );
    }
}

/// Byte-level mutations: flips, random bytes, deletions, duplications, truncation.
pub(crate) fn mutate_bytes(c: &mut Campaign, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + c.below(4) {
        if b.is_empty() {
            b.push(c.rng.next_u64() as u8);
            continue;
        }
        let at = c.below(b.len());
        match c.below(6) {
            0 => b[at] ^= 1 << c.below(8),
            1 => b[at] = c.rng.next_u64() as u8,
            2 => {
                let end = (at + 1 + c.below(16)).min(b.len());
                b.drain(at..end);
            }
            3 => {
                let end = (at + 1 + c.below(64)).min(b.len());
                let chunk = b[at..end].to_vec();
                b.splice(at..at, chunk);
            }
            4 => b.truncate(at),
            _ => {
                let v = [0u8, 0x7f, 0x80, 0xff][c.below(4)];
                b[at] = v;
            }
        }
    }
    b
}

pub(crate) fn extreme(c: &mut Campaign) -> i64 {
    [
        0,
        -1,
        1,
        2,
        7,
        255,
        1 << 31,
        -(1 << 31),
        i64::MAX,
        i64::MIN,
        1 << 40,
    ][c.below(11)]
}

/// Text mutations of one of `seeds`: 1–4 insertions of a byte of `alphabet`, deletions, and
/// insertions of `burst` (a long number, an exponent).
pub(crate) fn mutate_text(
    c: &mut Campaign,
    seeds: &[&str],
    alphabet: &[u8],
    burst: &[u8],
) -> Vec<u8> {
    let mut s = seeds[c.below(seeds.len())].as_bytes().to_vec();
    for _ in 0..1 + c.below(4) {
        let at = c.below(s.len() + 1);
        match c.below(3) {
            0 => s.insert(at, alphabet[c.below(alphabet.len())]),
            1 if at < s.len() => {
                s.remove(at);
            }
            _ => s.splice(at..at, burst.iter().copied()).for_each(drop),
        }
    }
    s
}
