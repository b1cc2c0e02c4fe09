//! hakmem-bench: compares hakmem with glibc, mimalloc, jemalloc and snmalloc (see `docs/BENCH.md`).
//!
//! `hakmem-bench` runs every suite; `hakmem-bench compare -- CMD ARGS...` runs any program under each
//! allocator available as a shared library. Results go to `target/hakmem-bench/`.

mod alloc;
mod chart;
mod compare;
mod elf;
mod learn;
mod learnapi;
mod report;
mod results;
mod rng;
mod runner;
mod stats;
mod suites;
mod table;
mod worker;

use alloc::AllocKind;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "hakmem-bench",
    version,
    about = "Benchmarks hakmem against glibc, mimalloc, jemalloc and snmalloc",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the benchmark suites (what a bare `hakmem-bench` does).
    Run(RunArgs),
    /// Run any program under each allocator available as a shared library (LD_PRELOAD) and compare
    /// wall, user and sys time, peak RSS and page faults: `hakmem-bench compare -- CMD ARGS...`
    Compare(compare::CompareArgs),
    /// List the suites and scenarios.
    List,
    /// Internal: run one measurement (the runner re-executes itself with this).
    #[command(name = "__worker", hide = true)]
    Worker { job: String },
    /// Internal: run one program for `compare` from a small process.
    #[command(name = "__launch", hide = true)]
    Launch(compare::LaunchArgs),
}

#[derive(Args, Clone, Default)]
struct RunArgs {
    /// A quarter of the default work and 3 repetitions: about 20 seconds on 2 cores.
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// 5 times the default work and 10 repetitions: steadier figures, about 11 minutes.
    #[arg(long)]
    full: bool,
    /// Suites to run, comma-separated: seed, fastpath, larson, extended, learn (default: all but
    /// learn, which compares hakmem's own strategies and runs only when named).
    #[arg(long, value_delimiter = ',')]
    suite: Vec<String>,
    /// Scenarios to run, comma-separated ids such as `seed/json` or `larson/tput` (see `list`).
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<String>,
    /// Allocators to compare, comma-separated (default: all five).
    #[arg(long, value_delimiter = ',', value_enum)]
    allocators: Vec<AllocKind>,
    /// Repetitions per allocator (default: 3 quick, 5 default, 10 full; learn: 2, 3, 5 per variant).
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
    reps: Option<usize>,
    /// Threads for the N-thread scenarios and Larson (default: the number of cores).
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
    threads: Option<usize>,
    /// Larson: seconds each measurement runs (default: 0.2 quick, 0.3 default, 2 full).
    #[arg(long)]
    larson_secs: Option<f64>,
    /// Larson: smallest block size; overrides the profiles' (tput 8, pf 2048).
    #[arg(long)]
    larson_min: Option<usize>,
    /// Larson: largest block size; overrides the profiles' (tput 128, pf 32768).
    #[arg(long)]
    larson_max: Option<usize>,
    /// Larson: blocks per thread; overrides the profiles' (tput 1024, pf 10000).
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
    larson_chunks: Option<usize>,
    /// Larson: random seed (default 12345).
    #[arg(long)]
    larson_seed: Option<u64>,
    /// Larson: thread count (default: --threads).
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
    larson_threads: Option<usize>,
    /// Output directory (default: target/hakmem-bench next to this executable's target/<profile>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seconds before a worker is killed as hung.
    #[arg(long, default_value_t = 300, value_parser = positive_u64, allow_hyphen_values = true)]
    timeout: u64,
    /// No progress bar and no per-suite tables while running.
    #[arg(long)]
    no_progress: bool,
}

/// A count that must be at least 1 (`--reps`, `--threads`, ...); "-1" reaches here too, rather than
/// being taken for an option.
pub fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("must be a positive integer".into()),
    }
}

/// As [`positive`], for seconds.
pub fn positive_u64(s: &str) -> Result<u64, String> {
    positive(s).map(|n| n as u64)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Worker { job }) => match worker::worker_main(&job) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hakmem-bench worker: {e}");
                ExitCode::from(3)
            }
        },
        Some(Cmd::List) => {
            for s in suites::SCENARIOS {
                println!("{:<24} {}", s.id(), s.what);
            }
            ExitCode::SUCCESS
        }
        Some(Cmd::Launch(args)) => compare::launcher_main(args),
        Some(Cmd::Compare(args)) => compare::main(args, &default_out_dir()),
        Some(Cmd::Run(args)) => run_main(args),
        None => run_main(cli.run),
    }
}

fn run_main(args: RunArgs) -> ExitCode {
    let started = Instant::now();
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hakmem-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let out = args.out.clone().unwrap_or_else(default_out_dir);
    let learn = if cfg.learn.is_empty() {
        String::new()
    } else {
        format!(
            " + learn: {} parts, {} variants x {} repetitions",
            cfg.learn.len(),
            learn::variants().len(),
            cfg.learn_reps
        )
    };
    eprintln!(
        "hakmem-bench: {} scenarios x {} allocators x {} repetitions{learn} ({} mode), {} cores; results in {}",
        cfg.scenarios.len(),
        cfg.allocators.len(),
        cfg.reps,
        cfg.mode,
        results::cores(),
        out.display()
    );
    let mut res = runner::run(&cfg);
    if !cfg.progress {
        for t in table::tables(&res, &runner::COLUMNS, results::TIME_NS) {
            println!("{}", t.render_text());
        }
    }
    if !cfg.learn.is_empty() {
        learn::run(&cfg, &mut res);
        if let Some(l) = &res.learn {
            println!("{}", l.render_text());
        }
    }
    res.info.loadavg_end = results::loadavg();
    let time = table::summary(&res, "time_ns");
    if !time.is_empty() {
        println!("Geometric mean of time/op relative to mimalloc (lower is better): {time}");
        println!(
            "Geometric mean of peak RSS relative to mimalloc: {}\n",
            table::summary(&res, "peak_rss_kib")
        );
    }
    let written = res.write(&out, "results").and_then(|mut files| {
        files.extend(report::write(
            &res,
            &out,
            "report",
            &runner::COLUMNS,
            results::TIME_NS,
        )?);
        Ok(files)
    });
    match written {
        Ok(files) => eprintln!(
            "hakmem-bench: wrote {} in {:.0} s",
            report::list_files(&out, &files),
            started.elapsed().as_secs_f64()
        ),
        Err(e) => {
            eprintln!(
                "hakmem-bench: cannot write results to {}: {e}",
                out.display()
            );
            return ExitCode::FAILURE;
        }
    }
    if res.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("hakmem-bench: {} measurement(s) failed:", res.errors.len());
        for e in &res.errors {
            eprintln!("  {} on {}: {}", e.scenario, e.allocator, e.message);
        }
        ExitCode::FAILURE
    }
}

fn config(a: &RunArgs) -> Result<runner::Config, String> {
    // Units of work per measurement (see docs/BENCH.md), repetitions, Larson's seconds, and the
    // learn suite's units and repetitions per variant.
    let (mode, scale, reps, larson_secs, learn_scale, learn_reps) = if a.quick {
        ("quick", 0.25, 3, 0.2, 0.25, 2)
    } else if a.full {
        ("full", 5.0, 10, 2.0, 5.0, 5)
    } else {
        ("default", 1.0, 5, 0.3, 2.0, 3)
    };
    for s in &a.suite {
        if !suites::SUITES.contains(&s.as_str()) {
            return Err(format!(
                "unknown suite `{s}`; the suites are {}",
                suites::SUITES.join(", ")
            ));
        }
    }
    for s in &a.scenario {
        if suites::find(s).is_none() {
            return Err(format!(
                "unknown scenario `{s}`; `hakmem-bench list` shows them"
            ));
        }
    }
    // The opt-in suites (learn) run only when --suite or --scenario names them.
    let (learn, scenarios): (Vec<&'static suites::Scenario>, Vec<_>) = suites::SCENARIOS
        .iter()
        .filter(|s| a.suite.is_empty() || a.suite.iter().any(|x| x == s.suite))
        .filter(|s| a.scenario.is_empty() || a.scenario.contains(&s.id()))
        .filter(|s| {
            !(a.suite.is_empty() && a.scenario.is_empty() && suites::OPT_IN.contains(&s.suite))
        })
        .partition(|s| s.suite == "learn");
    if scenarios.is_empty() && learn.is_empty() {
        return Err("no scenario matches --suite and --scenario together".into());
    }
    let mut allocators = if scenarios.is_empty() {
        vec![AllocKind::Hakmem]
    } else if a.allocators.is_empty() {
        AllocKind::ALL.to_vec()
    } else {
        a.allocators.clone()
    };
    allocators.dedup();
    let threads = a.threads.unwrap_or_else(results::cores);
    let larson = |mut p: suites::LarsonParams| {
        p.min = a.larson_min.unwrap_or(p.min);
        p.max = a.larson_max.unwrap_or(p.max);
        p.chunks = a.larson_chunks.unwrap_or(p.chunks);
        p.seed = a.larson_seed.unwrap_or(p.seed);
        p
    };
    let lt = a.larson_threads.unwrap_or(threads);
    let ls = a.larson_secs.unwrap_or(larson_secs);
    if !(ls > 0.0 && ls < 3600.0) {
        return Err(format!(
            "--larson-secs {ls}: expected a positive number of seconds"
        ));
    }
    let mut notes = Vec::new();
    let mut larson_pf = larson(suites::larson::pf(lt, ls));
    // A smaller size for --quick: its blocks per thread scale with the work (filling and freeing
    // 10000 blocks of ~17 KiB per thread would take most of a quick run).
    if a.larson_chunks.is_none() && scale < 1.0 {
        larson_pf.chunks = ((larson_pf.chunks as f64 * scale) as usize).max(64);
    }
    // Larson's pf profile keeps (threads + 1) x chunks blocks of ~17 KiB live: bound it to a quarter of
    // the machine's memory on machines with many cores, unless --larson-chunks says otherwise.
    let avg = (larson_pf.min + larson_pf.max) / 2;
    let budget = phys_mem_bytes() / 4;
    let live = (lt + 1) * larson_pf.chunks * avg;
    if a.larson_chunks.is_none() && budget > 0 && live > budget {
        let chunks = (budget / ((lt + 1) * avg)).max(64);
        let n = format!(
            "larson/pf: {} blocks per thread would keep {} MiB live on {lt} threads; using {chunks} (--larson-chunks overrides)",
            larson_pf.chunks,
            live >> 20
        );
        eprintln!("hakmem-bench: {n}");
        notes.push(n);
        larson_pf.chunks = chunks;
    }
    let params = suites::Params {
        scale,
        threads,
        larson_tput: larson(suites::larson::tput(lt, ls)),
        larson_pf,
    };
    if params.larson_tput.min > params.larson_tput.max {
        return Err("--larson-min is larger than --larson-max".into());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    let reps = a.reps.unwrap_or(reps);
    Ok(runner::Config {
        exe,
        scenarios,
        allocators,
        reps,
        params,
        timeout: Duration::from_secs(a.timeout.max(1)),
        mode: mode.into(),
        command: std::env::args().collect(),
        progress: !a.no_progress,
        notes,
        learn,
        learn_scale,
        learn_reps: a.reps.unwrap_or(learn_reps),
    })
}

/// Physical memory in bytes (0 when unknown).
fn phys_mem_bytes() -> usize {
    // SAFETY: sysconf has no preconditions.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages > 0 && size > 0 {
        pages as usize * size as usize
    } else {
        0
    }
}

/// `target/hakmem-bench` of the target directory this executable was built in, else
/// `./target/hakmem-bench`.
fn default_out_dir() -> PathBuf {
    let exe = std::env::current_exe().ok();
    let target = exe.as_deref().and_then(Path::parent).and_then(|profile| {
        let profile = if profile.ends_with("deps") {
            profile.parent()?
        } else {
            profile
        };
        let target = profile.parent()?;
        target
            .join("CACHEDIR.TAG")
            .exists()
            .then(|| target.to_path_buf())
    });
    target
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("hakmem-bench")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learn_runs_only_when_asked_for() {
        let c = config(&RunArgs::default()).unwrap();
        assert!(c.learn.is_empty());
        assert!(c.scenarios.iter().all(|s| s.suite != "learn"));
        let a = RunArgs {
            suite: vec!["learn".into()],
            ..RunArgs::default()
        };
        let c = config(&a).unwrap();
        assert!(c.scenarios.is_empty());
        assert_eq!(c.learn.len(), 7);
        assert_eq!(c.allocators, vec![AllocKind::Hakmem]);
        let a = RunArgs {
            scenario: vec!["learn/vm".into(), "seed/json".into()],
            ..RunArgs::default()
        };
        let c = config(&a).unwrap();
        assert_eq!(c.learn.len(), 1);
        assert_eq!(c.scenarios.len(), 1);
    }
}
