//! A cluster directory in a temp dir, driven through the real binary.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const AGENT: &str = env!("CARGO_BIN_EXE_skydeck-agent");
const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` until it yields a value; panics with `what` after the deadline.
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Gone, or a zombie that its (foreign) parent has not reaped yet.
pub fn pid_gone(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next();
            matches!(state, Some("Z" | "X"))
        })
        .unwrap_or(true)
}

pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub struct Cluster {
    pub temp: tempfile::TempDir,
    pub dir: PathBuf,
    daemon: Option<Child>,
    daemons_started: usize,
    daemon_env: Vec<(String, String)>,
}

impl Cluster {
    /// `capacity` per node; nodes get IPs 127.0.0.1, 127.0.0.2, …
    pub fn new(num_nodes: usize, capacity: Value) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("c1");
        let nodes: Vec<Value> = (0..num_nodes)
            .map(|rank| {
                let node_dir = dir.join("nodes").join(rank.to_string());
                std::fs::create_dir_all(&node_dir).unwrap();
                json!({"rank": rank, "ip": format!("127.0.0.{}", rank + 1), "dir": node_dir})
            })
            .collect();
        let info = json!({
            "name": "c1", "num_nodes": num_nodes, "nodes": nodes, "capacity": capacity,
            "cloud": "local", "region": null, "user_hash": "abcd1234"
        });
        std::fs::write(dir.join("cluster.json"), info.to_string()).unwrap();
        Self {
            temp,
            dir,
            daemon: None,
            daemons_started: 0,
            daemon_env: Vec::new(),
        }
    }

    pub fn with_daemon_env(mut self, key: &str, value: &str) -> Self {
        self.daemon_env.push((key.into(), value.into()));
        self
    }

    pub fn node_dir(&self, rank: usize) -> PathBuf {
        self.dir.join("nodes").join(rank.to_string())
    }

    pub fn start_daemon(&mut self) -> i32 {
        self.daemons_started += 1;
        let log_name = format!("daemon-{}.log", self.daemons_started);
        let log = std::fs::File::create(self.temp.path().join(log_name)).unwrap();
        let child = Command::new(AGENT)
            .args(["daemon", "--cluster-dir"])
            .arg(&self.dir)
            .envs(self.daemon_env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        self.daemon = Some(child);
        let pid_file = self.dir.join("agent/daemon.pid");
        wait_for("the daemon's pid file", || {
            (read_pid(&pid_file) == Some(pid)).then_some(())
        });
        pid
    }

    pub fn daemon_pid(&self) -> i32 {
        self.daemon.as_ref().expect("a daemon was started").id() as i32
    }

    pub fn signal_daemon(&self, signal: Signal) {
        kill(Pid::from_raw(self.daemon_pid()), signal).unwrap();
    }

    pub fn wait_daemon_exit(&mut self) -> ExitStatus {
        let child = self.daemon.as_mut().expect("a daemon was started");
        wait_for("the daemon to exit", || child.try_wait().unwrap())
    }

    pub fn agent(&self, args: &[&str]) -> Output {
        self.agent_with_stdin(args, "")
    }

    pub fn agent_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(AGENT)
            .arg(args[0])
            .arg("--cluster-dir")
            .arg(&self.dir)
            .args(&args[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a subcommand that must succeed and returns its JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let output = self.agent(args);
        assert!(output.status.success(), "{args:?}: {}", describe(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }

    pub fn submit(&self, spec: &Value) -> u64 {
        let output = self.agent_with_stdin(&["submit"], &spec.to_string());
        assert!(output.status.success(), "submit: {}", describe(&output));
        let reply: Value = serde_json::from_slice(&output.stdout).unwrap();
        reply["job_id"].as_u64().unwrap()
    }

    pub fn status(&self, job_id: u64) -> Option<String> {
        let reply = self.json(&["job-status", "--job-ids", &job_id.to_string()]);
        reply[job_id.to_string()].as_str().map(str::to_owned)
    }

    pub fn wait_status(&self, job_id: u64, wanted: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let status = self.status(job_id);
            if status.as_deref() == Some(wanted) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "job {job_id} is {status:?}, not {wanted}\nlog:\n{}\ndaemon log:\n{}",
                self.log(job_id),
                self.daemon_logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self, job_id: u64) -> String {
        std::fs::read_to_string(self.dir.join(format!("jobs/{job_id}/run.log"))).unwrap_or_default()
    }

    fn daemon_logs(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.temp.path()).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with("daemon-") {
                text += &std::fs::read_to_string(entry.path()).unwrap_or_default();
            }
        }
        text
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Stop what our daemon started, even if the test failed half-way.
        let _ = self.agent(&["cancel", "--all"]);
        if let Some(mut child) = self.daemon.take()
            && child.try_wait().ok().flatten().is_none()
        {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + DEADLINE;
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A job spec with the given run script and defaults for the rest.
pub fn spec(key: &str, run: &str) -> Value {
    json!({
        "idempotency_key": key, "name": "hello", "username": "alice", "user_hash": "abcd1234",
        "setup": null, "run": run, "num_nodes": 1, "envs": {}, "secrets": {},
        "demand": {"cpus": 0.5}, "resources_str": "1x[CPU:0.5]", "task_id": null
    })
}

/// A shell loop that returns once `path` exists: lets a test hold a job
/// running for exactly as long as it needs.
pub fn wait_for_file(path: &Path) -> String {
    format!("while [ ! -e '{}' ]; do sleep 0.05; done", path.display())
}
