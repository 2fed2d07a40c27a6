//! Cutting a connection's byte stream into frames without copying them: the socket
//! reads into one buffer and each frame is handed out as a slice of it.

use std::ops::Range;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::error::TcpError;
use super::frame::{CRC_LEN, LENGTH_LEN};

/// Bytes of the buffer at least (eight full network buffers): one read takes all
/// the socket has, up to this much.
const MIN_BUFFER: usize = 256 * 1024;

/// Why the next frame could not be read.
#[derive(Debug)]
pub(super) enum FrameError {
    /// The socket failed.
    Io(std::io::Error),
    /// The stream ended inside a frame.
    Truncated(String),
    /// A frame's length is outside what the connection allows.
    Corrupt(String),
}

impl FrameError {
    /// The transport error, naming `connection`.
    pub(super) fn into_tcp(self, connection: &str) -> TcpError {
        let connection = connection.to_owned();
        match self {
            FrameError::Io(source) => TcpError::from_io(connection, source),
            FrameError::Truncated(reason) => TcpError::TruncatedFrame { connection, reason },
            FrameError::Corrupt(reason) => TcpError::CorruptFrame { connection, reason },
        }
    }
}

/// Reads length-prefixed frames (`length: u32 BE | body and checksum`) into one
/// buffer and hands out each whole frame's body and checksum in place.
///
/// Bytes `start..end` of the buffer are read and not handed out yet. A partial frame
/// at the end moves to the front only when the space behind it could not hold the
/// largest frame, so the copying is one partial frame per many frames read.
pub(super) struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_body: usize,
}

impl FrameReader {
    /// A reader of frames whose body and checksum are at most `max_body` bytes.
    pub(super) fn new(max_body: usize) -> Self {
        let largest = LENGTH_LEN + max_body;
        FrameReader {
            buf: vec![0; MIN_BUFFER.max(2 * largest)],
            start: 0,
            end: 0,
            max_body,
        }
    }

    /// The next frame's body and checksum (after its length); `None` when the stream
    /// ends between frames.
    pub(super) async fn next(
        &mut self,
        rd: &mut (impl AsyncRead + Unpin),
    ) -> Result<Option<&[u8]>, FrameError> {
        loop {
            if let Some(frame) = self.whole_frame()? {
                return Ok(Some(&self.buf[frame]));
            }
            if self.fill(rd).await? == 0 {
                return match self.end - self.start {
                    0 => Ok(None),
                    got => Err(FrameError::Truncated(self.missing(got))),
                };
            }
        }
    }

    /// The range of the first frame's body, if all of it is there; checks its length
    /// as soon as the length is there.
    fn whole_frame(&mut self) -> Result<Option<Range<usize>>, FrameError> {
        let available = &self.buf[self.start..self.end];
        let Some(prefix) = available.first_chunk::<LENGTH_LEN>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*prefix) as usize;
        if !(1 + CRC_LEN..=self.max_body).contains(&len) {
            let max = self.max_body;
            let min = 1 + CRC_LEN;
            return Err(FrameError::Corrupt(format!(
                "frame length {len} outside {min}..={max}"
            )));
        }
        if available.len() < LENGTH_LEN + len {
            return Ok(None);
        }
        let body = self.start + LENGTH_LEN..self.start + LENGTH_LEN + len;
        self.start = body.end;
        Ok(Some(body))
    }

    /// One read from the socket into the space behind the unread bytes (made room
    /// for first); the bytes read, 0 at the end of the stream.
    async fn fill(&mut self, rd: &mut (impl AsyncRead + Unpin)) -> Result<usize, FrameError> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.buf.len() - self.start < LENGTH_LEN + self.max_body {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        let got = rd
            .read(&mut self.buf[self.end..])
            .await
            .map_err(FrameError::Io)?;
        self.end += got;
        Ok(got)
    }

    /// What the stream lacked when it ended `got` bytes into a frame.
    fn missing(&self, got: usize) -> String {
        if got < LENGTH_LEN {
            return format!("connection closed after {got} of {LENGTH_LEN} length bytes");
        }
        let prefix = self.buf[self.start..].first_chunk::<LENGTH_LEN>();
        let len = prefix.map_or(0, |p| u32::from_be_bytes(*p));
        let body = got - LENGTH_LEN;
        format!("connection closed after {body} of {len} frame bytes")
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::ReadBuf;

    use super::*;
    use crate::network::BufferKind;
    use crate::network::tcp::frame::{BUFFER_HEADER_LEN, Frame};

    /// A stream that hands out at most `chunk` bytes per read.
    struct Chunked {
        bytes: Vec<u8>,
        at: usize,
        chunk: usize,
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let n = self
                .chunk
                .min(buf.remaining())
                .min(self.bytes.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.bytes[at..at + n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    const MAX_BODY: usize = 32 * 1024 + BUFFER_HEADER_LEN + CRC_LEN;

    /// Frames of every size from empty to the largest allowed, with distinct bytes.
    fn payloads() -> Vec<Vec<u8>> {
        let largest = MAX_BODY - BUFFER_HEADER_LEN - CRC_LEN;
        let sizes = [0, 1, 7, 100, 4096, largest, 3, largest - 1, 20_000];
        (0..60)
            .map(|i| {
                let size = sizes[i % sizes.len()];
                (0..size).map(|b| (b * 31 + i) as u8).collect()
            })
            .collect()
    }

    fn stream(payloads: &[Vec<u8>]) -> Vec<u8> {
        let frame = |(channel, bytes): (usize, &Vec<u8>)| {
            Frame::Buffer {
                channel: channel as u32,
                backlog: 0,
                kind: BufferKind::Data,
                bytes,
            }
            .encode()
        };
        payloads.iter().enumerate().flat_map(frame).collect()
    }

    /// Every frame of `bytes` read `chunk` bytes at a time, decoded, then how the
    /// stream ended.
    fn read_all(bytes: Vec<u8>, chunk: usize) -> (Vec<Vec<u8>>, Result<(), FrameError>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut rd = Chunked {
                bytes,
                at: 0,
                chunk,
            };
            let mut reader = FrameReader::new(MAX_BODY);
            let mut got = Vec::new();
            loop {
                match reader.next(&mut rd).await {
                    Ok(Some(body)) => match Frame::decode(body).expect("valid frame") {
                        Frame::Buffer { channel, bytes, .. } => {
                            assert_eq!(channel as usize, got.len(), "frames in order");
                            got.push(bytes.to_vec());
                        }
                        other => panic!("unexpected frame {other:?}"),
                    },
                    Ok(None) => return (got, Ok(())),
                    Err(e) => return (got, Err(e)),
                }
            }
        })
    }

    #[test]
    fn every_frame_arrives_whole_whatever_the_read_sizes() {
        let sent = payloads();
        for chunk in [1, 3, 4, 5, 13, 4096, 32 * 1024, 100_000, 1 << 22] {
            let (got, end) = read_all(stream(&sent), chunk);
            assert!(end.is_ok(), "chunk {chunk}: {end:?}");
            assert_eq!(got, sent, "chunk {chunk}");
        }
    }

    #[test]
    fn a_stream_cut_inside_a_frame_is_truncated_not_a_short_frame() {
        let sent = payloads();
        let whole = stream(&sent[..3]);
        let first = stream(&sent[..1]).len();
        for cut in [first + 1, first + 3, first + 4, first + 10, whole.len() - 1] {
            let (got, end) = read_all(whole[..cut].to_vec(), 7);
            assert_eq!(got, sent[..got.len()], "cut at {cut}");
            assert!(got.len() < 3, "cut at {cut}");
            let error = end.expect_err("truncated").into_tcp("a -> b").to_string();
            assert!(error.contains("truncated frame"), "{error}");
            assert!(error.contains("a -> b"), "{error}");
        }
    }

    #[test]
    fn a_length_beyond_the_limit_is_corrupt_before_any_body_is_read() {
        let mut bytes = stream(&payloads()[..1]);
        bytes.extend_from_slice(&((MAX_BODY + 1) as u32).to_be_bytes());
        let (got, end) = read_all(bytes, 1 << 20);
        assert_eq!(got.len(), 1);
        let error = end.expect_err("corrupt").into_tcp("a -> b").to_string();
        assert!(error.contains("corrupt frame"), "{error}");
        assert!(
            error.contains(&format!("frame length {}", MAX_BODY + 1)),
            "{error}"
        );
    }
}
