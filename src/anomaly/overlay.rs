//! The pictures `--maps` writes: each image with its map over it, the maps as `.npy`, and a
//! grid of the worst and best images.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use npyz::WriterBuilder;
use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};

use crate::data::ImageShape;

/// `image` (`[C, H, W]` in [0, 1]) with `map` over it in a perceptual colour map (viridis):
/// `range` is the map value shown yellow (0 is dark blue), the same for every image of a set
/// so that their colours compare; the hotter a pixel, the more of its colour shows (30 % to
/// 90 %), so that the image stays visible where nothing is wrong.
pub fn overlay(image: &[f32], map: &[f32], shape: ImageShape, range: f32) -> RgbImage {
    let (h, w) = (shape.height, shape.width);
    let plane = h * w;
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        let v = (map[i] / range.max(f32::MIN_POSITIVE)).clamp(0.0, 1.0);
        let heat = ViridisRGB.get_color(v);
        let heat = [heat.0, heat.1, heat.2];
        let alpha = 0.3 + 0.6 * v;
        Rgb(std::array::from_fn(|ch| {
            let pixel = image[ch.min(shape.channels - 1) * plane + i].clamp(0.0, 1.0) * 255.0;
            ((1.0 - alpha) * pixel + alpha * f32::from(heat[ch])).round() as u8
        }))
    })
}

/// The share of a set's map pixels below the value its overlays show yellow when there is no
/// threshold: the 99.9th percentile, so that one large defect does not wash out the small ones.
pub const OVERLAY_QUANTILE: f64 = 0.999;

/// An `[H, W]` map as a 2-d `float32` `.npy` file, written atomically.
pub fn write_map_npy(path: &Path, map: &[f32], height: usize, width: usize) -> std::io::Result<()> {
    crate::support::atomic::write_with(path, |file| {
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[height as u64, width as u64])
            .writer(BufWriter::new(file))
            .begin_nd()?;
        w.extend(map.iter().copied())?;
        w.finish()
    })
}

/// Tiles of overlays side by side in rows, 1-pixel grey lines between them.
pub fn overlay_grid(rows: &[Vec<RgbImage>]) -> RgbImage {
    let (tw, th) = rows
        .iter()
        .flatten()
        .next()
        .map_or((1, 1), |t| (t.width(), t.height()));
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let mut grid = RgbImage::from_pixel(
        cols * (tw + 1) + 1,
        rows.len() as u32 * (th + 1) + 1,
        Rgb([128; 3]),
    );
    for (r, row) in rows.iter().enumerate() {
        for (c, tile) in row.iter().enumerate() {
            image::imageops::replace(
                &mut grid,
                tile,
                i64::from(1 + c as u32 * (tw + 1)),
                i64::from(1 + r as u32 * (th + 1)),
            );
        }
    }
    grid
}

/// Where `--maps` writes an image's overlay and map: `OUT/<name>.png` and `OUT/<name>.npy`.
pub fn map_files(out: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        out.join(format!("{name}.png")),
        out.join(format!("{name}.npy")),
    )
}

/// Overlays of images whose maps are already written as `.npy` under `out` (one per name,
/// `kind/stem`, [`map_files`]), and `grid.png`: the eight worst-scored images above the eight
/// best. `range` is the map value shown yellow, one for the whole set so that the overlays
/// compare (twice the threshold: at the threshold a map is half-way up the colours).
/// `images(range)` gives the pixels of those images (`[n, C, H, W]`), read a `chunk` at a
/// time, and each map is read back from its file: nothing of the set is held but the grid's.
pub fn write_overlays(
    out: &Path,
    names: &[String],
    scores: &[f32],
    (shape, range, chunk): (ImageShape, f32, usize),
    mut images: impl FnMut(std::ops::Range<usize>) -> std::io::Result<Vec<f32>>,
) -> std::io::Result<()> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let n = order.len().min(8);
    let (worst, best) = (&order[..n], &order[order.len() - n..]);
    let mut kept = std::collections::BTreeMap::new();
    for start in (0..names.len()).step_by(chunk.max(1)) {
        let end = (start + chunk.max(1)).min(names.len());
        let pixels = images(start..end)?;
        for (i, image) in (start..end).zip(pixels.chunks(shape.len())) {
            let (png, npy) = map_files(out, &names[i]);
            let map = read_map_npy(&npy).map_err(|e| at(&npy, e))?;
            let picture = overlay(image, &map, shape, range);
            save_png(&picture, &png)?;
            if worst.contains(&i) || best.contains(&i) {
                kept.insert(i, picture);
            }
        }
    }
    let worst = worst.iter().map(|i| kept[i].clone()).collect();
    let best = best.iter().rev().map(|i| kept[i].clone()).collect();
    let grid = out.join("grid.png");
    save_png(&overlay_grid(&[worst, best]), &grid)
}

/// Write one image's map as `OUT/<name>.npy`, making its folder.
pub fn write_named_map(
    out: &Path,
    name: &str,
    map: &[f32],
    shape: ImageShape,
) -> std::io::Result<()> {
    let (_, npy) = map_files(out, name);
    if let Some(dir) = npy.parent() {
        std::fs::create_dir_all(dir).map_err(|e| at(dir, e))?;
    }
    write_map_npy(&npy, map, shape.height, shape.width).map_err(|e| at(&npy, e))
}

/// A map `.npy` as [`write_map_npy`] writes it.
fn read_map_npy(path: &Path) -> std::io::Result<Vec<f32>> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    npyz::NpyFile::new(file)?.into_vec::<f32>()
}

/// An I/O error that names its file.
fn at(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn save_png(image: &RgbImage, path: &Path) -> std::io::Result<()> {
    crate::data::image_file::save_rgb_png(image, path).map_err(|e| at(path, e))
}
