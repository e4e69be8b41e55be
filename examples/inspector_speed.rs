//! Time the inspector's forward pass on one image with cae's convolution kernels and with
//! burn's own (docs/BENCHMARKS.md §20): `cargo run --release --example inspector_speed -- SIDE`.
use burn::prelude::*;
use cae::model::draem::DraemConfig;

fn main() {
    let side: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let device = Device::flex();
    let model = DraemConfig::new(1).init(&device);
    let x = Tensor::<4>::ones([1, 1, side, side], &device);
    for kernels in [true, false, true, false] {
        cae::ops::conv::set_kernels_enabled(kernels);
        let start = std::time::Instant::now();
        let map = model.anomaly_map(x.clone());
        let _ = map.into_data();
        println!(
            "{side}x{side}, {} convolutions: {:.3} s",
            if kernels { "cae's" } else { "burn's" },
            start.elapsed().as_secs_f64()
        );
    }
}
