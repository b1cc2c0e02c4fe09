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
/// Every table is checked to lie inside the image's loaded segment. Out of line: inlined, its
/// frame made its callers' larger.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[cold]
#[inline(never)]
fn find(name: &[u8]) -> Option<usize> {
    use core::mem::size_of;
    use libc::{Elf64_Ehdr, Elf64_Phdr, Elf64_Sym};
    const PT_DYNAMIC: u32 = 2;
    const DT_HASH: u64 = 4;
    const DT_STRTAB: u64 = 5;
    const DT_SYMTAB: u64 = 6;
    const DT_STRSZ: u64 = 10;
    const STT_FUNC: u8 = 2;
    // SAFETY: getauxval only reads the auxiliary vector.
    let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
    if base == 0 {
        return None;
    }
    // SAFETY: AT_SYSINFO_EHDR is the address of the vDSO's ELF image, mapped readable for the
    // process's life; its header and program headers are read where the header places them, and
    // everything else through `at`, which keeps every read inside the loaded segment.
    unsafe {
        let eh = &*(base as *const Elf64_Ehdr);
        if eh.e_ident[..4] != *b"\x7fELF"
            || eh.e_ident[4] != libc::ELFCLASS64
            || eh.e_phentsize as usize != size_of::<Elf64_Phdr>()
        {
            return None;
        }
        let phdrs = core::slice::from_raw_parts(
            (base + eh.e_phoff as usize) as *const Elf64_Phdr,
            eh.e_phnum as usize,
        );
        let load = phdrs.iter().find(|p| p.p_type == libc::PT_LOAD)?;
        // The address of `len` bytes at `vaddr` (as linked), if they lie in the segment, which is
        // mapped from the image's first byte.
        let at = |vaddr: u64, len: u64| -> Option<usize> {
            let offset = vaddr.checked_sub(load.p_vaddr)?;
            (offset.checked_add(len)? <= load.p_filesz)
                .then(|| base + (load.p_offset + offset) as usize)
        };
        let dynamic = phdrs.iter().find(|p| p.p_type == PT_DYNAMIC)?;
        let (mut hash, mut strtab, mut symtab, mut strsz) = (0, 0, 0, 0);
        for i in 0..dynamic.p_filesz / 16 {
            // An entry is a tag and a value (`Elf64_Dyn`); tag 0 ends the section.
            let entry = at(dynamic.p_vaddr + i * 16, 16)? as *const [u64; 2];
            let [tag, val] = *entry;
            match tag {
                0 => break,
                DT_HASH => hash = val,
                DT_STRTAB => strtab = val,
                DT_SYMTAB => symtab = val,
                DT_STRSZ => strsz = val,
                _ => {}
            }
        }
        if hash == 0 || strtab == 0 || symtab == 0 {
            return None;
        }
        // The hash table's second word is the number of symbols.
        let count = *(at(hash + 4, 4)? as *const u32) as u64;
        let sym_size = size_of::<Elf64_Sym>() as u64;
        at(symtab, count.checked_mul(sym_size)?)?;
        // `name` and its terminating zero, within the string table.
        let wanted = name.len() as u64 + 1;
        for i in 0..count {
            let sym = &*(at(symtab + i * sym_size, sym_size)? as *const Elf64_Sym);
            if sym.st_info & 0xf != STT_FUNC || sym.st_value == 0 {
                continue;
            }
            let off = sym.st_name as u64;
            if off.checked_add(wanted).is_some_and(|end| end <= strsz) {
                let bytes = core::slice::from_raw_parts(
                    at(strtab + off, wanted)? as *const u8,
                    wanted as usize,
                );
                if bytes[..name.len()] == *name && bytes[name.len()] == 0 {
                    return at(sym.st_value, 1);
                }
            }
        }
        None
    }
}

#[cfg(not(all(target_arch = "x86_64", not(miri))))]
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
    #[cfg_attr(miri, ignore = "getauxval and the vDSO, which Miri does not model")]
    fn the_vdso_clock_is_found_and_reads_what_glibc_reads() {
        let mut a = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let (mut v, mut b) = (a, a);
        for clock in [libc::CLOCK_MONOTONIC, libc::CLOCK_MONOTONIC_COARSE] {
            // SAFETY: clock_gettime writes the timespec we pass.
            unsafe { libc::clock_gettime(clock, &mut a) };
            clock_gettime(clock, &mut v);
            // SAFETY: as above.
            unsafe { libc::clock_gettime(clock, &mut b) };
            assert!(ns(&a) <= ns(&v) && ns(&v) <= ns(&b), "{clock}");
        }
        // Where the process has a vDSO (not under valgrind, or a kernel booted with vdso=0), the
        // function was found.
        // SAFETY: getauxval only reads the auxiliary vector.
        let vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } != 0;
        if cfg!(target_arch = "x86_64") && vdso {
            assert!(FUNCTION.load(Ordering::Relaxed) > ABSENT);
        }
    }
}
