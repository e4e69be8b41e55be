//! Reading one image, from a file or an upload, within fixed bounds; writing one as PNG.
//!
//! A compressed image says its size in its header and can declare far more pixels than it has
//! bytes: a 275 KB PNG of 16000×16000 grey pixels decodes to 256 MB, and conversions on the
//! way copy that several times. Every image cae reads goes through here, so the command line,
//! image folders (one decode per thread) and `cae serve` share one set of limits: regular
//! files only (a FIFO named `x.png` would block the reader forever), at most
//! [`MAX_FILE_BYTES`] on disk, at most [`MAX_DECODED_SIDE`] pixels a side and
//! [`MAX_DECODED_BYTES`] decoded.

use std::io::{BufRead, Seek};
use std::path::Path;

use image::{DynamicImage, ImageReader};

/// Largest width or height decoded.
pub const MAX_DECODED_SIDE: u32 = 4096;
/// Largest decoded buffer, in bytes (a 4096×4096 RGBA image).
pub const MAX_DECODED_BYTES: u64 = 64 << 20;
/// Largest image file read.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

fn limited<R: BufRead + Seek>(reader: ImageReader<R>) -> Result<ImageReader<R>, String> {
    let mut reader = reader.with_guessed_format().map_err(|e| e.to_string())?;
    // The sides are checked by `decoder`, which names them; the allocation bound also holds
    // the decoders' own buffers.
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    Ok(reader)
}

/// `path` opened for decoding, if it is a regular file within [`MAX_FILE_BYTES`]; `Err` says
/// why not, without naming the file (callers do).
fn open(path: &Path) -> Result<ImageReader<std::io::BufReader<std::fs::File>>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{} MB, over the {} MB limit for an image file",
            meta.len() >> 20,
            MAX_FILE_BYTES >> 20
        ));
    }
    limited(ImageReader::open(path).map_err(|e| e.to_string())?)
}

/// The decoder of `reader`, refused when its header declares more than the limits allow.
fn decoder<'a, R: BufRead + Seek + 'a>(
    reader: ImageReader<R>,
) -> Result<impl image::ImageDecoder + 'a, String> {
    let decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    let bytes = image::ImageDecoder::total_bytes(&decoder);
    if w > MAX_DECODED_SIDE || h > MAX_DECODED_SIDE || bytes > MAX_DECODED_BYTES {
        return Err(format!(
            "{w}x{h} pixels ({} MB decoded), over the limit of {MAX_DECODED_SIDE} pixels a side \
             and {} MB",
            bytes >> 20,
            MAX_DECODED_BYTES >> 20
        ));
    }
    Ok(decoder)
}

fn decode<R: BufRead + Seek>(reader: ImageReader<R>) -> Result<DynamicImage, String> {
    DynamicImage::from_decoder(decoder(reader)?).map_err(|e| e.to_string())
}

/// Decode the image file at `path` within the limits.
pub fn decode_file(path: &Path) -> Result<DynamicImage, String> {
    decode(open(path)?)
}

/// Decode an image held in memory (an upload) within the limits.
pub fn decode_bytes(bytes: &[u8]) -> Result<DynamicImage, String> {
    decode(limited(ImageReader::new(std::io::Cursor::new(bytes)))?)
}

/// Width, height and whether it has colour, from the header alone.
pub fn probe(path: &Path) -> Result<(u32, u32, bool), String> {
    let decoder = decoder(open(path)?)?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    Ok((w, h, image::ImageDecoder::color_type(&decoder).has_color()))
}

/// Encode as PNG and write atomically.
pub fn save_png(img: &image::DynamicImage, path: &Path) -> std::io::Result<()> {
    write_png(path, |out| img.write_to(out, image::ImageFormat::Png))
}

/// Encode an RGB image as PNG and write atomically.
pub fn save_rgb_png(img: &image::RgbImage, path: &Path) -> std::io::Result<()> {
    write_png(path, |out| img.write_to(out, image::ImageFormat::Png))
}

/// The bytes `encode` writes, written to `path` atomically.
fn write_png(
    path: &Path,
    encode: impl FnOnce(&mut std::io::Cursor<&mut Vec<u8>>) -> image::ImageResult<()>,
) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    encode(&mut std::io::Cursor::new(&mut bytes)).map_err(std::io::Error::other)?;
    crate::support::atomic::write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG whose header declares `side`×`side` grey pixels, all zero: tiny on disk.
    fn bomb(side: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let encoder = image::codecs::png::PngEncoder::new_with_quality(
            &mut out,
            image::codecs::png::CompressionType::Best,
            image::codecs::png::FilterType::NoFilter,
        );
        let pixels = vec![0u8; (side * side) as usize];
        image::ImageEncoder::write_image(
            encoder,
            &pixels,
            side,
            side,
            image::ExtendedColorType::L8,
        )
        .unwrap();
        out
    }

    #[test]
    fn an_image_over_the_side_limit_is_refused_from_its_header() {
        let side = MAX_DECODED_SIDE + 1;
        let bytes = bomb(side);
        // Compressed, the 16.8 M pixels take a few kilobytes.
        assert!(bytes.len() < 100_000, "{}", bytes.len());
        let err = decode_bytes(&bytes).unwrap_err();
        assert!(err.contains("4097x4097") && err.contains("limit"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.png");
        std::fs::write(&path, &bytes).unwrap();
        assert!(decode_file(&path).unwrap_err().contains("limit"));
        assert!(probe(&path).unwrap_err().contains("limit"));
        // At the limit it decodes.
        let ok = bomb(64);
        assert_eq!(decode_bytes(&ok).unwrap().width(), 64);
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_opened() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("x.png");
        std::fs::create_dir(&folder).unwrap();
        assert_eq!(decode_file(&folder).unwrap_err(), "not a regular file");
        #[cfg(unix)]
        {
            let fifo = dir.path().join("fifo.png");
            let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a NUL-terminated path; mkfifo only creates the node.
            assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
            // Opening a FIFO for reading would block until a writer came: refused first.
            assert_eq!(decode_file(&fifo).unwrap_err(), "not a regular file");
        }
        let big = dir.path().join("big.png");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(
            decode_file(&big)
                .unwrap_err()
                .contains("over the 64 MB limit")
        );
    }
}
