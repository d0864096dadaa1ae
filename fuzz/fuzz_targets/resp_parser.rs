//! Fuzzes the RESP request parser with arbitrary bytes arriving in arbitrary chunks.
//!
//! Input layout: byte 0 picks the framing limits, byte 1 seeds the chunk sizes, the rest is
//! the byte stream a client sends. Checked on every call of `RequestParser::next`:
//! - no panic, and a request taken off the buffer always consumes bytes (no livelock);
//! - `Ok(None)` leaves the buffer untouched;
//! - a multibulk command's arguments are zero-copy slices of the bytes it consumed, in order,
//!   each right after its `$len\r` line, equal to the input at that offset;
//! - an inline command's arguments are what `split_args` makes of its line;
//! - the parser never grows the buffer, and no allocation it makes is sized by what the peer
//!   merely announced (`*1048576`, `$536870912`): every allocation is bounded by the bytes
//!   actually buffered;
//! - the commands parsed are the same whatever the chunking (up to a size-limit error, which
//!   depends on how much is buffered at once, as in Redis);
//! - every command survives a round trip through the reply encoder (`Frame::Array` of bulks).

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sluice_server::frontend::parse::{split_args, Limits, Parsed, ProtocolError, RequestParser};
use sluice_server::frontend::Frame;

/// The system allocator, recording the largest single allocation since the last reset.
struct PeakAlloc;

static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        PEAK.fetch_max(layout.size(), Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        PEAK.fetch_max(layout.size(), Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        PEAK.fetch_max(new_size, Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

fn limits(selector: u8) -> Limits {
    match selector % 5 {
        0 => Limits {
            max_bulk_len: 16,
            max_multibulk_len: 8,
            max_inline_len: 32,
        },
        1 => Limits {
            max_bulk_len: 1024,
            max_multibulk_len: 64,
            max_inline_len: 256,
        },
        2 => Limits::default(),
        3 => Limits {
            max_bulk_len: 0,
            max_multibulk_len: 1,
            max_inline_len: 0,
        },
        _ => Limits {
            max_bulk_len: u64::MAX,
            max_multibulk_len: u64::MAX,
            max_inline_len: 64,
        },
    }
}

/// Chunk sizes from a seed: all at once, byte by byte, or pseudo-random runs.
fn chunks(stream: &[u8], seed: u8) -> Vec<&[u8]> {
    let max = match seed & 3 {
        0 => stream.len().max(1),
        1 => 1,
        2 => 7,
        _ => 64,
    };
    let mut state = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % max + 1).min(rest.len());
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
    }
    out
}

/// What one parse of a whole stream produced.
struct Outcome {
    commands: Vec<Vec<Bytes>>,
    error: Option<ProtocolError>,
}

impl Outcome {
    fn size_limited(&self) -> bool {
        self.error
            .as_ref()
            .is_some_and(|e| e.0.starts_with(b"too big"))
    }
}

/// Feeds `stream` to a fresh parser chunk by chunk, checking every step.
fn run(stream: &[u8], limits: Limits, chunks: &[&[u8]]) -> Outcome {
    let mut parser = RequestParser::new(limits);
    let mut buf = BytesMut::new();
    // Offset in `stream` of `buf[0]`.
    let mut at = 0usize;
    let mut out = Outcome {
        commands: Vec::new(),
        error: None,
    };
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let (base, len, cap) = (buf.as_ptr() as usize, buf.len(), buf.capacity());
            PEAK.store(0, Relaxed);
            let result = parser.next(&mut buf);
            let peak = PEAK.load(Relaxed);
            assert!(
                peak <= 4096 + 64 * len,
                "an allocation of {peak} bytes for {len} buffered bytes"
            );
            assert!(buf.capacity() <= cap, "the parser grew the buffer");
            let consumed = len - buf.len();
            match result {
                Err(e) => {
                    assert!(!e.0.is_empty());
                    out.error = Some(e);
                    return out;
                }
                Ok(None) => {
                    assert_eq!(consumed, 0, "Ok(None) consumed bytes");
                    break;
                }
                Ok(Some(parsed)) => {
                    assert!(consumed > 0, "a request consumed no bytes");
                    // `buf` holds `stream[at..]`: the arguments are checked against the input.
                    let frame = &stream[at..at + consumed];
                    if let Parsed::Command(args) = parsed {
                        assert!(!args.is_empty());
                        if frame[0] == b'*' {
                            check_multibulk(frame, base, &args);
                        } else {
                            check_inline(frame, &args);
                        }
                        check_round_trip(&args);
                        out.commands.push(args);
                    }
                    at += consumed;
                }
            }
        }
    }
    out
}

fn check_multibulk(frame: &[u8], base: usize, args: &[Bytes]) {
    let mut next = 0usize;
    for arg in args {
        if arg.is_empty() {
            continue;
        }
        let start = (arg.as_ptr() as usize)
            .checked_sub(base)
            .expect("an argument that is not a slice of the input");
        let end = start + arg.len();
        assert!(end <= frame.len(), "an argument past the consumed request");
        assert!(start >= next + 2, "arguments overlap or are out of order");
        assert_eq!(
            frame[start - 2],
            b'\r',
            "an argument not after its length line"
        );
        assert_eq!(&frame[start..end], &arg[..]);
        next = end;
    }
}

fn check_inline(frame: &[u8], args: &[Bytes]) {
    assert_eq!(frame.last(), Some(&b'\n'));
    let line = &frame[..frame.len() - 1];
    assert!(!line.contains(&b'\n') && !line.contains(&0));
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let expected = split_args(line).expect("an inline command from an unbalanced line");
    assert_eq!(expected.len(), args.len());
    for (e, a) in expected.iter().zip(args) {
        assert_eq!(&e[..], &a[..]);
        if !line.contains(&b'"') && !line.contains(&b'\'') {
            assert!(line.windows(a.len()).any(|w| w == &a[..]));
        }
    }
}

/// Encodes the arguments as a reply array of bulks and parses that back as a request.
fn check_round_trip(args: &[Bytes]) {
    let mut wire = BytesMut::new();
    Frame::Array(args.iter().cloned().map(Frame::Bulk).collect()).encode(2, &mut wire);
    let mut parser = RequestParser::new(Limits {
        max_bulk_len: u64::MAX,
        max_multibulk_len: u64::MAX,
        max_inline_len: usize::MAX,
    });
    match parser.next(&mut wire) {
        Ok(Some(Parsed::Command(back))) => assert_eq!(back, args),
        other => panic!("round trip of {args:?} gave {other:?}"),
    }
    assert!(wire.is_empty());
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let limits = limits(data[0]);
    let stream = &data[2..];
    let chunked = run(stream, limits, &chunks(stream, data[1]));
    let whole = run(stream, limits, &[stream]);
    let n = chunked.commands.len().min(whole.commands.len());
    assert_eq!(chunked.commands[..n], whole.commands[..n]);
    if !chunked.size_limited() && !whole.size_limited() {
        assert_eq!(chunked.commands, whole.commands);
        assert_eq!(chunked.error, whole.error);
    }
});
