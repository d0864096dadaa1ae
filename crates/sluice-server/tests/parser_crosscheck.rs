//! Cross-checks the RESP request parser against an independent implementation, the
//! `redis-protocol` crate: requests it encodes must come out of our parser argument for
//! argument however the bytes are split, and malformed input must end in a protocol error or a
//! wait for more bytes, never a panic.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode;
use redis_protocol::resp2::types::{OwnedFrame, Resp2Frame};
use sluice_server::frontend::parse::{Limits, Parsed, ProtocolError, RequestParser};

/// Small limits, so that oversized requests are cheap to generate.
const SMALL: Limits = Limits {
    max_bulk_len: 64,
    max_multibulk_len: 16,
    max_inline_len: 128,
};

/// redis-protocol's RESP2 encoding of a command: an array of bulk strings.
fn encode_command(args: &[Vec<u8>]) -> Vec<u8> {
    let frame = OwnedFrame::Array(args.iter().cloned().map(OwnedFrame::BulkString).collect());
    let mut buf = vec![0u8; frame.encode_len(false)];
    let n = encode(&mut buf, &frame, false).expect("redis-protocol encodes");
    buf.truncate(n);
    buf
}

/// What our parser made of a byte stream fed in pieces.
#[derive(Debug, Default)]
struct Run {
    commands: Vec<Vec<Bytes>>,
    nothing: usize,
    error: Option<ProtocolError>,
    /// Bytes left unconsumed at the end (a request still incomplete).
    left: usize,
}

/// Feeds `input` to a fresh parser, cut at the given points, taking every request it yields;
/// stops at the first protocol error as a connection does.
fn feed(input: &[u8], cuts: &[Index], limits: Limits) -> Run {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
    points.push(input.len());
    points.sort_unstable();
    let mut parser = RequestParser::new(limits);
    let mut buf = BytesMut::new();
    let mut run = Run::default();
    let mut from = 0;
    for to in points {
        buf.extend_from_slice(&input[from..to]);
        from = to;
        loop {
            match parser.next(&mut buf) {
                Ok(Some(Parsed::Command(args))) => run.commands.push(args),
                Ok(Some(Parsed::Nothing)) => run.nothing += 1,
                Ok(None) => break,
                Err(e) => {
                    run.error = Some(e);
                    run.left = buf.len();
                    return run;
                }
            }
        }
    }
    run.left = buf.len();
    run
}

fn as_bytes(args: &[Vec<u8>]) -> Vec<Bytes> {
    args.iter().map(|a| Bytes::copy_from_slice(a)).collect()
}

/// An argument: empty, short binary (CR, LF and NUL included), protocol-looking bytes, or long.
fn arg() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        6 => vec(any::<u8>(), 0..24),
        3 => vec(prop::sample::select(b"\r\n\0*$:+-0123456789 \"'".to_vec()), 0..12),
        1 => vec(any::<u8>(), 1000..4000),
    ]
}

fn command() -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(arg(), 1..8)
}

/// A command within [`SMALL`]: at most 16 arguments of at most 64 bytes.
fn small_command() -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(vec(any::<u8>(), 0..=64), 1..=16)
}

/// A request that is malformed in one of the ways Redis refuses, with the error it gets.
fn malformed() -> impl Strategy<Value = (Vec<u8>, &'static [u8])> {
    let bad_count = prop::sample::select(vec![
        "",
        "x",
        "1x",
        "+1",
        "01",
        "-0",
        " 1",
        "1 ",
        "0x10",
        "99999999999999999999",
        "2147483648",
    ]);
    let bad_len = prop::sample::select(vec![
        "",
        "x",
        "3x",
        "+3",
        "03",
        "-0",
        "-1",
        "-5",
        " 3",
        "1e3",
        "536870913",
    ]);
    let not_dollar = prop::sample::select(b"+-:*_%~#!=,(.aZ\xff".to_vec());
    prop_oneof![
        bad_count.prop_map(|c| (
            format!("*{c}\r\n$4\r\nPING\r\n").into_bytes(),
            &b"invalid multibulk length"[..]
        )),
        bad_len.prop_map(|l| (
            format!("*1\r\n${l}\r\nPING\r\n").into_bytes(),
            &b"invalid bulk length"[..]
        )),
        not_dollar.prop_map(|b| {
            let mut v = b"*2\r\n$3\r\nGET\r\n".to_vec();
            v.push(b);
            v.extend_from_slice(b"1\r\nk\r\n");
            (v, &b"expected '$', got '"[..])
        }),
        Just((
            b"*1048577\r\n$4\r\nPING\r\n".to_vec(),
            &b"invalid multibulk length"[..]
        )),
        Just((
            b"*1\r\n$536870913\r\n".to_vec(),
            &b"invalid bulk length"[..]
        )),
        prop::sample::select(vec!["SET k \"v", "SET k 'v", "GET \"k\"x", "GET 'k'x"]).prop_map(
            |l| (
                format!("{l}\r\n").into_bytes(),
                &b"unbalanced quotes in request"[..]
            )
        ),
        Just((vec![b'a'; 70 * 1024], &b"too big inline request"[..])),
        Just((
            [&b"*1\r\n$"[..], &[b'1'; 70 * 1024]].concat(),
            &b"too big bulk count string"[..]
        )),
    ]
}

/// One byte-level corruption of a valid stream.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(b"\r\n\0*$-+0123456789".to_vec())
    ];
    prop_oneof![
        (any::<Index>(), byte.clone()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<Index>(), byte).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Delete),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn apply(mut input: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if input.is_empty() {
            break;
        }
        match *m {
            Mutation::Replace(ref i, b) => {
                let at = i.index(input.len());
                input[at] = b;
            }
            Mutation::Insert(ref i, b) => input.insert(i.index(input.len() + 1), b),
            Mutation::Delete(ref i) => {
                input.remove(i.index(input.len()));
            }
            Mutation::Truncate(ref i) => input.truncate(i.index(input.len())),
        }
    }
    input
}

/// The arguments of a frame redis-protocol decoded, if it is a non-empty array of bulks.
fn bulk_array(frame: &OwnedFrame) -> Option<Vec<Bytes>> {
    match frame {
        OwnedFrame::Array(items) if !items.is_empty() => items
            .iter()
            .map(|f| match f {
                OwnedFrame::BulkString(b) => Some(Bytes::copy_from_slice(b)),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Pipelines encoded by redis-protocol come out of our parser unchanged, however split.
    #[test]
    fn encoded_pipelines_parse_identically(
        pipeline in vec(command(), 1..5),
        cuts in vec(any::<Index>(), 0..8),
    ) {
        let wire: Vec<u8> = pipeline.iter().flat_map(|c| encode_command(c)).collect();
        // The encoding is what redis-protocol itself decodes back.
        let (first, _) = decode(&wire).unwrap().unwrap();
        prop_assert_eq!(bulk_array(&first), Some(as_bytes(&pipeline[0])));

        let run = feed(&wire, &cuts, Limits::default());
        prop_assert!(run.error.is_none(), "{:?}", run.error);
        prop_assert_eq!(run.nothing, 0);
        prop_assert_eq!(run.left, 0);
        let expected: Vec<Vec<Bytes>> = pipeline.iter().map(|c| as_bytes(c)).collect();
        prop_assert_eq!(run.commands, expected);
    }

    /// Within small limits, commands that fit parse; one argument over the bulk limit or too
    /// many arguments is a protocol error, never a partial command.
    #[test]
    fn small_limits_parse_or_refuse(
        cmd in small_command(),
        oversized in prop_oneof![Just(None), (0usize..16, 65usize..200).prop_map(Some)],
        cuts in vec(any::<Index>(), 0..8),
    ) {
        let mut cmd = cmd;
        if let Some((at, len)) = oversized {
            let at = at % cmd.len();
            cmd[at] = vec![b'x'; len];
        }
        let too_many = [cmd.clone(), vec![b"a".to_vec(); 17]].concat();
        for (args, fits) in [(&cmd, oversized.is_none()), (&too_many, false)] {
            let run = feed(&encode_command(args), &cuts, SMALL);
            if fits {
                prop_assert!(run.error.is_none(), "{:?}", run.error);
                prop_assert_eq!(&run.commands, &vec![as_bytes(args)]);
            } else {
                prop_assert!(run.commands.is_empty());
                let error = run.error.expect("a protocol error");
                prop_assert!(
                    error.0 == b"invalid bulk length" || error.0 == b"invalid multibulk length",
                    "{}", error.0.escape_ascii()
                );
            }
        }
    }

    /// A malformed request after valid ones: the valid ones run, then the error Redis gives.
    #[test]
    fn malformed_requests_are_protocol_errors(
        before in vec(command(), 0..3),
        (bad, message) in malformed(),
        cuts in vec(any::<Index>(), 0..8),
    ) {
        let mut wire: Vec<u8> = before.iter().flat_map(|c| encode_command(c)).collect();
        wire.extend_from_slice(&bad);
        let run = feed(&wire, &cuts, Limits::default());
        let expected: Vec<Vec<Bytes>> = before.iter().map(|c| as_bytes(c)).collect();
        prop_assert_eq!(run.commands, expected);
        let error = run.error.expect("a protocol error");
        prop_assert!(
            error.0.starts_with(message),
            "{} for {}", error.0.escape_ascii(), bad.escape_ascii()
        );
    }

    /// A truncated request is never a command: the parser waits for the rest.
    #[test]
    fn truncated_requests_wait(
        cmd in command(),
        cut in any::<Index>(),
        cuts in vec(any::<Index>(), 0..8),
    ) {
        let wire = encode_command(&cmd);
        let short = &wire[..cut.index(wire.len())];
        let run = feed(short, &cuts, Limits::default());
        prop_assert!(run.commands.is_empty());
        prop_assert!(run.error.is_none(), "{:?}", run.error);
        prop_assert_eq!(run.left, short.len());
    }

    /// Corrupted pipelines never panic, and whatever both parsers accept, they agree on.
    #[test]
    fn corrupted_input_never_panics_and_agrees(
        pipeline in vec(command(), 1..3),
        mutations in vec(mutation(), 1..4),
        cuts in vec(any::<Index>(), 0..8),
        small in any::<bool>(),
    ) {
        let wire: Vec<u8> = pipeline.iter().flat_map(|c| encode_command(c)).collect();
        let input = apply(wire, &mutations);
        let limits = if small { SMALL } else { Limits::default() };
        let run = feed(&input, &cuts, limits);
        let whole = feed(&input, &[], limits);
        // Chunking changes nothing but how much a size limit sees at once.
        let too_big = |r: &Run| r.error.as_ref().is_some_and(|e| e.0.starts_with(b"too big"));
        if !too_big(&run) && !too_big(&whole) {
            prop_assert_eq!(&run.commands, &whole.commands);
            prop_assert_eq!(&run.error, &whole.error);
        }
        if input.first() == Some(&b'*') {
            if let Ok(Some((frame, _))) = decode(&input) {
                if let (Some(theirs), Some(ours)) = (bulk_array(&frame), whole.commands.first()) {
                    prop_assert_eq!(ours, &theirs);
                }
            }
        }
    }

    /// Arbitrary bytes, biased to protocol characters, never panic in any chunking.
    #[test]
    fn garbage_never_panics(
        input in prop_oneof![
            vec(any::<u8>(), 0..256),
            vec(prop::sample::select(b"*$\r\n0123456789-+ \"'\\x\0".to_vec()), 0..256),
        ],
        cuts in vec(any::<Index>(), 0..16),
        small in any::<bool>(),
    ) {
        let limits = if small { SMALL } else { Limits::default() };
        let run = feed(&input, &cuts, limits);
        prop_assert!(run.left <= input.len());
        for args in &run.commands {
            prop_assert!(!args.is_empty());
        }
    }
}

/// Regression seeds the fuzzers and properties above start from, checked by name.
#[test]
fn known_edge_cases() {
    let parse = |input: &[u8]| feed(input, &[], Limits::default());
    // `*0` and negative counts are no command; `$0` is an empty argument.
    let run = parse(b"*0\r\n*-1\r\n*1\r\n$0\r\n\r\n");
    assert_eq!(run.nothing, 2);
    assert_eq!(run.commands, vec![vec![Bytes::new()]]);
    // The two bytes after a bulk are skipped unchecked, as in Redis.
    let run = parse(b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n");
    assert_eq!(run.commands.len(), 2);
    assert!(run.error.is_none());
}
