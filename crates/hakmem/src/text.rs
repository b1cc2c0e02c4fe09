//! A fixed-size text buffer for the exit report (`HAKMEM_STATS`): numbers and strings without
//! allocating, written to a file descriptor in one go. Text past the capacity is dropped.

pub struct Text {
    bytes: [u8; CAPACITY],
    len: usize,
}

const CAPACITY: usize = 16 * 1024;

/// The decimal digits of `v`, written at the end of `buf`.
pub fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

impl Text {
    pub const fn new() -> Self {
        Text {
            bytes: [0; CAPACITY],
            len: 0,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub fn push(&mut self, s: &[u8]) -> &mut Self {
        let n = s.len().min(CAPACITY - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.push(s.as_bytes())
    }

    pub fn number(&mut self, v: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        self.push(decimal(v, &mut digits))
    }

    /// `v` with `decimals` digits after the point (rounded); non-finite values print as 0.
    pub fn fixed(&mut self, v: f64, decimals: u32) -> &mut Self {
        let v = if v.is_finite() { v } else { 0.0 };
        if v < 0.0 {
            self.push(b"-");
        }
        let scale = 10u64.pow(decimals);
        let scaled = (v.abs() * scale as f64).round() as u64;
        self.number(scaled / scale);
        if decimals > 0 {
            self.push(b".");
            let frac = scaled % scale;
            let mut d = scale / 10;
            while d > 0 {
                self.push(&[b'0' + (frac / d % 10) as u8]);
                d /= 10;
            }
        }
        self
    }

    /// `v` as 0x-prefixed hexadecimal.
    pub fn hex(&mut self, v: u64) -> &mut Self {
        self.push(b"0x");
        let mut started = false;
        for i in (0..16).rev() {
            let d = ((v >> (i * 4)) & 0xF) as u8;
            if d != 0 || started || i == 0 {
                started = true;
                self.push(&[if d < 10 { b'0' + d } else { b'a' + d - 10 }]);
            }
        }
        self
    }

    /// Writes everything to `fd`.
    pub fn write_to(&self, fd: i32) {
        let mut done = 0;
        while done < self.len {
            // SAFETY: writes bytes of our own buffer.
            let n = unsafe {
                libc::write(
                    fd,
                    self.bytes[done..].as_ptr() as *const libc::c_void,
                    self.len - done,
                )
            };
            if n <= 0 {
                return;
            }
            done += n as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_digits() {
        let mut b = [0u8; 20];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(4_194_304, &mut b), b"4194304");
        assert_eq!(decimal(u64::MAX, &mut b), b"18446744073709551615");
    }

    #[test]
    fn formats_numbers() {
        let mut t = Text::new();
        t.number(0).str(" ").number(12345678901234567890).str(" ");
        t.fixed(3.14159, 2)
            .str(" ")
            .fixed(-0.5, 1)
            .str(" ")
            .fixed(2.0, 0)
            .str(" ");
        t.hex(0).str(" ").hex(0x7f3a_0010);
        assert_eq!(
            t.as_bytes(),
            b"0 12345678901234567890 3.14 -0.5 2 0x0 0x7f3a0010"
        );
    }
}
