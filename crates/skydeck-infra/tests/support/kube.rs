//! The real single-node Kubernetes that `scripts/kube-up.sh` starts (etcd,
//! API server, controller manager, scheduler, containerd, kubelet), named
//! by `SKYDECK_TEST_KUBECONFIG` (its admin kubeconfig) and
//! `SKYDECK_TEST_KUBE_IMAGE` (an image already in the node's containerd:
//! nothing can be pulled). Without it a test skips, except under CI, where
//! it fails: CI must run them.

#![allow(dead_code)]

use std::path::PathBuf;

/// The image every test pod runs unless the test says otherwise: Debian
/// bookworm minbase (bash, coreutils, perl-base), made by
/// `scripts/kube-build.sh`.
pub const DEFAULT_IMAGE: &str = "localhost/debian:bookworm";

#[derive(Debug, Clone)]
pub struct TestKube {
    /// An admin (system:masters) kubeconfig.
    pub kubeconfig: PathBuf,
    /// An image pods can use with `imagePullPolicy: Never`.
    pub image: String,
}

impl TestKube {
    /// An admin client for the cluster.
    pub async fn client(&self) -> ::kube::Client {
        // kube's rustls needs a process-wide crypto provider; a second
        // install (another test in this process) is refused, harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kubeconfig = ::kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.kubeconfig.display()));
        let config = ::kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("a client config from the test kubeconfig");
        ::kube::Client::try_from(config).expect("a kube client")
    }
}

/// The test cluster, or `None` to skip the test (never under CI).
pub fn test_kube() -> Option<TestKube> {
    match std::env::var_os("SKYDECK_TEST_KUBECONFIG") {
        Some(path) if !path.is_empty() => {
            let kubeconfig = PathBuf::from(path);
            assert!(
                kubeconfig.is_file(),
                "SKYDECK_TEST_KUBECONFIG={}: no such file",
                kubeconfig.display()
            );
            let image = std::env::var("SKYDECK_TEST_KUBE_IMAGE")
                .ok()
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
            Some(TestKube { kubeconfig, image })
        }
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set SKYDECK_TEST_KUBECONFIG to the admin kubeconfig of the test Kubernetes: \
                 SKYDECK_TEST_KUBECONFIG=$(scripts/kube-up.sh /var/tmp/skydeck-kube)"
            );
            eprintln!(
                "skipping: SKYDECK_TEST_KUBECONFIG is not set \
                 (SKYDECK_TEST_KUBECONFIG=$(scripts/kube-up.sh /var/tmp/skydeck-kube) provides it, as root)"
            );
            None
        }
    }
}
