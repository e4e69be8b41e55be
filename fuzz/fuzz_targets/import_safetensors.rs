//! `cae import` of a safetensors file and `cae eval`'s reading of an int8 run's
//! `int8.safetensors`: any bytes through both: the weights or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    common::import(data, "safetensors");
    common::int8(data);
});
