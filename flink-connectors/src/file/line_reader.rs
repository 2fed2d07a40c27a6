//! Reads the lines of a file as bytes, with each line's byte offset, holding at most a
//! maximum length of any line in memory.

use std::io::{self, BufRead};

/// One line as read: its first bytes (up to the maximum length) and where it was.
#[derive(Debug, Default)]
pub(crate) struct Line {
    /// The line without its terminator (`\n` or `\r\n`), cut at the maximum length.
    pub(crate) bytes: Vec<u8>,
    /// The line's length in bytes without its terminator, cut or not.
    pub(crate) len: u64,
    /// Byte offset of the line's first byte in the file.
    pub(crate) offset: u64,
    /// 1-based line number.
    pub(crate) number: u64,
}

impl Line {
    /// Whether the line was longer than the maximum and only its start was kept.
    pub(crate) fn is_cut(&self) -> bool {
        self.len > self.bytes.len() as u64
    }
}

/// Splits a byte stream into [`Line`]s.
pub(crate) struct LineReader<R> {
    inner: R,
    max_len: usize,
    /// Bytes consumed so far: the offset of the next line.
    position: u64,
    lines: u64,
}

impl<R: BufRead> LineReader<R> {
    /// Lines of `inner`, each kept up to `max_len` bytes.
    #[cfg(test)]
    pub(crate) fn new(inner: R, max_len: usize) -> Self {
        Self {
            inner,
            max_len,
            position: 0,
            lines: 0,
        }
    }

    /// Lines of `inner`, which is positioned at byte `position` of its file, after
    /// `lines` lines (a restored reader).
    pub(crate) fn resume(inner: R, max_len: usize, position: u64, lines: u64) -> Self {
        Self {
            inner,
            max_len,
            position,
            lines,
        }
    }

    /// The byte offset of the next line, and the lines read so far.
    pub(crate) fn position(&self) -> (u64, u64) {
        (self.position, self.lines)
    }

    /// Reads the next line into `line` (reusing its buffer); `false` at the end.
    ///
    /// # Errors
    /// When the underlying reader fails.
    pub(crate) fn next_line(&mut self, line: &mut Line) -> io::Result<bool> {
        line.bytes.clear();
        line.len = 0;
        line.offset = self.position;
        // Keep one byte beyond the maximum, so a line of exactly `max_len` bytes
        // followed by `\r\n` can drop its `\r` and still fit.
        let keep = self.max_len.saturating_add(1);
        let mut read_any = false;
        let mut last = None;
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                break;
            }
            read_any = true;
            let (content, used, done) = match memchr::memchr(b'\n', buf) {
                Some(i) => (&buf[..i], i + 1, true),
                None => (buf, buf.len(), false),
            };
            let room = keep.saturating_sub(line.bytes.len());
            line.bytes
                .extend_from_slice(&content[..content.len().min(room)]);
            line.len += content.len() as u64;
            if let Some(&b) = content.last() {
                last = Some(b);
            }
            self.inner.consume(used);
            self.position += used as u64;
            if done {
                break;
            }
        }
        if !read_any {
            return Ok(false);
        }
        if last == Some(b'\r') {
            line.len -= 1;
            if line.bytes.len() as u64 > line.len {
                line.bytes.pop();
            }
        }
        line.bytes.truncate(self.max_len);
        self.lines += 1;
        line.number = self.lines;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8], max_len: usize, chunk: usize) -> Vec<(Vec<u8>, u64, u64, u64)> {
        let mut reader = LineReader::new(io::BufReader::with_capacity(chunk, text), max_len);
        let mut line = Line::default();
        let mut out = Vec::new();
        while reader.next_line(&mut line).unwrap() {
            out.push((line.bytes.clone(), line.len, line.offset, line.number));
        }
        out
    }

    #[test]
    fn lines_carry_offsets_and_lose_their_terminators() {
        for chunk in [1, 3, 64] {
            assert_eq!(
                lines(b"ab\r\n\ncde\nf", 10, chunk),
                vec![
                    (b"ab".to_vec(), 2, 0, 1),
                    (b"".to_vec(), 0, 4, 2),
                    (b"cde".to_vec(), 3, 5, 3),
                    (b"f".to_vec(), 1, 9, 4),
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn a_long_line_is_cut_at_the_maximum_and_the_next_one_is_whole() {
        for chunk in [1, 4, 64] {
            let got = lines(b"abcdefgh\r\nabcd\r\nxy\n", 4, chunk);
            assert_eq!(
                got,
                vec![
                    (b"abcd".to_vec(), 8, 0, 1),
                    (b"abcd".to_vec(), 4, 10, 2),
                    (b"xy".to_vec(), 2, 16, 3),
                ],
                "chunk {chunk}"
            );
        }
    }
}
