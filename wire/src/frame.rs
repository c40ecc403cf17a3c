//! Reading size-prefixed response frames from a connection, buffered.
//!
//! A response is a 4-byte big-endian size and that many bytes. Reading the size and the body
//! with one `read` each costs two system calls per response, and under load many responses
//! wait in the socket at once. [`FrameReader`] reads what is there into a fixed buffer and
//! cuts frames from it: a frame that fits the buffer is copied out (a small copy instead of a
//! system call, and the frame does not pin the buffer), a larger one (fetch responses) is read
//! into an allocation of its own size, never zero-filled first. The size is checked against
//! the connection's limit before anything is allocated.
//!
//! Public only for the fuzz target (`fuzz/fuzz_targets/response_frames.rs`); not part of the
//! client's API.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::protocol::{self, ProtocolError};

/// The read buffer of one connection.
pub const READ_BUFFER: usize = 64 * 1024;

/// Why no frame could be read.
#[derive(Debug)]
pub enum FrameError {
    /// The connection failed or closed (also in the middle of a frame).
    Io(std::io::Error),
    /// The size prefix is negative or above the limit.
    Protocol(ProtocolError),
}

/// See the module documentation.
pub struct FrameReader<R> {
    rd: R,
    buf: Box<[u8]>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    max_frame: usize,
}

impl<R> std::fmt::Debug for FrameReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader")
            .field("buffered", &(self.end - self.start))
            .field("max_frame", &self.max_frame)
            .finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames of at most `max_frame` bytes from `rd`.
    pub fn new(rd: R, max_frame: usize) -> Self {
        FrameReader {
            rd,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            max_frame,
        }
    }

    fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Reads until at least `n` (at most [`READ_BUFFER`]) bytes are buffered.
    async fn fill(&mut self, n: usize) -> std::io::Result<()> {
        debug_assert!(n <= READ_BUFFER);
        if self.buffered() >= n {
            return Ok(());
        }
        if self.buf.len() - self.start < n {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.buffered() < n {
            let read = self.rd.read(&mut self.buf[self.end..]).await?;
            if read == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.end += read;
        }
        Ok(())
    }

    /// The next frame (without its size prefix).
    pub async fn frame(&mut self) -> Result<Bytes, FrameError> {
        self.fill(4).await.map_err(FrameError::Io)?;
        let mut size = [0u8; 4];
        size.copy_from_slice(&self.buf[self.start..self.start + 4]);
        let len = protocol::check_frame_len(i32::from_be_bytes(size), self.max_frame)
            .map_err(FrameError::Protocol)?;
        self.start += 4;
        if len <= READ_BUFFER {
            self.fill(len).await.map_err(FrameError::Io)?;
            let frame = Bytes::copy_from_slice(&self.buf[self.start..self.start + len]);
            self.start += len;
            return Ok(frame);
        }
        let mut frame = BytesMut::with_capacity(len);
        let have = self.buffered();
        frame.extend_from_slice(&self.buf[self.start..self.end]);
        self.start = 0;
        self.end = 0;
        let mut missing = len - have;
        while missing > 0 {
            let limit = u64::try_from(missing).unwrap_or(u64::MAX);
            let read = (&mut self.rd)
                .take(limit)
                .read_buf(&mut frame)
                .await
                .map_err(FrameError::Io)?;
            if read == 0 {
                return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            missing -= read;
        }
        Ok(frame.freeze())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::io::AsyncWriteExt;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    fn body(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    /// Frames of every size class, written in pieces of `piece` bytes (so sizes and bodies
    /// are split across reads), come out whole and in order.
    async fn round_trip(piece: usize) {
        let bodies = [
            body(0, 1),
            body(1, 2),
            body(100, 3),
            body(READ_BUFFER - 4, 4),
            body(READ_BUFFER, 5),
            body(READ_BUFFER + 1, 6),
            body(3 * READ_BUFFER + 17, 7),
            body(9, 8),
        ];
        let wire: Vec<u8> = bodies.iter().flat_map(|b| framed(b)).collect();
        let (mut tx, rx) = tokio::io::duplex(4096);
        let writer = tokio::spawn(async move {
            for chunk in wire.chunks(piece) {
                tx.write_all(chunk).await.unwrap();
            }
        });
        let mut reader = FrameReader::new(rx, 1 << 20);
        for b in &bodies {
            let frame = reader.frame().await.unwrap();
            assert_eq!(frame.len(), b.len());
            assert!(frame[..] == b[..], "frame of {} bytes differs", b.len());
        }
        writer.await.unwrap();
        assert!(matches!(reader.frame().await, Err(FrameError::Io(_))));
    }

    #[tokio::test]
    async fn frames_split_across_reads_come_out_whole() {
        for piece in [1, 3, 4, 5, 1000, READ_BUFFER + 3, 1 << 20] {
            round_trip(piece).await;
        }
    }

    #[tokio::test]
    async fn a_size_above_the_limit_or_negative_fails_before_allocating() {
        let mut reader = FrameReader::new(&[0x7f, 0xff, 0xff, 0xff, 0, 0][..], 1 << 20);
        assert!(matches!(
            reader.frame().await,
            Err(FrameError::Protocol(ProtocolError::FrameSize { .. }))
        ));
        let mut reader = FrameReader::new(&[0xff, 0xff, 0xff, 0xfe][..], 1 << 20);
        assert!(matches!(reader.frame().await, Err(FrameError::Protocol(_))));
    }

    #[tokio::test]
    async fn a_connection_closed_mid_frame_is_an_error() {
        for cut in [2, 4, 50, READ_BUFFER + 100] {
            let mut bytes = framed(&body(READ_BUFFER + 200, 9));
            bytes.truncate(cut);
            let mut reader = FrameReader::new(&bytes[..], 1 << 20);
            assert!(
                matches!(reader.frame().await, Err(FrameError::Io(_))),
                "cut at {cut}"
            );
        }
    }
}
