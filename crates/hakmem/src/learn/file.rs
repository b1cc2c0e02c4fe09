//! The playbook file (`HAKMEM_PLAYBOOK`), so that the next run starts from what this one learned.
//!
//! Layout (little-endian): the magic `HAKMEMPB`, the version, the header size, the entry size,
//! the knob count, the entry count, the next id, the epochs rated; then each entry (id, parent,
//! knobs, ELO rating, wins, losses, draws, samples, mean cost, UCB1 pulls and reward sum); then an
//! FNV-1a checksum of all that. A file that fails any check is rejected whole.

use super::playbook::{Entry, Playbook, MAX_STRATEGIES};
use super::rate::{Arm, Rating};
use super::strategy::{Strategy, KNOB_COUNT};
use crate::os::errno;
use crate::text::Text;

/// Why a playbook file was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileError {
    /// The path is not NUL-terminated, has an inner NUL, or is too long.
    BadPath,
    /// A system call failed with this errno.
    Io(i32),
    /// Shorter than its header says.
    Truncated,
    /// Longer than the largest valid file, or longer than its header says.
    TooLong,
    BadMagic,
    BadVersion,
    /// Header, entry size or knob count differ from this build's.
    BadLayout,
    BadChecksum,
    /// An entry fails validation (invalid strategy, non-finite numbers, duplicate id).
    BadEntry,
    /// `save` found something other than a playbook at the path, and left it alone.
    NotAPlaybook,
}

impl FileError {
    /// Why, in a few words (for `Io`, the system's message for the common errnos).
    pub fn reason(self) -> &'static str {
        match self {
            FileError::BadPath => "path too long",
            FileError::Io(e) => match e {
                libc::EPERM => "Operation not permitted",
                libc::ENOENT => "No such file or directory",
                libc::EIO => "Input/output error",
                libc::EACCES => "Permission denied",
                libc::ENOTDIR => "Not a directory",
                libc::EISDIR => "Is a directory",
                libc::ENOSPC => "No space left on device",
                libc::EROFS => "Read-only file system",
                libc::ENAMETOOLONG => "File name too long",
                libc::ELOOP => "Too many levels of symbolic links",
                libc::EDQUOT => "Disk quota exceeded",
                _ => "system error",
            },
            FileError::Truncated => "corrupt playbook (truncated)",
            FileError::TooLong => "corrupt playbook (too long)",
            FileError::BadMagic | FileError::NotAPlaybook => "not a hakmem playbook",
            FileError::BadVersion => "playbook of another version",
            FileError::BadLayout => "playbook of another build (different layout)",
            FileError::BadChecksum => "corrupt playbook (bad checksum)",
            FileError::BadEntry => "corrupt playbook (invalid entry)",
        }
    }
}

pub const MAGIC: [u8; 8] = *b"HAKMEMPB";
pub const VERSION: u32 = 1;
pub const HEADER_SIZE: usize = 8 + 6 * 4 + 8;
pub const ENTRY_SIZE: usize = 4 + 4 + KNOB_COUNT * 8 + 8 + 4 * 4 + 8 + 8 + 8;
/// Size of the largest valid file.
pub const MAX_FILE_SIZE: usize = HEADER_SIZE + MAX_STRATEGIES * ENTRY_SIZE + 8;
/// Longest path `save` and `load` accept, NUL included.
pub const MAX_PATH: usize = 4096;

impl Playbook {
    /// Serialises the playbook into `buf`; returns the length used.
    pub fn encode(&self, buf: &mut [u8; MAX_FILE_SIZE]) -> usize {
        let mut w = Writer { buf, pos: 0 };
        w.bytes(&MAGIC);
        w.u32(VERSION);
        w.u32(HEADER_SIZE as u32);
        w.u32(ENTRY_SIZE as u32);
        w.u32(KNOB_COUNT as u32);
        w.u32(self.len as u32);
        w.u32(self.next_id);
        w.u64(self.epochs);
        for e in self.entries() {
            w.u32(e.id);
            w.u32(e.parent);
            for k in e.strategy.knobs() {
                w.u64(k);
            }
            w.f64(e.elo.rating);
            w.u32(e.elo.wins);
            w.u32(e.elo.losses);
            w.u32(e.elo.draws);
            w.u32(e.samples);
            w.f64(e.mean_cost);
            w.u64(e.arm.pulls);
            w.f64(e.arm.reward_sum);
        }
        let sum = fnv1a(&w.buf[..w.pos]);
        w.u64(sum);
        w.pos
    }

    /// Replaces the entries, ids and epoch count with those in `buf` (a whole file), keeping the
    /// configuration, selector and random state. On error nothing changes.
    pub fn decode(&mut self, buf: &[u8]) -> Result<(), FileError> {
        // Anything else than an empty file or one starting with the magic is some other file
        // (as `save` sees it).
        ensure(
            buf.is_empty() || buf.starts_with(&MAGIC),
            FileError::BadMagic,
        )?;
        ensure(buf.len() <= MAX_FILE_SIZE, FileError::TooLong)?;
        ensure(buf.len() >= HEADER_SIZE + 8, FileError::Truncated)?;
        let mut r = Reader {
            buf,
            pos: MAGIC.len(),
        };
        ensure(r.u32() == VERSION, FileError::BadVersion)?;
        let layout = [HEADER_SIZE, ENTRY_SIZE, KNOB_COUNT].map(|n| n as u32);
        ensure([r.u32(), r.u32(), r.u32()] == layout, FileError::BadLayout)?;
        let count = r.u32() as usize;
        ensure((1..=MAX_STRATEGIES).contains(&count), FileError::BadLayout)?;
        let want = HEADER_SIZE + count * ENTRY_SIZE + 8;
        ensure(buf.len() >= want, FileError::Truncated)?;
        ensure(buf.len() <= want, FileError::TooLong)?;
        let sum = Reader { buf, pos: want - 8 }.u64();
        ensure(fnv1a(&buf[..want - 8]) == sum, FileError::BadChecksum)?;
        let next_id = r.u32();
        let epochs = r.u64();
        let mut entries = [Entry::EMPTY; MAX_STRATEGIES];
        for i in 0..count {
            let id = r.u32();
            let parent = r.u32();
            let knobs = [0; KNOB_COUNT].map(|_| r.u64());
            let e = Entry {
                id,
                parent,
                strategy: Strategy::from_knobs(&knobs),
                elo: Rating {
                    rating: r.f64(),
                    wins: r.u32(),
                    losses: r.u32(),
                    draws: r.u32(),
                },
                samples: r.u32(),
                mean_cost: r.f64(),
                arm: Arm {
                    pulls: r.u64(),
                    reward_sum: r.f64(),
                },
                screened: false,
            };
            let dup = |o: &Entry| o.id == e.id || o.strategy == e.strategy;
            if entries[..i].iter().any(dup)
                || e.id == 0
                || e.id >= next_id
                || e.parent >= next_id
                || !e.strategy.is_valid()
                || !e.elo.rating.is_finite()
                || !e.mean_cost.is_finite()
                || !e.arm.reward_sum.is_finite()
                || e.arm.reward_sum < 0.0
                || e.arm.reward_sum > e.arm.pulls as f64
            {
                return Err(FileError::BadEntry);
            }
            entries[i] = e;
        }
        self.replace(&entries[..count], next_id, epochs);
        Ok(())
    }

    /// Writes the playbook to `path` (NUL-terminated, `check_replaceable`) through a synced
    /// temporary file named after the process and a rename: a crash never leaves a partial one.
    pub fn save(&self, path: &[u8]) -> Result<(), FileError> {
        check_path(path)?;
        check_replaceable(path)?;
        let mut buf = [0u8; MAX_FILE_SIZE];
        let n = self.encode(&mut buf);
        let mut tmp = [0u8; MAX_PATH + 32];
        let mut tmp = Text::new(&mut tmp);
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u64;
        tmp.push(&path[..path.len() - 1]).str(".").number(pid);
        let tmp = tmp.str(".tmp\0").as_bytes();
        // SAFETY: tmp and path are NUL-terminated and live; buf holds n initialised bytes.
        unsafe {
            let tmp = tmp.as_ptr() as *const libc::c_char;
            let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC;
            let fd = libc::open(tmp, flags, 0o644);
            if fd < 0 {
                return Err(FileError::Io(errno()));
            }
            let (mut done, mut err) = (0, 0);
            while err == 0 && done < n {
                let w = libc::write(fd, buf[done..].as_ptr() as *const libc::c_void, n - done);
                match w {
                    1.. => done += w as usize,
                    // A write that makes no progress would loop for ever: a full disk, in effect.
                    0 => err = libc::ENOSPC,
                    _ if errno() == libc::EINTR => {}
                    _ => err = errno(),
                }
            }
            if err == 0 && libc::fsync(fd) != 0 {
                err = errno();
            }
            if libc::close(fd) != 0 && err == 0 {
                err = errno();
            }
            if err == 0 && libc::rename(tmp, path.as_ptr() as *const libc::c_char) != 0 {
                err = errno();
            }
            if err != 0 {
                libc::unlink(tmp);
                return Err(FileError::Io(err));
            }
        }
        Ok(())
    }

    /// Reads the playbook from `path` (NUL-terminated); see `decode`.
    pub fn load(&mut self, path: &[u8]) -> Result<(), FileError> {
        check_path(path)?;
        // One byte more than the largest valid file, to tell "too long" from "exactly full".
        let mut buf = [0u8; MAX_FILE_SIZE + 1];
        let n = with_file(path, 0, |fd| read_all(fd, &mut buf)).map_err(FileError::Io)?;
        self.decode(&buf[..n])
    }
}

/// Ok if `save` may replace what is at `path` (NUL-terminated, checked): nothing, an empty
/// regular file, or a regular file starting with the magic.
fn check_replaceable(path: &[u8]) -> Result<(), FileError> {
    // Non-blocking, so that a FIFO at the path cannot hang us.
    let replaceable = with_file(path, libc::O_NONBLOCK, |fd| {
        // SAFETY: an all-zero stat is valid; fstat fills it.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: fd is open; fstat writes the struct we pass.
        if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Ok(false);
        }
        let mut head = [0u8; 8];
        let n = read_all(fd, &mut head).unwrap_or(0);
        Ok((st.st_size == 0 && n == 0) || head == MAGIC)
    });
    match replaceable {
        Ok(true) | Err(libc::ENOENT) => Ok(()),
        Ok(false) => Err(FileError::NotAPlaybook),
        Err(e) => Err(FileError::Io(e)),
    }
}

/// Opens `path` (NUL-terminated, checked) read-only with `flags` added, runs `f` on the file
/// descriptor and closes it; the errno if it cannot be opened or `f` fails.
fn with_file<T>(path: &[u8], flags: i32, f: impl FnOnce(i32) -> Result<T, i32>) -> Result<T, i32> {
    let flags = libc::O_RDONLY | libc::O_CLOEXEC | flags;
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr() as *const libc::c_char, flags) };
    if fd < 0 {
        return Err(errno());
    }
    let r = f(fd);
    // SAFETY: fd is open.
    unsafe { libc::close(fd) };
    r
}

/// Reads from `fd` until `buf` is full or the end: the bytes read, or the errno.
fn read_all(fd: i32, buf: &mut [u8]) -> Result<usize, i32> {
    let mut n = 0;
    while n < buf.len() {
        // SAFETY: the read stays within buf.
        let r = unsafe {
            libc::read(
                fd,
                buf[n..].as_mut_ptr() as *mut libc::c_void,
                buf.len() - n,
            )
        };
        match r {
            0 => break,
            1.. => n += r as usize,
            _ if errno() == libc::EINTR => {}
            _ => return Err(errno()),
        }
    }
    Ok(n)
}

/// Ok if `ok`, else `e`.
fn ensure(ok: bool, e: FileError) -> Result<(), FileError> {
    ok.then_some(()).ok_or(e)
}

fn check_path(path: &[u8]) -> Result<(), FileError> {
    match path.iter().position(|&b| b == 0) {
        Some(i) if i > 0 && i + 1 == path.len() && path.len() <= MAX_PATH => Ok(()),
        _ => Err(FileError::BadPath),
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

struct Writer<'a> {
    buf: &'a mut [u8; MAX_FILE_SIZE],
    pos: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
}

/// Reads fields from a buffer whose length the caller has already checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        a
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }
    fn f64(&mut self) -> f64 {
        f64::from_bits(self.u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::playbook::tests::{pb, rated};
    use crate::learn::playbook::Selector::Elo;

    #[test]
    fn round_trip_and_every_corrupt_byte_truncation_and_foreign_file_rejected() {
        let mut p = rated(Elo);
        p.evolve(); // a challenger: an entry with a parent
        let mut buf = [0u8; MAX_FILE_SIZE];
        let n = p.encode(&mut buf);
        assert_eq!(n, HEADER_SIZE + p.len * ENTRY_SIZE + 8);
        let mut q = pb(Elo);
        q.decode(&buf[..n]).unwrap();
        assert_eq!(
            (q.entries(), q.epochs(), q.next_id),
            (p.entries(), p.epochs(), p.next_id)
        );
        let mut q = pb(Elo);
        let fresh: Vec<Entry> = q.entries().to_vec();
        for i in 0..n {
            let mut b = buf;
            b[i] ^= 0x10;
            assert!(q.decode(&b[..n]).is_err(), "flip at byte {i}");
        }
        for len in 0..n {
            assert!(q.decode(&buf[..len]).is_err(), "truncated to {len}");
        }
        assert_eq!(q.entries(), &fresh[..], "a rejected file changed nothing");
        let mut b = buf;
        b[0] = b'X';
        assert_eq!(q.decode(&b[..n]), Err(FileError::BadMagic));
        let mut b = buf;
        b[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(q.decode(&b[..n]), Err(FileError::BadVersion));
        let mut b = buf;
        b[16..20].copy_from_slice(&999u32.to_le_bytes());
        assert_eq!(q.decode(&b[..n]), Err(FileError::BadLayout));
        assert_eq!(q.decode(&buf[..n - 1]), Err(FileError::Truncated));
        assert_eq!(q.decode(&buf[..n + 1]), Err(FileError::TooLong));
        let mut b = buf;
        b[HEADER_SIZE + 5] ^= 1;
        assert_eq!(q.decode(&b[..n]), Err(FileError::BadChecksum));
        for foreign in [
            &b"#!/bin/sh\n"[..],
            &[b'#'; MAX_FILE_SIZE * 2],
            b"HAKX",
            b"HAKMEMP",
        ] {
            assert_eq!(q.decode(foreign), Err(FileError::BadMagic));
        }
        assert_eq!(q.decode(b""), Err(FileError::Truncated));
        // A valid checksum over an invalid entry (knob off its ladder).
        let mut b = buf;
        b[HEADER_SIZE + 8..HEADER_SIZE + 16].copy_from_slice(&12345u64.to_le_bytes());
        let sum = fnv1a(&b[..n - 8]);
        b[n - 8..n].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(q.decode(&b[..n]), Err(FileError::BadEntry));
    }
}
