//! The dashboard in a real browser: Debian's headless Chromium, driven
//! through ChromeDriver by fantoccini. Alice logs in, visits every page,
//! sees a new cluster appear on the live table, follows a job's log as it
//! is written, sees the GPUs her cluster holds drawn on the
//! infrastructure page, follows a managed job's history and log, stops
//! and tears down her cluster with the buttons (confirming each); the
//! admin sees the users and edits the config (a bad value is shown at its
//! key, a good one saved); mallory sees neither alice's cluster, the
//! users nor the config.
//!
//! Needs `SKYDECK_TEST_CHROMEDRIVER` (scripts/test.sh installs Chromium and
//! ChromeDriver); with `SKYDECK_SCREENSHOTS=DIR` it saves a screenshot of
//! each page there (how docs/screenshots was made).

mod support;

use fantoccini::{Client, Locator};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::TestServer;
use support::browser::{browser, chromedriver};
use support::team::{self, ADMIN, client as as_client, cluster_status};

/// Longer than any page, launch or stop takes here.
const DEADLINE: Duration = Duration::from_secs(60);

/// Saves a screenshot of the page as `name`.png when asked to.
async fn screenshot(client: &Client, name: &str) {
    let Some(dir) = std::env::var_os("SKYDECK_SCREENSHOTS") else {
        return;
    };
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).unwrap();
}

/// Waits until the element `id`'s text satisfies `check`.
async fn wait_text(client: &Client, id: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = match client.find(Locator::Id(id)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if check(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "never {what}: {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_url(client: &Client, what: &str, check: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let url = client.current_url().await.unwrap().to_string();
        if check(&url) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: at {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn log_in(client: &Client, server: &TestServer, name: &str, password: &str) {
    client
        .goto(&format!("{}/dashboard", server.url))
        .await
        .unwrap();
    wait_url(client, "at the login page", |url| {
        url.ends_with("/dashboard/login")
    })
    .await;
    client
        .find(Locator::Css("input[name=name]"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    client
        .find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    client
        .find(Locator::Css("form.login button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(client, "logged in", |url| {
        url.ends_with("/dashboard/clusters")
    })
    .await;
}

/// Clicks the button `label` on the page and accepts its confirmation.
async fn click_and_confirm(client: &Client, label: &str) {
    let button = client
        .find(Locator::XPath(&format!(
            "//button[normalize-space()='{label}']"
        )))
        .await
        .unwrap_or_else(|_| panic!("no {label} button"));
    button.click().await.unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        match client.accept_alert().await {
            Ok(()) => return,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("no confirmation for {label}: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_works_in_a_real_browser() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    // Four (pretend) GPUs on this machine, so that the infrastructure
    // page has some to draw.
    let server = team::start(
        &scratch.path().join("server"),
        &[("SKYDECK_LOCAL_ACCELERATORS", "H100:4")],
        &["alice", "mallory"],
    )
    .await;
    let admin_api = as_client(&server, ADMIN);
    let alice_api = as_client(&server, "alice:alice-pw");
    let gate = scratch.path().join("gate");
    let task = format!(
        "run: |\n  echo line-one\n  while [ ! -e '{}' ]; do sleep 0.1; done\n  echo line-two\n",
        gate.display()
    );
    let id = alice_api
        .submit(
            "/launch",
            &json!({ "task": task, "cluster_name": "alice-box" }),
        )
        .await
        .unwrap();
    alice_api.wait(&id).await.unwrap();

    // Alice logs in and visits every page.
    let alice = browser(&driver, &scratch.path().join("alice-profile")).await;
    log_in(&alice, &server, "alice", "alice-pw").await;
    alice
        .find(Locator::Css("tr[data-cluster='alice-box']"))
        .await
        .expect("alice's cluster is listed");
    screenshot(&alice, "clusters").await;
    // The table is live: a cluster launched after the page loaded appears
    // on it without a reload.
    let id = alice_api
        .submit(
            "/launch",
            &json!({
                "task": "resources:\n  accelerators: H100:2\nrun: echo live\n",
                "cluster_name": "alice-live",
            }),
        )
        .await
        .unwrap();
    alice_api.wait(&id).await.unwrap();
    wait_text(&alice, "clusters", "the new cluster listed live", |text| {
        text.contains("alice-live")
    })
    .await;
    alice
        .find(Locator::LinkText("alice-box"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&alice, "on the cluster's page", |url| {
        url.ends_with("/dashboard/clusters/alice-box")
    })
    .await;
    alice
        .find(Locator::Css("tr[data-job='1']"))
        .await
        .expect("the cluster's job is listed");
    screenshot(&alice, "cluster").await;

    // The job's log, followed as it is written: the second line appears
    // without a reload once the job gets to it.
    alice
        .find(Locator::Css("tr[data-job='1'] a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&alice, "log", "the first line", |text| {
        text.contains("line-one")
    })
    .await;
    std::fs::write(&gate, "").unwrap();
    wait_text(&alice, "log", "the second line, live", |text| {
        text.contains("line-two")
    })
    .await;
    screenshot(&alice, "job-log").await;

    for (path, name, marker) in [
        ("jobs", "managed-jobs", "managed-jobs"),
        ("requests?all=true", "requests", "requests"),
        ("infra", "infrastructure", "gpu-chart"),
        ("workspaces", "workspaces", "workspaces"),
    ] {
        alice
            .goto(&format!("{}/dashboard/{path}", server.url))
            .await
            .unwrap();
        alice
            .find(Locator::Id(marker))
            .await
            .unwrap_or_else(|_| panic!("the {name} page has its table"));
        screenshot(&alice, name).await;
    }
    alice
        .goto(&format!("{}/dashboard/infra", server.url))
        .await
        .unwrap();
    let gpus = alice.find(Locator::Id("gpu-chart")).await.unwrap();
    let drawn = gpus.text().await.unwrap();
    assert!(
        drawn.contains("H100") && drawn.contains("2 / 4 in use"),
        "{drawn}"
    );

    // A managed job's page: its history (the controller's log) and its
    // own log, reached from the managed jobs list.
    let id = alice_api
        .submit(
            "/jobs/launch",
            &json!({ "task": "name: nightly\nrun: echo managed-hello\n" }),
        )
        .await
        .unwrap();
    let job = alice_api.wait(&id).await.unwrap()["job_id"]
        .as_u64()
        .unwrap();
    alice
        .goto(&format!("{}/dashboard/jobs", server.url))
        .await
        .unwrap();
    alice
        .find(Locator::Css(&format!("tr[data-job='{job}'] a")))
        .await
        .expect("the managed job is listed")
        .click()
        .await
        .unwrap();
    wait_text(&alice, "controller-log", "the job's history", |text| {
        text.contains("finished: SUCCEEDED")
    })
    .await;
    wait_text(&alice, "log", "the job's output", |text| {
        text.contains("managed-hello")
    })
    .await;
    screenshot(&alice, "managed-job").await;

    let nav = alice.find(Locator::Css("header nav")).await.unwrap();
    let links = nav.text().await.unwrap();
    assert!(
        !links.contains("Config") && !links.contains("Users"),
        "no config or users link for a non-admin: {links}"
    );

    // Stop, then tear down, with the buttons; each asks first.
    alice
        .goto(&format!("{}/dashboard/clusters/alice-box", server.url))
        .await
        .unwrap();
    click_and_confirm(&alice, "Stop").await;
    wait_url(&alice, "on the requests page", |url| {
        url.contains("/dashboard/requests?submitted=")
    })
    .await;
    screenshot(&alice, "request-submitted").await;
    let deadline = Instant::now() + DEADLINE;
    while cluster_status(&alice_api, "alice-box").await.as_deref() != Some("STOPPED") {
        assert!(Instant::now() < deadline, "the cluster never stopped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    alice
        .goto(&format!("{}/dashboard/clusters/alice-box", server.url))
        .await
        .unwrap();
    click_and_confirm(&alice, "Tear down").await;
    wait_url(&alice, "on the requests page", |url| {
        url.contains("/dashboard/requests?submitted=")
    })
    .await;
    let deadline = Instant::now() + DEADLINE;
    while cluster_status(&alice_api, "alice-box").await.is_some() {
        assert!(Instant::now() < deadline, "the cluster was never torn down");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    alice.close().await.unwrap();

    // Mallory sees neither alice's cluster (gone now; launch another) nor
    // the config.
    let id = alice_api
        .submit(
            "/launch",
            &json!({ "task": "run: echo again\n", "cluster_name": "alice-two" }),
        )
        .await
        .unwrap();
    alice_api.wait(&id).await.unwrap();
    let mallory = browser(&driver, &scratch.path().join("mallory-profile")).await;
    log_in(&mallory, &server, "mallory", "mallory-pw").await;
    let page = mallory.source().await.unwrap();
    assert!(!page.contains("alice-two"), "mallory sees alice's cluster");
    mallory
        .goto(&format!("{}/dashboard/settings/config", server.url))
        .await
        .unwrap();
    let refused = mallory.find(Locator::Css("p.error")).await.unwrap();
    assert!(
        refused.text().await.unwrap().contains("Only admins"),
        "mallory is refused the config"
    );
    assert!(mallory.find(Locator::Css("textarea.config")).await.is_err());
    mallory.close().await.unwrap();

    // The admin edits the config: a bad value is shown at its key and
    // line; a good one is saved and used.
    let admin = browser(&driver, &scratch.path().join("admin-profile")).await;
    log_in(&admin, &server, "admin", "admin-pw-61").await;
    assert!(
        admin.source().await.unwrap().contains("alice-two"),
        "the admin sees every cluster"
    );
    admin
        .goto(&format!("{}/dashboard/users", server.url))
        .await
        .unwrap();
    admin
        .find(Locator::Css("tr[data-user='mallory']"))
        .await
        .expect("the admin sees the users");
    screenshot(&admin, "users").await;
    admin
        .goto(&format!("{}/dashboard/settings/config", server.url))
        .await
        .unwrap();
    screenshot(&admin, "config").await;
    let editor = admin.find(Locator::Css("textarea.config")).await.unwrap();
    editor.clear().await.unwrap();
    editor
        .send_keys("workspaces:\n  default: {}\n  team:\n    private: maybe\n")
        .await
        .unwrap();
    admin
        .find(Locator::XPath("//button[normalize-space()='Save']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let error = wait_text(&admin, "config-error", "the mistake shown", |text| {
        !text.is_empty()
    })
    .await;
    assert!(
        error.contains("workspaces.team.private") && error.contains("line 4"),
        "{error}"
    );
    screenshot(&admin, "config-error").await;
    let editor = admin.find(Locator::Css("textarea.config")).await.unwrap();
    editor.clear().await.unwrap();
    editor
        .send_keys("workspaces:\n  default: {}\n  team: {}\n")
        .await
        .unwrap();
    admin
        .find(Locator::XPath("//button[normalize-space()='Save']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&admin, "saved", "saved", |text| text.contains("Saved")).await;
    let config = admin_api.get_config().await.unwrap();
    assert!(
        config.config["workspaces"]["team"].is_object(),
        "{config:?}"
    );
    admin.close().await.unwrap();
}
