//! What each service process costs: CPU seconds and resident memory, read
//! from `/proc` so the figures are the kernel's, not the process's own.

use std::time::Duration;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User plus system CPU time so far.
    pub cpu: Duration,
    /// Resident set now, in KiB.
    pub rss_kib: u64,
    /// The highest resident set so far (`VmHWM`), in KiB.
    pub peak_rss_kib: u64,
}

/// Reads `pid`'s usage; zeros when the process is gone.
pub fn usage(pid: u32) -> Usage {
    let ticks = clock_ticks();
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The command name is in parentheses and may hold spaces: the
            // numbered fields start after the last ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the whole line, so
            // 12 and 13 after the state (field 3).
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(Duration::from_secs_f64((utime + stime) as f64 / ticks))
        })
        .unwrap_or_default();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Usage {
        cpu,
        rss_kib: kib("VmRSS:"),
        peak_rss_kib: kib("VmHWM:"),
    }
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on Linux
/// unless built otherwise).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}
