//! `hakmem-bench compare -- CMD ARGS...`: runs any program under each allocator available as a shared
//! library (LD_PRELOAD; glibc is the program as it is), alternating allocators over the repetitions, and
//! reports wall, user and sys time, peak RSS and minor page faults with the same table and JSON as the
//! suites.

use crate::elf;
use crate::results::{self, Collector, Failure, Metric, Results, RunInfo};
use crate::table;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const COLUMNS: [Metric; 5] = [
    results::WALL_MS,
    results::USER_MS,
    results::SYS_MS,
    results::MINFLT,
    results::PEAK_RSS,
];

/// The allocators `compare` knows, in the order they run, with the Debian package that ships each.
const KNOWN: [(&str, &str); 5] = [
    ("hakmem", "cargo build --release -p hakmem-preload"),
    ("glibc", ""),
    ("mimalloc", "apt-get install libmimalloc2.0"),
    ("jemalloc", "apt-get install libjemalloc2"),
    ("tcmalloc", "apt-get install libtcmalloc-minimal4"),
];

#[derive(clap::Args, Clone)]
pub struct CompareArgs {
    /// Allocators, comma-separated: hakmem, glibc, mimalloc, jemalloc, tcmalloc, or a name given with
    /// --lib (default: all of them that are installed; a missing hakmem library is an error).
    #[arg(long, value_delimiter = ',')]
    allocators: Vec<String>,
    /// Another allocator library to compare, as NAME=PATH (repeatable).
    #[arg(long = "lib", value_name = "NAME=PATH")]
    libs: Vec<String>,
    /// libhakmem.so to use (default: $HAKMEM_LIB, else next to this executable).
    #[arg(long)]
    hakmem_lib: Option<PathBuf>,
    /// Repetitions per allocator.
    #[arg(long, default_value_t = 5, value_parser = crate::positive, allow_hyphen_values = true)]
    reps: usize,
    /// Output directory (default: target/hakmem-bench); writes compare.json, compare.csv, compare.md
    /// and its charts.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Let the program's stdout and stderr through (default: discarded).
    #[arg(long)]
    show_output: bool,
    /// Seconds before a run is killed.
    #[arg(long, default_value_t = 600, value_parser = crate::positive_u64, allow_hyphen_values = true)]
    timeout: u64,
    /// The program and its arguments (after `--`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "CMD"
    )]
    cmd: Vec<String>,
}

/// Where an allocator comes from: nothing to preload (glibc) or a library.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub name: String,
    pub lib: Option<PathBuf>,
}

fn lib_dirs() -> Vec<PathBuf> {
    let arch = std::env::consts::ARCH;
    [
        format!("/usr/lib/{arch}-linux-gnu"),
        format!("/lib/{arch}-linux-gnu"),
        "/usr/lib64".into(),
        "/usr/lib".into(),
        "/usr/local/lib".into(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

fn find_system_lib(names: &[&str]) -> Option<PathBuf> {
    lib_dirs()
        .into_iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.exists())
}

/// libhakmem.so: the option, $HAKMEM_LIB, or next to this executable (and in the release directory
/// beside it).
pub fn hakmem_lib(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("HAKMEM_LIB").map(PathBuf::from))
    {
        return if p.exists() {
            Ok(p)
        } else {
            Err(format!(
                "{} (from --hakmem-lib or HAKMEM_LIB) does not exist",
                p.display()
            ))
        };
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no executable directory")?;
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let tries = [
        dir.join("libhakmem.so"),
        dir.with_file_name("release").join("libhakmem.so"),
    ];
    tries.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
        format!(
            "libhakmem.so not found in {}: build it with `cargo build --release -p hakmem-preload`, or set HAKMEM_LIB",
            dir.display()
        )
    })
}

/// Resolves one allocator name to a library, or says why it cannot be used.
fn resolve(name: &str, a: &CompareArgs) -> Result<Candidate, String> {
    let extra = a
        .libs
        .iter()
        .filter_map(|s| s.split_once('='))
        .find(|(n, _)| *n == name);
    let lib = match (name, extra) {
        (_, Some((_, path))) => {
            let p = PathBuf::from(path);
            if !p.exists() {
                return Err(format!("{path} does not exist"));
            }
            Some(p)
        }
        ("glibc", None) => None,
        ("hakmem", None) => Some(hakmem_lib(a.hakmem_lib.as_deref())?),
        ("mimalloc", None) => Some(
            find_system_lib(&["libmimalloc.so.2", "libmimalloc.so.3", "libmimalloc.so"])
                .ok_or("not installed")?,
        ),
        ("jemalloc", None) => {
            Some(find_system_lib(&["libjemalloc.so.2", "libjemalloc.so"]).ok_or("not installed")?)
        }
        ("tcmalloc", None) => Some(
            find_system_lib(&[
                "libtcmalloc_minimal.so.4",
                "libtcmalloc_minimal.so",
                "libtcmalloc.so.4",
            ])
            .ok_or("not installed")?,
        ),
        (other, None) => {
            return Err(format!(
                "unknown allocator `{other}` (known: {}, or give --lib {other}=PATH)",
                names().join(", ")
            ))
        }
    };
    if let Some(p) = &lib {
        elf::check_malloc_library(p)?;
    }
    Ok(Candidate {
        name: name.into(),
        lib,
    })
}

fn names() -> Vec<&'static str> {
    KNOWN.iter().map(|k| k.0).collect()
}

fn hint(name: &str) -> &'static str {
    KNOWN
        .iter()
        .find(|k| k.0 == name)
        .map(|k| k.1)
        .unwrap_or("")
}

/// One run's figures.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Run {
    pub wall_ms: f64,
    pub user_ms: f64,
    pub sys_ms: f64,
    pub peak_rss_kib: f64,
    pub minflt: f64,
}

fn ms(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 * 1e3 + tv.tv_usec as f64 / 1e3
}

/// The hidden `__launch` subcommand: runs the command once and writes its figures to a file.
#[derive(clap::Args, Clone)]
pub struct LaunchArgs {
    #[arg(long)]
    result: PathBuf,
    #[arg(long)]
    lib: Option<PathBuf>,
    #[arg(long)]
    show_output: bool,
    #[arg(long)]
    timeout: u64,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    cmd: Vec<String>,
}

/// Linux counts a process's peak RSS from its parent's memory at the time it was spawned (the address
/// space it replaced at exec), so a program started straight from the runner could never show less
/// than the runner's own peak. The runner therefore starts a fresh, small launcher process (this
/// executable with `__launch`), which starts the program, waits for it and writes the figures.
pub fn launcher_main(a: LaunchArgs) -> ExitCode {
    let r = run_once(
        &a.cmd,
        a.lib.as_deref(),
        a.show_output,
        Duration::from_secs(a.timeout.max(1)),
    );
    let json = serde_json::to_string(&r).expect("serialise");
    match std::fs::write(&a.result, json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "hakmem-bench __launch: cannot write {}: {e}",
                a.result.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// Runs `cmd` once under `lib` through a launcher process (see [`launcher_main`]).
pub fn measure(
    cmd: &[String],
    lib: Option<&Path>,
    show_output: bool,
    timeout: Duration,
) -> Result<Run, String> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    let result = std::env::temp_dir().join(format!(
        "hakmem-bench-{}-{}.json",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut c = Command::new(exe);
    c.arg("__launch")
        .arg("--result")
        .arg(&result)
        .arg("--timeout")
        .arg(timeout.as_secs().to_string());
    if let Some(l) = lib {
        c.arg("--lib").arg(l);
    }
    if show_output {
        c.arg("--show-output");
    }
    c.arg("--")
        .args(cmd)
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null());
    if !show_output {
        c.stdout(Stdio::null()).stderr(Stdio::piped());
    }
    let out = c
        .spawn()
        .and_then(|ch| ch.wait_with_output())
        .map_err(|e| format!("cannot start the launcher: {e}"))?;
    let text = std::fs::read_to_string(&result);
    let _ = std::fs::remove_file(&result);
    match text {
        Ok(t) => serde_json::from_str::<Result<Run, String>>(&t)
            .map_err(|e| format!("bad launcher result: {e}"))?,
        Err(_) => Err(format!(
            "the launcher failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Finds `prog` on PATH (or takes it as a path when it has a slash).
fn resolve_program(prog: &str) -> Result<PathBuf, String> {
    if prog.contains('/') {
        return Ok(PathBuf::from(prog));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("`{prog}`: command not found"))
}

fn cstr(b: &[u8]) -> Result<CString, String> {
    CString::new(b).map_err(|_| "an argument contains a NUL byte".to_string())
}

/// Starts `cmd` with fork + execve. A forked child's address space holds only the launcher's anonymous
/// pages, so its peak RSS starts near zero rather than at the launcher's (vfork-based spawning would
/// hand it the launcher's whole peak).
fn spawn_forked(
    cmd: &[String],
    lib: Option<&Path>,
    show_output: bool,
) -> Result<libc::pid_t, String> {
    let prog = cstr(resolve_program(&cmd[0])?.as_os_str().as_bytes())?;
    let args = cmd
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != "LD_PRELOAD")
        .map(|(k, v)| cstr(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect::<Result<_, _>>()?;
    if let Some(l) = lib {
        env.push(cstr(&[b"LD_PRELOAD=", l.as_os_str().as_bytes()].concat())?);
    }
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: opening /dev/null with a valid C string.
    let null_in = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // SAFETY: as above.
    let null_out = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    // SAFETY: the launcher is single-threaded here; the child only calls async-signal-safe functions
    // (dup2, execve, _exit) on data prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the child, see above.
        unsafe {
            libc::dup2(null_in, 0);
            if !show_output {
                libc::dup2(null_out, 1);
                libc::dup2(null_out, 2);
            }
            libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
    }
    // SAFETY: closing descriptors we opened.
    unsafe {
        libc::close(null_in);
        libc::close(null_out);
    }
    if pid < 0 {
        return Err(format!("fork failed: {}", std::io::Error::last_os_error()));
    }
    Ok(pid)
}

/// Runs `cmd` once with `lib` preloaded (none: LD_PRELOAD removed) and takes its rusage from wait4.
pub fn run_once(
    cmd: &[String],
    lib: Option<&Path>,
    show_output: bool,
    timeout: Duration,
) -> Result<Run, String> {
    let start = Instant::now();
    let pid = spawn_forked(cmd, lib, show_output)?;
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout) {
            // SAFETY: the child has not been reaped yet (we reap it only in wait4 below, which has not
            // returned), so pid still names it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return true;
        }
        false
    });
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = loop {
        // SAFETY: pid is our child; status and ru are valid out-parameters.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    let wall = start.elapsed();
    let _ = done_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    if r != pid {
        return Err(format!("wait4 failed: {}", std::io::Error::last_os_error()));
    }
    if timed_out {
        return Err(format!("killed after {} s (--timeout)", timeout.as_secs()));
    }
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        return Err(format!(
            "killed by signal {sig} ({})",
            crate::worker::signal_name(sig)
        ));
    }
    if libc::WEXITSTATUS(status) != 0 {
        let code = libc::WEXITSTATUS(status);
        let hint = if code == 127 {
            " (the program could not be executed)"
        } else {
            ""
        };
        return Err(format!("exited with status {code}{hint}"));
    }
    Ok(Run {
        wall_ms: wall.as_secs_f64() * 1e3,
        user_ms: ms(ru.ru_utime),
        sys_ms: ms(ru.ru_stime),
        peak_rss_kib: ru.ru_maxrss as f64,
        minflt: ru.ru_minflt as f64,
    })
}

/// The program and as many of its arguments as fit in a narrow table column, then `...`: the
/// scenario's name in the tables (the whole command is printed once above them).
pub fn short_command(cmd: &[String]) -> String {
    const MAX: usize = 28;
    let Some((prog, args)) = cmd.split_first() else {
        return String::new();
    };
    let mut s = Path::new(prog)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| prog.clone());
    for a in args {
        let a = crate::report::shell_quote(a);
        if s.chars().count() + 1 + a.chars().count() > MAX {
            s.push_str(" ...");
            break;
        }
        s.push(' ');
        s.push_str(&a);
    }
    s
}

/// What `--allocators` may name: the known allocators and the names given with `--lib`.
fn allowed_names(a: &CompareArgs) -> Vec<String> {
    names()
        .into_iter()
        .map(String::from)
        .chain(
            a.libs
                .iter()
                .filter_map(|s| s.split_once('='))
                .map(|(n, _)| n.to_string()),
        )
        .collect()
}

/// A usage error, worded and exiting (status 2) as clap does for the main command's options.
fn usage_error(msg: String) -> ExitCode {
    use clap::CommandFactory;
    let mut cmd = crate::Cli::command();
    let sub = cmd
        .find_subcommand_mut("compare")
        .expect("compare subcommand")
        .clone();
    sub.bin_name("hakmem-bench compare")
        .error(clap::error::ErrorKind::InvalidValue, msg)
        .exit()
}

/// Where each allocator came from, for the report: the library and the Debian package that ships it.
fn describe(c: &Candidate) -> String {
    let Some(lib) = &c.lib else {
        return format!("{} (no preload)", crate::alloc::AllocKind::Glibc.version());
    };
    let real = std::fs::canonicalize(lib).unwrap_or_else(|_| lib.clone());
    let mut s = format!("LD_PRELOAD={}", lib.display());
    if real != *lib {
        s.push_str(&format!(" (-> {})", real.display()));
    }
    let query = |args: &[&str]| {
        Command::new("dpkg-query")
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let package = [lib, &real].into_iter().find_map(|p| {
        let out = query(&["-S", &p.to_string_lossy()])?;
        Some(out.split(": ").next()?.to_string())
    });
    if let Some(pkg) = package {
        if let Some(v) = query(&["-W", "-f", "${Version}", &pkg]) {
            s.push_str(&format!(", Debian package {pkg} {v}"));
        }
    }
    s
}

pub fn main(a: CompareArgs, default_out: &Path) -> ExitCode {
    for l in &a.libs {
        if l.split_once('=')
            .is_none_or(|(n, p)| n.is_empty() || p.is_empty())
        {
            return usage_error(format!(
                "invalid value '{l}' for '--lib <NAME=PATH>': expected NAME=PATH"
            ));
        }
    }
    let allowed = allowed_names(&a);
    if let Some(bad) = a.allocators.iter().find(|n| !allowed.contains(n)) {
        return usage_error(format!(
            "invalid value '{bad}' for '--allocators <ALLOCATORS>'\n  [possible values: {}; or a NAME given with --lib NAME=PATH]",
            allowed.join(", ")
        ));
    }
    let loadavg_start = results::loadavg();
    let explicit = !a.allocators.is_empty();
    let wanted: Vec<String> = if explicit {
        a.allocators.clone()
    } else {
        let mut v: Vec<String> = names().into_iter().map(String::from).collect();
        for (n, _) in a.libs.iter().filter_map(|s| s.split_once('=')) {
            if !v.iter().any(|x| x == n) {
                v.push(n.to_string());
            }
        }
        v
    };
    let scenario = short_command(&a.cmd);
    let mut errors: Vec<Failure> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut cands: Vec<Candidate> = Vec::new();
    let mut shown: Vec<String> = Vec::new();
    for name in &wanted {
        match resolve(name, &a) {
            Ok(c) => {
                shown.push(name.clone());
                cands.push(c);
            }
            // A Debian library that is simply not installed is skipped, unless asked for by name.
            Err(e) if !explicit && e == "not installed" => {
                notes.push(format!("{name}: not installed, skipped ({})", hint(name)));
            }
            Err(e) => {
                let h = hint(name);
                let msg = if h.is_empty() || e.contains(h) {
                    e
                } else {
                    format!("{e} ({h})")
                };
                eprintln!("hakmem-bench compare: {name}: {msg}");
                shown.push(name.clone());
                errors.push(Failure {
                    suite: "compare".into(),
                    scenario: scenario.clone(),
                    allocator: name.clone(),
                    message: msg,
                });
            }
        }
    }
    for n in &notes {
        eprintln!("hakmem-bench compare: {n}");
    }
    eprintln!(
        "hakmem-bench compare: `{scenario}` in the tables is: {}",
        crate::report::shell_join(&a.cmd)
    );
    for c in &cands {
        eprintln!(
            "hakmem-bench compare: {:<9} {}",
            c.name,
            c.lib
                .as_ref()
                .map(|p| format!("LD_PRELOAD={}", p.display()))
                .unwrap_or_else(|| "(no preload)".into())
        );
    }

    let timeout = Duration::from_secs(a.timeout.max(1));
    let mut col = Collector::default();
    let mut failed: Vec<String> = Vec::new();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if !cands.is_empty() {
        // One untimed run first, so the program's files are in the page cache for everyone.
        if let Err(e) = measure(&a.cmd, None, false, timeout) {
            eprintln!("hakmem-bench compare: warm-up run without preload: {e}");
        }
    }
    for rep in 0..a.reps {
        for c in &cands {
            if failed.contains(&c.name) {
                continue;
            }
            if tty {
                eprint!(
                    "\rhakmem-bench compare: rep {}/{} {:<10}",
                    rep + 1,
                    a.reps,
                    c.name
                );
            }
            match measure(&a.cmd, c.lib.as_deref(), a.show_output, timeout) {
                Ok(r) => {
                    col.add("compare", &scenario, &c.name, results::WALL_MS, r.wall_ms);
                    col.add("compare", &scenario, &c.name, results::USER_MS, r.user_ms);
                    col.add("compare", &scenario, &c.name, results::SYS_MS, r.sys_ms);
                    col.add("compare", &scenario, &c.name, results::MINFLT, r.minflt);
                    col.add(
                        "compare",
                        &scenario,
                        &c.name,
                        results::PEAK_RSS,
                        r.peak_rss_kib,
                    );
                }
                Err(e) => {
                    eprintln!("\nhakmem-bench compare: `{scenario}` under {}: {e}", c.name);
                    errors.push(Failure {
                        suite: "compare".into(),
                        scenario: scenario.clone(),
                        allocator: c.name.clone(),
                        message: e,
                    });
                    failed.push(c.name.clone());
                }
            }
        }
    }
    if tty {
        eprintln!();
    }
    let res = Results {
        info: RunInfo {
            schema: results::SCHEMA.into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            git_revision: results::git_revision(),
            cores: results::cores(),
            kernel: results::kernel(),
            mode: "compare".into(),
            reps: a.reps,
            allocators: shown,
            baseline: results::BASELINE.into(),
            created_unix: results::now_unix(),
            command: std::env::args().collect(),
            program: a.cmd.clone(),
            versions: cands
                .iter()
                .map(|c| (c.name.clone(), describe(c)))
                .collect(),
            loadavg_start,
            loadavg_end: results::loadavg(),
        },
        records: col.finish(),
        errors,
        notes,
        learn: None,
    };
    println!("command: {}\n", crate::report::shell_join(&a.cmd));
    for t in table::tables(&res, &COLUMNS, results::WALL_MS) {
        println!("{}", t.render_text());
    }
    let out = a.out.clone().unwrap_or_else(|| default_out.to_path_buf());
    let written = res.write(&out, "compare").and_then(|mut files| {
        files.extend(crate::report::write(
            &res,
            &out,
            "compare",
            &COLUMNS,
            results::WALL_MS,
        )?);
        Ok(files)
    });
    match written {
        Ok(files) => eprintln!(
            "hakmem-bench compare: wrote {}",
            crate::report::list_files(&out, &files)
        ),
        Err(e) => {
            eprintln!(
                "hakmem-bench compare: cannot write to {}: {e}",
                out.display()
            );
            return ExitCode::FAILURE;
        }
    }
    if res.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
