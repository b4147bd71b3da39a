//! The fuzzing engine behind `tests/fuzz.rs`: a seeded xorshift PRNG, the time budget, and a
//! run loop that executes every input under `catch_unwind`, keeps one minimised reproducer per
//! distinct failure, and reports how many inputs it executed.
//!
//! Deterministic: the inputs tried depend only on `FUZZ_SEED` and the target's name, so a
//! failure found at execution N comes back with the same seed (and a budget long enough to
//! reach N). There is no coverage feedback; depth comes from stacking mutations on a pool of
//! recently passing mutants.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::time::{Duration, Instant};

/// The seed used when `FUZZ_SEED` is not set.
pub const DEFAULT_SEED: u64 = 0xC0DE_5EED_2026_0001;

/// Default time budget per target (`FUZZ_SECONDS`), short enough for CI.
const DEFAULT_SECONDS: f64 = 3.0;

/// A target stops early once it has found this many distinct failures.
const MAX_DISTINCT_FAILURES: usize = 8;

/// Passing mutants kept to mutate further.
const POOL_SIZE: usize = 256;

/// Bounds on minimising one failure.
const SHRINK_ATTEMPTS: usize = 20_000;
const SHRINK_TIME: Duration = Duration::from_secs(5);

/// `FUZZ_SEED`: decimal or `0x` hex; any other text is hashed, so every value is usable.
pub fn base_seed() -> u64 {
    let Ok(text) = std::env::var("FUZZ_SEED") else {
        return DEFAULT_SEED;
    };
    let text = text.trim();
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16).ok(),
        None => text.replace('_', "").parse().ok(),
    };
    parsed.unwrap_or_else(|| fnv1a(text.as_bytes()))
}

/// `FUZZ_SECONDS` per target (fractions allowed), default 3.
pub fn budget() -> Duration {
    let seconds = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .unwrap_or(DEFAULT_SECONDS);
    Duration::from_secs_f64(seconds)
}

/// FNV-1a, to derive a per-target seed from its name.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// xorshift64* (Vigna): small, fast, good enough to drive mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Rng {
        let mut rng = Rng((seed ^ 0x9E37_79B9_7F4A_7C15).max(1));
        for _ in 0..4 {
            rng.next();
        }
        rng
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// Uniform in `low..=high`.
    pub fn range(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high.saturating_sub(low) + 1)
    }

    /// True once in `n` times.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A random element (`None` for an empty slice).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }
}

thread_local! {
    /// Set while a fuzz input runs: its panics are expected findings, recorded, not printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs (once per process) a panic hook that records the panics of fuzz inputs on this
/// thread instead of printing them, and leaves every other panic to the previous hook.
fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
                return;
            }
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(non-string panic payload)".to_string());
            let location = info.location().map_or_else(
                || "unknown location".to_string(),
                |l| format!("{}:{}", l.file(), l.line()),
            );
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(format!("{location}|{message}")));
        }));
    });
}

/// Why an input failed. Property violations read `"property-name: details"`; the part before
/// the colon is the signature. A panic's signature is its source location.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What makes two failures the same bug.
    pub signature: String,
    /// The message.
    pub detail: String,
}

/// Runs `check` on `input` with panics caught.
pub fn execute<I>(check: &dyn Fn(&I) -> Result<(), String>, input: &I) -> Result<(), Failure> {
    install_panic_hook();
    QUIET.with(|quiet| quiet.set(true));
    let outcome = catch_unwind(AssertUnwindSafe(|| check(input)));
    QUIET.with(|quiet| quiet.set(false));
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(violation)) => Err(Failure {
            signature: violation
                .split_once(':')
                .map_or(violation.as_str(), |(name, _)| name)
                .to_string(),
            detail: violation,
        }),
        Err(_) => {
            let recorded = LAST_PANIC.with(|last| last.borrow_mut().take());
            let recorded = recorded.unwrap_or_else(|| "unknown location|no message".to_string());
            let (location, message) = recorded.split_once('|').unwrap_or((recorded.as_str(), ""));
            Err(Failure {
                signature: format!("panic at {location}"),
                detail: format!("panicked at {location}: {message}"),
            })
        }
    }
}

/// One fuzz target: its corpus and how to mutate, check, shrink and print an input.
pub struct Target<'a, I> {
    /// The target's name; also salts its seed.
    pub name: &'static str,
    /// Realistic inputs to start from; every one is checked unmutated first.
    pub corpus: Vec<I>,
    /// A mutant of the first input; the slice is the corpus, for splicing.
    pub mutate: &'a dyn Fn(&mut Rng, &I, &[I]) -> I,
    /// The properties: `Err("name: details")` on a violation.
    pub check: &'a dyn Fn(&I) -> Result<(), String>,
    /// Smaller variants of an input, biggest reductions first (lazily: there may be many).
    pub shrink: &'a dyn Fn(&I) -> Box<dyn Iterator<Item = I>>,
    /// The input as a regression record (JSON text, see `tests/fuzz/regressions/README.md`).
    pub render: &'a dyn Fn(&I) -> String,
}

/// A distinct failure with its minimised reproducer.
#[derive(Debug, Clone)]
pub struct Found {
    /// The failure the minimised input shows.
    pub failure: Failure,
    /// The minimised input as a regression record.
    pub reproducer: String,
    /// The execution that found it (0-based; seeds first).
    pub execution: u64,
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    /// The target.
    pub name: &'static str,
    /// The target's own seed (derived from `FUZZ_SEED`).
    pub seed: u64,
    /// Inputs executed (shrinking not counted).
    pub executions: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Distinct failures.
    pub found: Vec<Found>,
}

impl Report {
    /// Prints the figures and every failure (with its reproducer) to stderr.
    pub fn print(&self) {
        let seconds = self.elapsed.as_secs_f64();
        eprintln!(
            "fuzz[{}]: {} executions in {:.2} s ({:.0}/s), FUZZ_SEED={:#x} (target seed {:#018x}), {} distinct failure(s)",
            self.name,
            self.executions,
            seconds,
            self.executions as f64 / seconds.max(1e-9),
            base_seed(),
            self.seed,
            self.found.len()
        );
        for found in &self.found {
            eprintln!(
                "fuzz[{}]: FAILURE {}\n  {}\n  found at execution {} (FUZZ_SEED={:#x}); minimised reproducer \
                 (save as tests/fuzz/regressions/<name>.json):\n{}",
                self.name,
                found.failure.signature,
                found.failure.detail,
                found.execution,
                base_seed(),
                found.reproducer
            );
        }
    }

    /// A one-paragraph summary for a failing assertion.
    pub fn summary(&self) -> String {
        let mut text = format!("{} distinct failure(s) in {}:", self.found.len(), self.name);
        for found in &self.found {
            text.push_str(&format!(
                "\n- {}\n  {}\n  reproducer: {}",
                found.failure.signature, found.failure.detail, found.reproducer
            ));
        }
        text
    }
}

/// Fuzzes `target` for the time budget.
pub fn run<I: Clone>(target: &Target<'_, I>) -> Report {
    let seed = base_seed() ^ fnv1a(target.name.as_bytes());
    let mut rng = Rng::new(seed);
    let budget = budget();
    let started = Instant::now();
    let mut found: Vec<Found> = Vec::new();
    let mut pool: Vec<I> = Vec::new();
    let mut executions = 0u64;

    let consider = |input: I, execution: u64, found: &mut Vec<Found>| -> Option<I> {
        match execute(target.check, &input) {
            Ok(()) => Some(input),
            Err(failure) => {
                if !found
                    .iter()
                    .any(|f| f.failure.signature == failure.signature)
                {
                    let (minimal, failure) = minimise(target, input, failure);
                    found.push(Found {
                        failure,
                        reproducer: (target.render)(&minimal),
                        execution,
                    });
                }
                None
            }
        }
    };

    for input in &target.corpus {
        consider(input.clone(), executions, &mut found);
        executions += 1;
    }
    if target.corpus.is_empty() {
        return Report {
            name: target.name,
            seed,
            executions,
            elapsed: started.elapsed(),
            found,
        };
    }
    while started.elapsed() < budget && found.len() < MAX_DISTINCT_FAILURES {
        let base = match rng.pick(&pool) {
            Some(mutant) if rng.one_in(3) => mutant,
            _ => &target.corpus[rng.below(target.corpus.len())],
        };
        let mut input = (target.mutate)(&mut rng, base, &target.corpus);
        for _ in 0..rng.below(4) {
            input = (target.mutate)(&mut rng, &input, &target.corpus);
        }
        if let Some(passing) = consider(input, executions, &mut found) {
            if pool.len() < POOL_SIZE {
                pool.push(passing);
            } else if rng.one_in(4) {
                let slot = rng.below(pool.len());
                pool[slot] = passing;
            }
        }
        executions += 1;
    }
    Report {
        name: target.name,
        seed,
        executions,
        elapsed: started.elapsed(),
        found,
    }
}

/// Greedy minimisation: take the first smaller variant that fails the same way, repeat.
fn minimise<I: Clone>(target: &Target<'_, I>, input: I, failure: Failure) -> (I, Failure) {
    let started = Instant::now();
    let mut current = (input, failure);
    let mut attempts = 0usize;
    'outer: loop {
        for candidate in (target.shrink)(&current.0) {
            if attempts >= SHRINK_ATTEMPTS || started.elapsed() > SHRINK_TIME {
                break 'outer;
            }
            attempts += 1;
            if let Err(failure) = execute(target.check, &candidate)
                && failure.signature == current.1.signature
            {
                current = (candidate, failure);
                continue 'outer;
            }
        }
        break;
    }
    current
}
