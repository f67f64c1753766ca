//! The `process` source, for local experiments: the processes serving a destination,
//! found from the ports of its endpoints (`/proc/net/tcp*` gives the listening socket's
//! inode, `/proc/*/fd` the process holding it) or given as PIDs; `cpu` is the cores they
//! used over the interval (from `/proc/PID/stat`), `rss` their resident bytes
//! (`/proc/PID/status`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

/// Linux reports CPU time in USER_HZ ticks, 100 per second on every architecture it
/// runs on (the ABI fixes it, whatever the kernel's own HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// The inodes of sockets listening on `port` (IPv4 and IPv6).
fn listening_inodes(port: u16) -> HashSet<u64> {
    let mut out = HashSet::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() < 10 || f[3] != "0A" {
                continue; // not LISTEN
            }
            let Some(p) = f[1]
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok())
            else {
                continue;
            };
            if p == port
                && let Ok(inode) = f[9].parse::<u64>()
                && inode != 0
            {
                out.insert(inode);
            }
        }
    }
    out
}

/// PIDs holding any of `inodes` open.
fn pids_holding(inodes: &HashSet<u64>) -> Vec<u32> {
    let mut out = Vec::new();
    if inodes.is_empty() {
        return out;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue; // gone, or not ours to read
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .ok()
                .and_then(|l| {
                    let l = l.to_str()?.to_owned();
                    l.strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .parse::<u64>()
                        .ok()
                })
                .is_some_and(|inode| inodes.contains(&inode))
        });
        if holds {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// The processes listening on the ports of `endpoints` (`host:port`).
pub fn find_pids(endpoints: &[String]) -> Vec<u32> {
    let mut inodes = HashSet::new();
    for e in endpoints {
        if let Some(port) = e.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()) {
            inodes.extend(listening_inodes(port));
        }
    }
    pids_holding(&inodes)
}

/// `(utime + stime in ticks, start time in ticks since boot)` of a process.
fn cpu_ticks(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let start: u64 = f.get(19)?.parse().ok()?;
    Some((utime + stime, start))
}

/// Resident set size in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// One side's reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessPoint {
    /// Cores used since the previous reading; NaN on the first.
    pub cpu: f64,
    /// Bytes resident now; NaN when no process was found.
    pub rss: f64,
}

/// Remembers each process's CPU ticks at the previous reading.
#[derive(Debug, Default)]
pub struct ProcessSource {
    /// `(pid, start time)` -> ticks, and when they were read: a restarted process with
    /// a reused PID starts afresh.
    previous: HashMap<(u32, u64), (u64, Instant)>,
}

impl ProcessSource {
    pub fn reset(&mut self) {
        self.previous.clear();
    }

    /// Reads `pids` (one side). `None` when none of them exists.
    pub fn read(&mut self, pids: &[u32]) -> Option<ProcessPoint> {
        let now = Instant::now();
        let mut cores = 0.0;
        let mut diffed = 0;
        let mut rss = 0u64;
        let mut found = 0;
        let mut current = BTreeMap::new();
        for &pid in pids {
            let Some((ticks, start)) = cpu_ticks(pid) else {
                continue;
            };
            found += 1;
            rss += rss_bytes(pid).unwrap_or(0);
            if let Some((before, at)) = self.previous.get(&(pid, start)) {
                let secs = now.duration_since(*at).as_secs_f64();
                if secs > 0.0 && ticks >= *before {
                    cores += (ticks - before) as f64 / TICKS_PER_SECOND / secs;
                    diffed += 1;
                }
            }
            current.insert((pid, start), (ticks, now));
        }
        for (k, v) in current {
            self.previous.insert(k, v);
        }
        if found == 0 {
            return None;
        }
        Some(ProcessPoint {
            cpu: if diffed > 0 { cores } else { f64::NAN },
            rss: rss as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_process_listening_on_a_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let pids = find_pids(&[format!("127.0.0.1:{port}")]);
        assert_eq!(pids, vec![std::process::id()]);
        drop(listener);
        assert!(find_pids(&[format!("127.0.0.1:{port}")]).is_empty());
    }

    #[test]
    fn reads_cpu_and_memory_of_this_process() {
        let mut s = ProcessSource::default();
        let me = [std::process::id()];
        let first = s.read(&me).unwrap();
        assert!(
            first.cpu.is_nan(),
            "no CPU figure without a previous reading"
        );
        assert!(first.rss > 1e6, "{}", first.rss);
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 200 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let second = s.read(&me).unwrap();
        assert!(second.cpu > 0.2 && second.cpu < 64.0, "{}", second.cpu);
        assert!(s.read(&[u32::MAX]).is_none());
    }
}
