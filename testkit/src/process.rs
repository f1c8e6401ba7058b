//! Processes and ports for the local stacks: every process in its own process group, killed
//! with its group, and sent a signal if the test process dies first; ports found free and
//! waited for.

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Signals for [`spawn`] and [`stop`].
pub use libc::{SIGINT, SIGKILL, SIGTERM};

/// A random 64-bit number (std's hasher keys are random per process and per call).
pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A port nothing listens on right now, below Linux's ephemeral range (32768 and up): the
/// tests' thousands of client sockets take their local ports from that range, and one of
/// them could take a port handed out here before the server binds it. Each port is handed
/// out once per process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Processes (test binaries) start at different places in the range.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (random_u64() % u64::from(SPAN)) as u32,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {}", LOW + SPAN)
}

/// Viceroy as `scripts/setup` installs it (cargo's bin folder), or from `PATH`.
pub fn viceroy_binary() -> PathBuf {
    let home_bin = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/viceroy"));
    match home_bin {
        Some(path) if path.exists() => path,
        _ => PathBuf::from("viceroy"),
    }
}

/// Spawns `cmd` in its own process group, output to `log`, with `death_signal` sent to it if
/// this test process dies first.
pub fn spawn(cmd: &mut Command, log: &Path, death_signal: libc::c_int) -> Child {
    let out = fs::File::create(log).expect("create log");
    let err = out.try_clone().expect("clone log handle");
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    // Linux only: elsewhere a child outlives a test process that is killed (its stack's
    // processes are still stopped when the test ends normally).
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    #[cfg(target_os = "linux")]
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, death_signal);
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = death_signal;
    cmd.spawn()
        .unwrap_or_else(|e| panic!("start {:?}: {e} (run scripts/setup)", cmd.get_program()))
}

/// Signals the child's process group and waits for it, escalating to SIGKILL after 5 s.
pub fn stop(mut child: Child, signal: libc::c_int) {
    let pgid = child.id() as libc::pid_t;
    // SAFETY: plain syscalls on a process group this test created.
    unsafe {
        libc::kill(-pgid, signal);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// Kills every process whose pid file lies in Pushpin's run folder.
pub fn kill_by_rundir(rundir: &Path) {
    for entry in fs::read_dir(rundir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("pid") {
            continue;
        }
        let pid = fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse::<libc::pid_t>().ok());
        if let Some(pid) = pid.filter(|p| *p > 1) {
            // SAFETY: a plain kill of a pid Pushpin recorded for this stack.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let _ = fs::remove_file(&path);
    }
}

/// Waits (up to 30 s) until something listens on `port`.
pub fn wait_for_port(port: u16, what: &str) {
    if !wait_until_listening(port, true) {
        panic!("{what} did not listen on port {port} within 30 s");
    }
}

pub fn wait_for_port_closed(port: u16) {
    if !wait_until_listening(port, false) {
        panic!("port {port} still listening 30 s after its process was killed");
    }
}

/// Polls `port` until whether it accepts connections is `listening`; false after 30 s.
fn wait_until_listening(port: u16, listening: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() == listening {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
