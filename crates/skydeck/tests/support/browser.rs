//! Headless Chromium for the dashboard tests: Debian's chromium driven
//! through ChromeDriver (started on a port of its own, stopped by its PID)
//! by fantoccini. The browser reaches nothing but loopback.

use fantoccini::{Client, ClientBuilder};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// ChromeDriver on a port of its own, stopped by its PID.
pub struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn chromedriver() -> Option<Driver> {
    let Some(path) = std::env::var_os("SKYDECK_TEST_CHROMEDRIVER").filter(|p| !p.is_empty()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set SKYDECK_TEST_CHROMEDRIVER (scripts/test.sh installs Debian's chromium \
             and chromium-driver)"
        );
        eprintln!("skipping: SKYDECK_TEST_CHROMEDRIVER is not set");
        return None;
    };
    let mut child = Command::new(path)
        .arg("--port=0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("chromedriver says where it listens")
            .expect("read chromedriver");
        if let Some(rest) = line.split("started successfully on port ").nth(1) {
            break rest.trim_end_matches('.').trim().to_owned();
        }
    };
    // Keep reading its output so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Some(Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

/// A fresh headless browser session (its own profile: no cookies shared).
pub async fn browser(driver: &Driver, profile: &Path) -> Client {
    let chromium =
        std::env::var("SKYDECK_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,900",
                // Nothing leaves the machine: everything but loopback goes
                // to a proxy that is not there, and the browser's own
                // background traffic is off.
                "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--no-first-run", "--no-pings",
                "--disable-domain-reliability",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}
