//! Input corruption for denoising autoencoders: the model sees a noisy image and is scored
//! against the clean one. Noise is drawn from the run's seeded RNG.

use std::str::FromStr;

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// A corruption of pixels in [0, 1]; results stay in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Noise {
    /// Add N(0, std²) to every pixel, then clamp.
    Gaussian { std: f32 },
    /// Each pixel becomes black or white (even odds) with probability `p`.
    SaltPepper { p: f32 },
    /// Each pixel is zeroed with probability `p`.
    Mask { p: f32 },
}

impl Noise {
    pub fn apply(&self, pixels: &mut [f32], rng: &mut impl Rng) {
        match *self {
            Noise::Gaussian { std } => {
                let normal = Normal::new(0.0f32, std).expect("std checked finite and >= 0");
                for p in pixels.iter_mut() {
                    *p = (*p + normal.sample(rng)).clamp(0.0, 1.0);
                }
            }
            Noise::SaltPepper { p } => {
                for v in pixels.iter_mut() {
                    if rng.random::<f32>() < p {
                        *v = if rng.random::<bool>() { 1.0 } else { 0.0 };
                    }
                }
            }
            Noise::Mask { p } => {
                for v in pixels.iter_mut() {
                    if rng.random::<f32>() < p {
                        *v = 0.0;
                    }
                }
            }
        }
    }
}

impl std::fmt::Display for Noise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Noise::Gaussian { std } => write!(f, "gaussian:{std}"),
            Noise::SaltPepper { p } => write!(f, "salt-pepper:{p}"),
            Noise::Mask { p } => write!(f, "mask:{p}"),
        }
    }
}

impl FromStr for Noise {
    type Err = String;

    /// `gaussian:STD`, `salt-pepper:P` or `mask:P`.
    fn from_str(s: &str) -> Result<Self, String> {
        let usage = "expected gaussian:STD, salt-pepper:P or mask:P";
        let (kind, value) = s.split_once(':').ok_or_else(|| format!("`{s}`: {usage}"))?;
        let value: f32 = value
            .parse()
            .map_err(|_| format!("`{s}`: `{value}` is not a number"))?;
        if !value.is_finite() || value < 0.0 {
            return Err(format!("`{s}`: the amount must be a non-negative number"));
        }
        match kind {
            "gaussian" => Ok(Noise::Gaussian { std: value }),
            "salt-pepper" | "mask" if value > 1.0 => {
                Err(format!("`{s}`: a probability must be at most 1"))
            }
            "salt-pepper" => Ok(Noise::SaltPepper { p: value }),
            "mask" => Ok(Noise::Mask { p: value }),
            _ => Err(format!("`{s}`: unknown noise `{kind}`; {usage}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const N: usize = 100_000;

    #[test]
    fn gaussian_has_the_asked_spread() {
        // On mid-grey pixels clamping almost never bites at std 0.1: mean 0.5, std 0.1.
        let mut x = vec![0.5f32; N];
        Noise::Gaussian { std: 0.1 }.apply(&mut x, &mut StdRng::seed_from_u64(1));
        let mean = x.iter().sum::<f32>() / N as f32;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / N as f32;
        assert!((mean - 0.5).abs() < 0.002, "{mean}");
        assert!((var.sqrt() - 0.1).abs() < 0.002, "{}", var.sqrt());
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn salt_and_pepper_flips_the_asked_share_half_each_way() {
        let mut x = vec![0.5f32; N];
        Noise::SaltPepper { p: 0.2 }.apply(&mut x, &mut StdRng::seed_from_u64(2));
        let salt = x.iter().filter(|&&v| v == 1.0).count() as f64 / N as f64;
        let pepper = x.iter().filter(|&&v| v == 0.0).count() as f64 / N as f64;
        // Binomial: std of a share at n = 1e5 is about 0.0013; allow ~4 of them.
        assert!((salt - 0.1).abs() < 0.005, "{salt}");
        assert!((pepper - 0.1).abs() < 0.005, "{pepper}");
    }

    #[test]
    fn mask_zeroes_the_asked_share() {
        let mut x = vec![1.0f32; N];
        Noise::Mask { p: 0.3 }.apply(&mut x, &mut StdRng::seed_from_u64(3));
        let zeros = x.iter().filter(|&&v| v == 0.0).count() as f64 / N as f64;
        assert!((zeros - 0.3).abs() < 0.006, "{zeros}");
        assert!(x.iter().all(|&v| v == 0.0 || v == 1.0));
    }

    #[test]
    fn same_seed_same_noise() {
        let noise: Noise = "gaussian:0.3".parse().unwrap();
        let (mut a, mut b) = (vec![0.2f32; 50], vec![0.2f32; 50]);
        noise.apply(&mut a, &mut StdRng::seed_from_u64(9));
        noise.apply(&mut b, &mut StdRng::seed_from_u64(9));
        assert_eq!(a, b);
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!("mask:0.25".parse::<Noise>(), Ok(Noise::Mask { p: 0.25 }));
        assert_eq!(
            "salt-pepper:0.1".parse::<Noise>().unwrap().to_string(),
            "salt-pepper:0.1"
        );
        assert!("mask:1.5".parse::<Noise>().is_err());
        assert!("gaussian:-1".parse::<Noise>().is_err());
        assert!("blur:1".parse::<Noise>().is_err());
        assert!("gaussian".parse::<Noise>().is_err());
    }
}
