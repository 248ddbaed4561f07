//! Child processes that cannot outlive their test.
//!
//! Three layers, because each covers a way the others fail: `Drop` kills the
//! process group (test returned or panicked), the kernel's parent-death signal
//! kills the child when the test process itself is SIGKILLed (nextest's
//! timeout, a cancelled run), and each child leads its own process group so a
//! whole tree goes at once.

use anyhow::Context;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A spawned child that is killed, with its process group, when dropped.
pub struct Guarded {
    name: String,
    child: Child,
    /// Leads its own process group (see `spawn`).
    own_group: bool,
}

/// Spawn `cmd` in its own process group with a parent-death signal.
pub fn spawn(name: &str, mut cmd: Command) -> anyhow::Result<Guarded> {
    cmd.process_group(0);
    let mut g = spawn_in_our_group(name, cmd)?;
    g.own_group = true;
    Ok(g)
}

/// Spawn `cmd` in the caller's process group: for a child that reads the
/// terminal (an interactive shell), since a background group that reads its
/// terminal is stopped by SIGTTIN. Drop and the parent-death signal still
/// kill it; it just has no group of its own to take others along.
pub fn spawn_in_our_group(name: &str, mut cmd: Command) -> anyhow::Result<Guarded> {
    cmd.kill_on_drop(true);
    pdeath::arm(&mut cmd);
    let child = cmd.spawn().with_context(|| format!("Cannot start {name}"))?;
    Ok(Guarded {
        name: name.to_string(),
        child,
        own_group: false,
    })
}

/// Stdio that appends to a log file (kept with the run's artifacts).
pub fn log_stdio(path: &Path) -> anyhow::Result<Stdio> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("Cannot open {}", path.display()))?;
    Ok(Stdio::from(file))
}

impl Guarded {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Its exit status, if it has exited.
    pub fn status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Has it exited? Returns a description of how, if so.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("wait failed: {e}")),
        }
    }

    /// Wait up to `grace` for a clean exit, then kill the group.
    pub async fn finish(mut self, grace: Duration) -> Option<String> {
        let status = tokio::time::timeout(grace, self.child.wait()).await;
        match status {
            Ok(Ok(s)) => {
                self.kill_group();
                Some(s.to_string())
            }
            _ => {
                self.kill_group();
                let _ = self.child.wait().await;
                None
            }
        }
    }

    fn kill_group(&mut self) {
        if let (true, Some(pid)) = (self.own_group, self.child.id()) {
            // The group shares the child's pid (process_group(0)); anything it
            // forked dies with it.
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_raw(pid as i32).expect("a live child has a nonzero pid"),
                rustix::process::Signal::KILL,
            );
        }
        let _ = self.child.start_kill();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.kill_group();
        // Reap so no zombie is left behind for the rest of the test binary.
        let _ = self.child.try_wait();
    }
}

#[allow(unsafe_code)]
mod pdeath {
    use tokio::process::Command;

    /// Ask the kernel to SIGKILL the child when its parent thread dies.
    pub fn arm(cmd: &mut Command) {
        // SAFETY: the closure runs between fork and exec, where only
        // async-signal-safe calls are allowed; prctl(PR_SET_PDEATHSIG) is a
        // single system call and allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
                Ok(())
            });
        }
    }
}

/// Wait until `path` exists, failing early if `child` exits first.
pub async fn wait_for_path(child: &mut Guarded, path: &Path, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if path.exists() {
            return Ok(());
        }
        if let Some(how) = child.exited() {
            anyhow::bail!("{} exited ({how}) before creating {}", child.name(), path.display());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "{} did not create {} within {:?}",
                child.name(),
                path.display(),
                timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
