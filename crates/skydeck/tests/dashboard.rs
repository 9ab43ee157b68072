//! The dashboard over HTTP, as a browser with basic auth uses it: pages
//! for clusters, a cluster, managed jobs, requests and a request, and the
//! config; actions through forms; and what a non-admin must not see or
//! do. Real server, real clusters on `local`.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::TestServer;
use support::team::{self, ADMIN, client as as_client, cluster_status};

/// A browser logged in as one user: basic auth on every call, redirects
/// not followed (so a test sees where a form sends it).
struct Browser {
    base: String,
    user: String,
    password: String,
    http: reqwest::Client,
}

struct Page {
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

impl Browser {
    fn new(server: &TestServer, credentials: &str) -> Self {
        let _ = skydeck_client::http_client();
        let (user, password) = credentials.split_once(':').unwrap();
        Self {
            base: server.url.clone(),
            user: user.to_owned(),
            password: password.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Page {
        let request = self
            .http
            .get(format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password));
        Self::page(request).await
    }

    /// Posts a form, from the dashboard's own origin.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .header("Origin", &self.base)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(encode(form));
        Self::page(request).await
    }

    async fn page(request: reqwest::RequestBuilder) -> Page {
        let response = request.send().await.expect("the server answers");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        Page {
            status: response.status().as_u16(),
            location: header("location"),
            set_cookie: header("set-cookie"),
            body: response.text().await.unwrap(),
        }
    }

    /// The first event of a live table's stream, read as it arrives
    /// (the stream itself lasts while the tab is open).
    async fn first_event(&self, path: &str) -> String {
        let mut response = self
            .http
            .get(format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), 200, "{path}");
        let mut text = String::new();
        // Bounded: a stream that waits for a change would never end.
        let read = tokio::time::timeout(Duration::from_secs(60), async {
            while !text.contains("\n\n") {
                let chunk = response.chunk().await.unwrap().expect("an event");
                text.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        });
        read.await
            .unwrap_or_else(|_| panic!("{path} sent no event at once"));
        text
    }

    /// The form token every page this user sees carries.
    async fn token(&self) -> String {
        let page = self.get("/dashboard/requests").await;
        let marker = "name=\"csrf-token\" content=\"";
        let at = page.body.find(marker).map(|i| i + marker.len());
        match at {
            Some(at) => page.body[at..at + 64].to_owned(),
            None => panic!("no form token on the page: {}", page.body),
        }
    }
}

fn encode(form: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish()
}

/// Every link, form and script on a page is relative, so the dashboard
/// works under any path prefix.
fn assert_links_relative(page: &Page) {
    for attribute in ["href=\"", "action=\"", "src=\"", "data-follow=\""] {
        for (at, _) in page.body.match_indices(attribute) {
            let value = &page.body[at + attribute.len()..];
            assert!(
                !value.starts_with('/') && !value.starts_with("http"),
                "an absolute link: {}",
                &value[..value.find('"').unwrap_or(value.len())]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_and_acts_only_on_what_each_user_may() {
    let scratch = tempfile::tempdir().unwrap();
    let server = team::start(&scratch.path().join("server"), &[], &["alice", "mallory"]).await;
    let admin_api = as_client(&server, ADMIN);
    let alice_api = as_client(&server, "alice:alice-pw");
    let alice = Browser::new(&server, "alice:alice-pw");
    let mallory = Browser::new(&server, "mallory:mallory-pw");
    let admin = Browser::new(&server, ADMIN);

    // Nobody gets in without logging in (see the login test below).
    let refused = with_cookie(
        &server,
        reqwest::Method::GET,
        "/dashboard/clusters",
        None,
        None,
    )
    .await;
    assert_eq!(
        (refused.status, refused.location.as_deref()),
        (303, Some("login"))
    );

    // Alice's cluster, with a job that says hello.
    let id = alice_api
        .submit(
            "/launch",
            &json!({ "task": "run: echo hello-from-alice\n", "cluster_name": "alice-box" }),
        )
        .await
        .unwrap();
    alice_api.wait(&id).await.unwrap();

    let home = alice.get("/dashboard").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.location.as_deref(), Some("dashboard/clusters"));
    let clusters = alice.get("/dashboard/clusters").await;
    assert_eq!(clusters.status, 200);
    assert!(clusters.body.contains("data-cluster=\"alice-box\""));
    assert!(
        !clusters.body.contains("href=\"config\""),
        "no config link for a non-admin"
    );
    assert_links_relative(&clusters);
    let filtered = alice.get("/dashboard/clusters?q=nothing-like-it").await;
    assert!(!filtered.body.contains("data-cluster=\"alice-box\""));
    let bad_filter = alice
        .get(&format!("/dashboard/clusters?q={}", "x".repeat(200)))
        .await;
    assert_eq!(bad_filter.status, 400);
    let detail = alice.get("/dashboard/clusters/alice-box").await;
    assert_eq!(detail.status, 200);
    assert!(
        // Listed whether it is still running or done.
        detail.body.contains("<h2>Jobs</h2>") && detail.body.contains("data-job=\"1\""),
        "{}",
        detail.body
    );
    assert_links_relative(&detail);
    assert!(
        detail.body.contains("href=\"clusters/alice-box/jobs/1\""),
        "{}",
        detail.body
    );
    let job_page = alice.get("/dashboard/clusters/alice-box/jobs/1").await;
    assert_eq!(job_page.status, 200);
    assert_links_relative(&job_page);
    // The log the job page follows: the job's output, to its end.
    let log = alice.get("/dashboard/clusters/alice-box/jobs/1/log").await;
    assert_eq!(log.status, 200);
    assert!(log.body.contains("hello-from-alice"), "{}", log.body);

    // A tab shown again resumes its live table with the rows as they are.
    let resumed = alice
        .first_event("/dashboard/live/clusters?resume=true&q=alice")
        .await;
    assert!(
        resumed.starts_with("event: rows\n") && resumed.contains("data-cluster=\"alice-box\""),
        "{resumed}"
    );

    // Mallory sees none of it, and cannot act on it with her own token.
    let theirs = mallory.get("/dashboard/clusters").await;
    assert!(!theirs.body.contains("alice-box"), "{}", theirs.body);
    let theirs = mallory
        .first_event("/dashboard/live/clusters?resume=true")
        .await;
    assert!(
        theirs.starts_with("event: rows\n") && !theirs.contains("alice-box"),
        "{theirs}"
    );
    assert_eq!(
        mallory.get("/dashboard/clusters/alice-box").await.status,
        404
    );
    // Nor its job's page, its log (refused when the follow is accepted),
    // or a made-up request.
    assert_eq!(
        mallory
            .get("/dashboard/clusters/alice-box/jobs/1")
            .await
            .status,
        404
    );
    let log = mallory
        .get("/dashboard/clusters/alice-box/jobs/1/log")
        .await;
    assert!(
        log.status == 403 && !log.body.contains("hello-from-alice"),
        "{} {}",
        log.status,
        log.body
    );
    assert_eq!(
        mallory
            .get("/dashboard/requests/not-a-request-id")
            .await
            .status,
        404
    );
    let mallory_token = mallory.token().await;
    let stop = mallory
        .post(
            "/dashboard/clusters/alice-box/stop",
            &[("csrf", &mallory_token)],
        )
        .await;
    assert_eq!(stop.status, 403, "{}", stop.body);
    assert_eq!(
        cluster_status(&alice_api, "alice-box").await.as_deref(),
        Some("UP")
    );
    assert!(
        !mallory
            .get("/dashboard/requests?all=true")
            .await
            .body
            .contains("sky.launch")
    );
    // Nor the config, read or written.
    assert_eq!(mallory.get("/dashboard/config").await.status, 403);
    let write = mallory
        .post(
            "/dashboard/settings/config",
            &[("csrf", &mallory_token), ("config", "workspaces: {}\n")],
        )
        .await;
    assert_eq!(write.status, 403);

    // A form without alice's token, or sent from another site, does nothing.
    let alice_token = alice.token().await;
    let forged = alice
        .post(
            "/dashboard/clusters/alice-box/stop",
            &[("csrf", &mallory_token)],
        )
        .await;
    assert_eq!(forged.status, 403);
    let cross_site = alice
        .http
        .post(format!("{}/dashboard/clusters/alice-box/stop", server.url))
        .basic_auth("alice", Some("alice-pw"))
        .header("Origin", "http://evil.example")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", alice_token.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status().as_u16(), 403);
    assert_eq!(
        cluster_status(&alice_api, "alice-box").await.as_deref(),
        Some("UP")
    );

    // Alice stops her cluster from the dashboard and follows the request.
    let stop = alice
        .post(
            "/dashboard/clusters/alice-box/stop",
            &[("csrf", &alice_token)],
        )
        .await;
    assert_eq!(stop.status, 303, "{}", stop.body);
    let location = stop.location.unwrap();
    let request = location
        .strip_prefix("../../requests?submitted=")
        .unwrap_or_else(|| panic!("redirected to {location}"))
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster_status(&alice_api, "alice-box").await.as_deref() != Some("STOPPED") {
        assert!(Instant::now() < deadline, "the cluster never stopped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = alice.get("/dashboard/requests?all=true").await;
    assert!(listed.body.contains(&format!("data-request=\"{request}\"")));
    let one = alice.get(&format!("/dashboard/requests/{request}")).await;
    assert_eq!(one.status, 200);
    assert!(one.body.contains("sky.stop"));
    assert_eq!(
        mallory
            .get(&format!("/dashboard/requests/{request}"))
            .await
            .status,
        404
    );
    // The log the page follows is the request's own stream.
    let follow = one
        .body
        .split("data-follow=\"../")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let log = alice.get(&format!("/{follow}")).await;
    assert!(
        log.body.contains("Cluster alice-box stopped."),
        "{}",
        log.body
    );

    // The admin edits the config: a bad value is shown at its key, a good
    // one is saved and used.
    let editor = admin.get("/dashboard/settings/config").await;
    assert_eq!(editor.status, 200);
    assert_links_relative(&editor);
    let admin_token = admin.token().await;
    let bad = admin
        .post(
            "/dashboard/settings/config",
            &[
                ("csrf", &admin_token),
                (
                    "config",
                    "workspaces:\n  default: {}\n  team:\n    private: maybe\n",
                ),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("<code>workspaces.team.private</code>")
            && bad.body.contains("data-line=\"4\"")
            && bad.body.contains("private: maybe"),
        "{}",
        bad.body
    );
    let good = admin
        .post(
            "/dashboard/settings/config",
            &[
                ("csrf", &admin_token),
                ("config", "workspaces:\n  default: {}\n  team: {}\n"),
            ],
        )
        .await;
    assert_eq!(good.status, 200, "{}", good.body);
    assert!(good.body.contains("id=\"saved\""));
    let config = admin_api.get_config().await.unwrap();
    assert!(
        config.config["workspaces"]["team"].is_object(),
        "{:?}",
        config.config
    );
    // The admin sees everyone's clusters, and the managed jobs page.
    assert!(
        admin
            .get("/dashboard/clusters")
            .await
            .body
            .contains("alice-box")
    );
    assert_eq!(admin.get("/dashboard/jobs").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn infrastructure_workspaces_users_and_managed_jobs_show_each_viewer_what_they_may() {
    let scratch = tempfile::tempdir().unwrap();
    let server = team::start(
        &scratch.path().join("server"),
        &[("SKYDECK_ENABLE_SERVICE_ACCOUNTS", "1")],
        &["alice", "mallory"],
    )
    .await;
    let admin_api = as_client(&server, ADMIN);
    let alice_api = as_client(&server, "alice:alice-pw");
    let mallory_api = as_client(&server, "mallory:mallory-pw");
    let alice = Browser::new(&server, "alice:alice-pw");
    let mallory = Browser::new(&server, "mallory:mallory-pw");
    let admin = Browser::new(&server, ADMIN);
    let config = json!({"workspaces": {
        "default": {},
        "team": {"private": true, "allowed_users": ["alice"]},
    }});
    admin_api
        .set_config(config.as_object().unwrap())
        .await
        .unwrap();

    // The infrastructure page draws this machine's capacity, and what
    // alice's one-CPU cluster holds of it, for everyone; no cluster named.
    let idle = mallory.get("/dashboard/infra").await;
    assert_eq!(idle.status, 200);
    assert_links_relative(&idle);
    assert!(idle.body.contains("data-infra=\"local\""), "{}", idle.body);
    assert!(
        idle.body.contains("0 / "),
        "nothing in use yet: {}",
        idle.body
    );
    let id = alice_api
        .submit(
            "/launch",
            &json!({ "task": "resources:\n  cpus: 1\nrun: echo hi\n", "cluster_name": "alice-cpu" }),
        )
        .await
        .unwrap();
    alice_api.wait(&id).await.unwrap();
    let busy = mallory.get("/dashboard/infra").await;
    assert!(
        busy.body.contains("aria-label=\"CPUs: 1 of "),
        "{}",
        busy.body
    );
    assert!(!busy.body.contains("alice-cpu"));

    // Workspaces: alice sees the private one she is admitted to, with her
    // cluster counted in default; mallory does not see it at all.
    let theirs = alice.get("/dashboard/workspaces").await;
    assert_eq!(theirs.status, 200);
    assert!(theirs.body.contains("data-workspace=\"team\""));
    assert!(theirs.body.contains("private: alice and admins"));
    let hers = mallory.get("/dashboard/workspaces").await;
    assert!(hers.body.contains("data-workspace=\"default\""));
    assert!(
        !hers.body.contains("data-workspace=\"team\""),
        "{}",
        hers.body
    );

    // A managed job's page: its tasks, and its history and log followed.
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
    let page = alice.get(&format!("/dashboard/jobs/{job}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_links_relative(&page);
    assert!(page.body.contains("nightly") && page.body.contains("id=\"recoveries\""));
    assert!(
        page.body
            .contains(&format!("data-follow=\"jobs/{job}/log?controller=true\""))
    );
    let log = alice.get(&format!("/dashboard/jobs/{job}/log")).await;
    assert!(log.body.contains("managed-hello"), "{}", log.body);
    let history = alice
        .get(&format!("/dashboard/jobs/{job}/log?controller=true"))
        .await;
    assert!(
        history
            .body
            .contains(&format!("Managed job {job} finished: SUCCEEDED")),
        "{}",
        history.body
    );
    assert_eq!(
        mallory.get(&format!("/dashboard/jobs/{job}")).await.status,
        404
    );
    let peek = mallory.get(&format!("/dashboard/jobs/{job}/log")).await;
    assert!(!peek.body.contains("managed-hello"), "{}", peek.body);
    assert_eq!(mallory.get("/dashboard/jobs/0").await.status, 404);

    // Requests are paged and searched in the database, filters kept
    // from page to page.
    for _ in 0..55 {
        let id = alice_api
            .submit("/status", &json!({ "cluster_names": ["alice-cpu"] }))
            .await
            .unwrap();
        alice_api.wait(&id).await.unwrap();
    }
    let first = alice.get("/dashboard/requests?all=true").await;
    assert!(first.body.contains("Page 1 of 2"), "{}", first.body);
    assert!(first.body.contains("href=\"requests?page=2&amp;all=true\""));
    assert_eq!(first.body.matches("data-request=").count(), 50);
    let second = alice.get("/dashboard/requests?all=true&page=2").await;
    assert!(second.body.contains("sky.launch") && second.body.contains("Page 2 of 2"));
    let searched = alice
        .get("/dashboard/requests?all=true&q=JOBS.LAUNCH")
        .await;
    assert_eq!(
        searched.body.matches("data-request=").count(),
        1,
        "{}",
        searched.body
    );
    assert_eq!(
        mallory
            .get("/dashboard/requests?all=true&q=launch")
            .await
            .body
            .matches("data-request=")
            .count(),
        0
    );

    // Users, roles and tokens are for admins.
    let refused = mallory.get("/dashboard/users").await;
    assert_eq!(refused.status, 403);
    assert!(!refused.body.contains("alice"));
    assert!(
        !mallory
            .get("/dashboard/clusters")
            .await
            .body
            .contains("href=\"users\"")
    );
    let token = mallory_api
        .create_token(&skydeck_client::admin::NewToken {
            name: "laptop".into(),
            expires_in_days: None,
            user: None,
        })
        .await
        .unwrap();
    let mallory_token = mallory.token().await;
    let promote = mallory
        .post(
            "/dashboard/users/mallory/role-admin",
            &[("csrf", &mallory_token)],
        )
        .await;
    assert_eq!(promote.status, 403, "{}", promote.body);
    let users = admin.get("/dashboard/users").await;
    assert_eq!(users.status, 200);
    assert_links_relative(&users);
    assert!(
        users.body.contains("data-user=\"alice\"") && users.body.contains("data-user=\"mallory\"")
    );
    assert!(
        users
            .body
            .contains(&format!("data-token=\"{}\"", token.info.id))
    );
    assert!(
        !users.body.contains(&token.token),
        "a token's secret is never shown again"
    );
    // The admin revokes mallory's token: it no longer signs anything in.
    let with_token = skydeck_client::Client::new(&server.url, Some(token.token.clone())).unwrap();
    assert_eq!(with_token.me().await.unwrap().name, "mallory");
    let admin_token = admin.token().await;
    let revoke = admin
        .post(
            &format!("/dashboard/tokens/{}/revoke", token.info.id),
            &[("csrf", &admin_token)],
        )
        .await;
    assert_eq!(revoke.status, 303, "{}", revoke.body);
    assert_eq!(revoke.location.as_deref(), Some("../../users"));
    let with_token = skydeck_client::Client::new(&server.url, Some(token.token.clone())).unwrap();
    assert!(
        with_token.me().await.is_err(),
        "a revoked token still works"
    );
    // And makes alice an admin, which she then is.
    let promote = admin
        .post(
            "/dashboard/users/alice/role-admin",
            &[("csrf", &admin_token)],
        )
        .await;
    assert_eq!(promote.status, 303, "{}", promote.body);
    assert_eq!(alice_api.me().await.unwrap().role.to_string(), "admin");
    assert_eq!(alice.get("/dashboard/users").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_form_made_before_a_restart_is_still_accepted() {
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path().join("server");
    let server = team::start(&home, &[], &["alice"]).await;
    let token = Browser::new(&server, "alice:alice-pw").token().await;
    server.stop();
    // The same database, a new process: the form key is the database's.
    let server = TestServer::start(
        &home,
        &[
            ("SKYDECK_ENABLE_BASIC_AUTH", "1"),
            ("SKYDECK_INITIAL_BASIC_AUTH", ADMIN),
        ],
    );
    let alice = Browser::new(&server, "alice:alice-pw");
    assert_eq!(alice.token().await, token);
    let out = alice.post("/dashboard/logout", &[("csrf", &token)]).await;
    assert_eq!((out.status, out.location.as_deref()), (303, Some("login")));
    let forged = alice
        .post("/dashboard/logout", &[("csrf", &"0".repeat(64))])
        .await;
    assert_eq!(forged.status, 403);
}

/// Sends one request with `cookie` (or none) and no other credentials.
async fn with_cookie(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    cookie: Option<&str>,
    form: Option<&[(&str, &str)]>,
) -> Page {
    let _ = skydeck_client::http_client();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = http.request(method, format!("{}{path}", server.url));
    if let Some(cookie) = cookie {
        request = request.header("Cookie", format!("skydeck_session={cookie}"));
    }
    if let Some(form) = form {
        request = request
            .header("Origin", &server.url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(encode(form));
    }
    Browser::page(request).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_logs_in_with_a_password_or_a_token_and_out() {
    use reqwest::Method;
    let scratch = tempfile::tempdir().unwrap();
    let server = team::start(
        &scratch.path().join("server"),
        &[("SKYDECK_ENABLE_SERVICE_ACCOUNTS", "1")],
        &["alice"],
    )
    .await;

    // Not logged in: every page sends the browser to the login page,
    // relative to where it is.
    let away = with_cookie(&server, Method::GET, "/dashboard/clusters/x", None, None).await;
    assert_eq!(
        (away.status, away.location.as_deref()),
        (303, Some("../login"))
    );
    let login = with_cookie(&server, Method::GET, "/dashboard/login", None, None).await;
    assert_eq!(login.status, 200);
    assert!(login.body.contains("name=\"password\"") && login.body.contains("name=\"token\""));

    // A wrong password is refused on the page; the right one starts a
    // session in a strict, HTTP-only cookie.
    let wrong = with_cookie(
        &server,
        Method::POST,
        "/dashboard/login",
        None,
        Some(&[("name", "alice"), ("password", "nope")]),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.body.contains("Invalid user name or password"),
        "{}",
        wrong.body
    );
    let right = with_cookie(
        &server,
        Method::POST,
        "/dashboard/login",
        None,
        Some(&[("name", "alice"), ("password", "alice-pw")]),
    )
    .await;
    assert_eq!(right.status, 303, "{}", right.body);
    let set = right.set_cookie.unwrap_or_default();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let session = set
        .split("skydeck_session=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    let clusters = with_cookie(
        &server,
        Method::GET,
        "/dashboard/clusters",
        Some(&session),
        None,
    )
    .await;
    assert_eq!(clusters.status, 200);
    assert!(
        clusters.body.contains("<span class=\"who\">alice"),
        "{}",
        clusters.body
    );
    // The cookie is for the dashboard only: the API wants its credentials,
    // and the session is no API token either.
    let api = with_cookie(&server, Method::POST, "/status", Some(&session), Some(&[])).await;
    assert_eq!(api.status, 401);
    let _ = skydeck_client::http_client();
    let as_bearer = reqwest::Client::new()
        .post(format!("{}/status", server.url))
        .bearer_auth(&session)
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(as_bearer.status().as_u16(), 401);

    // Logging out ends the session everywhere.
    let token = clusters
        .body
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .map(|rest| rest[..64].to_owned())
        .unwrap();
    let out = with_cookie(
        &server,
        Method::POST,
        "/dashboard/logout",
        Some(&session),
        Some(&[("csrf", &token)]),
    )
    .await;
    assert_eq!(out.status, 303);
    let after = with_cookie(
        &server,
        Method::GET,
        "/dashboard/clusters",
        Some(&session),
        None,
    )
    .await;
    assert_eq!(
        (after.status, after.location.as_deref()),
        (303, Some("login"))
    );

    // A service-account token logs in too; a login form from another site
    // does not.
    let created = as_client(&server, "alice:alice-pw")
        .create_token(&skydeck_client::admin::NewToken {
            name: "laptop".into(),
            expires_in_days: None,
            user: None,
        })
        .await
        .unwrap();
    let by_token = with_cookie(
        &server,
        Method::POST,
        "/dashboard/login",
        None,
        Some(&[("token", &created.token)]),
    )
    .await;
    assert_eq!(by_token.status, 303, "{}", by_token.body);
    let _ = skydeck_client::http_client();
    let forged = reqwest::Client::new()
        .post(format!("{}/dashboard/login", server.url))
        .header("Origin", "http://evil.example")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(encode(&[("name", "alice"), ("password", "alice-pw")]))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    assert!(forged.headers().get("set-cookie").is_none());
}
