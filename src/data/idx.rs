//! Reader for the IDX format that MNIST and Fashion-MNIST ship in.
//!
//! An IDX file is a big-endian header — two zero bytes, a type byte (0x08 = unsigned byte),
//! the number of dimensions — followed by one `u32` size per dimension and the raw data.
//! Labels are `0x00000801` (one dimension), images `0x00000803` (count, rows, cols).
//! Files may be gzip-compressed; the gzip magic decides, not the file name.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Everything that can be wrong with an IDX file. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: starts with the gzip magic but does not decompress: {source}")]
    Gzip {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: too short for an IDX header: expected at least {expected} bytes, found {found}"
    )]
    ShortHeader {
        path: PathBuf,
        expected: usize,
        found: usize,
    },
    #[error("{path}: bad magic number: expected {expected:#010x}, found {found:#010x}")]
    BadMagic {
        path: PathBuf,
        expected: u32,
        found: u32,
    },
    #[error(
        "{path}: wrong image size: expected {expected_rows}x{expected_cols}, found {rows}x{cols}"
    )]
    WrongDims {
        path: PathBuf,
        expected_rows: usize,
        expected_cols: usize,
        rows: usize,
        cols: usize,
    },
    #[error(
        "{path}: header declares {declared} items ({expected_bytes} data bytes) but {found_bytes} data bytes are present"
    )]
    CountMismatch {
        path: PathBuf,
        declared: usize,
        expected_bytes: usize,
        found_bytes: usize,
    },
    #[error("{path}: label {label} at index {index} is outside 0..{classes}")]
    BadLabel {
        path: PathBuf,
        index: usize,
        label: u8,
        classes: usize,
    },
    #[error("{images} holds {image_count} images but {labels} holds {label_count} labels")]
    Disagree {
        images: PathBuf,
        image_count: usize,
        labels: PathBuf,
        label_count: usize,
    },
}

/// Images of one split: `count` row-major images of `rows x cols` bytes (0 = background).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

fn decompress_if_gzip(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>, IdxError> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 5);
    GzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|source| IdxError::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(out)
}

fn header(path: &Path, bytes: &[u8], magic: u32, dims: usize) -> Result<Vec<usize>, IdxError> {
    let header_len = 4 + 4 * dims;
    if bytes.len() < header_len {
        return Err(IdxError::ShortHeader {
            path: path.to_path_buf(),
            expected: header_len,
            found: bytes.len(),
        });
    }
    let word = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let found = word(0);
    if found != magic {
        return Err(IdxError::BadMagic {
            path: path.to_path_buf(),
            expected: magic,
            found,
        });
    }
    Ok((0..dims).map(|d| word(4 + 4 * d) as usize).collect())
}

fn check_len(path: &Path, declared: usize, item: usize, data: &[u8]) -> Result<(), IdxError> {
    // A hostile header can declare sizes whose product overflows.
    let expected_bytes = declared.saturating_mul(item);
    if data.len() != expected_bytes {
        return Err(IdxError::CountMismatch {
            path: path.to_path_buf(),
            declared,
            expected_bytes,
            found_bytes: data.len(),
        });
    }
    Ok(())
}

/// Parse an images file already in memory (decompressed or not).
pub fn parse_images(
    path: &Path,
    bytes: Vec<u8>,
    rows: usize,
    cols: usize,
) -> Result<IdxImages, IdxError> {
    let bytes = decompress_if_gzip(path, bytes)?;
    let dims = header(path, &bytes, IMAGES_MAGIC, 3)?;
    let (count, r, c) = (dims[0], dims[1], dims[2]);
    if (r, c) != (rows, cols) {
        return Err(IdxError::WrongDims {
            path: path.to_path_buf(),
            expected_rows: rows,
            expected_cols: cols,
            rows: r,
            cols: c,
        });
    }
    check_len(path, count, rows * cols, &bytes[16..])?;
    let mut pixels = bytes;
    pixels.drain(..16);
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels,
    })
}

/// Parse a labels file already in memory; every label must be below `classes`.
pub fn parse_labels(path: &Path, bytes: Vec<u8>, classes: usize) -> Result<Vec<u8>, IdxError> {
    let bytes = decompress_if_gzip(path, bytes)?;
    let dims = header(path, &bytes, LABELS_MAGIC, 1)?;
    check_len(path, dims[0], 1, &bytes[8..])?;
    let labels = bytes[8..].to_vec();
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|(_, l)| usize::from(**l) >= classes)
    {
        return Err(IdxError::BadLabel {
            path: path.to_path_buf(),
            index,
            label,
            classes,
        });
    }
    Ok(labels)
}

/// Read an images file (gzip or raw) whose images must be `rows x cols`.
pub fn read_images(path: &Path, rows: usize, cols: usize) -> Result<IdxImages, IdxError> {
    let bytes = read_raw(path)?;
    parse_images(path, bytes, rows, cols)
}

/// Read a labels file (gzip or raw) whose labels must be below `classes`.
pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<u8>, IdxError> {
    let bytes = read_raw(path)?;
    parse_labels(path, bytes, classes)
}

fn read_raw(path: &Path) -> Result<Vec<u8>, IdxError> {
    std::fs::read(path).map_err(|source| IdxError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Encode images as an (uncompressed) IDX file; used to write test fixtures and subsets.
pub fn encode_images(images: &IdxImages) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + images.pixels.len());
    for word in [
        IMAGES_MAGIC,
        images.count as u32,
        images.rows as u32,
        images.cols as u32,
    ] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(&images.pixels);
    out
}

/// Encode labels as an (uncompressed) IDX file.
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn p() -> &'static Path {
        Path::new("fixture.idx")
    }

    fn two_images() -> IdxImages {
        IdxImages {
            count: 2,
            rows: 28,
            cols: 28,
            pixels: (0..2 * 784).map(|i| (i % 256) as u8).collect(),
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn round_trips_raw_and_gzip() {
        let images = two_images();
        let raw = encode_images(&images);
        assert_eq!(parse_images(p(), raw.clone(), 28, 28).unwrap(), images);
        assert_eq!(parse_images(p(), gzip(&raw), 28, 28).unwrap(), images);
        let labels = encode_labels(&[3, 9]);
        assert_eq!(parse_labels(p(), gzip(&labels), 10).unwrap(), vec![3, 9]);
    }

    #[test]
    fn bad_magic_is_named() {
        // A labels file handed to the images reader: magic 0x801 where 0x803 is expected.
        let err = parse_images(p(), encode_labels(&[1, 2, 3, 4, 5, 6, 7, 8]), 28, 28).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::BadMagic {
                    expected: IMAGES_MAGIC,
                    found: LABELS_MAGIC,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("fixture.idx"));
    }

    #[test]
    fn truncated_data_is_a_count_mismatch() {
        let mut raw = encode_images(&two_images());
        raw.truncate(raw.len() - 1);
        let err = parse_images(p(), raw, 28, 28).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::CountMismatch {
                    declared: 2,
                    expected_bytes: 1568,
                    found_bytes: 1567,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn truncated_header_is_reported() {
        let raw = encode_images(&two_images());
        let err = parse_images(p(), raw[..10].to_vec(), 28, 28).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::ShortHeader {
                    expected: 16,
                    found: 10,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn declared_count_larger_than_data() {
        let mut labels = encode_labels(&[1, 2, 3]);
        labels[7] = 4; // header now declares 4 labels, 3 present
        let err = parse_labels(p(), labels, 10).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::CountMismatch {
                    declared: 4,
                    found_bytes: 3,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn overflowing_count_does_not_panic() {
        let mut raw = encode_images(&two_images());
        raw[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        raw[8..12].copy_from_slice(&28u32.to_be_bytes());
        assert!(matches!(
            parse_images(p(), raw, 28, 28),
            Err(IdxError::CountMismatch { .. })
        ));
    }

    #[test]
    fn wrong_dimensions_are_reported() {
        let images = IdxImages {
            count: 1,
            rows: 32,
            cols: 32,
            pixels: vec![0; 1024],
        };
        let err = parse_images(p(), encode_images(&images), 28, 28).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::WrongDims {
                    rows: 32,
                    cols: 32,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("expected 28x28, found 32x32"));
    }

    #[test]
    fn corrupt_gzip_is_reported() {
        let mut gz = gzip(&encode_images(&two_images()));
        let n = gz.len();
        gz[n / 2..].iter_mut().for_each(|b| *b = 0xAA);
        let err = parse_images(p(), gz, 28, 28).unwrap_err();
        assert!(matches!(err, IdxError::Gzip { .. }), "{err}");
    }

    #[test]
    fn not_gzip_and_not_idx() {
        // A text file: no gzip magic, so it is read raw, and its magic is wrong.
        let err = parse_labels(p(), b"<html>not found</html>".to_vec(), 10).unwrap_err();
        assert!(matches!(err, IdxError::BadMagic { .. }), "{err}");
    }

    #[test]
    fn label_out_of_range() {
        let err = parse_labels(p(), encode_labels(&[1, 10]), 10).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::BadLabel {
                    index: 1,
                    label: 10,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn missing_file_is_io_error_naming_path() {
        let err = read_labels(Path::new("no/such/labels.gz"), 10).unwrap_err();
        assert!(matches!(err, IdxError::Io { .. }));
        assert!(err.to_string().contains("no/such/labels.gz"));
    }
}
