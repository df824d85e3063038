//! What this host says about its processes (Linux `/proc`): a process's start time, so a
//! recorded process id is recognised only while the same process lives (ids are reused),
//! the boot id, so ids from before a reboot are never trusted, and the host name.

/// Start time of process `pid` in clock ticks since boot; `None` when it does not exist
/// (or is a zombie, which has finished).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// The start time from a `/proc/<pid>/stat` line, `None` for a zombie or a bad line.
fn parse_stat(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may contain spaces or ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); starttime is field 22.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether the process that had id `pid` and started at `start` is still running.
pub fn alive(pid: u32, start: u64) -> bool {
    start_ticks(pid) == Some(start)
}

/// This boot's id (Linux); `None` elsewhere.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// This host's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_start_time_past_odd_command_names() {
        let line =
            "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(line), Some(987654));
        let zombie = "4242 (x) Z 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 0 0";
        assert_eq!(parse_stat(zombie), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn knows_this_process_and_not_a_reused_id() {
        let me = std::process::id();
        let start = start_ticks(me).expect("this process has a start time");
        assert!(alive(me, start));
        assert!(!alive(me, start + 1));
        assert!(boot_id().is_some());
    }
}
