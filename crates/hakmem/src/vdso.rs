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

/// The address of the vDSO's function `name`, from the section headers and dynamic symbols of
/// its ELF image.
#[cfg(target_arch = "x86_64")]
fn find(name: &[u8]) -> Option<usize> {
    use core::mem::size_of;
    use core::slice::from_raw_parts;
    use libc::{Elf64_Ehdr, Elf64_Phdr, Elf64_Shdr, Elf64_Sym};
    const SHT_DYNSYM: u32 = 11;
    const STT_FUNC: u8 = 2;
    // SAFETY: getauxval only reads the auxiliary vector.
    let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
    if base == 0 {
        return None;
    }
    // SAFETY: the auxiliary vector's AT_SYSINFO_EHDR is the address of the vDSO's ELF image,
    // mapped whole and readable for the process's life; every table read below lies in it, at the
    // offsets and counts its own headers give (checked against the structures' sizes first).
    unsafe {
        let eh = &*(base as *const Elf64_Ehdr);
        if eh.e_ident[..4] != *b"\x7fELF"
            || eh.e_ident[4] != libc::ELFCLASS64
            || eh.e_phentsize as usize != size_of::<Elf64_Phdr>()
            || eh.e_shentsize as usize != size_of::<Elf64_Shdr>()
            || eh.e_shoff == 0
        {
            return None;
        }
        let at = |offset: u64| base + offset as usize;
        let phdrs = from_raw_parts(at(eh.e_phoff) as *const Elf64_Phdr, eh.e_phnum as usize);
        let load = phdrs.iter().find(|p| p.p_type == libc::PT_LOAD)?;
        let shdrs = from_raw_parts(at(eh.e_shoff) as *const Elf64_Shdr, eh.e_shnum as usize);
        let dynsym = shdrs.iter().find(|s| s.sh_type == SHT_DYNSYM)?;
        let strtab = shdrs.get(dynsym.sh_link as usize)?;
        let count = dynsym.sh_size as usize / size_of::<Elf64_Sym>();
        let syms = from_raw_parts(at(dynsym.sh_offset) as *const Elf64_Sym, count);
        let named = |s: &Elf64_Sym| {
            (s.st_name as u64) < strtab.sh_size
                && core::ffi::CStr::from_ptr(at(strtab.sh_offset + s.st_name as u64) as *const _)
                    .to_bytes()
                    == name
        };
        let sym = syms
            .iter()
            .find(|s| s.st_info & 0xf == STT_FUNC && s.st_value != 0 && named(s))?;
        // Symbol values are addresses as linked; the image is mapped from its first byte.
        Some(at(load.p_offset + sym.st_value - load.p_vaddr))
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
