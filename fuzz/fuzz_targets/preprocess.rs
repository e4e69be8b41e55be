//! `cae predict`'s preprocessing on any decodable image (and any bytes to the decoder):
//! a 28x28 digit or "empty", never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

// preprocess.rs takes these from its parent module (cae::data).
const IMAGE_SIDE: usize = 28;
const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;

#[path = "../../src/data/image_file.rs"]
#[allow(dead_code)]
mod image_file;

#[path = "../../src/data/preprocess.rs"]
#[allow(dead_code)]
mod preprocess;

fuzz_target!(|data: &[u8]| {
    // Small images from raw bytes: the first two bytes give the size.
    if data.len() >= 2 {
        let (w, h) = (u32::from(data[0] % 64) + 1, u32::from(data[1] % 64) + 1);
        let pixels: Vec<u8> = data[2..].iter().copied().cycle().take((w * h) as usize).collect();
        if pixels.len() == (w * h) as usize
            && let Some(img) = image::GrayImage::from_raw(w, h, pixels)
            && let Some(out) = preprocess::preprocess(&img)
        {
            assert_eq!(out.len(), 784);
        }
    }
    // Whatever the decoder makes of the bytes, within cae's limits (as `cae serve` reads an
    // upload).
    if let Ok(img) = image_file::decode_bytes(data) {
        let _ = preprocess::preprocess(&img.to_luma8());
    }
});
