//! Reads the dynamic symbol table of a shared library (ELF64, little-endian) to tell whether it defines
//! the malloc family, without loading it: a library that does not would make an LD_PRELOAD comparison
//! silently measure glibc.

use std::path::Path;

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<usize> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?) as usize)
}

/// The names of the functions and objects the library defines in `.dynsym`.
pub fn defined_symbols(path: &Path) -> Result<Vec<String>, String> {
    let b = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&b).ok_or_else(|| {
        format!(
            "{} is not a 64-bit little-endian ELF shared library",
            path.display()
        )
    })
}

fn parse(b: &[u8]) -> Option<Vec<String>> {
    if b.get(0..4)? != b"\x7fELF" || *b.get(4)? != 2 || *b.get(5)? != 1 {
        return None;
    }
    let shoff = u64_at(b, 0x28)?;
    let shentsize = u16_at(b, 0x3A)? as usize;
    let shnum = u16_at(b, 0x3C)? as usize;
    let sec = |i: usize| shoff + i * shentsize;
    let mut out = Vec::new();
    for i in 0..shnum {
        const SHT_DYNSYM: u32 = 11;
        if u32_at(b, sec(i) + 4)? != SHT_DYNSYM {
            continue;
        }
        let off = u64_at(b, sec(i) + 0x18)?;
        let size = u64_at(b, sec(i) + 0x20)?;
        let link = u32_at(b, sec(i) + 0x28)? as usize;
        let entsize = u64_at(b, sec(i) + 0x38)?.max(24);
        let stroff = u64_at(b, sec(link) + 0x18)?;
        for k in 0..size / entsize {
            let e = off + k * entsize;
            let name = u32_at(b, e)? as usize;
            let shndx = u16_at(b, e + 6)?;
            if shndx == 0 || name == 0 {
                continue; // undefined (imported) or unnamed
            }
            let start = stroff + name;
            let len = b.get(start..)?.iter().position(|&c| c == 0)?;
            out.push(String::from_utf8_lossy(&b[start..start + len]).into_owned());
        }
    }
    Some(out)
}

/// Ok when the library defines `malloc` and `free`; else a message saying what is missing.
pub fn check_malloc_library(path: &Path) -> Result<(), String> {
    let syms = defined_symbols(path)?;
    let missing: Vec<&str> = ["malloc", "free"]
        .into_iter()
        .filter(|s| !syms.iter().any(|x| x == s))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} does not define {} (so LD_PRELOAD would change nothing)",
            path.display(),
            missing.join(" and ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libc_defines_malloc() {
        // Any glibc system has one of these.
        let arch = std::env::consts::ARCH;
        let candidates = [
            format!("/lib/{arch}-linux-gnu/libc.so.6"),
            format!("/usr/lib/{arch}-linux-gnu/libc.so.6"),
            "/lib64/libc.so.6".into(),
        ];
        let Some(libc) = candidates.iter().map(Path::new).find(|p| p.exists()) else {
            return;
        };
        assert!(check_malloc_library(libc).is_ok());
        // libm imports nothing of the malloc family.
        let libm = libc.with_file_name("libm.so.6");
        if libm.exists() {
            assert!(check_malloc_library(&libm).is_err());
        }
    }

    #[test]
    fn not_elf() {
        assert!(parse(b"hello").is_none());
    }
}
