//! The process's memory as Linux tells it: the peak resident set since the last reset, for
//! benchmarks that report what each part needed.

/// The process's peak resident memory (MB) since the last [`reset_peak_memory`], where Linux
/// tells it.
pub fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Start the peak (`VmHWM`) again from the present memory (Linux: `clear_refs` 5).
pub fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
