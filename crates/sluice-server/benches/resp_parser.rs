//! The RESP request parser: bytes in, argument slices out. The hot path of every command.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_server::frontend::parse::{Limits, Parsed, RequestParser};

fn pipeline(commands: usize, value_len: usize) -> Vec<u8> {
    let value = vec![b'v'; value_len];
    let mut out = Vec::new();
    for i in 0..commands {
        let key = format!("key:{i:012}");
        out.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n",
                key.len(),
                value_len
            )
            .as_bytes(),
        );
        out.extend_from_slice(&value);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn parse_all(input: &[u8]) -> usize {
    let mut parser = RequestParser::new(Limits::default());
    let mut buf = BytesMut::from(input);
    let mut n = 0;
    while let Ok(Some(p)) = parser.next(&mut buf) {
        if let Parsed::Command(args) = p {
            n += args.len();
            // As the server does: the argument vector is reused, not reallocated.
            parser.recycle(args);
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("resp_parser");
    for value_len in [16usize, 1024] {
        let input = pipeline(1000, value_len);
        group.throughput(Throughput::Elements(1000));
        group.bench_with_input(
            BenchmarkId::new("set_pipeline_of_1000", value_len),
            &input,
            |b, input| b.iter(|| parse_all(input)),
        );
    }
    let inline = b"SET key:000000000001 value\r\n".repeat(1000);
    group.bench_function("inline_1000", |b| b.iter(|| parse_all(&inline)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
