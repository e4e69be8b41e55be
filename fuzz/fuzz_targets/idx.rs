//! Any bytes, raw or gzip, through both IDX parsers: Ok or a typed error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

#[path = "../../src/data/idx.rs"]
#[allow(dead_code)]
mod idx;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.idx");
    let _ = idx::parse_images(path, data.to_vec(), 28, 28);
    let _ = idx::parse_labels(path, data.to_vec(), 10);
    // The same bytes behind a gzip header reach the decompressor and then the parser.
    let mut gz = flate2_wrap(data);
    gz.truncate(gz.len().min(1 << 20));
    let _ = idx::parse_images(path, gz.clone(), 28, 28);
    let _ = idx::parse_labels(path, gz, 10);
});

/// A gzip member header followed by the fuzz bytes as (likely invalid) deflate data.
fn flate2_wrap(data: &[u8]) -> Vec<u8> {
    let mut v = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];
    v.extend_from_slice(data);
    v
}
