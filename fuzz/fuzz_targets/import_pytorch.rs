//! `cae import` of a PyTorch file: any bytes, as a `torch.save` archive or a bare pickle,
//! through the real import (burn-store's pickle reader, cae's renaming and shape checks) into
//! the lecture's autoencoder: the weights or an error, never a panic, and nothing run.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    // The bytes as they are (a bare pickle when they start 0x80), and as data.pkl of a zip
    // archive, which reaches the pickle reader behind the archive reader.
    common::import(data, "pt");
    if let Some(zipped) = common::zipped_pickle(data) {
        common::import(&zipped, "pt");
    }
});
