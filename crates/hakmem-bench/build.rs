//! Records at build time what the report names as the versions under test: the git commit of the
//! source tree (`HAKMEM_BENCH_GIT`) and the versions Cargo.lock pins for hakmem and the allocator
//! crates (`HAKMEM_BENCH_LOCKED`, `name=version` pairs joined with `;`).

use std::path::Path;
use std::process::Command;

/// The packages whose locked versions the report shows.
const PACKAGES: [&str; 7] = [
    "hakmem",
    "mimalloc",
    "libmimalloc-sys",
    "tikv-jemallocator",
    "tikv-jemalloc-sys",
    "snmalloc-rs",
    "snmalloc-sys",
];

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `name=version` for each of `PACKAGES` found in the lock file's text.
fn locked(lock: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut name: Option<&str> = None;
    for line in lock.lines() {
        let value = |key: &str| {
            line.strip_prefix(key)?
                .trim()
                .strip_prefix('=')?
                .trim()
                .strip_prefix('"')?
                .strip_suffix('"')
        };
        if line == "[[package]]" {
            name = None;
        } else if let Some(n) = value("name") {
            name = Some(n);
        } else if let (Some(n), Some(v)) = (name, value("version")) {
            if PACKAGES.contains(&n) {
                found.push(format!("{n}={v}"));
            }
        }
    }
    found
}

fn main() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lock = manifest.join("../../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    println!(
        "cargo:rustc-env=HAKMEM_BENCH_LOCKED={}",
        locked(&text).join(";")
    );

    // The commit, and `-dirty` when tracked files differ from it. Re-run when the commit or the
    // index moves, or when the sources built into the runner change.
    // (Only paths that exist: cargo re-runs a script for a missing one every time.)
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for p in ["HEAD", "index", "packed-refs"]
        .into_iter()
        .chain(branch.as_deref())
    {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", p]) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    for dir in ["src", "../hakmem/src"] {
        println!("cargo:rerun-if-changed={}", manifest.join(dir).display());
    }
    let rev = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(rev) if !rev.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        _ => "unknown".into(),
    };
    println!("cargo:rustc-env=HAKMEM_BENCH_GIT={rev}");
}
