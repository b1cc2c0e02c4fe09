//! Shared helpers for the LD_PRELOAD integration tests: locating libhakmem.so, compiling C with gcc,
//! running children with a timeout, checking that malloc really resolves to the preloaded library.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod tempdir;
pub use tempdir::TempDir;

/// The library under test: `$HAKMEM_LIB` if set, else `<dir of test exe>/../libhakmem.so`
/// (the test executable is `target/<profile>/deps/<test>-<hash>`). Panics with a clear message.
pub fn lib_path() -> PathBuf {
    if let Some(p) = std::env::var_os("HAKMEM_LIB") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "HAKMEM_LIB={} does not exist or is not a file",
            p.display()
        );
        return fs::canonicalize(&p).unwrap_or(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("exe dir");
    let cand = deps.join("..").join("libhakmem.so");
    match fs::canonicalize(&cand) {
        Ok(p) if p.is_file() => p,
        _ => panic!(
            "libhakmem.so not found at {} (cargo test does not build the cdylib): run \
             `cargo build --release -p hakmem-preload` first (scripts/test.sh does), or set HAKMEM_LIB=/path/to/lib.so",
            cand.display()
        ),
    }
}

/// The path as it should be given to LD_PRELOAD and as ld.so reports it.
pub fn lib_str() -> String {
    lib_path().to_str().expect("utf-8 lib path").to_string()
}

/// True if the library exports the hakmem-specific API (hak_abi_version); false for e.g. mimalloc.
pub fn lib_is_hakmem() -> bool {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib_path())
        .output()
        .expect("run nm -D (binutils)");
    assert!(out.status.success(), "nm -D failed on {}", lib_str());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().last() == Some("hak_abi_version"))
}

/// Directory of the C sources (crates/hakmem-preload/tests/c).
pub fn c_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("c")
}

/// Compile a C file (path relative to tests/c, or absolute) with gcc, or a C++ file (`.cc`) with g++,
/// into `dir`; returns the executable.
/// Compiled without builtins so that malloc/free pairs are never optimised away.
pub fn compile_c(src: &Path, dir: &Path, extra: &[&str]) -> PathBuf {
    let src = if src.is_absolute() {
        src.to_path_buf()
    } else {
        c_dir().join(src)
    };
    let stem = src.file_stem().unwrap().to_str().unwrap().to_string();
    let exe = dir.join(&stem);
    // C++ sources (.cc) with g++.
    let (compiler, std) = if src.extension().is_some_and(|e| e == "cc") {
        ("g++", "-std=gnu++17")
    } else {
        ("gcc", "-std=gnu11")
    };
    let out = Command::new(compiler)
        .args([std, "-O1", "-g", "-Wall", "-fno-builtin", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src)
        .args(extra)
        .args(["-ldl", "-lpthread"])
        .output()
        .expect("run the C compiler");
    assert!(
        out.status.success(),
        "{} failed on {}:\n{}",
        compiler,
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

pub struct RunResult {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl RunResult {
    pub fn describe(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        let st = match (self.status.code(), self.status.signal()) {
            (Some(c), _) => format!("exit code {}", c),
            (None, Some(s)) => format!("killed by signal {}", s),
            _ => "unknown status".into(),
        };
        let tail = |s: &str| {
            let n = s.len();
            if n > 6000 {
                format!("...{}", &s[n - 6000..])
            } else {
                s.to_string()
            }
        };
        format!(
            "{} after {:.1}s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            st,
            self.elapsed.as_secs_f64(),
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// A child process spec.
pub struct Child<'a> {
    pub prog: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub preload: bool,
    pub stdin: Option<&'a Path>,
    pub stdout_file: Option<&'a Path>,
    pub cwd: Option<&'a Path>,
    pub timeout: Duration,
}

impl<'a> Child<'a> {
    pub fn new(prog: impl AsRef<Path>) -> Child<'a> {
        Child {
            prog: prog.as_ref().to_path_buf(),
            args: vec![],
            env: vec![],
            preload: false,
            stdin: None,
            stdout_file: None,
            cwd: None,
            timeout: Duration::from_secs(120),
        }
    }
    pub fn arg(mut self, a: impl AsRef<str>) -> Self {
        self.args.push(a.as_ref().to_string());
        self
    }
    pub fn args_vec(mut self, a: &[&str]) -> Self {
        self.args.extend(a.iter().map(|s| s.to_string()));
        self
    }
    pub fn env(mut self, k: &str, v: impl AsRef<str>) -> Self {
        self.env.push((k.to_string(), v.as_ref().to_string()));
        self
    }
    pub fn preload(mut self, yes: bool) -> Self {
        self.preload = yes;
        self
    }
    pub fn stdin(mut self, p: &'a Path) -> Self {
        self.stdin = Some(p);
        self
    }
    pub fn stdout_to(mut self, p: &'a Path) -> Self {
        self.stdout_file = Some(p);
        self
    }
    pub fn cwd(mut self, p: &'a Path) -> Self {
        self.cwd = Some(p);
        self
    }
    pub fn timeout(mut self, secs: u64) -> Self {
        self.timeout = Duration::from_secs(secs);
        self
    }

    /// Run to completion (or kill the whole process group at the timeout and panic).
    pub fn run(&self) -> RunResult {
        use std::os::unix::process::CommandExt;
        let td = TempDir::new("run");
        let out_path = self
            .stdout_file
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| td.join("stdout"));
        let err_path = td.join("stderr");
        let mut cmd = Command::new(&self.prog);
        cmd.args(&self.args);
        cmd.env_remove("LD_PRELOAD");
        if self.preload {
            cmd.env("LD_PRELOAD", lib_str());
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(d) = self.cwd {
            cmd.current_dir(d);
        }
        cmd.stdin(match self.stdin {
            Some(p) => Stdio::from(fs::File::open(p).expect("open stdin file")),
            None => Stdio::null(),
        });
        cmd.stdout(Stdio::from(
            fs::File::create(&out_path).expect("create stdout file"),
        ));
        cmd.stderr(Stdio::from(
            fs::File::create(&err_path).expect("create stderr file"),
        ));
        cmd.process_group(0);
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {}", self.prog.display(), e));
        let pid = child.id() as i32;
        let status = loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                break st;
            }
            if start.elapsed() > self.timeout {
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
                let _ = child.wait();
                let stdout = fs::read_to_string(&out_path).unwrap_or_default();
                let stderr = fs::read_to_string(&err_path).unwrap_or_default();
                panic!(
                    "TIMEOUT: {} {:?} (preload={}) still running after {:?} (deadlock?), killed.\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.prog.display(),
                    self.args,
                    self.preload,
                    self.timeout,
                    tail(&stdout),
                    tail(&stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let elapsed = start.elapsed();
        let stdout = if self.stdout_file.is_some() {
            String::new()
        } else {
            fs::read_to_string(&out_path).unwrap_or_default()
        };
        let stderr = fs::read_to_string(&err_path).unwrap_or_default();
        RunResult {
            status,
            stdout,
            stderr,
            elapsed,
        }
    }

    /// Run and panic (with output) unless the exit status is 0.
    pub fn run_ok(&self, what: &str) -> RunResult {
        let r = self.run();
        assert!(
            r.success(),
            "{} failed (preload={} lib={}): {}",
            what,
            self.preload,
            if self.preload { lib_str() } else { "-".into() },
            r.describe()
        );
        r
    }
}

fn tail(s: &str) -> String {
    let n = s.len();
    if n > 6000 {
        let mut i = n - 6000;
        while !s.is_char_boundary(i) {
            i += 1;
        }
        format!("...{}", &s[i..])
    } else {
        s.to_string()
    }
}

/// Which objects ld.so bound the allocator symbols to, read from `LD_DEBUG=bindings` logs
/// (LD_DEBUG_OUTPUT=<prefix> writes one `<prefix>.<pid>` file per process).
/// Returns, per symbol, the list of (requesting file, providing file).
pub fn read_bindings(dir: &Path, prefix: &str) -> HashMap<String, Vec<(String, String)>> {
    let mut map: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for e in fs::read_dir(dir).expect("read_dir") {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with(prefix) {
            continue;
        }
        let text = fs::read_to_string(e.path()).unwrap_or_default();
        for line in text.lines() {
            // "  1234:\tbinding file /usr/bin/sort [0] to /x/libhakmem.so [0]: normal symbol `malloc' [GLIBC_2.2.5]"
            let Some(i) = line.find("binding file ") else {
                continue;
            };
            let rest = &line[i + "binding file ".len()..];
            let Some(to) = rest.find(" to ") else {
                continue;
            };
            let from = rest[..to]
                .trim_end_matches(|c: char| c != ' ')
                .trim()
                .to_string();
            let rest2 = &rest[to + 4..];
            let Some(colon) = rest2.find(": ") else {
                continue;
            };
            let provider = rest2[..colon]
                .rsplit_once(" [")
                .map(|(a, _)| a)
                .unwrap_or(&rest2[..colon])
                .to_string();
            let Some(q1) = rest2.find('`') else { continue };
            let Some(q2) = rest2[q1 + 1..].find('\'') else {
                continue;
            };
            let sym = rest2[q1 + 1..q1 + 1 + q2].to_string();
            map.entry(sym).or_default().push((from, provider));
        }
    }
    map
}

/// Checks, from LD_DEBUG=bindings logs, that no binding of malloc/free/calloc/realloc in any process
/// went to glibc, and that malloc and free were bound to the library under test at least once.
/// Returns Err(description) otherwise.
pub fn check_bindings(dir: &Path, prefix: &str) -> Result<usize, String> {
    let lib = lib_str();
    let b = read_bindings(dir, prefix);
    let mut n = 0;
    for sym in ["malloc", "free", "calloc", "realloc"] {
        let list = b.get(sym).cloned().unwrap_or_default();
        let mut to_lib = 0;
        for (from, to) in &list {
            let same = to == &lib
                || fs::canonicalize(to)
                    .map(|p| p.to_string_lossy() == lib)
                    .unwrap_or(false);
            let base = Path::new(to)
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default();
            if same {
                to_lib += 1;
                n += 1;
            } else if base.starts_with("libc.so")
                || base.starts_with("libc-")
                || base.starts_with("ld-linux")
            {
                return Err(format!(
                    "`{}` requested by {} was bound to {} instead of {}",
                    sym, from, to, lib
                ));
            }
            // else: bound to a non-PIE executable's canonical PLT entry (e.g. gcc's cc1), which in
            // turn is bound to the library: fine.
        }
        if (sym == "malloc" || sym == "free") && to_lib == 0 {
            return Err(format!(
                "no LD_DEBUG binding of `{}` to {} found (bindings: {:?})",
                sym, lib, list
            ));
        }
    }
    Ok(n)
}

/// Runs `child` with LD_DEBUG=bindings and asserts malloc resolved to the library in every process it
/// started. Also used negatively (without the preload) to prove that the check can fail.
pub fn run_checking_bindings(child: Child, what: &str) -> RunResult {
    let td = TempDir::new("lddebug");
    let prefix = "ld";
    let child = child
        .env("LD_DEBUG", "bindings")
        .env("LD_DEBUG_OUTPUT", td.join(prefix).to_str().unwrap());
    let preload = child.preload;
    let r = child.run_ok(what);
    let res = check_bindings(td.path(), prefix);
    if preload {
        match res {
            Ok(n) => assert!(n >= 2, "{}: too few bindings seen ({})", what, n),
            Err(e) => panic!(
                "{}: malloc does not resolve to the preloaded library: {}",
                what, e
            ),
        }
    } else {
        assert!(
            res.is_err(),
            "{}: binding check passed WITHOUT the preload; the check is broken",
            what
        );
    }
    r
}

/// Read a /proc/<pid>/status field in KiB (VmRSS, VmHWM, VmSize...).
pub fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{}/status", pid)).ok()?;
    for l in s.lines() {
        if let Some(rest) = l.strip_prefix(field) {
            if let Some(rest) = rest.strip_prefix(':') {
                return rest.trim().trim_end_matches("kB").trim().parse().ok();
            }
        }
    }
    None
}

/// Parse "key=value" tokens from a child's output line that starts with `tag`.
pub fn parse_kv(out: &str, tag: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for l in out.lines() {
        if let Some(rest) = l.strip_prefix(tag) {
            for tok in rest.split_whitespace() {
                if let Some((k, v)) = tok.split_once('=') {
                    m.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    m
}

/// The real python3 binary (not a pyenv shim script), so LD_DEBUG sees the interpreter itself.
pub fn python3() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 not found");
    assert!(out.status.success(), "python3 -c failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
