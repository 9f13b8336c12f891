//! Scaling out for real: two replicas of the binary behind nginx (round robin, on
//! loopback), counting in a real `redis-server`. Limits and quotas hold whichever
//! replica serves; Redis down, stalled or restarted gets each tenant's configured
//! answer within the bound, and the service recovers without a restart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::helpers::*;

/// A process the test started, killed (by its PID) on drop.
struct Process(Child);

impl Process {
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "{signal} delivered");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `redis-server` on a loopback port, without persistence, in its own directory.
pub(crate) struct Redis {
    port: u16,
    dir: PathBuf,
    process: Option<Process>,
}

impl Redis {
    pub(crate) fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("upload-tickets-redis-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Self {
            port: free_port(),
            dir,
            process: None,
        };
        redis.restart();
        redis
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts it again on the same port (after [`Redis::kill`]).
    fn restart(&mut self) {
        assert!(
            Command::new("redis-server")
                .arg("--version")
                .output()
                .is_ok(),
            "redis-server is not installed: run scripts/install-test-deps.sh"
        );
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.process = Some(Process(child));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        self.process = None;
    }

    fn process(&self) -> &Process {
        self.process.as_ref().expect("redis-server runs")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.process = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// nginx in front of `upstreams`, round robin, on a loopback port.
struct Gateway {
    base: String,
    dir: PathBuf,
    process: Option<Process>,
}

impl Gateway {
    fn start(upstreams: &[u16]) -> Self {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .expect("nginx is not installed: run scripts/install-test-deps.sh");
        let dir =
            std::env::temp_dir().join(format!("upload-tickets-nginx-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("temp")).unwrap();
        let port = free_port();
        let servers: String = upstreams
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p} max_fails=0;\n"))
            .collect();
        let conf = format!(
            "user root root;\nworker_processes 1;\ndaemon off;\npid {dir}/nginx.pid;\n\
             error_log {dir}/error.log warn;\nevents {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/temp/body;\n\
             proxy_temp_path {dir}/temp/proxy;\n  fastcgi_temp_path {dir}/temp/fastcgi;\n\
             uwsgi_temp_path {dir}/temp/uwsgi;\n  scgi_temp_path {dir}/temp/scgi;\n\
             upstream replicas {{\n{servers}  }}\n\
             server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
             proxy_pass http://replicas;\n      proxy_next_upstream off;\n\
             add_header X-Upstream $upstream_addr always;\n    }}\n  }}\n}}\n",
            dir = dir.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(nginx)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let process = Process(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            base: format!("http://127.0.0.1:{port}"),
            dir,
            process: Some(process),
        }
    }
}

impl Drop for Gateway {
    /// SIGTERM to the master, which stops its workers (a SIGKILL would orphan them, still
    /// holding the port), then the master's exit; SIGKILL only if it does not come.
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            // Not `signal`: a drop must not panic (the master may be gone already).
            let _ = Command::new("kill")
                .args(["-TERM", &process.0.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(process.0.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const HANDLE_ENV: &str = "TEST_HANDLE_SECRET";
const HANDLE_SECRET: &str = "test-handle-secret-of-at-least-32-bytes!";

/// The replicas' configuration: limits in `redis`, tickets for `store`.
fn replica_config(port: u16, redis: &str, store: &str) -> String {
    base_config()
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""))
        .replace(
            "shutdown_grace_seconds = 5",
            &format!("shutdown_grace_seconds = 5\nhandle_secret_env = \"{HANDLE_ENV}\""),
        )
        .replace("http://127.0.0.1:9000", store)
        .replace(
            "[tenants.acme]",
            &format!(
                "[limits]\nredis_url = \"{redis}\"\nkey_prefix = \"test:\"\ntimeout_ms = 250\n\n\
                 [tenants.shared]\nbucket = \"{BUCKET}\"\nmax_size = 10485760\nmultipart_part_size = 5242880\n\
                 rate_limit_per_minute = 4\ntenant_rate_limit_per_minute = 1000\n\
                 bytes_per_day = 20000000\nmax_open_multipart_uploads = 1\nstore_calls_per_minute = 3\n\n\
                 [tenants.strict]\nbucket = \"{BUCKET}\"\nmax_size = 1000\nrate_limit_per_minute = 1000\n\n\
                 [tenants.lenient]\nbucket = \"{BUCKET}\"\nmax_size = 1000\nrate_limit_per_minute = 1000\n\
                 on_limits_unavailable = \"allow\"\n\n[tenants.acme]"
            ),
        )
}

const BUCKET: &str = "scale-uploads";

/// Two replicas, their gateway, Redis and a store.
struct Cluster {
    redis: Redis,
    replicas: Vec<Binary>,
    ports: Vec<u16>,
    gateway: Gateway,
    configs: Vec<String>,
    _store: upload_tickets::devstore::DevStore,
}

impl Cluster {
    async fn start() -> Self {
        let redis = Redis::start();
        let store = match upload_tickets::devstore::start(upload_tickets::devstore::Options {
            listen: "127.0.0.1:0".parse().unwrap(),
            data: None,
            access_key: ACCESS_KEY.to_owned(),
            secret_key: SECRET_KEY.to_owned(),
            buckets: vec![BUCKET.to_owned()],
            origins: Vec::new(),
            lax: Default::default(),
        })
        .await
        .expect("the store starts")
        {
            upload_tickets::devstore::Started::Embedded(store) => store,
            upload_tickets::devstore::Started::Existing(a) => panic!("port 0 taken: {a}"),
        };
        let endpoint = format!("http://{}", store.address());
        let ports = vec![free_port(), free_port()];
        let configs: Vec<String> = ports
            .iter()
            .map(|p| replica_config(*p, &redis.url(), &endpoint))
            .collect();
        let replicas = configs
            .iter()
            .map(|c| Binary::start(c, &[(HANDLE_ENV, HANDLE_SECRET)]))
            .collect();
        let gateway = Gateway::start(&ports);
        Self {
            redis,
            replicas,
            ports,
            gateway,
            configs,
            _store: store,
        }
    }

    /// Stops replica `n` (SIGTERM) and starts it again on the same port.
    fn restart_replica(&mut self, n: usize) {
        self.replicas.remove(n).stop_and_collect();
        let replica = Binary::start(&self.configs[n], &[(HANDLE_ENV, HANDLE_SECRET)]);
        self.replicas.insert(n, replica);
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.gateway.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the gateway answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body, headers)
    }

    async fn start_multipart(&self, sub: &str, size: u64) -> (u16, Value) {
        let body = json!({"filename": "big.bin", "size": size});
        let token = token("shared", sub);
        let (status, body, _) = self
            .call(
                reqwest::Method::POST,
                "/uploads/multipart",
                &token,
                Some(body),
            )
            .await;
        (status, body)
    }

    async fn ticket(
        &self,
        tenant: &str,
        sub: &str,
        size: u64,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let body = json!({"filename": "a.txt", "content_type": "text/plain", "size": size});
        self.call(
            reqwest::Method::POST,
            "/uploads",
            &token(tenant, sub),
            Some(body),
        )
        .await
    }
}

/// Waits, if need be, so that the next `seconds` fall in one UTC minute: the per-minute
/// counts the test reads must not reset under it.
async fn within_one_minute(seconds: u64) {
    let into = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if into + seconds >= 60 {
        tokio::time::sleep(Duration::from_secs(60 - into + 1)).await;
    }
}

fn upstream(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("x-upstream")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A quota as the headers advertise it: its size, its window, and what is left of it and
/// when it turns, where `RateLimit` says.
type Advertised = (u64, u64, Option<(u64, u64)>);

/// `RateLimit-Policy` and `RateLimit` of an answer: each policy's quota, window and what
/// is left of it, by name.
fn rate_limits(headers: &reqwest::header::HeaderMap) -> BTreeMap<String, Advertised> {
    let items = |name: &str| -> Vec<(String, BTreeMap<String, u64>)> {
        let Some(value) = headers.get(name) else {
            return Vec::new();
        };
        value
            .to_str()
            .unwrap()
            .split(',')
            .map(|item| {
                let mut parts = item.trim().split(';');
                let name = parts.next().unwrap().trim_matches('"').to_owned();
                let params = parts
                    .filter_map(|p| p.split_once('='))
                    .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
                    .collect();
                (name, params)
            })
            .collect()
    };
    let left: BTreeMap<String, BTreeMap<String, u64>> = items("ratelimit").into_iter().collect();
    items("ratelimit-policy")
        .into_iter()
        .map(|(name, p)| {
            let now = left.get(&name).map(|l| (l["r"], l["t"]));
            (name, (p["q"], p["w"], now))
        })
        .collect()
}

/// The answer's rate-limit headers say what `GET /uploads/usage` says: each quota its
/// limit, and what is left (where the header tells).
fn assert_headers_match_usage(headers: &reqwest::header::HeaderMap, usage: &Value) {
    let limits = rate_limits(headers);
    assert!(!limits.is_empty(), "no RateLimit-Policy: {headers:?}");
    for (name, (quota, window, left)) in limits {
        let (counted, expected_window) = match name.as_str() {
            "subject" => (&usage["minute"]["subject_tickets"], 60),
            "tenant" => (&usage["minute"]["tenant_tickets"], 60),
            "bytes" => (&usage["day"]["bytes"], 86_400),
            other => panic!("unknown policy {other}"),
        };
        assert_eq!(counted["limit"], quota, "{name}: {usage}");
        assert_eq!(window, expected_window, "{name}");
        if let Some((remaining, reset)) = left {
            assert_eq!(counted["remaining"], remaining, "{name}: {usage}");
            assert!(reset <= window, "{name}: {reset}");
        }
    }
}

#[tokio::test]
async fn limits_and_quotas_hold_across_two_replicas_behind_nginx() {
    let mut cluster = Cluster::start().await;
    within_one_minute(40).await;

    // The subject's 4 tickets a minute, wherever they are served; the 5th is refused.
    let mut served_by = std::collections::BTreeSet::new();
    for _ in 0..3 {
        let (status, body, headers) = cluster.ticket("shared", "ann", 100).await;
        assert_eq!(status, 201, "{body}");
        served_by.insert(upstream(&headers));
    }
    assert_eq!(served_by.len(), 2, "both replicas served: {served_by:?}");
    // The last ticket's rate-limit headers, from whichever replica, say what the usage
    // answer (from either) says: the counts are Redis's.
    let ann_usage = |cluster: &Cluster| {
        let request = reqwest::Client::new()
            .get(format!("{}/uploads/usage", cluster.gateway.base))
            .bearer_auth(token("shared", "ann"));
        async move {
            let response = request.send().await.unwrap();
            crate::multipart::json_of(response, 200, "get", "/uploads/usage").await
        }
    };
    let (_, _, last) = cluster.ticket("shared", "ann", 100).await;
    assert_eq!(rate_limits(&last)["subject"].2.map(|l| l.0), Some(0));
    for _ in 0..2 {
        assert_headers_match_usage(&last, &ann_usage(&cluster).await);
    }
    let (status, body, headers) = cluster.ticket("shared", "ann", 100).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The refusal names the quota that refused, nothing left, reset with Retry-After.
    assert_eq!(rate_limits(&headers)["subject"].2, Some((0, retry)));
    assert_headers_match_usage(&headers, &ann_usage(&cluster).await);
    // Another subject of the tenant has its own count.
    assert_eq!(cluster.ticket("shared", "bob", 100).await.0, 201);

    // Calls that reach the store have their own count, shared too: 3 a minute; the
    // 4th is refused whichever replica serves it.
    let check = json!({"key": "shared/dan/none/a.txt"});
    let dan = token("shared", "dan");
    for _ in 0..3 {
        let (status, body, _) = cluster
            .call(
                reqwest::Method::POST,
                "/uploads/complete",
                &dan,
                Some(check.clone()),
            )
            .await;
        assert_ne!(status, 429, "{body}");
    }
    let (status, body, headers) = cluster
        .call(
            reqwest::Method::POST,
            "/uploads/complete",
            &dan,
            Some(check),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("store_rate_limited")),
        "{body}"
    );
    assert!(headers.contains_key("retry-after"));

    // The tenant's bytes per day: 20 000 000, 500 used so far; three of 6 MB fit.
    for sub in ["c1", "c2", "c3"] {
        let (status, body, _) = cluster.ticket("shared", sub, 6_000_000).await;
        // Single-request tickets stop at the tenant's max_size (10 MiB): fine here.
        assert_eq!(status, 201, "{body}");
    }
    let (status, body, headers) = cluster.ticket("shared", "c4", 6_000_000).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("1999500 bytes left today"),
        "{body}"
    );
    assert!(headers.contains_key("retry-after"));

    // The usage answer is the same on either replica, and survives both restarting.
    let usage_of = |cluster: &Cluster| {
        let token = token("shared", "ann");
        let base = cluster.gateway.base.clone();
        async move {
            let response = reqwest::Client::new()
                .get(format!("{base}/uploads/usage"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            crate::multipart::json_of(response, 200, "get", "/uploads/usage").await
        }
    };
    let before = usage_of(&cluster).await;
    assert_eq!(before["shared"], true);
    assert_eq!(before["day"]["bytes"]["used"], 18_000_500);
    assert_eq!(before["day"]["bytes"]["remaining"], 1_999_500);
    assert_eq!(before["minute"]["subject_tickets"]["used"], 4);
    assert_eq!(before["minute"]["tenant_tickets"]["used"], 8);
    cluster.restart_replica(0);
    cluster.restart_replica(1);
    for _ in 0..2 {
        let after = usage_of(&cluster).await;
        assert_eq!(after["day"], before["day"], "nothing lost in a restart");
        assert_eq!(
            after["minute"]["subject_tickets"],
            before["minute"]["subject_tickets"]
        );
    }
    let (status, _, _) = cluster.ticket("shared", "ann", 100).await;
    assert_eq!(status, 429, "still limited after the restarts");

    // One open multipart upload per subject, across replicas; aborting frees it. The
    // quota first: 1 999 500 bytes are left, a 6 MB upload does not fit.
    let (status, body) = cluster.start_multipart("dora", 6_000_000).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{body}"
    );
    let (status, first) = cluster.start_multipart("dora", 400_000).await;
    assert_eq!(status, 201, "{first}");
    let (status, body) = cluster.start_multipart("dora", 400_000).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("too_many_uploads")),
        "{body}"
    );
    let handle = first["handle"].as_str().unwrap();
    let path = format!("/uploads/multipart/{handle}");
    let (status, _, _) = cluster
        .call(
            reqwest::Method::DELETE,
            &path,
            &token("shared", "dora"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = cluster.start_multipart("dora", 400_000).await;
    assert_eq!(status, 201, "the aborted upload's place is free: {body}");
}

#[tokio::test]
async fn redis_down_stalled_or_restarted_gets_each_tenants_answer_and_recovers() {
    let mut cluster = Cluster::start().await;
    let bound = Duration::from_secs(2);
    assert_eq!(cluster.ticket("strict", "u", 10).await.0, 201);
    assert_eq!(cluster.ticket("lenient", "u", 10).await.0, 201);

    for fault in ["down", "stalled"] {
        match fault {
            "down" => cluster.redis.kill(),
            _ => cluster.redis.process().signal("-STOP"),
        }
        for _ in 0..6 {
            let started = Instant::now();
            let (status, body, headers) = cluster.ticket("strict", "u", 10).await;
            assert!(
                started.elapsed() < bound,
                "{fault}: no request waits past the bound"
            );
            assert_eq!(
                (status, body["code"].as_str()),
                (503, Some("limits_unavailable")),
                "{fault}: {body}"
            );
            assert!(headers.contains_key("retry-after"));
            let started = Instant::now();
            let (status, body, _) = cluster.ticket("lenient", "u", 10).await;
            assert!(started.elapsed() < bound);
            assert_eq!(
                status, 201,
                "{fault}: the lenient tenant issues uncounted: {body}"
            );
        }
        // /readyz says so (the ping runs every second), and stays 200.
        for port in &cluster.ports {
            let ready = poll_readyz(*port, false).await;
            assert_eq!(ready["status"], "ready", "{ready}");
        }
        match fault {
            "down" => cluster.redis.restart(),
            _ => cluster.redis.process().signal("-CONT"),
        }
        // Back: no restart of the service needed.
        for port in &cluster.ports {
            poll_readyz(*port, true).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, _, _) = cluster.ticket("strict", "u", 10).await;
            if status == 201 {
                break;
            }
            assert!(Instant::now() < deadline, "{fault}: recovered");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // The metric counted it, and each replica logged each episode once, not per request.
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", cluster.ports[0]))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("upload_tickets_limits_unavailable_total")
                && l.contains("tenant=\"strict\"")
                && l.contains("decision=\"deny\"")),
        "{metrics}"
    );
    for replica in std::mem::take(&mut cluster.replicas) {
        let lines = replica.stop_and_collect();
        let down = lines
            .iter()
            .filter(|l| l.contains("limits backend unreachable"))
            .count();
        let back = lines
            .iter()
            .filter(|l| l.contains("limits backend reachable again"))
            .count();
        assert_eq!(
            (down, back),
            (2, 2),
            "one warning and one recovery per episode"
        );
    }
}

/// Polls a replica's `/readyz` until its `limits` check is `want` (10 s at most).
async fn poll_readyz(port: u16, want: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready: Value = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["checks"]["limits"] == want {
            return ready;
        }
        assert!(
            Instant::now() < deadline,
            "readyz limits never {want}: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_bad_redis_url_is_refused_at_start_up() {
    let config = base_config().replace(
        "[tenants.acme]",
        "[limits]\nredis_url = \"http://user:hunter2@cache\"\n\n[tenants.acme]",
    );
    let dir =
        std::env::temp_dir().join(format!("upload-tickets-badredis-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_upload-tickets"))
        .args(["check-config", "--config"])
        .arg(&path)
        .env_clear()
        .env(SECRET_ENV, SECRET)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("limits") && stderr.contains("redis_url"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// One replica needs nothing installed: the same limits, counted in process, and the
/// same usage answer.
#[tokio::test]
async fn in_process_limits_need_nothing_installed() {
    let config = base_config().replace(
        "[tenants.limited]",
        "[tenants.quota]\nbucket = \"quota-uploads\"\nmax_size = 1000\nbytes_per_day = 1500\n\
         tenant_rate_limit_per_minute = 50\n\n[tenants.limited]",
    );
    let app = spawn_app_on(&config).await;
    let usage = |app: &TestApp| {
        let url = app.url("/uploads/usage");
        async move {
            let response = reqwest::Client::new()
                .get(url)
                .bearer_auth(token("quota", "eve"))
                .send()
                .await
                .unwrap();
            crate::multipart::json_of(response, 200, "get", "/uploads/usage").await
        }
    };
    let fresh = usage(&app).await;
    assert_eq!(fresh["shared"], false);
    assert_eq!(
        fresh["day"]["bytes"],
        json!({"used": 0, "limit": 1500, "remaining": 1500})
    );
    assert_eq!(fresh["minute"]["subject_tickets"]["limit"], Value::Null);

    let ask = |size: u64| json!({"filename": "a.txt", "size": size});
    within_one_minute(5).await;
    let first = app.upload(&token("quota", "eve"), &ask(1000)).await;
    assert_eq!(first.status(), 201);
    assert_headers_match_usage(first.headers(), &usage(&app).await);
    assert_eq!(
        rate_limits(first.headers())["bytes"].2.map(|l| l.0),
        Some(500)
    );
    let refused = app.upload(&token("quota", "eve"), &ask(600)).await;
    let headers = refused.headers().clone();
    assert_eq!(rate_limits(&headers)["bytes"].2.map(|l| l.0), Some(500));
    assert!(
        rate_limits(&headers)["tenant"].2.is_none(),
        "only the quota that refused"
    );
    assert_headers_match_usage(&headers, &usage(&app).await);
    let refused = problem(refused, 429, "quota_exceeded").await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("500 bytes left today"),
        "{refused}"
    );
    // Bad input is refused before anything is counted.
    problem(
        app.upload(&token("quota", "eve"), &ask(5000)).await,
        422,
        "file_too_large",
    )
    .await;
    assert_eq!(
        app.upload(&token("quota", "eve"), &ask(500)).await.status(),
        201
    );
    let used = usage(&app).await;
    assert_eq!(
        used["day"]["bytes"],
        json!({"used": 1500, "limit": 1500, "remaining": 0})
    );
    assert_eq!(used["minute"]["tenant_tickets"]["used"], 2);
}
