//! The command line's observer: progress bars while a folder decodes and an epoch trains, one
//! line per finished epoch and the files a cache left out, on stderr.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use crate::support::observe::{Event, Observer};

/// Reports to the terminal; `quiet` leaves out the bars (the lines stay).
pub struct Console {
    quiet: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Console {
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            bar: Mutex::new(None),
        }
    }

    fn start(&self, len: usize, template: &str, prefix: String) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new(len as u64);
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(prefix);
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(bar) = &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            f(bar);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Console {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::DecodeStart { cache, images } => self.start(
                images,
                "decoding {prefix} [{bar:30}] {pos}/{len} ({elapsed}<{eta})",
                cache.display().to_string(),
            ),
            Event::Decoded { images } => self.with_bar(|b| b.inc(images as u64)),
            Event::DecodeEnd => self.finish(),
            // One command reads a folder several times (training, pictures, statistics): the
            // list was given when the cache was built; say only that it stands.
            Event::Skipped {
                files,
                index,
                reused: true,
            } => eprintln!(
                "({} files skipped when this cache was built; listed in {})",
                files.len(),
                index.display()
            ),
            Event::Skipped { files, .. } => {
                eprintln!("skipped {} files that could not be decoded:", files.len());
                for (path, message) in files.iter().take(20) {
                    eprintln!("  {}: {message}", path.display());
                }
                if files.len() > 20 {
                    eprintln!("  … and {} more", files.len() - 20);
                }
            }
            Event::EpochStart {
                epoch,
                epochs,
                steps,
            } => self.start(
                steps,
                "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})",
                format!("epoch {epoch}/{epochs}"),
            ),
            Event::Step {
                loss,
                images_per_sec,
            } => self.with_bar(|b| {
                b.set_message(format!("loss {loss:.4} · {images_per_sec:.0} img/s"));
                b.inc(1);
            }),
            // `epoch 1/5  train_loss 0.1612  test_bce 0.1398 ...  12.3 s, 4870 img/s`
            Event::EpochEnd {
                epoch,
                epochs,
                train_loss,
                test,
                seconds,
                samples_per_sec,
            } => {
                self.finish();
                let metrics: Vec<String> =
                    test.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
                eprintln!(
                    "epoch {epoch}/{epochs}  train_loss {train_loss:.4}  {}  {seconds:.1} s, \
                     {samples_per_sec:.0} img/s",
                    metrics.join("  ")
                );
            }
        }
    }
}

impl Drop for Console {
    /// A bar left by an error (a diverged epoch) is not left on the screen half drawn.
    fn drop(&mut self) {
        if let Some(bar) = self.bar.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            bar.abandon();
        }
    }
}
