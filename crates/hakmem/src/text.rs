//! A text buffer for the exit report (`HAKMEM_STATS`) over bytes the caller provides: numbers,
//! sizes, padded columns and JSON strings without allocating, written to a file descriptor in one
//! go. Text past the capacity is dropped (and `truncated` says so).

pub struct Text<'a> {
    bytes: &'a mut [u8],
    len: usize,
    truncated: bool,
}

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

impl<'a> Text<'a> {
    /// An empty text that writes into `bytes`.
    pub fn new(bytes: &'a mut [u8]) -> Self {
        Text {
            bytes,
            len: 0,
            truncated: false,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    #[cfg(test)]
    /// Whether some text did not fit.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    pub fn push(&mut self, s: &[u8]) -> &mut Self {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
        self.truncated |= n < s.len();
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
        // Rounded half up (the value is not negative; `as` truncates).
        let scaled = (v.abs() * scale as f64 + 0.5) as u64;
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

    /// A byte count for people: `512 B`, `1.5 KiB`, `64.0 MiB`, `2.3 GiB`, `1.0 TiB`.
    pub fn size(&mut self, v: u64) -> &mut Self {
        const UNITS: [&str; 4] = [" KiB", " MiB", " GiB", " TiB"];
        if v < 1024 {
            return self.number(v).str(" B");
        }
        let mut unit = 0;
        let mut scaled = v as f64 / 1024.0;
        while scaled >= 1024.0 && unit < UNITS.len() - 1 {
            scaled /= 1024.0;
            unit += 1;
        }
        self.fixed(scaled, 1).str(UNITS[unit])
    }

    /// Bytes written since the last newline.
    fn column(&self) -> usize {
        let line = self.as_bytes();
        match line.iter().rposition(|&b| b == b'\n') {
            Some(i) => line.len() - i - 1,
            None => line.len(),
        }
    }

    /// Spaces up to column `col` of the current line (at least one if the line is already there).
    pub fn pad_to(&mut self, col: usize) -> &mut Self {
        let at = self.column();
        let n = if at < col { col - at } else { 1 };
        for _ in 0..n {
            self.push(b" ");
        }
        self
    }

    /// What `f` writes, right-aligned so that it ends at column `col` (or after one space).
    pub fn right(&mut self, col: usize, f: impl FnOnce(&mut Text)) -> &mut Self {
        let mut cell = [0u8; 64];
        let mut t = Text::new(&mut cell);
        f(&mut t);
        let width = t.as_bytes().len();
        let at = self.column();
        self.pad_to(col.saturating_sub(width).max(at + 1));
        self.push(&cell[..width])
    }

    /// `s` as a JSON string (quoted and escaped; bytes that are not UTF-8 become U+FFFD).
    pub fn json_str(&mut self, s: &[u8]) -> &mut Self {
        self.push(b"\"");
        for chunk in s.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '"' => self.push(b"\\\""),
                    '\\' => self.push(b"\\\\"),
                    '\n' => self.push(b"\\n"),
                    '\t' => self.push(b"\\t"),
                    c if (c as u32) < 0x20 => {
                        let d = c as u8;
                        let hex = |n: u8| if n < 10 { b'0' + n } else { b'a' + n - 10 };
                        self.push(&[b'\\', b'u', b'0', b'0', hex(d >> 4), hex(d & 15)])
                    }
                    c => {
                        let mut utf8 = [0u8; 4];
                        self.push(c.encode_utf8(&mut utf8).as_bytes())
                    }
                };
            }
            if !chunk.invalid().is_empty() {
                self.push("\u{fffd}".as_bytes());
            }
        }
        self.push(b"\"")
    }

    /// Writes everything to `fd`: one write() unless the kernel takes less.
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
        let mut buf = [0u8; 256];
        let mut t = Text::new(&mut buf);
        t.number(0).str(" ").number(12345678901234567890).str(" ");
        t.fixed(1.23456, 2)
            .str(" ")
            .fixed(-0.5, 1)
            .str(" ")
            .fixed(2.0, 0)
            .str(" ");
        t.hex(0).str(" ").hex(0x7f3a_0010);
        assert_eq!(
            t.as_bytes(),
            b"0 12345678901234567890 1.23 -0.5 2 0x0 0x7f3a0010"
        );
    }

    #[test]
    fn formats_sizes_for_people() {
        let mut buf = [0u8; 256];
        let mut t = Text::new(&mut buf);
        for v in [
            0,
            1023,
            1024,
            1536,
            64 << 20,
            (5 << 30) / 2,
            3 << 40,
            2048 << 40,
        ] {
            t.size(v).str("|");
        }
        assert_eq!(
            t.as_bytes(),
            b"0 B|1023 B|1.0 KiB|1.5 KiB|64.0 MiB|2.5 GiB|3.0 TiB|2048.0 TiB|".as_slice()
        );
    }

    #[test]
    fn pads_and_right_aligns_columns() {
        let mut buf = [0u8; 256];
        let mut t = Text::new(&mut buf);
        t.str("x\nab").pad_to(5).str("|");
        t.right(10, |t| {
            t.number(42);
        });
        t.right(12, |t| {
            t.number(123456);
        });
        t.str("\nlonger than").pad_to(4).str("|");
        assert_eq!(
            t.as_bytes(),
            b"x\nab   |  42 123456\nlonger than |".as_slice()
        );
    }

    #[test]
    fn json_strings_are_escaped_and_valid_utf8() {
        let mut buf = [0u8; 256];
        let mut t = Text::new(&mut buf);
        t.json_str(b"a\"b\\c\n\x01/\xc3\xa9\xff.");
        assert_eq!(
            core::str::from_utf8(t.as_bytes()).unwrap(),
            "\"a\\\"b\\\\c\\n\\u0001/\u{e9}\u{fffd}.\""
        );
    }

    #[test]
    fn text_past_the_capacity_is_dropped_and_noted() {
        let mut buf = [0u8; 4];
        let mut t = Text::new(&mut buf);
        t.str("abc");
        assert!(!t.truncated());
        t.str("de");
        assert_eq!(t.as_bytes(), b"abcd");
        assert!(t.truncated());
    }
}
