//! Client side: `wire::frame::FrameReader`, which cuts size-prefixed response frames from a
//! connection's bytes. Byte 0 picks how the rest is cut into reads (1 to 256 bytes each, so
//! sizes and bodies split across reads); the frame limit is 1 MiB. Oracle besides "no panic /
//! no allocation above the limit": the frames read are exactly the prefix of the input that
//! parses as frames, in order.
#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll};

use kafka_persistence_wire::frame::FrameReader;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};

const MAX_FRAME: usize = 1 << 20;

/// Hands out `data` in reads of at most `piece` bytes.
struct Pieces<'a> {
    data: &'a [u8],
    piece: usize,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.piece.min(self.data.len()).min(buf.remaining());
        let (head, rest) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

/// The frames a correct reader finds in `data`.
fn expected(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = i32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        let Ok(len) = usize::try_from(len) else { break };
        if len > MAX_FRAME || data.len() - 4 < len {
            break;
        }
        out.push(&data[4..4 + len]);
        data = &data[4 + len..];
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&sel, data)) = input.split_first() else { return };
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let want = expected(data);
    let got = rt.block_on(async {
        let mut reader = FrameReader::new(Pieces { data, piece: usize::from(sel) + 1 }, MAX_FRAME);
        let mut got = Vec::new();
        while let Ok(frame) = reader.frame().await {
            got.push(frame);
        }
        got
    });
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(&g[..], *w);
    }
});
