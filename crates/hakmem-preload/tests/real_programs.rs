//! Real programs under LD_PRELOAD=<lib>: python3, sort, gcc. Each run is made with LD_DEBUG=bindings
//! and every process it started must have bound malloc/free/calloc/realloc to the library; the same
//! check is run once without the preload and must fail there.
mod common;
use common::*;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};

const PY_WORKLOAD: &str = r#"
import sys, json, ctypes, os
lib = sys.argv[1]
if lib != "-":
    # malloc in this process must be the library's (it is already loaded: RTLD_NOLOAD)
    h = ctypes.CDLL(lib, mode=os.RTLD_NOLOAD | os.RTLD_NOW)
    here = ctypes.cast(ctypes.CDLL(None).malloc, ctypes.c_void_p).value
    theirs = ctypes.cast(h.malloc, ctypes.c_void_p).value
    assert here == theirs, "malloc resolves to %x, library's is %x" % (here, theirs)
    print("malloc-bound-ok")
N = int(sys.argv[2])
acc = 0
d = {}
for i in range(N):
    k = "key-%d-%s" % (i, "x" * (i % 37))
    d[k] = [i, i * 2, str(i) * (i % 11), {"n": i, "s": "v" * (i % 200)}]
    if i % 3 == 0:
        d.pop("key-%d-%s" % (i // 2, "x" * ((i // 2) % 37)), None)
for rnd in range(4):
    s = json.dumps(d, sort_keys=True)
    d2 = json.loads(s)
    assert d2 == d
    acc = (acc * 1000003 + len(s) + sum(len(v[2]) for v in d2.values())) % (1 << 61)
    lst = sorted(d2.keys(), key=lambda x: (len(x), x))
    acc = (acc * 7 + len(lst) + sum(len(x) for x in lst[:1000])) % (1 << 61)
    big = [bytearray(1000 * (j % 300)) for j in range(3000)]
    acc = (acc + sum(len(b) for b in big)) % (1 << 61)
    strs = "".join(str(j) for j in range(200000))
    acc = (acc * 31 + len(strs) + strs.count("7")) % (1 << 61)
    d = {k: v for k, v in d2.items() if len(k) % 5 != rnd}
print("checksum", acc, len(d))
"#;

fn python_run(preload: bool, n: usize) -> String {
    let td = TempDir::new("py");
    let script = td.join("work.py");
    fs::write(&script, PY_WORKLOAD).unwrap();
    let lib = if preload { lib_str() } else { "-".to_string() };
    let child = Child::new(python3())
        .arg(script.to_str().unwrap())
        .arg(&lib)
        .arg(n.to_string())
        .env("PYTHONHASHSEED", "0")
        .preload(preload)
        .timeout(600);
    let r = if preload {
        run_checking_bindings(child, "python3 workload")
    } else {
        child.run_ok("python3 workload")
    };
    eprintln!(
        "python3 (preload={}) {:.1}s",
        preload,
        r.elapsed.as_secs_f64()
    );
    if preload {
        assert!(
            r.stdout.contains("malloc-bound-ok"),
            "ctypes check missing: {}",
            r.describe()
        );
    }
    r.stdout
        .lines()
        .find(|l| l.starts_with("checksum"))
        .expect("checksum line")
        .to_string()
}

#[test]
fn python_dict_list_json() {
    // negative control: the binding check fails for python without the preload
    run_checking_bindings(
        Child::new(python3()).arg("-c").arg("pass").preload(false),
        "python3 -c pass",
    );
    let n = 100_000;
    let expected = python_run(false, n);
    let got = python_run(true, n);
    assert_eq!(got, expected, "python3 checksum differs under the preload");
}

fn line_hash(l: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in l {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    h
}

#[test]
fn sort_large_file() {
    run_checking_bindings(
        Child::new("sort").arg("--version").preload(false),
        "sort --version",
    );
    let td = TempDir::new("sort");
    let input = td.join("in.txt");
    let output = td.join("out.txt");
    // ~64 MiB of lines of varied length
    let (mut lines, mut sum, mut xor, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    {
        let mut w = BufWriter::new(fs::File::create(&input).unwrap());
        let mut s: u64 = 0x243F6A8885A308D3;
        let mut buf = Vec::new();
        while bytes < 64 << 20 {
            buf.clear();
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let len = 1 + (s % 120) as usize;
            let mut t = s;
            for _ in 0..len {
                t = t
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                buf.push(b'!' + ((t >> 33) % 90) as u8);
            }
            let h = line_hash(&buf);
            sum = sum.wrapping_add(h);
            xor ^= h.rotate_left(17);
            buf.push(b'\n');
            w.write_all(&buf).unwrap();
            bytes += buf.len() as u64;
            lines += 1;
        }
    }
    let r = run_checking_bindings(
        Child::new("sort")
            .arg("-S")
            .arg("256M")
            .arg(input.to_str().unwrap())
            .env("LC_ALL", "C")
            .stdout_to(&output)
            .preload(true)
            .timeout(600),
        "sort",
    );
    eprintln!(
        "sort of {} lines ({} MiB): {:.1}s",
        lines,
        bytes >> 20,
        r.elapsed.as_secs_f64()
    );
    Child::new("sort")
        .arg("-c")
        .arg(output.to_str().unwrap())
        .env("LC_ALL", "C")
        .timeout(300)
        .run_ok("sort -c on the output");
    let (mut l2, mut s2, mut x2, mut b2) = (0u64, 0u64, 0u64, 0u64);
    let rd = BufReader::new(fs::File::open(&output).unwrap());
    for line in rd.split(b'\n') {
        let line = line.unwrap();
        let h = line_hash(&line);
        s2 = s2.wrapping_add(h);
        x2 ^= h.rotate_left(17);
        b2 += line.len() as u64 + 1;
        l2 += 1;
    }
    assert_eq!(l2, lines, "line count differs");
    assert_eq!(b2, bytes, "byte count differs");
    assert_eq!(
        (s2, x2),
        (sum, xor),
        "sorted output is not a permutation of the input"
    );
}

#[test]
fn gcc_compile_and_run() {
    run_checking_bindings(
        Child::new("gcc").arg("--version").preload(false),
        "gcc --version",
    );
    let td = TempDir::new("gcc");
    let src = td.join("gen.c");
    let nfun = 1000u64;
    let mut c = String::from("#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n");
    let mut expected: u64 = 0;
    for i in 0..nfun {
        let (a, b) = (i * 7 + 3, i % 13 + 1);
        c += &format!(
            "struct s{i} {{ unsigned long v[{n}]; }};\n\
             unsigned long f{i}(unsigned long x) {{\n  struct s{i} *p = malloc(sizeof *p);\n  \
             unsigned long acc = x;\n  for (int k = 0; k < {n}; k++) {{ p->v[k] = acc * {a}ul + k; acc = (acc ^ p->v[k]) % 1000003ul; }}\n  \
             char buf[64]; snprintf(buf, sizeof buf, \"%lu\", acc); acc += strlen(buf) * {b}ul;\n  free(p);\n  return acc % 1000003ul;\n}}\n",
            i = i, n = b + 2, a = a, b = b
        );
        // same computation in Rust
        let n = b + 2;
        let mut acc = i;
        for k in 0..n {
            let v = acc.wrapping_mul(a).wrapping_add(k);
            acc = (acc ^ v) % 1000003;
        }
        acc += acc.to_string().len() as u64 * b;
        expected = expected.wrapping_add(acc % 1000003);
    }
    c += "int main(void) {\n  unsigned long t = 0;\n";
    for i in 0..nfun {
        c += &format!("  t += f{i}({i}ul);\n", i = i);
    }
    c += "  printf(\"total %lu\\n\", t);\n  return 0;\n}\n";
    fs::write(&src, c).unwrap();
    let exe = td.join("gen");
    let r = run_checking_bindings(
        Child::new("gcc")
            .args_vec(&["-O1", "-o", exe.to_str().unwrap(), src.to_str().unwrap()])
            .preload(true)
            .timeout(900),
        "gcc -O1 (cc1, as, collect2, ld under the preload)",
    );
    eprintln!(
        "gcc compile of {} functions: {:.1}s",
        nfun,
        r.elapsed.as_secs_f64()
    );
    let r = run_checking_bindings(
        Child::new(&exe).preload(true).timeout(120),
        "generated program",
    );
    assert_eq!(
        r.stdout.trim(),
        format!("total {}", expected),
        "generated program printed the wrong total"
    );
}
