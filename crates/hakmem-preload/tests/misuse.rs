//! Misuse detection under LD_PRELOAD: planted-bug C and C++ programs (tests/c/bugs/*.c, *.cc), one bug each.
//! Each is run in the mode claimed for it and must be killed by SIGABRT after printing exactly one
//! report line `hakmem: <op>(): <what> 0x<16 hex digits>` on stderr, naming the address the
//! program announced (`expect-addr` on stdout) where it knows it. The same program run with the
//! argument `ok` does the same steps without the bug and must exit 0 (in both modes). Programs
//! claimed for the default mode are also run with `HAKMEM_SAFE_FREE=1`, which must catch them too,
//! with the same report unless the table gives safe mode's.
//!
//! | program | mode | expected report |
//! |---|---|---|
//! | double_free.c (free(p); free(p), 32 B) | default | `free(): double free` |
//! | double_free_large.c (free(p); free(p), 1 MiB) | default | `free(): double free` |
//! | free_stack.c (free of a stack address) | default | `free(): invalid pointer` |
//! | free_global.c (free of a global array) | default | `free(): invalid pointer` |
//! | free_mmap.c (free inside the program's own mmap) | default | `free(): invalid pointer` |
//! | interior_small.c (free(p + 16), 64 B block) | default | `free(): interior pointer` |
//! | interior_large.c (free(p + 4096), 3 MiB block) | default | `free(): interior pointer` |
//! | misaligned.c (free(p + 1), 200 B block) | default | `free(): interior pointer` |
//! | memalign_offset.c (posix_memalign(64, 200), free(p + 64)) | default | `free(): interior pointer` |
//! | memalign_offset_large.c (posix_memalign(2 MiB, 3 MiB), free(p + 4096)) | default | `free(): interior pointer` |
//! | usable_size_invalid.c (malloc_usable_size of a stack address) | default | `malloc_usable_size(): invalid pointer` |
//! | usable_size_freed.c (malloc_usable_size of a freed 1 MiB block) | default | `malloc_usable_size(): use after free` |
//! | double_free_later.c (free(a); free(b); free(c); free(a)) | safe | `free(): double free` |
//! | double_free_thread.c (freed by owner, freed again by another thread) | safe | `free(): double free` |
//! | overflow.c (p[24] = 0x41 on malloc(24), then free) | safe | `free(): buffer overflow` |
//! | overflow_mid.c (p[20000] = 0x41 on malloc(20000), then free) | safe | `free(): buffer overflow` |
//! | use_after_free.c (free(p); memset(p, 0x41, 16); malloc(48) x 8) | safe | `malloc(): use after free` |
//! | realloc_freed.c (free(p); realloc(p, 80)) | default | `realloc(): use after free` |
//! | realloc_freed_remote.c (another thread frees p; realloc(p, 80)) | default | `realloc(): use after free` |
//! | double_free_remote.c (another thread frees a block twice in a row) | default | `free(): double free` |
//! | double_free_cached_remote.c (freed by the owner, into its thread cache, then by another thread) | default | `free(): double free` |
//! | free_slab_tail.c (free of the slack after a slab's last 48 B block) | default | `free(): invalid pointer`; safe mode, whose 64 B blocks leave no slack: `free(): interior pointer` |
//! | use_after_free_deep.c (write at offsets 16..55 of a freed 64 B block) | safe | `malloc(): use after free` |
//! | free_mmap_large.c (free inside the program's own page, in the 2 MiB chunk of a 300 KiB block) | default | `free(): invalid pointer` |
//! | free_mmap_aligned.c (the same next to an 8 KiB block aligned to 2 MiB) | default | `free(): invalid pointer` |
//! | interior_large_far.c (free(p + 3 MiB), 5 MiB block) | default | `free(): interior pointer` |
//! | overflow_free_list.c (p[48] = 0x41 on malloc(48) before a free block; free; mallocs hand out the damaged link; it is freed) | default | `free(): corrupted free list`; safe: `free(): buffer overflow` |
//! | usable_size_freed_small.c (malloc_usable_size of a freed 40 B block) | default | `malloc_usable_size(): use after free` |
//! | free_sized_twice.c (free_sized(p, 32) twice) | default | `free_sized(): double free` |
//! | delete_twice.cc (delete of one object twice) | default | `operator delete(): double free` |
//! | delete_array_stack.cc (delete[] of a stack address) | default | `operator delete[](): invalid pointer` |
//!
//! "safe" = `HAKMEM_SAFE_FREE=1`. Skipped (with a note) when `HAKMEM_LIB` points at another
//! allocator, whose reports differ.
mod common;
use common::*;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Default,
    Safe,
}

struct Out {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl Out {
    fn describe(&self) -> String {
        format!(
            "status {:?} (signal {:?})\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status.code(),
            self.status.signal(),
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `exe [arg]` under LD_PRELOAD with no core dump, killed after 60 s.
fn run(exe: &Path, arg: Option<&str>, mode: Mode) -> Out {
    let td = TempDir::new("misuse-run");
    let (o, e) = (td.join("out"), td.join("err"));
    let mut cmd = Command::new(exe);
    cmd.args(arg)
        .env_remove("LD_PRELOAD")
        .env_remove("HAKMEM_SAFE_FREE")
        .env("LD_PRELOAD", lib_str())
        .current_dir(td.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap());
    if mode == Mode::Safe {
        cmd.env("HAKMEM_SAFE_FREE", "1");
    }
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let rl = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &rl);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} {:?} hung for 60 s", exe.display(), arg);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Out {
        status,
        stdout: std::fs::read_to_string(&o).unwrap_or_default(),
        stderr: std::fs::read_to_string(&e).unwrap_or_default(),
    }
}

/// The report lines `hakmem: <op>(): <what> 0x<16 hex>` in `stderr`, as (op, what, address).
fn reports(stderr: &str) -> Vec<(String, String, String)> {
    let mut v = Vec::new();
    for l in stderr.lines() {
        let Some(rest) = l.strip_prefix("hakmem: ") else {
            continue;
        };
        let Some((op, rest)) = rest.split_once("(): ") else {
            continue;
        };
        let Some((what, addr)) = rest.rsplit_once(" 0x") else {
            continue;
        };
        v.push((op.to_string(), what.to_string(), addr.to_string()));
    }
    v
}

/// bugs/`name`.c, or bugs/`name`.cc (C++).
fn compiled(name: &str, td: &TempDir) -> PathBuf {
    let cc = format!("bugs/{name}.cc");
    let src = if c_dir().join(&cc).is_file() {
        cc
    } else {
        format!("bugs/{name}.c")
    };
    compile_c(Path::new(&src), td.path(), &[])
}

/// Runs bug program `name` in `mode` and checks the report; then its control run (`ok`). A program
/// claimed for the default mode must give the report `safe` (op, what) in safe mode, where given,
/// else the same report.
fn expect_report(name: &str, mode: Mode, op: &str, what: &str, safe: Option<(&str, &str)>) {
    if !lib_is_hakmem() {
        eprintln!("{name}: skipped, {} is not hakmem", lib_str());
        return;
    }
    let td = TempDir::new(name);
    let exe = compiled(name, &td);
    let modes: &[Mode] = match mode {
        Mode::Default => &[Mode::Default, Mode::Safe],
        Mode::Safe => &[Mode::Safe],
    };
    for &m in modes {
        let (op, what) = match (m, safe) {
            (Mode::Safe, Some(report)) => report,
            _ => (op, what),
        };
        let ctl = run(&exe, Some("ok"), m);
        assert!(
            ctl.status.success() && ctl.stdout.contains("ok"),
            "{name} ok-variant ({m:?}) must exit 0: {}",
            ctl.describe()
        );
        assert!(
            reports(&ctl.stderr).is_empty(),
            "{name} ok-variant ({m:?}) reported a misuse: {}",
            ctl.describe()
        );

        let out = run(&exe, None, m);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{name} ({m:?}): expected abort by SIGABRT with `{op}(): {what}`: {}",
            out.describe()
        );
        let r = reports(&out.stderr);
        assert_eq!(
            r.len(),
            1,
            "{name} ({m:?}): expected exactly one report line: {}",
            out.describe()
        );
        let (rop, rwhat, raddr) = &r[0];
        assert_eq!(
            (rop.as_str(), rwhat.as_str()),
            (op, what),
            "{name} ({m:?}): wrong report: {}",
            out.describe()
        );
        assert!(
            raddr.len() == 16 && raddr.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name} ({m:?}): address is not 16 hex digits: {}",
            out.describe()
        );
        if let Some(want) = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("expect-addr 0x"))
        {
            assert_eq!(
                raddr.to_ascii_lowercase(),
                want,
                "{name} ({m:?}): report names the wrong address: {}",
                out.describe()
            );
        }
        assert!(
            !out.stdout.contains("bug not detected"),
            "{name}: ran past the bug: {}",
            out.describe()
        );
        eprintln!("{name} ({m:?}): {}", out.stderr.trim_end());
    }
}

macro_rules! bug {
    ($(#[$attr:meta])* $test:ident, $name:literal, $mode:ident, $op:literal, $what:literal) => {
        $(#[$attr])*
        #[test]
        fn $test() {
            expect_report($name, Mode::$mode, $op, $what, None);
        }
    };
    ($(#[$attr:meta])* $test:ident, $name:literal, $mode:ident, $op:literal, $what:literal,
     safe: $sop:literal, $swhat:literal) => {
        $(#[$attr])*
        #[test]
        fn $test() {
            expect_report($name, Mode::$mode, $op, $what, Some(($sop, $swhat)));
        }
    };
}

bug!(
    double_free_immediate,
    "double_free",
    Default,
    "free",
    "double free"
);
bug!(
    double_free_large,
    "double_free_large",
    Default,
    "free",
    "double free"
);
bug!(
    free_of_stack_address,
    "free_stack",
    Default,
    "free",
    "invalid pointer"
);
bug!(
    free_of_global,
    "free_global",
    Default,
    "free",
    "invalid pointer"
);
bug!(
    free_of_foreign_mmap,
    "free_mmap",
    Default,
    "free",
    "invalid pointer"
);
bug!(
    interior_free_small,
    "interior_small",
    Default,
    "free",
    "interior pointer"
);
bug!(
    interior_free_large,
    "interior_large",
    Default,
    "free",
    "interior pointer"
);
bug!(
    misaligned_free,
    "misaligned",
    Default,
    "free",
    "interior pointer"
);
bug!(
    aligned_block_freed_at_offset,
    "memalign_offset",
    Default,
    "free",
    "interior pointer"
);
bug!(
    aligned_large_block_freed_at_offset,
    "memalign_offset_large",
    Default,
    "free",
    "interior pointer"
);
bug!(
    usable_size_of_stack_address,
    "usable_size_invalid",
    Default,
    "malloc_usable_size",
    "invalid pointer"
);
bug!(
    usable_size_of_freed_large_block,
    "usable_size_freed",
    Default,
    "malloc_usable_size",
    "use after free"
);
bug!(
    double_free_after_other_frees,
    "double_free_later",
    Safe,
    "free",
    "double free"
);
bug!(
    double_free_from_another_thread,
    "double_free_thread",
    Safe,
    "free",
    "double free"
);
bug!(
    overflow_by_one_byte_small,
    "overflow",
    Safe,
    "free",
    "buffer overflow"
);
bug!(
    overflow_by_one_byte_mid,
    "overflow_mid",
    Safe,
    "free",
    "buffer overflow"
);
bug!(
    use_after_free_write,
    "use_after_free",
    Safe,
    "malloc",
    "use after free"
);
bug!(
    double_free_by_another_thread_in_a_row,
    "double_free_remote",
    Default,
    "free",
    "double free"
);
bug!(
    double_free_by_another_thread_of_a_cached_block,
    "double_free_cached_remote",
    Default,
    "free",
    "double free"
);
bug!(
    free_of_slab_tail_slack,
    "free_slab_tail",
    Default,
    "free",
    "invalid pointer",
    safe: "free",
    "interior pointer"
);
bug!(
    use_after_free_write_past_the_cookie,
    "use_after_free_deep",
    Safe,
    "malloc",
    "use after free"
);
bug!(
    realloc_of_freed_block,
    "realloc_freed",
    Default,
    "realloc",
    "use after free"
);
bug!(
    realloc_of_block_freed_by_another_thread,
    "realloc_freed_remote",
    Default,
    "realloc",
    "use after free"
);
bug!(
    free_of_foreign_mmap_in_a_large_blocks_chunk,
    "free_mmap_large",
    Default,
    "free",
    "invalid pointer"
);
bug!(
    free_of_foreign_mmap_in_an_aligned_large_blocks_chunk,
    "free_mmap_aligned",
    Default,
    "free",
    "invalid pointer"
);
bug!(
    interior_free_large_past_its_first_chunk,
    "interior_large_far",
    Default,
    "free",
    "interior pointer"
);
bug!(
    overflow_into_a_free_blocks_link,
    "overflow_free_list",
    Default,
    "free",
    "corrupted free list",
    safe: "free",
    "buffer overflow"
);
bug!(
    usable_size_of_freed_small_block,
    "usable_size_freed_small",
    Default,
    "malloc_usable_size",
    "use after free"
);
bug!(
    free_sized_twice,
    "free_sized_twice",
    Default,
    "free_sized",
    "double free"
);

bug!(
    delete_twice,
    "delete_twice",
    Default,
    "operator delete",
    "double free"
);
bug!(
    delete_array_of_stack_address,
    "delete_array_stack",
    Default,
    "operator delete[]",
    "invalid pointer"
);

/// The checker itself: a clean program under both modes reports nothing, and the parser finds a
/// well-formed line.
#[test]
fn report_parser() {
    let r = reports("x\nhakmem: free(): double free 0x00007f0000001000\n");
    assert_eq!(
        r,
        vec![(
            "free".to_string(),
            "double free".to_string(),
            "00007f0000001000".to_string()
        )]
    );
    assert!(reports("hakmem: start\n").is_empty());
}
