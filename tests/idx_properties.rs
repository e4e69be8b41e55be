//! Property tests of the IDX reader: any byte string gives Ok or a typed error, never a panic,
//! and whatever parses is consistent with its header. tests/regressions/ holds hostile inputs
//! to replay on every run: hand-made edge cases, and any input a fuzzer ever crashes on
//! (none so far, see docs/RELIABILITY.md).

use std::path::Path;

use cae::data::idx::{IdxImages, encode_images, encode_labels, parse_images, parse_labels};
use proptest::prelude::*;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn check(bytes: Vec<u8>) {
    let p = Path::new("prop.idx");
    if let Ok(images) = parse_images(p, bytes.clone(), 28, 28) {
        assert_eq!(images.pixels.len(), images.count * 784);
    }
    if let Ok(labels) = parse_labels(p, bytes, 10) {
        assert!(labels.iter().all(|&l| l < 10));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check(bytes.clone());
        check(gzip(&bytes));
    }

    #[test]
    fn headers_with_any_sizes_never_panic(
        magic in prop_oneof![Just(0x0803u32), Just(0x0801u32), any::<u32>()],
        dims in proptest::collection::vec(any::<u32>(), 0..4),
        body in proptest::collection::vec(any::<u8>(), 0..3000),
    ) {
        let mut bytes = magic.to_be_bytes().to_vec();
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(&body);
        check(bytes);
    }

    #[test]
    fn valid_files_round_trip(count in 0usize..5, seed in any::<u8>(), labels in proptest::collection::vec(0u8..10, 0..50)) {
        let images = IdxImages {
            count,
            rows: 28,
            cols: 28,
            pixels: (0..count * 784).map(|i| (i as u8).wrapping_mul(seed)).collect(),
        };
        let p = Path::new("prop.idx");
        prop_assert_eq!(parse_images(p, gzip(&encode_images(&images)), 28, 28).unwrap(), images);
        prop_assert_eq!(parse_labels(p, encode_labels(&labels), 10).unwrap(), labels);
    }
}

#[test]
fn saved_fuzz_inputs_do_not_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "bin") {
            let bytes = std::fs::read(&path).unwrap();
            check(bytes.clone());
            check(gzip(&bytes));
        }
    }
}
