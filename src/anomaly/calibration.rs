//! A threshold that travels with the run: `cae anomaly --calibrate` fits it on test images
//! and stores it in the run's `calibration.json`; scoring files then says good or defect.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::maps::MapOptions;
use super::metrics::f1_threshold;

/// The file in a run that holds its calibrated threshold.
pub const CALIBRATION_FILE: &str = "calibration.json";

/// Where a calibrated threshold came from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThresholdSource {
    /// The F1-optimal threshold on labelled good and defect images, and that F1.
    F1 { f1: f64 },
    /// This quantile of the good images' scores.
    Quantile { quantile: f64 },
}

/// A threshold that travels with the run (`cae anomaly --calibrate`): a score above it is a
/// defect, for maps made and scored with `options` only. The good images' mean and standard
/// deviation normalise a score (`(score − mean) / std`) so that runs compare.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub threshold: f32,
    pub source: ThresholdSource,
    pub options: MapOptions,
    pub good_mean: f32,
    pub good_std: f32,
    /// Good and defect images it was calibrated on.
    pub good: usize,
    pub defects: usize,
}

impl Calibration {
    /// From test images' `scores`: the F1-optimal threshold when some are `defective`, else
    /// the `quantile` of the good ones.
    pub fn fit(
        scores: &[f32],
        defective: &[bool],
        options: MapOptions,
        quantile: f64,
    ) -> Result<Self, String> {
        let good: Vec<f32> = scores
            .iter()
            .zip(defective)
            .filter(|(_, d)| !**d)
            .map(|(s, _)| *s)
            .collect();
        if good.is_empty() {
            return Err("no good images to calibrate on (test/good/ is empty or missing)".into());
        }
        if !(quantile > 0.0 && quantile < 1.0) {
            return Err(format!("--quantile {quantile}: must lie between 0 and 1"));
        }
        let defects = defective.iter().filter(|&&d| d).count();
        let (threshold, source) = match f1_threshold(scores, defective) {
            Some((t, f1)) if defects > 0 => (t, ThresholdSource::F1 { f1 }),
            _ => (
                crate::evaluation::quantile(&good, quantile),
                ThresholdSource::Quantile { quantile },
            ),
        };
        let n = good.len() as f64;
        let mean = good.iter().map(|&s| f64::from(s)).sum::<f64>() / n;
        let var = good
            .iter()
            .map(|&s| (f64::from(s) - mean).powi(2))
            .sum::<f64>()
            / n;
        Ok(Self {
            threshold,
            source,
            options,
            good_mean: mean as f32,
            good_std: var.sqrt() as f32,
            good: good.len(),
            defects,
        })
    }

    /// A score in standard deviations of the good images' scores from their mean.
    pub fn normalise(&self, score: f32) -> f32 {
        (score - self.good_mean) / self.good_std.max(f32::MIN_POSITIVE)
    }

    /// The calibration stored in the run `dir`, if it has one.
    pub fn read(dir: &Path) -> Result<Option<Self>, String> {
        let path = dir.join(CALIBRATION_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Self::from_json(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// A calibration from the bytes of its file, checked ([`check`](Self::check)).
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let calibration: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        calibration.check()?;
        Ok(calibration)
    }

    /// Why a calibration read from a file cannot be used, if it cannot: its map settings, a
    /// threshold and a normalisation of finite numbers (a deviation above 0).
    pub fn check(&self) -> Result<(), String> {
        self.options.validate()?;
        let finite = [
            ("threshold", self.threshold),
            ("good_mean", self.good_mean),
            ("good_std", self.good_std),
        ];
        if let Some((field, value)) = finite.iter().find(|(_, v)| !v.is_finite()) {
            return Err(format!("{field} is {value}: a finite number"));
        }
        if self.good_std <= 0.0 {
            return Err(format!("good_std is {}: above 0", self.good_std));
        }
        Ok(())
    }

    /// Store it in the run `dir` (atomically); returns the file.
    pub fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join(CALIBRATION_FILE);
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::support::atomic::write(&path, &json)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_takes_the_f1_threshold_with_defects_and_a_quantile_without() {
        let options = MapOptions::default();
        // Good 1, 2, 3, 4; defects 3.5, 5: flagging above 3.25 (between 3 and 3.5) catches
        // both defects and one good image: F1 = 2·2 / (3 + 2) = 0.8, the best there is.
        let scores = [1.0, 2.0, 3.0, 4.0, 3.5, 5.0];
        let defective = [false, false, false, false, true, true];
        let c = Calibration::fit(&scores, &defective, options, 0.9).unwrap();
        assert_eq!(c.source, ThresholdSource::F1 { f1: 0.8 });
        assert!((c.threshold - 3.25).abs() < 1e-6, "{}", c.threshold);
        // Good mean 2.5, population std √1.25.
        assert!((c.normalise(2.5 + 1.25f32.sqrt()) - 1.0).abs() < 1e-5);
        // Good images only: the nearest-rank 0.75 quantile of 1, 2, 3, 4 is 3.
        let c = Calibration::fit(&scores[..4], &defective[..4], options, 0.75).unwrap();
        assert_eq!(c.source, ThresholdSource::Quantile { quantile: 0.75 });
        assert_eq!(c.threshold, 3.0);
        assert!(Calibration::fit(&scores[4..], &defective[4..], options, 0.9).is_err());
    }

    /// A calibration edited by hand is checked when read: unusable numbers are refused by
    /// field, with the file's name.
    #[test]
    fn a_calibration_file_with_unusable_numbers_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good =
            Calibration::fit(&[1.0, 2.0, 3.0], &[false; 3], MapOptions::default(), 0.5).unwrap();
        good.write(dir.path()).unwrap();
        assert_eq!(Calibration::read(dir.path()).unwrap(), Some(good));
        // Each field replaced by the raw JSON text given.
        let edits: [(&str, &str, &str); 5] = [
            ("threshold", "1e999", "number out of range"),
            ("good_std", "-1.0", "good_std is -1"),
            ("good_std", "0.0", "good_std is 0"),
            ("threshold", "\"high\"", "invalid type"),
            ("good_mean", "null", "invalid type"),
        ];
        for (field, raw, needle) in edits {
            let mut json = serde_json::to_value(good).unwrap();
            json[field] = "@@".into();
            let text = serde_json::to_string(&json).unwrap().replace("\"@@\"", raw);
            std::fs::write(dir.path().join(CALIBRATION_FILE), text).unwrap();
            let err = Calibration::read(dir.path()).unwrap_err();
            assert!(
                err.contains(needle) && err.contains(CALIBRATION_FILE),
                "{field}={raw}: {err}"
            );
        }
    }
}
