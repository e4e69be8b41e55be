//! What long work reports while it runs. The library prints nothing: decoding a folder and
//! training tell an [`Observer`] what happens, as typed [`Event`]s, and ask it whether to go
//! on. The command line's progress bars and epoch lines are one observer (`cli::progress`);
//! [`Silent`] is another.

use std::path::{Path, PathBuf};

/// One thing that happened.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A part of an image folder is being decoded into `cache`: `images` files.
    DecodeStart { cache: &'a Path, images: usize },
    /// `images` more files decoded (or found unreadable).
    Decoded { images: usize },
    /// The part's cache is written.
    DecodeEnd,
    /// Files left out of the cache `index` as unreadable, with why: just now when `reused` is
    /// false, when the cache was built otherwise.
    Skipped {
        files: &'a [(PathBuf, String)],
        index: &'a Path,
        reused: bool,
    },
    /// An epoch begins: `steps` optimisation steps.
    EpochStart {
        epoch: usize,
        epochs: usize,
        steps: usize,
    },
    /// A training step finished: the epoch's running mean loss and images per second.
    Step { loss: f64, images_per_sec: f64 },
    /// An epoch finished and was recorded: its training loss, its test metrics by their
    /// `metrics.jsonl` keys, its time and speed.
    EpochEnd {
        epoch: usize,
        epochs: usize,
        train_loss: f64,
        test: &'a [(&'static str, f64)],
        seconds: f64,
        samples_per_sec: f64,
    },
}

/// Receives the events of long work, and may stop training.
pub trait Observer: Sync {
    fn event(&self, event: Event<'_>);

    /// Asked after each training step: `true` stops training there, before the epoch is
    /// recorded, so the run stays resumable from its last checkpoint.
    fn stop(&self) -> bool {
        false
    }
}

/// An observer that reports nowhere and never stops anything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {
    fn event(&self, _: Event<'_>) {}
}
