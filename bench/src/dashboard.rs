//! `skydeck-bench dashboard`: how fast the dashboard's pages answer with
//! 1,000 clusters and 10,000 requests in the database, how long a real
//! browser takes to a fully rendered clusters page, and what an idle open
//! tab costs the server.
//!
//! The clusters and requests are written straight into the server's
//! SQLite file (as `managed-jobs` writes its history): the clusters are
//! STOPPED, so that no agent behind them is probed and an idle server is
//! really idle; the requests are finished. Pages are read without auth, as
//! the server's local user, who sees everything.

use crate::progress;
use crate::report::round2;
use crate::server::Server;
use crate::stats::Summary;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Config {
    pub clusters: u32,
    pub requests: u32,
    /// Open tabs (live clusters tables) for the idle measurement.
    pub tabs: u32,
    /// How long the tabs stay open, idle.
    pub idle: Duration,
    /// ChromeDriver, for the browser's own timings; none skips them.
    pub chromedriver: Option<PathBuf>,
}

/// Timed fetches of each page.
const CALLS: usize = 20;

/// The pages timed, by what they show.
const PAGES: &[(&str, &str)] = &[
    ("clusters, first page", "/dashboard/clusters"),
    (
        "clusters, sorted by name, page 10",
        "/dashboard/clusters?sort=name&page=10",
    ),
    ("clusters, filtered", "/dashboard/clusters?q=bench-07"),
    ("requests, all, first page", "/dashboard/requests?all=true"),
    (
        "requests, all, page 150",
        "/dashboard/requests?all=true&page=150",
    ),
    (
        "requests, searched",
        "/dashboard/requests?all=true&q=bench-cluster-0042",
    ),
    ("infrastructure", "/dashboard/infra"),
];

pub struct PageTimes {
    pub what: &'static str,
    pub path: &'static str,
    pub first_byte: Summary,
    pub whole: Summary,
    pub bytes: usize,
}

pub struct DashboardReport {
    pub clusters: u32,
    pub requests: u32,
    pub pages: Vec<PageTimes>,
    /// The browser's navigation timing of the clusters page: response
    /// start and load event end, each from the navigation's start.
    pub browser: Option<(Summary, Summary)>,
    pub tabs: u32,
    pub idle_s: f64,
    /// Server CPU seconds over the idle period, without and with the tabs.
    pub cpu_no_tabs_s: f64,
    pub cpu_tabs_s: f64,
}

pub async fn run(server: &Server, config: &Config) -> anyhow::Result<DashboardReport> {
    progress(&format!(
        "writing {} clusters and {} requests into the database",
        config.clusters, config.requests
    ));
    fill(server, config.clusters, config.requests).await?;
    let http = skydeck_client::http_client()?;
    let base = format!("http://{}", server.addr);
    let mut pages = Vec::new();
    for (what, path) in PAGES {
        progress(&format!("timing {what}"));
        pages.push(time_page(&http, &base, what, path).await?);
    }
    let browser = match &config.chromedriver {
        Some(driver) => {
            progress("timing the clusters page in Chromium");
            Some(browser_times(driver, &format!("{base}/dashboard/clusters")).await?)
        }
        None => None,
    };
    progress(&format!(
        "{:.0} s idle without tabs, then with {} open",
        config.idle.as_secs_f64(),
        config.tabs
    ));
    let cpu_no_tabs_s = idle_cpu(server, &http, &base, 0, config.idle).await?;
    let cpu_tabs_s = idle_cpu(server, &http, &base, config.tabs, config.idle).await?;
    Ok(DashboardReport {
        clusters: config.clusters,
        requests: config.requests,
        pages,
        browser,
        tabs: config.tabs,
        idle_s: config.idle.as_secs_f64(),
        cpu_no_tabs_s,
        cpu_tabs_s,
    })
}

async fn time_page(
    http: &reqwest::Client,
    base: &str,
    what: &'static str,
    path: &'static str,
) -> anyhow::Result<PageTimes> {
    let mut first_byte = Vec::new();
    let mut whole = Vec::new();
    let mut bytes = 0;
    for _ in 0..CALLS {
        let at = Instant::now();
        let response = http.get(format!("{base}{path}")).send().await?;
        first_byte.push(at.elapsed());
        let status = response.status();
        let body = response.bytes().await?;
        whole.push(at.elapsed());
        if !status.is_success() {
            bail!("GET {path}: {status}");
        }
        bytes = body.len();
    }
    Ok(PageTimes {
        what,
        path,
        first_byte: Summary::of(first_byte),
        whole: Summary::of(whole),
        bytes,
    })
}

/// Server CPU over `idle` with `tabs` live clusters tables open (each an
/// event stream the server re-renders every 2 s and sends when it
/// changes, which idle it never does).
async fn idle_cpu(
    server: &Server,
    http: &reqwest::Client,
    base: &str,
    tabs: u32,
    idle: Duration,
) -> anyhow::Result<f64> {
    let mut streams = Vec::new();
    for _ in 0..tabs {
        let response = http
            .get(format!("{base}/dashboard/live/clusters"))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("GET /dashboard/live/clusters: {}", response.status());
        }
        streams.push(response);
    }
    let before = server.cpu()?;
    tokio::time::sleep(idle).await;
    let used = server.cpu()?.since(before);
    drop(streams);
    Ok(used.own_s)
}

/// Navigation timing of the clusters page in headless Chromium, loaded
/// afresh [`CALLS`] times.
async fn browser_times(driver: &std::path::Path, url: &str) -> anyhow::Result<(Summary, Summary)> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(driver)
        .arg("--port=0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("run {}", driver.display()))?;
    let stdout = child.stdout.take().context("piped")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let port = loop {
        let line = lines.next().context("chromedriver exited")??;
        if let Some(rest) = line.split("started successfully on port ").nth(1) {
            break rest.trim_end_matches('.').trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let result = async {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": std::env::var("SKYDECK_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,900",
                    // Loopback only: everything else goes to a proxy that
                    // is not there.
                    "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run",
                ],
            }),
        );
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .context("a Chromium session")?;
        let mut first_byte = Vec::new();
        let mut loaded = Vec::new();
        for _ in 0..CALLS {
            client.goto(url).await?;
            let timing = client
                .execute(
                    "const n = performance.getEntriesByType('navigation')[0]; \
                     return [n.responseStart, n.loadEventEnd];",
                    vec![],
                )
                .await?;
            let ms = |i: usize| timing[i].as_f64().unwrap_or(0.0);
            first_byte.push(Duration::from_secs_f64(ms(0) / 1e3));
            loaded.push(Duration::from_secs_f64(ms(1) / 1e3));
        }
        client.close().await?;
        anyhow::Ok((Summary::of(first_byte), Summary::of(loaded)))
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// `clusters` stopped clusters of 10 users and `requests` finished
/// requests, in one transaction beside the running server.
async fn fill(server: &Server, clusters: u32, requests: u32) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = server.state_db().await?;
    let mut tx = conn.begin().await?;
    for user in 0..10 {
        sqlx::query("INSERT INTO users (id, name, created_at) VALUES ($1, $2, 1.7e9)")
            .bind(format!("bench-user-{user}"))
            .bind(format!("user{user}"))
            .execute(&mut *tx)
            .await?;
    }
    for n in 0..clusters {
        let at = 1.7e9 + f64::from(n);
        sqlx::query(
            "INSERT INTO clusters (name, status, user_id, workspace, infra, cluster_hash, \
             launched_at, status_updated_at, num_nodes, resources, handle, autostop_minutes, \
             autostop_down, ever_up, last_use) VALUES ($1, 'STOPPED', $2, 'default', 'local', \
             $3, $4, $4, 1, '{\"cpus\": \"1\"}', '{\"nodes\": [{\"rank\": 0}]}', -1, 0, 1, \
             'sky launch')",
        )
        .bind(format!("bench-{n:04}"))
        .bind(format!("bench-user-{}", n % 10))
        .bind(format!("hash-{n}"))
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    for n in 0..requests {
        let at = 1.7e9 + f64::from(n);
        sqlx::query(
            "INSERT INTO requests (id, name, entrypoint, body, status, schedule_type, user_id, \
             cluster_name, created_at, started_at, finished_at, return_value, attempts) VALUES \
             ($1, 'sky.status', 'sky status', '{}', 'SUCCEEDED', 'short', $2, $3, $4, $4, $4, \
             '[]', 1)",
        )
        .bind(format!("bench-request-{n:06}"))
        .bind(format!("bench-user-{}", n % 10))
        .bind(format!("bench-cluster-{:04}", n % 1000))
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

impl DashboardReport {
    /// Milliseconds of server CPU per second per open tab.
    fn tab_cpu_ms_per_s(&self) -> f64 {
        (self.cpu_tabs_s - self.cpu_no_tabs_s).max(0.0) * 1e3
            / self.idle_s
            / f64::from(self.tabs.max(1))
    }

    pub fn to_json(&self) -> Value {
        let ms = |summary: &Summary| {
            json!({
                "median_ms": summary.median().map(|d| round2(d.as_secs_f64() * 1e3)),
                "p90_ms": summary.percentile(90.0).map(|d| round2(d.as_secs_f64() * 1e3)),
                "max_ms": summary.max().map(|d| round2(d.as_secs_f64() * 1e3)),
            })
        };
        json!({
            "clusters": self.clusters,
            "requests": self.requests,
            "pages": self.pages.iter().map(|p| json!({
                "page": p.what, "path": p.path, "bytes": p.bytes,
                "first_byte": ms(&p.first_byte), "whole": ms(&p.whole),
            })).collect::<Vec<_>>(),
            "browser_clusters_page": self.browser.as_ref().map(|(first, loaded)| json!({
                "response_start": ms(first), "load_event_end": ms(loaded),
            })),
            "idle_tabs": self.tabs,
            "idle_s": self.idle_s,
            "server_cpu_idle_no_tabs_s": round2(self.cpu_no_tabs_s),
            "server_cpu_idle_with_tabs_s": round2(self.cpu_tabs_s),
            "server_cpu_per_tab_ms_per_s": round2(self.tab_cpu_ms_per_s()),
        })
    }

    pub fn to_table(&self) -> String {
        let ms = |d: Option<Duration>| {
            d.map_or("-".to_owned(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Dashboard with {} clusters and {} requests ({CALLS} fetches each; ms, median / p90)",
            self.clusters, self.requests
        );
        for page in &self.pages {
            let _ = writeln!(
                out,
                "  {:<38} first byte {:>6} / {:>6}   whole page {:>6} / {:>6}   {:>6} bytes",
                page.what,
                ms(page.first_byte.median()),
                ms(page.first_byte.percentile(90.0)),
                ms(page.whole.median()),
                ms(page.whole.percentile(90.0)),
                page.bytes,
            );
        }
        if let Some((first, loaded)) = &self.browser {
            let _ = writeln!(
                out,
                "  Chromium, clusters page: first byte {} / {} ms, fully loaded {} / {} ms",
                ms(first.median()),
                ms(first.percentile(90.0)),
                ms(loaded.median()),
                ms(loaded.percentile(90.0)),
            );
        }
        let _ = writeln!(
            out,
            "  Idle {:.0} s: server CPU {:.3} s without tabs, {:.3} s with {} live clusters tabs \
             open: {:.2} ms of CPU per second per tab ({:.3}% of a core)",
            self.idle_s,
            self.cpu_no_tabs_s,
            self.cpu_tabs_s,
            self.tabs,
            self.tab_cpu_ms_per_s(),
            self.tab_cpu_ms_per_s() / 10.0,
        );
        out
    }
}
