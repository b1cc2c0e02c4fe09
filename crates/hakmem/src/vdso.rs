//! The kernel's `clock_gettime`, called where it is: in the vDSO, the code the kernel maps into
//! every process for reading the clock without a system call.
//!
//! glibc's `clock_gettime` only forwards to it, but calling glibc's makes the kernel map the
//! 64 KiB of libc's code around it (a fault maps the file's cached pages around it) into every
//! program that never reads the clock itself: 64 KiB more resident, about a fiftieth of a small
//! program's whole footprint. So the vDSO's function is looked up once in the vDSO's symbol table;
//! where there is no vDSO, or on another architecture, glibc's is called.

use core::sync::atomic::{AtomicUsize, Ordering};

type ClockGettime = unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int;

/// The vDSO's `clock_gettime`: `UNKNOWN` before the first call, `ABSENT` when there is none.
static FUNCTION: AtomicUsize = AtomicUsize::new(UNKNOWN);
const UNKNOWN: usize = 0;
const ABSENT: usize = 1;

/// Reads `clock` into `ts`, as clock_gettime(2) does.
pub fn clock_gettime(clock: libc::clockid_t, ts: &mut libc::timespec) {
    let mut f = FUNCTION.load(Ordering::Relaxed);
    if f == UNKNOWN {
        f = find(b"__vdso_clock_gettime").unwrap_or(ABSENT);
        FUNCTION.store(f, Ordering::Relaxed);
    }
    if f == ABSENT {
        // SAFETY: clock_gettime writes the timespec we pass.
        unsafe { libc::clock_gettime(clock, ts) };
    } else {
        // SAFETY: `f` is the vDSO's clock_gettime, which has the C function's signature.
        unsafe { core::mem::transmute::<usize, ClockGettime>(f)(clock, ts) };
    }
}

/// The address of the vDSO's function `name`, from its ELF image's dynamic section and symbol
/// table: what glibc reads of it at start-up, so no page of it is touched that was not already.
/// Out of line: inlined, its frame made its callers' larger.
#[cfg(target_arch = "x86_64")]
#[cold]
#[inline(never)]
fn find(name: &[u8]) -> Option<usize> {
    use core::mem::size_of;
    use core::slice::from_raw_parts;
    use libc::{Elf64_Ehdr, Elf64_Phdr, Elf64_Sym};
    /// An entry of the dynamic section (`Elf64_Dyn`).
    #[repr(C)]
    struct Dyn {
        tag: i64,
        val: u64,
    }
    const PT_DYNAMIC: u32 = 2;
    const DT_HASH: i64 = 4;
    const DT_STRTAB: i64 = 5;
    const DT_SYMTAB: i64 = 6;
    const DT_STRSZ: i64 = 10;
    const STT_FUNC: u8 = 2;
    // SAFETY: getauxval only reads the auxiliary vector.
    let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
    if base == 0 {
        return None;
    }
    // SAFETY: the auxiliary vector's AT_SYSINFO_EHDR is the address of the vDSO's ELF image,
    // mapped whole and readable for the process's life; every table read below lies in it, where
    // its own headers place it (their entry sizes checked first).
    unsafe {
        let eh = &*(base as *const Elf64_Ehdr);
        if eh.e_ident[..4] != *b"\x7fELF"
            || eh.e_ident[4] != libc::ELFCLASS64
            || eh.e_phentsize as usize != size_of::<Elf64_Phdr>()
        {
            return None;
        }
        let phdrs = from_raw_parts(
            (base + eh.e_phoff as usize) as *const Elf64_Phdr,
            eh.e_phnum as usize,
        );
        // Addresses in the image are as linked; it is mapped from its first byte.
        let load = phdrs.iter().find(|p| p.p_type == libc::PT_LOAD)?;
        let at = |vaddr: u64| base + (load.p_offset + vaddr - load.p_vaddr) as usize;
        let dynamic = phdrs.iter().find(|p| p.p_type == PT_DYNAMIC)?;
        let (mut hash, mut strtab, mut symtab, mut strsz) = (0, 0, 0, 0);
        let mut d = at(dynamic.p_vaddr) as *const Dyn;
        while (*d).tag != 0 {
            match (*d).tag {
                DT_HASH => hash = (*d).val,
                DT_STRTAB => strtab = (*d).val,
                DT_SYMTAB => symtab = (*d).val,
                DT_STRSZ => strsz = (*d).val,
                _ => {}
            }
            d = d.add(1);
        }
        if hash == 0 || strtab == 0 || symtab == 0 {
            return None;
        }
        // The hash table's second word is the number of symbols.
        let count = *(at(hash) as *const u32).add(1) as usize;
        let syms = from_raw_parts(at(symtab) as *const Elf64_Sym, count);
        let named = |s: &Elf64_Sym| {
            (s.st_name as u64) < strsz
                && core::ffi::CStr::from_ptr(at(strtab + s.st_name as u64) as *const _).to_bytes()
                    == name
        };
        let sym = syms
            .iter()
            .find(|s| s.st_info & 0xf == STT_FUNC && s.st_value != 0 && named(s))?;
        Some(at(sym.st_value))
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn find(_name: &[u8]) -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(ts: &libc::timespec) -> i64 {
        ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    }

    #[test]
    fn the_vdso_clock_is_found_and_reads_what_glibc_reads() {
        let mut a = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let (mut v, mut b) = (a, a);
        for clock in [libc::CLOCK_MONOTONIC, libc::CLOCK_REALTIME] {
            // SAFETY: clock_gettime writes the timespec we pass.
            unsafe { libc::clock_gettime(clock, &mut a) };
            clock_gettime(clock, &mut v);
            // SAFETY: as above.
            unsafe { libc::clock_gettime(clock, &mut b) };
            assert!(ns(&a) <= ns(&v) && ns(&v) <= ns(&b), "{clock}");
        }
        #[cfg(target_arch = "x86_64")]
        assert!(FUNCTION.load(Ordering::Relaxed) > ABSENT);
    }
}
