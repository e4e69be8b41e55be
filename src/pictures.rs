//! Pictures written into run directories: image grids with `image`, charts with `plotters`.
//! Every file is PNG, written atomically.

use std::io::Cursor;
use std::path::Path;
use std::sync::Once;

use burn::prelude::*;
use image::{GrayImage, ImageFormat, Luma, RgbImage};
use plotters::prelude::*;

use crate::data::{Dataset, DatasetKind, IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES};
use crate::model::Autoencoder;
use crate::training::classifier::ClassifierEval;

/// DejaVu Sans (see assets/DejaVuSans-LICENSE.txt), so charts have text on any machine.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Make "sans-serif" resolve to the bundled font (once per process).
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("bundled font parses"));
    });
}

/// Error from drawing a chart.
#[derive(Debug, thiserror::Error)]
#[error("drawing failed: {0}")]
pub struct DrawError(String);

fn draw_err<E: std::fmt::Debug>(e: E) -> DrawError {
    DrawError(format!("{e:?}"))
}

/// Grey value of the lines between tiles.
const SEPARATOR: u8 = 128;

/// A grid of 28x28 tiles: `rows[r][c]` holds `IMAGE_PIXELS` values in [0, 1].
/// Each tile is magnified `scale` times and separated from its neighbours by a 1-pixel line.
pub fn tile_grid(rows: &[Vec<Vec<f32>>], scale: u32) -> GrayImage {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let tile = IMAGE_SIDE as u32 * scale;
    let (w, h) = (cols * (tile + 1) + 1, rows.len() as u32 * (tile + 1) + 1);
    let mut img = GrayImage::from_pixel(w, h, Luma([SEPARATOR]));
    for (r, row) in rows.iter().enumerate() {
        for (c, pixels) in row.iter().enumerate() {
            let (x0, y0) = (1 + c as u32 * (tile + 1), 1 + r as u32 * (tile + 1));
            for y in 0..tile {
                for x in 0..tile {
                    let i = (y / scale) as usize * IMAGE_SIDE + (x / scale) as usize;
                    let v = (pixels[i].clamp(0.0, 1.0) * 255.0).round() as u8;
                    img.put_pixel(x0 + x, y0 + y, Luma([v]));
                }
            }
        }
    }
    img
}

/// Encode as PNG and write atomically.
pub fn save_png(img: &GrayImage, path: &Path) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .map_err(std::io::Error::other)?;
    crate::atomic::write(path, &bytes)
}

/// Encode an RGB image as PNG and write atomically.
pub fn save_rgb_png(img: &RgbImage, path: &Path) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .map_err(std::io::Error::other)?;
    crate::atomic::write(path, &bytes)
}

/// Draw on an RGB canvas of `w x h` with plotters and return the image.
pub fn render(
    w: u32,
    h: u32,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<(), DrawError>,
) -> Result<RgbImage, DrawError> {
    register_font();
    let mut buffer = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    Ok(RgbImage::from_raw(w, h, buffer).expect("buffer of w·h·3 bytes"))
}

/// The confusion matrix as a heat map: rows true class, columns predicted, colour by the
/// share of the row, counts written in the cells.
pub fn confusion_heatmap(
    eval: &ClassifierEval,
    dataset: DatasetKind,
) -> Result<RgbImage, DrawError> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let names = dataset.class_names();
    let n = NUM_CLASSES as i32;
    // Row r of the chart (from the bottom) shows true class n-1-r, so class 0 is on top.
    let label = |v: &SegmentValue<i32>, flip: bool| match v {
        SegmentValue::CenterOf(i) if (0..n).contains(i) => {
            let class = if flip { n - 1 - i } else { *i } as usize;
            names[class].to_string()
        }
        _ => String::new(),
    };
    render(760, 680, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "{dataset} confusion matrix ({:.2} % correct)",
                    100.0 * eval.accuracy()
                ),
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(if dataset == DatasetKind::Mnist {
                50
            } else {
                110
            })
            .build_cartesian_2d((0..n).into_segmented(), (0..n).into_segmented())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted class")
            .y_desc("true class")
            .x_labels(NUM_CLASSES)
            .y_labels(NUM_CLASSES)
            .x_label_formatter(&|v| label(v, false))
            .y_label_formatter(&|v| label(v, true))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(draw_err)?;
        let centred = ("sans-serif", 14)
            .into_font()
            .into_text_style(root)
            .pos(Pos::new(HPos::Center, VPos::Center));
        for t in 0..NUM_CLASSES {
            let row_total: usize = eval.confusion[t].iter().sum::<usize>().max(1);
            for p in 0..NUM_CLASSES {
                let count = eval.confusion[t][p];
                let share = count as f64 / row_total as f64;
                // Square root so that small off-diagonal counts stay visible.
                let colour = ViridisRGB::get_color(share.sqrt());
                let (x, y) = (p as i32, n - 1 - t as i32);
                let cell = [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ];
                chart
                    .draw_series(std::iter::once(Rectangle::new(cell, colour.filled())))
                    .map_err(draw_err)?;
                let ink = if share > 0.5 { BLACK } else { WHITE };
                chart
                    .draw_series(std::iter::once(Text::new(
                        count.to_string(),
                        (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                        centred.color(&ink),
                    )))
                    .map_err(draw_err)?;
            }
        }
        Ok(())
    })
}

/// Split a `[B, 1, 28, 28]` tensor into B vectors of pixels.
pub fn tensor_images(images: Tensor<4>) -> Vec<Vec<f32>> {
    let values = images
        .into_data()
        .try_to_vec::<f32>()
        .expect("float tensor holds f32");
    values.chunks(IMAGE_PIXELS).map(<[f32]>::to_vec).collect()
}

/// The first `n` test images (top row) above their reconstructions (bottom row).
pub fn reconstruction_grid<M: Autoencoder>(
    model: &M,
    test: &Dataset,
    n: usize,
    device: &Device,
) -> GrayImage {
    let indices: Vec<usize> = (0..n.min(test.len())).collect();
    let images = test.images_tensor(&indices, device);
    let originals = tensor_images(images.clone());
    let reconstructions = tensor_images(model.reconstruct(images));
    tile_grid(&[originals, reconstructions], 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_geometry_and_values() {
        let white = vec![1.0; IMAGE_PIXELS];
        let black = vec![0.0; IMAGE_PIXELS];
        let img = tile_grid(&[vec![white.clone(), black.clone()], vec![black, white]], 2);
        // 2 tiles of 56 px + 3 separator lines = 115 in each direction.
        assert_eq!(img.dimensions(), (115, 115));
        assert_eq!(img.get_pixel(0, 0).0, [SEPARATOR]);
        assert_eq!(img.get_pixel(1, 1).0, [255]);
        assert_eq!(img.get_pixel(58, 1).0, [0]);
        assert_eq!(img.get_pixel(58, 58).0, [255]);
    }

    #[test]
    fn heat_map_is_an_image_of_the_set_size() {
        let mut confusion = [[0usize; NUM_CLASSES]; NUM_CLASSES];
        for (c, row) in confusion.iter_mut().enumerate() {
            row[c] = 90;
            row[(c + 1) % NUM_CLASSES] = 10;
        }
        let eval = ClassifierEval {
            confusion,
            mean_loss: 0.3,
        };
        let img = confusion_heatmap(&eval, DatasetKind::Mnist).unwrap();
        assert_eq!(img.dimensions(), (760, 680));
        // Not blank: the cells put many colours on the white canvas.
        let distinct: std::collections::HashSet<_> = img.pixels().map(|p| p.0).collect();
        assert!(distinct.len() > 10);
    }

    #[test]
    fn png_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.png");
        let img = tile_grid(&[vec![vec![0.5; IMAGE_PIXELS]]], 1);
        save_png(&img, &path).unwrap();
        let back = image::open(&path).unwrap().to_luma8();
        assert_eq!(back, img);
    }
}
