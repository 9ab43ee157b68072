//! The SSH runner against real sshd hosts (scripts/ssh-hosts-up.sh).

mod support;

use skydeck_infra::ssh::{SshHost, SshPool, SshPoolOptions, SshRunner, SshTarget, SshUser};
use skydeck_infra::{CommandRunner, InfraError};
use std::path::Path;
use std::time::{Duration, Instant};
use support::ssh_hosts::{TestHosts, test_hosts};

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// A pool of its own for each test (its own known_hosts), reading the test
/// hosts' SSH config as the user's.
fn pool(hosts: &TestHosts, dir: &Path, command_timeout: Option<Duration>) -> SshPool {
    SshPool::open(
        &dir.join("pool"),
        SshPoolOptions {
            user_config: Some(hosts.ssh_config.clone()),
            connect_timeout: Duration::from_secs(5),
            command_timeout,
            ..SshPoolOptions::default()
        },
    )
    .unwrap()
}

fn alias(name: &str) -> SshTarget {
    SshTarget::new(SshHost::parse(name).unwrap())
}

async fn stdout(runner: &SshRunner, words: &[&str]) -> String {
    let out = runner.run(&argv(words), None).await.unwrap();
    assert!(out.success(), "{words:?}: {out:?}");
    out.stdout
}

/// Polls `check` until it holds or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn each_host_is_its_own_machine() {
    let Some(hosts) = test_hosts() else { return };
    // h5 too, which other tests cut off or rekey while they hold it.
    let _held = hosts.hold("h5");
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&hosts, dir.path(), None);
    let mark = format!("mark-{}", std::process::id());
    for host in hosts.hosts.iter().filter(|h| h.jump.is_none()) {
        let runner = pool.connect(&alias(&host.name)).await.unwrap();
        assert_eq!(stdout(&runner, &["hostname"]).await.trim(), host.hostname);
        // Own home and PID namespace: a file in ~ on h1 is not on the others,
        // and only the host's own processes are visible.
        if host.name == "h1" {
            stdout(&runner, &["touch", &format!("/root/{mark}")]).await;
        } else {
            let out = runner
                .run(&argv(&["test", "-e", &format!("/root/{mark}")]), None)
                .await
                .unwrap();
            assert_eq!(out.code, 1, "{} sees h1's home", host.name);
        }
        let sshd_pid = stdout(&runner, &["sh", "-c", "cat /proc/1/comm"]).await;
        assert_eq!(
            sshd_pid.trim(),
            "sshd",
            "PID 1 on {} is its sshd",
            host.name
        );
    }
    assert!(hosts.host("h1").dir.join("root").join(&mark).exists());
    std::fs::remove_file(hosts.host("h1").dir.join("root").join(&mark)).unwrap();
}

#[tokio::test]
async fn a_host_behind_a_jump_host() {
    let Some(hosts) = test_hosts() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&hosts, dir.path(), None);
    let h4 = hosts.host("h4");
    // Through the alias, whose config says ProxyJump h1 …
    let runner = pool.connect(&alias("h4")).await.unwrap();
    assert_eq!(stdout(&runner, &["hostname"]).await.trim(), h4.hostname);
    // … and by address, with the jump given explicitly.
    let mut target = SshTarget::new(SshHost::parse(&h4.address).unwrap());
    target.user = Some(SshUser::parse(&h4.user).unwrap());
    target.identity_file = Some(hosts.key.clone());
    target.jump = vec![SshHost::parse("h1").unwrap()];
    let runner = pool.connect(&target).await.unwrap();
    assert_eq!(stdout(&runner, &["hostname"]).await.trim(), h4.hostname);
    // Without the jump, the address is not reachable from here.
    target.jump.clear();
    let short = SshPool::open(
        &dir.path().join("direct"),
        SshPoolOptions {
            connect_timeout: Duration::from_secs(1),
            ..SshPoolOptions::default()
        },
    )
    .unwrap();
    let err = short.connect(&target).await.unwrap_err();
    assert!(err.to_string().contains("cannot reach"), "{err}");
    // Both hosts' keys were recorded in the pool's own file on first contact.
    let known = std::fs::read_to_string(pool.known_hosts()).unwrap();
    assert!(known.contains(&hosts.host("h1").address), "{known}");
    assert!(known.contains(&h4.address), "{known}");
}

#[tokio::test]
async fn commands_share_one_connection() {
    let Some(hosts) = test_hosts() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&hosts, dir.path(), None);
    let runner = pool.connect(&alias("h2")).await.unwrap();
    // Every command arrives from the same client port: one TCP connection.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        seen.insert(stdout(&runner, &["sh", "-c", "echo $SSH_CONNECTION"]).await);
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    let check = std::process::Command::new("ssh")
        .arg("-S")
        .arg(runner.control_socket())
        .args(["-O", "check", "h2"])
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    assert!(
        String::from_utf8_lossy(&check.stderr).contains("Master running"),
        "{check:?}"
    );
}

#[tokio::test]
async fn arguments_stdin_and_exit_codes_pass_unchanged() {
    let Some(hosts) = test_hosts() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&hosts, dir.path(), None);
    let runner = pool.connect(&alias("h3")).await.unwrap();
    let words = ["two words", "it's", "$(touch /tmp/pwned)", "`id`", "*", ""];
    let mut command = argv(&["printf", "%s\\n"]);
    command.extend(words.iter().map(|w| (*w).to_owned()));
    let out = runner.run(&command, None).await.unwrap();
    assert_eq!(out.stdout, words.map(|w| format!("{w}\n")).concat());
    let out = runner
        .run(
            &argv(&["sh", "-c", "cat; echo oops >&2; exit 3"]),
            Some(b"hi".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (3, "hi", "oops\n")
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let reading = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(chunk) = rx.recv().await {
            all.extend(chunk);
        }
        all
    });
    let code = runner
        .stream(&argv(&["sh", "-c", "printf 'a\\377\\nb'; exit 4"]), tx)
        .await
        .unwrap();
    assert_eq!((code, reading.await.unwrap()), (4, b"a\xff\nb".to_vec()));
}

async fn running(runner: &SshRunner, pattern: &str) -> bool {
    runner
        .run(&argv(&["pgrep", "-f", pattern]), None)
        .await
        .unwrap()
        .success()
}

#[tokio::test]
async fn a_command_that_hangs_is_stopped_on_the_host() {
    let Some(hosts) = test_hosts() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&hosts, dir.path(), Some(Duration::from_secs(1)));
    let runner = pool.connect(&alias("h3")).await.unwrap();
    let nap = format!("{}", 6000 + std::process::id() % 1000);
    let err = runner.run(&argv(&["sleep", &nap]), None).await.unwrap_err();
    assert!(
        err.to_string().contains("did not finish within 1s"),
        "{err}"
    );
    let pattern = format!("^sleep {nap}$");
    let gone = eventually(Duration::from_secs(10), || {
        let (runner, pattern) = (&runner, &pattern);
        async move { !running(runner, pattern).await }
    })
    .await;
    assert!(gone, "sleep {nap} still runs on h3");
    // A stream whose reader leaves stops its command there too.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(rx);
    let code = runner.stream(&argv(&["sleep", &nap]), tx).await.unwrap();
    assert_eq!(code, skydeck_infra::READER_GONE);
    assert!(
        !running(&runner, &pattern).await,
        "the stream's sleep {nap} still runs on h3"
    );
}

#[tokio::test]
async fn a_changed_host_key_is_refused_with_the_way_to_accept_it() {
    let Some(hosts) = test_hosts() else { return };
    let dir = tempfile::tempdir().unwrap();
    let _held = hosts.hold("h5");
    let pool = pool(&hosts, dir.path(), None);
    let runner = pool.connect(&alias("h5")).await.unwrap();
    stdout(&runner, &["true"]).await;
    runner.close().await.unwrap();
    hosts.rekey("h5");
    let err = pool.connect(&alias("h5")).await.unwrap_err();
    assert!(matches!(err, InfraError::Refused(_)), "{err:?}");
    let message = err.to_string();
    let known = pool.known_hosts().display().to_string();
    assert!(message.contains("host key of h5 changed"), "{message}");
    assert!(
        message.contains(&format!("remove line {known}:1")),
        "{message}"
    );
    // The key is recorded under the alias's address, not the alias.
    let address = &hosts.host("h5").address;
    assert!(
        message.contains(&format!("ssh-keygen -R {address} -f {known}")),
        "{message}"
    );
    // Doing what it says accepts the new key.
    let out = std::process::Command::new("ssh-keygen")
        .args(["-R", address, "-f", &known])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let runner = pool.connect(&alias("h5")).await.unwrap();
    assert_eq!(
        stdout(&runner, &["hostname"]).await.trim(),
        hosts.host("h5").hostname
    );
}

#[tokio::test]
async fn a_key_the_host_does_not_accept_is_a_clear_error() {
    let Some(hosts) = test_hosts() else { return };
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong_key");
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&wrong)
        .status()
        .unwrap();
    assert!(keygen.success());
    let empty = dir.path().join("empty_config");
    std::fs::write(&empty, "").unwrap();
    let pool = SshPool::open(
        &dir.path().join("pool"),
        SshPoolOptions {
            user_config: Some(empty),
            connect_timeout: Duration::from_secs(5),
            ..SshPoolOptions::default()
        },
    )
    .unwrap();
    let h2 = hosts.host("h2");
    let mut target = SshTarget::new(SshHost::parse(&h2.address).unwrap());
    target.user = Some(SshUser::parse("root").unwrap());
    target.identity_file = Some(wrong.clone());
    let message = pool.connect(&target).await.unwrap_err().to_string();
    assert!(
        message.contains(&format!("refused the key {}", wrong.display())),
        "{message}"
    );
    assert!(message.contains("Permission denied"), "{message}");
    assert!(message.contains("authorized_keys"), "{message}");
}

#[tokio::test]
async fn sync_up_moves_a_tree_then_only_what_changed() {
    let Some(hosts) = test_hosts() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&hosts, dir.path(), None);
    let runner = pool.connect(&alias("h3")).await.unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub dir")).unwrap();
    std::fs::write(src.join("a.txt"), "a").unwrap();
    std::fs::write(src.join("sub dir/b.txt"), "b").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
    let remote = format!("/tmp/sync {}", std::process::id());
    // A link already in the destination is replaced, not followed.
    let elsewhere = format!("{remote}-elsewhere");
    stdout(&runner, &["mkdir", "-p", &remote, &elsewhere]).await;
    stdout(
        &runner,
        &["ln", "-s", &elsewhere, &format!("{remote}/sub dir")],
    )
    .await;
    let first = runner.sync_up(&src, &remote).await.unwrap();
    assert!(first.rsync);
    assert_eq!(first.sent, ["a.txt", "link", "sub dir/b.txt"], "{first:?}");
    // On h3's own /tmp, which is the host's directory here.
    let local_view = hosts
        .host("h3")
        .dir
        .join("tmp")
        .join(remote.trim_start_matches("/tmp/"));
    assert_eq!(
        std::fs::read_to_string(local_view.join("sub dir/b.txt")).unwrap(),
        "b"
    );
    assert_eq!(
        std::fs::read_link(local_view.join("link")).unwrap(),
        Path::new("/etc/passwd"),
        "links are copied as links"
    );
    assert!(
        local_view
            .join("sub dir")
            .symlink_metadata()
            .unwrap()
            .is_dir()
    );
    assert_eq!(
        stdout(&runner, &["ls", "-A", &elsewhere]).await,
        "",
        "followed a link"
    );
    std::fs::write(src.join("sub dir/b.txt"), "b changed").unwrap();
    let second = runner.sync_up(&src, &remote).await.unwrap();
    assert_eq!(second.sent, ["sub dir/b.txt"], "{second:?}");
    assert_eq!(
        std::fs::read_to_string(local_view.join("sub dir/b.txt")).unwrap(),
        "b changed"
    );
    // A destination that is a link is refused rather than followed.
    let linked = format!("{remote}-link");
    stdout(&runner, &["ln", "-s", "/root", &linked]).await;
    let err = runner.sync_up(&src, &linked).await.unwrap_err();
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
    stdout(&runner, &["rm", "-rf", &remote, &linked, &elsewhere]).await;
}

#[tokio::test]
async fn sync_up_without_rsync_pipes_tar() {
    let Some(hosts) = test_hosts() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&hosts, dir.path(), None);
    let runner = pool.connect(&alias("h2")).await.unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub dir")).unwrap();
    std::fs::write(src.join("sub dir/b.txt"), "b").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
    let remote = format!("tar-sync-{}", std::process::id());
    let elsewhere = format!("{remote}-elsewhere");
    stdout(&runner, &["mkdir", "-p", &remote, &elsewhere]).await;
    stdout(
        &runner,
        &[
            "ln",
            "-s",
            &format!("/root/{elsewhere}"),
            &format!("{remote}/sub dir"),
        ],
    )
    .await;
    let report = runner.sync_up_with_tar(&src, &remote).await.unwrap();
    assert_eq!(
        (report.rsync, report.sent.as_slice()),
        (false, &["link".to_owned(), "sub dir/b.txt".to_owned()][..])
    );
    // Relative to h2's home, which is the host's own directory here.
    let view = hosts.host("h2").dir.join("root").join(&remote);
    assert_eq!(
        std::fs::read_to_string(view.join("sub dir/b.txt")).unwrap(),
        "b"
    );
    assert!(
        view.join("sub dir").symlink_metadata().unwrap().is_dir(),
        "replaced the link"
    );
    assert_eq!(
        std::fs::read_link(view.join("link")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        stdout(&runner, &["ls", "-A", &elsewhere]).await,
        "",
        "followed a link"
    );
    stdout(&runner, &["rm", "-rf", &remote, &elsewhere]).await;
}

#[tokio::test]
async fn a_master_connection_that_went_away_is_opened_again() {
    let Some(hosts) = test_hosts() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&hosts, dir.path(), None);
    let runner = pool.connect(&alias("h1")).await.unwrap();
    let before = stdout(&runner, &["sh", "-c", "echo $SSH_CONNECTION"]).await;
    // As when it idles out: the master exits.
    let exit = std::process::Command::new("ssh")
        .arg("-S")
        .arg(runner.control_socket())
        .args(["-O", "exit", "h1"])
        .output()
        .unwrap();
    assert!(exit.status.success(), "{exit:?}");
    let after = stdout(&runner, &["sh", "-c", "echo $SSH_CONNECTION"]).await;
    assert_ne!(before, after, "a new connection, from a new client port");
}

/// An `ssh-agent` the test started, stopped by its PID on drop.
struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn keys_can_come_from_an_agent() {
    let Some(hosts) = test_hosts() else { return };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let _agent = Agent(
        std::process::Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let added = eventually(Duration::from_secs(10), || {
        let (socket, key) = (&socket, &hosts.key);
        async move {
            std::process::Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", socket)
                .output()
                .is_ok_and(|o| o.status.success())
        }
    })
    .await;
    assert!(added, "ssh-add to the test's agent");
    let empty = dir.path().join("empty_config");
    std::fs::write(&empty, "").unwrap();
    let pool = SshPool::open(
        &dir.path().join("pool"),
        SshPoolOptions {
            user_config: Some(empty),
            agent_socket: Some(socket.clone()),
            connect_timeout: Duration::from_secs(5),
            ..SshPoolOptions::default()
        },
    )
    .unwrap();
    let h3 = hosts.host("h3");
    let mut target = SshTarget::new(SshHost::parse(&h3.address).unwrap());
    target.user = Some(SshUser::parse(&h3.user).unwrap());
    let runner = pool.connect(&target).await.unwrap();
    assert_eq!(stdout(&runner, &["hostname"]).await.trim(), h3.hostname);
}

/// Per-command latency on a reused connection (and a fresh `ssh` per command
/// for comparison). Run: SKYDECK_TEST_SSH_HOSTS=… cargo test -p skydeck-infra
/// --test ssh_runner -- --ignored --nocapture per_command_latency
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn per_command_latency() {
    let Some(hosts) = test_hosts() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&hosts, dir.path(), None);
    let runner = pool.connect(&alias("h2")).await.unwrap();
    let rounds = 200u32;
    let start = Instant::now();
    for _ in 0..rounds {
        stdout(&runner, &["true"]).await;
    }
    let reused = start.elapsed() / rounds;
    let start = Instant::now();
    for _ in 0..20 {
        let out = std::process::Command::new("ssh")
            .arg("-F")
            .arg(&hosts.ssh_config)
            .args(["h2", "true"])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let fresh = start.elapsed() / 20;
    println!("per command: reused connection {reused:?}, fresh ssh {fresh:?}");
}

#[tokio::test]
async fn probing_reads_each_hosts_facts() {
    let Some(hosts) = test_hosts() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&hosts, dir.path(), None);
    let local = |cmd: &str| {
        let out = std::process::Command::new("sh")
            .args(["-c", cmd])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    // The hosts share this machine's kernel and CPUs.
    let arch = local("uname -m");
    let cpus: u32 = local("nproc").parse().unwrap();
    for name in ["h1", "h4"] {
        let runner = pool.connect(&alias(name)).await.unwrap();
        let facts = skydeck_infra::ssh::probe(&runner, None).await.unwrap();
        assert_eq!(facts.hostname, hosts.host(name).hostname);
        assert_eq!((facts.arch.as_str(), facts.cpus), (arch.as_str(), cpus));
        assert!(facts.memory_bytes > 0);
        assert!(
            matches!(facts.libc, skydeck_infra::ssh::Libc::Glibc { .. }),
            "{facts:?}"
        );
        assert_eq!(facts.privilege, skydeck_infra::ssh::Privilege::Root);
        assert_eq!(facts.capacity().cpus, f64::from(cpus));
    }
}

#[tokio::test]
async fn a_pool_file_reaches_its_hosts() {
    let Some(hosts) = test_hosts() else { return };
    let dir = tempfile::tempdir().unwrap();
    // SkyPilot's format: a string host, a mapping host, and an alias.
    let (h1, h2) = (hosts.host("h1"), hosts.host("h2"));
    let file = format!(
        "testpool:\n  user: root\n  identity_file: {}\n  hosts:\n    - {}\n    - ip: {}\n    - h3\n",
        hosts.key.display(),
        h1.address,
        h2.address
    );
    let pools = skydeck_types::ssh_node_pools::NodePools::from_yaml(&file).unwrap();
    let (pool_hosts, warnings) = pools.pools["testpool"].hosts();
    assert!(warnings.is_empty(), "{warnings:?}");
    let pool = pool(&hosts, dir.path(), None);
    let mut seen = Vec::new();
    for host in &pool_hosts {
        let target = SshTarget::from_pool_host(host, Path::new("/nonexistent"));
        let runner = pool.connect(&target).await.unwrap();
        seen.push(stdout(&runner, &["hostname"]).await.trim().to_owned());
    }
    assert_eq!(
        seen,
        ["skydeck-test-h1", "skydeck-test-h2", "skydeck-test-h3"]
    );
}

#[tokio::test]
async fn a_program_is_installed_once_per_build() {
    let Some(hosts) = test_hosts() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&hosts, dir.path(), None);
    let runner = pool.connect(&alias("h2")).await.unwrap();
    let facts = skydeck_infra::ssh::probe(&runner, None).await.unwrap();
    skydeck_infra::ssh::BinaryPlatform::current()
        .check("h2", &facts)
        .unwrap();
    // A build of our own: a copy of `true` with a unique tail, so each run
    // of the test installs a new one.
    let program = dir.path().join("prog");
    let mut bytes = std::fs::read("/bin/true").unwrap();
    bytes.extend(format!("{:?}", Instant::now()).bytes());
    std::fs::write(&program, &bytes).unwrap();
    let first = runner.install_program(&program, "skydeck").await.unwrap();
    assert!(first.copied);
    assert!(
        first.path.starts_with(".skydeck/bin/") && first.path.ends_with("/skydeck"),
        "{first:?}"
    );
    let again = runner.install_program(&program, "skydeck").await.unwrap();
    assert_eq!(
        (again.path.as_str(), again.copied),
        (first.path.as_str(), false)
    );
    let out = runner.run(&argv(&[&first.path]), None).await.unwrap();
    assert!(out.success(), "the installed program runs: {out:?}");
    // On h2 only.
    let on_h2 = hosts.host("h2").dir.join("root").join(&first.path);
    assert_eq!(std::fs::read(&on_h2).unwrap(), bytes);
    assert!(!hosts.host("h3").dir.join("root").join(&first.path).exists());
    std::fs::remove_dir_all(on_h2.parent().unwrap()).unwrap();
}

#[tokio::test]
async fn a_cluster_key_is_authorized_then_revoked() {
    let Some(hosts) = test_hosts() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&hosts, dir.path(), None);
    let admin = pool.connect(&alias("h3")).await.unwrap();
    let marker = format!("skydeck-cluster:test-{}", std::process::id());
    let key = skydeck_infra::ssh::ClusterKey::generate(&dir.path().join("key"), &marker)
        .await
        .unwrap();
    let h3 = hosts.host("h3");
    let authorized = h3.dir.join("root/.ssh/authorized_keys");
    let before = std::fs::read_to_string(&authorized).unwrap();
    let empty = dir.path().join("empty_config");
    std::fs::write(&empty, "").unwrap();
    let key_pool = SshPool::open(
        &dir.path().join("key-pool"),
        SshPoolOptions {
            user_config: Some(empty),
            connect_timeout: Duration::from_secs(5),
            ..SshPoolOptions::default()
        },
    )
    .unwrap();
    let mut target = SshTarget::new(SshHost::parse(&h3.address).unwrap());
    target.user = Some(SshUser::parse("root").unwrap());
    target.identity_file = Some(key.private_key.clone());
    let refused = key_pool.connect(&target).await.unwrap_err();
    assert!(refused.to_string().contains("refused the key"), "{refused}");
    // Twice: the line is there once.
    admin.authorize_key(&key).await.unwrap();
    admin.authorize_key(&key).await.unwrap();
    let with = std::fs::read_to_string(&authorized).unwrap();
    assert_eq!(with.matches(&marker).count(), 1, "{with}");
    let runner = key_pool.connect(&target).await.unwrap();
    assert_eq!(stdout(&runner, &["hostname"]).await.trim(), h3.hostname);
    runner.close().await.unwrap();
    admin.revoke_key(&marker).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&authorized).unwrap(),
        before,
        "only the cluster's line went"
    );
    let refused = key_pool.connect(&target).await.unwrap_err();
    assert!(refused.to_string().contains("refused the key"), "{refused}");
}

/// A link the test took down; up again on drop, whatever happened.
struct LinkDown(String);

impl LinkDown {
    fn new(link: &str) -> Self {
        let status = std::process::Command::new("ip")
            .args(["link", "set", link, "down"])
            .status()
            .unwrap();
        assert!(status.success(), "ip link set {link} down");
        Self(link.to_owned())
    }
}

impl Drop for LinkDown {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "set", &self.0, "up"])
            .status();
    }
}

#[tokio::test]
async fn a_host_cut_off_mid_command_is_reported_lost_then_reached_again() {
    let Some(hosts) = test_hosts() else { return };
    let _held = hosts.hold("h5");
    let h5 = hosts.host("h5");
    let dir = tempfile::tempdir().unwrap();
    let pool = SshPool::open(
        &dir.path().join("pool"),
        SshPoolOptions {
            user_config: Some(hosts.ssh_config.clone()),
            connect_timeout: Duration::from_secs(2),
            keepalive: Duration::from_secs(1),
            ..SshPoolOptions::default()
        },
    )
    .unwrap();
    let runner = std::sync::Arc::new(pool.connect(&alias("h5")).await.unwrap());
    let nap = format!("{}", 7000 + std::process::id() % 1000);
    let pattern = format!("^sleep {nap}$");
    let command = tokio::spawn({
        let (runner, nap) = (runner.clone(), nap.clone());
        async move { runner.run(&argv(&["sleep", &nap]), None).await }
    });
    let started = eventually(Duration::from_secs(10), || {
        let (runner, pattern) = (&runner, &pattern);
        async move { running(runner, pattern).await }
    })
    .await;
    assert!(started, "sleep {nap} started on h5");
    let cut = LinkDown::new(h5.link.as_deref().expect("h5 has a link"));
    // Four missed keepalives, a second apart; generous for a loaded machine.
    let result = tokio::time::timeout(Duration::from_secs(60), command)
        .await
        .expect("the command ends once the host is lost")
        .unwrap();
    let err = result.unwrap_err().to_string();
    assert!(err.contains("lost the connection to h5"), "{err}");
    drop(cut);
    // The host is back: a new connection, and the command it kept running
    // (only the connection was lost) is still there.
    let back = eventually(Duration::from_secs(30), || {
        let runner = &runner;
        async move { runner.run(&argv(&["true"]), None).await.is_ok() }
    })
    .await;
    assert!(back, "h5 is reached again");
    assert!(
        running(&runner, &pattern).await,
        "the host kept its command"
    );
    stdout(&runner, &["pkill", "-f", &pattern]).await;
}

#[tokio::test]
async fn a_timeout_holds_even_when_the_host_stops_answering() {
    let Some(hosts) = test_hosts() else { return };
    let _held = hosts.hold("h5");
    let h5 = hosts.host("h5");
    let dir = tempfile::tempdir().unwrap();
    // Keepalives far apart: only the timeout can end the command.
    let pool = pool(&hosts, dir.path(), Some(Duration::from_secs(3)));
    let runner = pool.connect(&alias("h5")).await.unwrap();
    let nap = format!("{}", 8000 + std::process::id() % 1000);
    let started = Instant::now();
    let sleep = argv(&["sleep", &nap]);
    let command = runner.run(&sleep, None);
    let cut = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        LinkDown::new(h5.link.as_deref().expect("h5 has a link"))
    };
    let (result, cut) = tokio::join!(command, cut);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("did not finish within 3s"), "{err}");
    // The timeout, plus at most the bounded wait for the kill; far less
    // than the minute the keepalives would take.
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    drop(cut);
    let back = eventually(Duration::from_secs(30), || {
        let runner = &runner;
        async move {
            runner
                .run(&argv(&["pkill", "-f", "^sleep [0-9]*$"]), None)
                .await
                .is_ok()
        }
    })
    .await;
    assert!(back, "h5 is reached again");
}
