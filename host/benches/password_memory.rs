//! What password checks cost the process in memory: 64 verifications at once, twice, on
//! the host's hashing threads, printing the peak resident memory (`VmHWM`), the resident
//! memory after, and checks per second of wall and of CPU time. Then the same in a child
//! process the way the host checked before it kept one buffer per thread (argon2's own
//! `verify_password`, which allocates `m` KiB per call, on as many threads, started for
//! each round), for comparison in the same sitting. Not a timed test: it prints figures
//! for a person. `cargo bench -p gatehouse --bench password_memory` (or `cargo test -p
//! gatehouse --bench password_memory` for a quick build: argon2 itself is always
//! optimised).

use std::sync::{Arc, Mutex};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use gatehouse::{clock::Randomness, passwords::Passwords};
use gatehouse_config::PasswordHashing;

const CONCURRENT: usize = 64;
const ROUNDS: usize = 2;
/// Set in the child process that measures the allocating way.
const MODE: &str = "GATEHOUSE_BENCH_PASSWORDS_ALLOCATING";

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix(field)?.strip_prefix(':')?;
                rest.trim().trim_end_matches("kB").trim().parse().ok()
            })
        })
        .unwrap_or(0)
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which may hold spaces) end with ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn report(label: &str, round: usize, matched: usize, wall: f64, cpu: f64) {
    println!(
        "password_memory: {label} round {round}: {matched}/{CONCURRENT} matched, {:.1} checks/s, \
         {:.1} checks per CPU-second, VmHWM {} MiB, VmRSS {} MiB",
        CONCURRENT as f64 / wall,
        CONCURRENT as f64 / cpu.max(f64::EPSILON),
        status_kib("VmHWM") / 1024,
        status_kib("VmRSS") / 1024
    );
}

#[allow(clippy::disallowed_methods)] // a benchmark measures real time
fn timed(run: impl FnOnce() -> usize) -> (usize, f64, f64) {
    let (cpu, started) = (cpu_seconds(), std::time::Instant::now());
    let matched = run();
    (
        matched,
        started.elapsed().as_secs_f64(),
        cpu_seconds() - cpu,
    )
}

/// The host's way: `Passwords` (hashing threads with one buffer each).
fn pooled() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let random = Randomness::system();
    // The default cost (OWASP's), with a queue that holds every check: none is busy.
    let settings = PasswordHashing {
        queue: CONCURRENT as u32,
        ..PasswordHashing::default()
    };
    let passwords = Passwords::new(&settings, &random);
    let stored = runtime
        .block_on(passwords.hash("correct horse", &random))
        .expect("hash");
    println!(
        "password_memory: hashing threads: idle after one hash: VmHWM {} MiB, VmRSS {} MiB",
        status_kib("VmHWM") / 1024,
        status_kib("VmRSS") / 1024
    );
    for round in 1..=ROUNDS {
        let (matched, wall, cpu) = timed(|| {
            runtime.block_on(async {
                let checks: Vec<_> = (0..CONCURRENT)
                    .map(|_| {
                        let (passwords, stored) = (passwords.clone(), stored.clone());
                        tokio::spawn(
                            async move { passwords.verify("correct horse", &stored).await },
                        )
                    })
                    .collect();
                let mut matched = 0;
                for check in checks {
                    matched += usize::from(matches!(check.await, Ok(Ok(true))));
                }
                matched
            })
        });
        report("hashing threads", round, matched, wall, cpu);
    }
}

/// The way before: as many threads (one per core), each check allocating its own memory.
fn allocating() {
    let stored = gatehouse::passwords::hash("correct horse", &Randomness::system()).expect("hash");
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    for round in 1..=ROUNDS {
        let (matched, wall, cpu) = timed(|| {
            let left = Arc::new(Mutex::new(CONCURRENT));
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (left, stored) = (Arc::clone(&left), stored.clone());
                    std::thread::spawn(move || {
                        let mut matched = 0;
                        loop {
                            {
                                let mut left = left.lock().expect("lock");
                                if *left == 0 {
                                    return matched;
                                }
                                *left -= 1;
                            }
                            let parsed = PasswordHash::new(&stored).expect("PHC");
                            matched += usize::from(
                                Argon2::default()
                                    .verify_password(b"correct horse", &parsed)
                                    .is_ok(),
                            );
                        }
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
        });
        report("allocating per check (before)", round, matched, wall, cpu);
    }
}

fn main() {
    if std::env::var_os(MODE).is_some() {
        allocating();
        return;
    }
    pooled();
    let child = std::env::current_exe()
        .and_then(|exe| std::process::Command::new(exe).env(MODE, "1").status());
    if let Err(error) = child {
        eprintln!("password_memory: the comparison run did not start: {error}");
    }
}
