//! Training-time augmentation of classifier inputs.

use burn::prelude::*;
use rand::Rng;

use super::{Dataset, IMAGE_PIXELS, IMAGE_SIDE, pixels_tensor};

/// Copy of `image` moved `dx` pixels right and `dy` down; uncovered pixels are background (0).
pub fn shift(image: &[u8], dx: i32, dy: i32) -> [u8; IMAGE_PIXELS] {
    let mut out = [0u8; IMAGE_PIXELS];
    let side = IMAGE_SIDE as i32;
    for y in 0..side {
        let sy = y - dy;
        if !(0..side).contains(&sy) {
            continue;
        }
        for x in 0..side {
            let sx = x - dx;
            if (0..side).contains(&sx) {
                out[(y * side + x) as usize] = image[(sy * side + sx) as usize];
            }
        }
    }
    out
}

/// Images `indices`, each shifted by a random offset in `-max_shift..=max_shift` along each axis,
/// as a `[B, 1, 28, 28]` tensor in [0, 1].
pub fn shifted_images_tensor(
    data: &Dataset,
    indices: &[usize],
    max_shift: u32,
    rng: &mut impl Rng,
    device: &Device,
) -> Tensor<4> {
    let m = max_shift as i32;
    let mut values = Vec::with_capacity(indices.len() * IMAGE_PIXELS);
    for &i in indices {
        let (dx, dy) = (rng.random_range(-m..=m), rng.random_range(-m..=m));
        values.extend(
            shift(data.image(i), dx, dy)
                .iter()
                .map(|&p| f32::from(p) / 255.0),
        );
    }
    pixels_tensor(values, data.shape, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_moves_a_pixel_and_drops_what_leaves() {
        let mut image = [0u8; IMAGE_PIXELS];
        image[5 * IMAGE_SIDE + 7] = 200; // (x 7, y 5)
        image[27] = 9; // (x 27, y 0): leaves on the right
        let out = shift(&image, 2, -1);
        assert_eq!(out[4 * IMAGE_SIDE + 9], 200); // (x 9, y 4)
        assert_eq!(out.iter().filter(|&&p| p != 0).count(), 1);
        assert_eq!(shift(&image, 0, 0), image);
    }
}
