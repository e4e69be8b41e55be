//! Pictures written into run directories: image grids with `image`, charts with `plotters`.
//! Every file is PNG, written atomically.

use std::sync::Once;

use burn::prelude::*;
use image::{DynamicImage, Rgb, RgbImage};
use plotters::prelude::*;

use crate::data::tensor_images;
use crate::data::{Dataset, ImageShape};
use crate::evaluation::ClassifierEval;
use crate::model::Autoencoder;

/// DejaVu Sans (see assets/DejaVuSans-LICENSE.txt), so charts have text on any machine.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

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

/// A grid of tiles: `rows[r][c]` holds one image of `shape`, channels first, values in
/// [0, 1]. Each tile is magnified `scale` times and separated from its neighbours by a
/// 1-pixel line. Grey images give a grey picture, colour ones a colour picture.
pub fn tile_grid(rows: &[Vec<Vec<f32>>], shape: ImageShape, scale: u32) -> DynamicImage {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let (tw, th) = (shape.width as u32 * scale, shape.height as u32 * scale);
    let (w, h) = (cols * (tw + 1) + 1, rows.len() as u32 * (th + 1) + 1);
    let plane = shape.height * shape.width;
    let mut img = RgbImage::from_pixel(w, h, Rgb([SEPARATOR; 3]));
    for (r, row) in rows.iter().enumerate() {
        for (c, pixels) in row.iter().enumerate() {
            let (x0, y0) = (1 + c as u32 * (tw + 1), 1 + r as u32 * (th + 1));
            for y in 0..th {
                for x in 0..tw {
                    let i = (y / scale) as usize * shape.width + (x / scale) as usize;
                    let v = |ch: usize| {
                        let ch = ch.min(shape.channels - 1);
                        (pixels[ch * plane + i].clamp(0.0, 1.0) * 255.0).round() as u8
                    };
                    img.put_pixel(x0 + x, y0 + y, Rgb([v(0), v(1), v(2)]));
                }
            }
        }
    }
    if shape.channels == 1 {
        DynamicImage::ImageLuma8(DynamicImage::ImageRgb8(img).to_luma8())
    } else {
        DynamicImage::ImageRgb8(img)
    }
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
    title: &str,
    names: &[String],
) -> Result<RgbImage, DrawError> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let classes = eval.confusion.len();
    let n = classes as i32;
    let longest = names.iter().map(|s| s.chars().count()).max().unwrap_or(1);
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
                    "{title} confusion matrix ({:.2} % correct)",
                    100.0 * eval.accuracy()
                ),
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size((20 + 8 * longest as u32).min(200))
            .build_cartesian_2d((0..n - 1).into_segmented(), (0..n - 1).into_segmented())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted class")
            .y_desc("true class")
            .x_labels(classes)
            .y_labels(classes)
            .x_label_formatter(&|v| label(v, false))
            .y_label_formatter(&|v| label(v, true))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(draw_err)?;
        let centred = ("sans-serif", 14)
            .into_font()
            .into_text_style(root)
            .pos(Pos::new(HPos::Center, VPos::Center));
        for t in 0..classes {
            let row_total: usize = eval.confusion[t].iter().sum::<usize>().max(1);
            for p in 0..classes {
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

/// The series of a training-curves chart, each `(epoch, value)`.
#[derive(Debug, Clone, Default)]
pub struct Curves {
    pub train_loss: Vec<(f64, f64)>,
    /// The test metric drawn beside the train loss, with its name.
    pub test: (&'static str, Vec<(f64, f64)>),
    /// Test accuracy (a fraction), drawn in a second panel when there is any.
    pub accuracy: Vec<(f64, f64)>,
}

/// Train loss and a test metric per epoch; for classifiers a second panel with test accuracy.
pub fn training_curves(curves: &Curves) -> Result<RgbImage, DrawError> {
    let train = &curves.train_loss;
    let (test_metric, test) = (&curves.test.0, &curves.test.1);
    let accuracy: Vec<(f64, f64)> = curves
        .accuracy
        .iter()
        .map(|&(e, a)| (e, 100.0 * a))
        .collect();
    let epochs = train.len();
    let last = train.last().map_or(1.0, |p| p.0).max(2.0);
    let height = if accuracy.is_empty() { 420 } else { 760 };
    render(720, height, |root| {
        let panels = if accuracy.is_empty() {
            vec![root.clone()]
        } else {
            root.split_evenly((2, 1))
        };
        let top = train.iter().chain(test).map(|p| p.1).fold(0.0f64, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&panels[0])
            .caption("loss per epoch", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(1.0..last, 0.0..top.max(1e-3))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("loss")
            .x_labels(epochs.clamp(2, 20))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(draw_err)?;
        for (series, name, colour) in [
            (train, "train loss".to_string(), BLUE),
            (test, test_metric.replace('_', " "), RED),
        ] {
            chart
                .draw_series(
                    LineSeries::new(series.iter().copied(), colour.stroke_width(2)).point_size(3),
                )
                .map_err(draw_err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;
        if !accuracy.is_empty() {
            let low = accuracy.iter().map(|p| p.1).fold(100.0f64, f64::min);
            let mut acc = ChartBuilder::on(&panels[1])
                .caption("test accuracy per epoch", ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(1.0..last, (low - 0.5).max(0.0)..100.0)
                .map_err(draw_err)?;
            acc.configure_mesh()
                .x_desc("epoch")
                .y_desc("accuracy (%)")
                .x_labels(epochs.clamp(2, 20))
                .x_label_formatter(&|x| format!("{x:.0}"))
                .draw()
                .map_err(draw_err)?;
            acc.draw_series(
                LineSeries::new(accuracy.iter().copied(), GREEN.stroke_width(2)).point_size(3),
            )
            .map_err(draw_err)?;
        }
        Ok(())
    })
}

/// Ten well-separated colours (matplotlib's tab10), one per class (repeated past ten).
pub const CLASS_COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Latent vectors projected on their first two principal components, coloured by class.
/// `points` are `(pc1, pc2, label)`; `variances` the share of variance of each axis.
pub fn latent_scatter(
    points: &[(f64, f64, u8)],
    explained: (f64, f64),
    title: &str,
    names: &[String],
) -> Result<RgbImage, DrawError> {
    let range = |f: fn(&(f64, f64, u8)) -> f64| {
        let (lo, hi) = points
            .iter()
            .map(f)
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let pad = ((hi - lo) * 0.05).max(1e-6);
        (lo - pad)..(hi + pad)
    };
    render(800, 720, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("{title} test latents, first two principal components"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(range(|p| p.0), range(|p| p.1))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(format!("PC1 ({:.0} % of variance)", 100.0 * explained.0))
            .y_desc(format!("PC2 ({:.0} % of variance)", 100.0 * explained.1))
            .draw()
            .map_err(draw_err)?;
        for (class, name) in names.iter().enumerate() {
            let colour = CLASS_COLOURS[class % CLASS_COLOURS.len()];
            chart
                .draw_series(
                    points
                        .iter()
                        .filter(|p| usize::from(p.2) == class)
                        .map(|p| Circle::new((p.0, p.1), 2, colour.mix(0.6).filled())),
                )
                .map_err(draw_err)?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 8, y), 5, colour.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(draw_err)?;
        Ok(())
    })
}

/// The first `n` test images: clean (top), corrupted by `noise` (middle), reconstructed from
/// the corrupted input (bottom).
pub fn denoising_grid<M: Autoencoder>(
    model: &M,
    test: &Dataset,
    n: usize,
    noise: &crate::data::noise::Noise,
    seed: u64,
    device: &Device,
) -> DynamicImage {
    use rand::SeedableRng;
    let indices: Vec<usize> = (0..n.min(test.len())).collect();
    let clean = test.images_values(&indices);
    let mut noisy = clean.clone();
    noise.apply(&mut noisy, &mut rand::rngs::StdRng::seed_from_u64(seed));
    let split = |v: &[f32]| {
        v.chunks(test.shape.len())
            .map(<[f32]>::to_vec)
            .collect::<Vec<_>>()
    };
    let noisy_tensor = crate::data::pixels_tensor(noisy.clone(), test.shape, device);
    let denoised = tensor_images(model.reconstruct(noisy_tensor));
    tile_grid(&[split(&clean), split(&noisy), denoised], test.shape, 2)
}

/// Steps of a latent traversal.
pub const TRAVERSAL_STEPS: usize = 9;

/// For each latent unit (a row), decode `base` with that unit swept over `[min, max]` in
/// [`TRAVERSAL_STEPS`] steps (the columns). A dead unit gives a row of identical images.
pub fn latent_traversal<M: Autoencoder>(
    model: &M,
    base: &[f32],
    min: &[f32],
    max: &[f32],
    shape: ImageShape,
    device: &Device,
) -> DynamicImage {
    let d = base.len();
    let mut latents = Vec::with_capacity(d * TRAVERSAL_STEPS * d);
    for unit in 0..d {
        for step in 0..TRAVERSAL_STEPS {
            let t = step as f32 / (TRAVERSAL_STEPS - 1) as f32;
            let mut z = base.to_vec();
            z[unit] = min[unit] + t * (max[unit] - min[unit]);
            latents.extend(z);
        }
    }
    let z = Tensor::<2>::from_data(TensorData::new(latents, [d * TRAVERSAL_STEPS, d]), device);
    let images = tensor_images(burn::tensor::activation::sigmoid(model.decode_logits(z)));
    let rows: Vec<Vec<Vec<f32>>> = images
        .chunks(TRAVERSAL_STEPS)
        .map(<[Vec<f32>]>::to_vec)
        .collect();
    tile_grid(&rows, shape, 2)
}

/// The first `n` test images (top row) above their reconstructions (bottom row).
pub fn reconstruction_grid<M: Autoencoder>(
    model: &M,
    test: &Dataset,
    n: usize,
    device: &Device,
) -> DynamicImage {
    let indices: Vec<usize> = (0..n.min(test.len())).collect();
    let images = test.images_tensor(&indices, device);
    let originals = tensor_images(images.clone());
    let reconstructions = tensor_images(model.reconstruct(images));
    tile_grid(&[originals, reconstructions], test.shape, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_geometry_and_values() {
        let white = vec![1.0; 784];
        let black = vec![0.0; 784];
        let grid = [vec![white.clone(), black.clone()], vec![black, white]];
        let img = tile_grid(&grid, ImageShape::MNIST, 2).into_luma8();
        // 2 tiles of 56 px + 3 separator lines = 115 in each direction.
        assert_eq!(img.dimensions(), (115, 115));
        assert_eq!(img.get_pixel(0, 0).0, [SEPARATOR]);
        assert_eq!(img.get_pixel(1, 1).0, [255]);
        assert_eq!(img.get_pixel(58, 1).0, [0]);
        assert_eq!(img.get_pixel(58, 58).0, [255]);
    }

    #[test]
    fn colour_grid_keeps_the_channels() {
        // One 2x3 (h x w) RGB tile: red plane 1, green 0, blue 0.5.
        let shape = ImageShape::new(3, 2, 3);
        let tile: Vec<f32> = [[1.0; 6], [0.0; 6], [0.5; 6]].concat();
        let img = tile_grid(&[vec![tile]], shape, 1);
        let DynamicImage::ImageRgb8(img) = img else {
            panic!("colour tiles make a colour picture")
        };
        assert_eq!(img.dimensions(), (3 + 2, 2 + 2));
        assert_eq!(img.get_pixel(1, 1).0, [255, 0, 128]);
    }

    #[test]
    fn heat_map_is_an_image_of_the_set_size() {
        let mut confusion = vec![vec![0usize; 10]; 10];
        for (c, row) in confusion.iter_mut().enumerate() {
            row[c] = 90;
            row[(c + 1) % 10] = 10;
        }
        let eval = ClassifierEval {
            confusion,
            mean_loss: 0.3,
        };
        let names: Vec<String> = (0..10).map(|c| c.to_string()).collect();
        let img = confusion_heatmap(&eval, "mnist", &names).unwrap();
        assert_eq!(img.dimensions(), (760, 680));
        // Not blank: the cells put many colours on the white canvas.
        let distinct: std::collections::HashSet<_> = img.pixels().map(|p| p.0).collect();
        assert!(distinct.len() > 10);
    }

    #[test]
    fn curves_and_scatter_render() {
        let series = |f: fn(f64) -> f64| (1..=3).map(|e| (e as f64, f(e as f64))).collect();
        let curves = Curves {
            train_loss: series(|e| 1.0 / e),
            test: ("test_loss", series(|e| 1.2 / e)),
            accuracy: series(|e| 0.9 + 0.01 * e),
        };
        assert_eq!(training_curves(&curves).unwrap().dimensions(), (720, 760));
        let points: Vec<(f64, f64, u8)> = (0..100)
            .map(|i| (i as f64, (i % 7) as f64, (i % 10) as u8))
            .collect();
        let names: Vec<String> = crate::data::DatasetKind::FashionMnist
            .class_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let img = latent_scatter(&points, (0.5, 0.2), "fashion-mnist", &names).unwrap();
        assert_eq!(img.dimensions(), (800, 720));
        // Every class colour appears (points and legend).
        for c in CLASS_COLOURS {
            assert!(
                img.pixels().any(|p| p.0 == [c.0, c.1, c.2]),
                "{c:?} missing"
            );
        }
    }

    #[test]
    fn png_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.png");
        let img = tile_grid(&[vec![vec![0.5; 784]]], ImageShape::MNIST, 1);
        crate::data::image_file::save_png(&img, &path).unwrap();
        let back = image::open(&path).unwrap().to_luma8();
        assert_eq!(back, img.to_luma8());
    }
}
