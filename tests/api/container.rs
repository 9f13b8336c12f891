//! The container image, built from the unchanged Dockerfile by `scripts/build-image.sh`
//! (buildah, chroot isolation, local stand-ins for the two base images) and
//! run as it ships. `podman run` cannot start containers on our machines; `buildah run`
//! runs the image's entrypoint and command (read from the image) as the image's user,
//! with its environment and working directory, and shares this machine's network: the
//! service in it answers on 127.0.0.1:8080, the port the image's HEALTHCHECK and
//! docker-compose.yml name, so the runs here take that port one at a time.
//!
//! `scripts/test.sh` builds the image before the tests and names it in
//! `UPLOAD_TICKETS_IMAGE`; without it the first test here builds it (same script).

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::auth::Jwks;
use crate::dev::post_form;
use crate::helpers::*;
use crate::scale::Redis;
use crate::store::{Kind, Store};

/// Runs that take 127.0.0.1:8080 wait for each other.
static PORT_8080: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const BASE: &str = "http://127.0.0.1:8080";
const LOOPBACK_8080: &str = "127.0.0.1:8080";

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The image under test: `UPLOAD_TICKETS_IMAGE`, or built here once.
fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        if let Ok(image) = std::env::var("UPLOAD_TICKETS_IMAGE") {
            return image;
        }
        let image = "localhost/upload-tickets:test".to_owned();
        let status = Command::new("bash")
            .arg(repo("scripts/build-image.sh"))
            .arg(&image)
            .status()
            .expect("bash runs");
        assert!(status.success(), "scripts/build-image.sh failed");
        image
    })
}

fn buildah(args: &[&str]) -> Command {
    let mut command = Command::new("buildah");
    command.args(args);
    command
}

/// `buildah args…`'s standard output; a failure fails the test with its words.
fn buildah_out(args: &[&str]) -> String {
    let output = buildah(args).output().expect("buildah is installed");
    assert!(
        output.status.success(),
        "buildah {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The image's configuration as a container engine reads it (Docker format: the only one
/// that keeps a HEALTHCHECK).
fn image_config() -> &'static Value {
    static CONFIG: OnceLock<Value> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let inspected: Value =
            serde_json::from_str(&buildah_out(&["inspect", "--type", "image", image()])).unwrap();
        inspected["Docker"]["config"].clone()
    })
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// A working container of the image; removed on drop.
struct Container {
    id: String,
}

impl Container {
    fn new() -> Self {
        Self {
            id: buildah_out(&["from", "--pull-never", "--quiet", image()]),
        }
    }

    /// `argv` in the container, with `options` of `buildah run` (`--env`, `--volume`).
    fn run(&self, options: &[String], argv: &[String]) -> Command {
        let mut command = buildah(&["run", "--isolation", "chroot"]);
        command.args(options).arg(&self.id).arg("--").args(argv);
        command
    }

    /// Its root file system, mounted on this machine.
    fn mount(&self) -> PathBuf {
        PathBuf::from(buildah_out(&["mount", &self.id]))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = buildah(&["umount", &self.id]).output();
        let _ = buildah(&["rm", &self.id]).output();
    }
}

/// The image's HEALTHCHECK (or compose's), run in `container`: did it exit 0?
fn healthy(container: &Container, test: &[String]) -> bool {
    assert_eq!(test.first().map(String::as_str), Some("CMD"), "{test:?}");
    container
        .run(&[], &test[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("buildah runs")
        .success()
}

/// The image's entrypoint and command running in a container; the service is killed (by
/// its PID) on drop, also when the test fails.
struct Service {
    buildah: Child,
    /// The service's own process, once found under `buildah run`.
    pid: Option<u32>,
    lines: Receiver<String>,
    exited: Option<ExitStatus>,
}

impl Service {
    async fn start(
        container: &Container,
        env: &[(String, String)],
        mounts: &[(PathBuf, String)],
    ) -> Self {
        assert!(
            std::net::TcpListener::bind("127.0.0.1:8080").is_ok(),
            "127.0.0.1:8080 is taken: the image's HEALTHCHECK and compose's name that port"
        );
        let config = image_config();
        let argv: Vec<String> = strings(&config["Entrypoint"])
            .into_iter()
            .chain(strings(&config["Cmd"]))
            .collect();
        let mut options = Vec::new();
        for (name, value) in env {
            options.extend(["--env".to_owned(), format!("{name}={value}")]);
        }
        for (host, target) in mounts {
            options.extend([
                "--volume".to_owned(),
                format!("{}:{target}:ro", host.display()),
            ]);
        }
        let mut buildah = container
            .run(&options, &argv)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("buildah runs");
        let lines = lines_of(buildah.stderr.take().unwrap());
        // Held from here on, so that a failure below still stops what was started.
        let mut service = Self {
            buildah,
            pid: None,
            lines,
            exited: None,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while service.pid.is_none() {
            service.pid = descendant_named(service.buildah.id(), "upload-tickets");
            if let Some(status) = service.buildah.try_wait().unwrap() {
                service.exited = Some(status);
                panic!("the container exited ({status}): {:#?}", service.logged());
            }
            assert!(Instant::now() < deadline, "the service never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(&format!("{BASE}/livez")).await.0 != 200 {
            assert!(Instant::now() < deadline, "/livez never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        service
    }

    /// The user the service runs as (`uid:gid`, real ids).
    fn ids(&self) -> String {
        let pid = self.pid.expect("started");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap()
                .to_owned()
        };
        format!("{}:{}", field("Uid:"), field("Gid:"))
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.expect("started").to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM delivered");
    }

    /// The container's exit status, waiting at most `limit`.
    async fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.buildah.try_wait().unwrap() {
                self.exited = Some(status);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the container did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The log lines written so far.
    fn logged(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let pid = self
                .pid
                .or_else(|| descendant_named(self.buildah.id(), "upload-tickets"));
            if let Some(pid) = pid {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            let _ = self.buildah.kill();
            let _ = self.buildah.wait();
        }
    }
}

/// The first process under `root` (children, grandchildren…) whose name is `name`.
fn descendant_named(root: u32, name: &str) -> Option<u32> {
    let mut parents = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: comm may hold spaces, so read after the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head
            .split_once('(')
            .map(|(_, c)| c.to_owned())
            .unwrap_or_default();
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        {
            parents.insert(pid, (ppid, comm));
        }
    }
    parents.iter().find_map(|(&pid, (_, comm))| {
        let mut at = pid;
        (comm == name
            && std::iter::from_fn(|| {
                at = parents.get(&at)?.0;
                Some(at)
            })
            .take(64)
            .any(|ancestor| ancestor == root))
        .then_some(pid)
    })
}

async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(response) => (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    }
}

async fn ticket(token: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{BASE}/uploads"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn wait_ready() {
    wait_ready_at(BASE).await;
}

/// Waits for `base`'s `/readyz` (the admin listener's, where the configuration has one).
async fn wait_ready_at(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get(&format!("{base}/readyz")).await;
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "/readyz: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn the_image_is_what_the_dockerfile_says_and_holds_nothing_else() {
    let config = image_config();
    assert_eq!(config["User"], "65532:65532", "{config}");
    assert_eq!(config["StopSignal"], "SIGTERM", "{config}");
    assert!(config["ExposedPorts"]["8080/tcp"].is_object(), "{config}");
    assert_eq!(
        strings(&config["Entrypoint"]),
        ["/usr/local/bin/upload-tickets"]
    );
    assert_eq!(
        strings(&config["Cmd"]),
        ["serve", "--config", "/etc/upload-tickets/config.toml"]
    );
    assert_eq!(
        strings(&config["Healthcheck"]["Test"]),
        [
            "CMD",
            "/usr/local/bin/upload-tickets",
            "healthcheck",
            "--url",
            "http://127.0.0.1:8080/livez"
        ]
    );
    let env = strings(&config["Env"]);
    assert!(
        env.contains(&"UPLOAD_TICKETS__SERVER__LISTEN=0.0.0.0:8080".to_owned()),
        "{env:?}"
    );
    // No secret in the environment it ships with.
    for variable in env {
        let name = variable.split('=').next().unwrap().to_ascii_uppercase();
        assert!(
            !["SECRET", "PASSWORD", "TOKEN", "KEY"]
                .iter()
                .any(|w| name.contains(w)),
            "{variable}"
        );
    }

    let container = Container::new();
    let root = container.mount();
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    let executables: Vec<&String> = files
        .iter()
        .filter(|(_, executable, _)| *executable)
        .map(|(path, _, _)| path)
        .filter(|path| !path.contains("/lib/") && !path.starts_with("/lib"))
        .collect();
    assert_eq!(
        executables,
        ["/usr/local/bin/upload-tickets"],
        "the only program"
    );
    for (path, _, _) in &files {
        let name = path.rsplit('/').next().unwrap();
        assert!(
            ![
                "sh", "bash", "dash", "ash", "busybox", "apt", "apt-get", "dpkg", "rustc", "cargo"
            ]
            .contains(&name),
            "{path}: no shell, no package manager, no toolchain"
        );
        assert!(
            !(name.ends_with(".rs")
                || [
                    "Cargo.toml",
                    "Cargo.lock",
                    "recipe.json",
                    ".env",
                    "Dockerfile"
                ]
                .contains(&name)
                || path.contains("/.git/")
                || path.contains("/target/")),
            "{path}: no source"
        );
    }
    // Production carries no dev store: the binary holds no code of s3s-fs (whose source
    // paths, kept for panic messages, are in every build that links it).
    let binary = std::fs::read(root.join("usr/local/bin/upload-tickets")).unwrap();
    assert!(
        !binary.windows(7).any(|w| w == b"s3s-fs-"),
        "the image's binary links the dev store (s3s-fs)"
    );
    // The configuration it ships is the example, which names secrets' variables only.
    assert_eq!(
        std::fs::read(root.join("etc/upload-tickets/config.toml")).unwrap(),
        std::fs::read(repo("config/example.toml")).unwrap()
    );
    let env_example = std::fs::read_to_string(repo(".env.example")).unwrap();
    let secrets: Vec<&str> = env_example
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(_, value)| value)
        .collect();
    for (path, _, text) in &files {
        let Some(text) = text else { continue };
        assert!(
            !text.contains("PRIVATE KEY-----"),
            "{path} holds a private key"
        );
        for secret in &secrets {
            assert!(
                !text.contains(secret),
                "{path} holds a value of .env.example"
            );
        }
    }
    assert_eq!(
        std::fs::read_to_string(root.join("etc/passwd"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("nonroot:")),
        Some("nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin")
    );

    let images: Value = serde_json::from_str(&buildah_out(&["images", "--json", image()])).unwrap();
    let size = images[0]["size"].as_str().unwrap();
    eprintln!("image {}: {size}", image());
    let (number, unit) = size.split_once(' ').unwrap();
    let megabytes = number.parse::<f64>().unwrap()
        * match unit {
            "kB" => 0.001,
            "MB" => 1.0,
            "GB" => 1000.0,
            other => panic!("size unit {other}"),
        };
    assert!(megabytes < 100.0, "a small runtime image: {size}");
}

/// Every regular file under `dir`: its path in the image, whether it is executable, and
/// its text when it is small, not a program and valid UTF-8.
fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, bool, Option<String>)>) {
    use std::os::unix::fs::PermissionsExt as _;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.path().symlink_metadata().unwrap();
        let path = format!("/{}", entry.path().strip_prefix(root).unwrap().display());
        if meta.is_dir() {
            walk(root, &entry.path(), files);
        } else if meta.is_file() || meta.file_type().is_symlink() {
            let executable = meta.is_file() && meta.permissions().mode() & 0o111 != 0;
            let mut text = None;
            if meta.is_file() && meta.len() < 1 << 20 {
                let bytes = std::fs::read(entry.path()).unwrap();
                if !bytes.starts_with(b"\x7fELF") {
                    text = String::from_utf8(bytes).ok();
                }
            }
            files.push((path, executable, text));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_as_it_ships_serves_drains_on_sigterm_and_reports_its_health() {
    let _port = PORT_8080.lock().await;
    let redis = Redis::start();
    let jwks = Jwks::start("jwks-rsa-a.json").await;
    let health = strings(&image_config()["Healthcheck"]["Test"]);
    let container = Container::new();
    // As the Dockerfile's header runs it: the example configuration mounted, the
    // deployment's secrets and overrides in the environment (on this machine's network,
    // listening on loopback only).
    let env = [
        ("UPLOAD_TICKETS__SERVER__LISTEN", LOOPBACK_8080.to_owned()),
        (
            "UPLOAD_TICKETS_HANDLE_SECRET",
            "container-test-handle-key-of-32-bytes".to_owned(),
        ),
        (
            "ACME_WEBHOOK_SECRET",
            "whsec_Y29udGFpbmVyLXRlc3Qtd2ViaG9vay1zZWNyZXQ=".to_owned(),
        ),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        (
            "UPLOAD_TICKETS__AUTH__JWKS_URL",
            format!("http://{}/jwks.json", jwks.addr),
        ),
        ("UPLOAD_TICKETS__REDIS__URL", redis.url()),
        (
            "UPLOAD_TICKETS__TENANTS__GLOBEX__MAX_SIZE",
            "2048".to_owned(),
        ),
    ];
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.clone()))
        .collect();
    let mounts = [(
        repo("config/example.toml"),
        "/etc/upload-tickets/config.toml".to_owned(),
    )];
    assert!(
        !healthy(&container, &health),
        "HEALTHCHECK fails while nothing serves"
    );
    let mut service = Service::start(&container, &env, &mounts).await;
    assert_eq!(service.ids(), "65532:65532", "runs as nonroot");
    wait_ready().await;
    assert!(
        healthy(&container, &health),
        "HEALTHCHECK passes while serving"
    );
    let logged = service.logged();
    assert!(
        logged
            .iter()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "JSON logs, as the image's environment says: {logged:#?}"
    );

    // RS256 from the identity provider the override names; the override of Globex's
    // max_size (1 GiB in the file) holds.
    let mut claims = claims("globex", "alice");
    claims["iss"] = json!("https://id.example.com/");
    let token = sign(Algorithm::RS256, &claims, &rsa_key("rsa-a"), Some("rsa-a"));
    let csv = |size: u64| json!({"filename": "a.csv", "content_type": "text/csv", "size": size});
    let (status, issued) = ticket(&token, csv(2000)).await;
    assert_eq!(status, 201, "{issued}");
    let conditions = policy_of(&issued)["conditions"].clone();
    assert!(
        conditions
            .as_array()
            .unwrap()
            .contains(&json!(["content-length-range", 2000, 2000])),
        "{conditions}"
    );
    let (status, refused) = ticket(&token, csv(4096)).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (422, Some("file_too_large")),
        "{refused}"
    );

    // SIGTERM while a request is half sent: it is answered, then the process exits 0.
    let body = serde_json::to_vec(&csv(100)).unwrap();
    let mut stream = std::net::TcpStream::connect("127.0.0.1:8080").unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST /uploads HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..10]).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    service.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stream.write_all(&body[10..]).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the in-flight request is answered: {answer}"
    );
    let status = service.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "exits 0 after draining: {status}");
    assert!(
        !healthy(&container, &health),
        "HEALTHCHECK fails once it stopped"
    );
}

/// `services.<name>` of docker-compose.yml with `${VAR}` and `${VAR:?…}` filled from
/// `.env.example`, as `docker compose` fills them from `.env`.
fn compose_service(name: &str) -> Value {
    let env: BTreeMap<String, String> = std::fs::read_to_string(repo(".env.example"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let compose: Value =
        serde_norway::from_str(&std::fs::read_to_string(repo("docker-compose.yml")).unwrap())
            .unwrap();
    fn fill(value: &Value, env: &BTreeMap<String, String>) -> Value {
        match value {
            Value::String(text) => {
                let mut out = String::new();
                let mut rest = text.as_str();
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let end = rest[start..].find('}').expect("closed ${") + start;
                    let name = rest[start + 2..end].split(":?").next().unwrap();
                    out.push_str(
                        env.get(name)
                            .unwrap_or_else(|| panic!("{name} is not in .env.example")),
                    );
                    rest = &rest[end + 1..];
                }
                out.push_str(rest);
                Value::String(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| fill(v, env)).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), fill(v, env))).collect())
            }
            other => other.clone(),
        }
    }
    fill(&compose["services"][name], &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_run_as_docker_compose_runs_it_issues_a_ticket_whose_upload_lands() {
    let _port = PORT_8080.lock().await;
    let replica = compose_service("upload-tickets-1");
    assert_eq!(
        replica["build"], ".",
        "the replicas are built from this Dockerfile"
    );
    assert_eq!(
        compose_service("upload-tickets-2"),
        replica,
        "both replicas alike"
    );
    let environment: Vec<(String, String)> = replica["environment"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(n, v)| (n.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let value = |name: &str| {
        environment
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("compose sets {name}"))
    };
    let mounts: Vec<(PathBuf, String)> = strings(&replica["volumes"])
        .iter()
        .map(|volume| {
            let mut parts = volume.split(':');
            let (host, target, mode) = (parts.next().unwrap(), parts.next().unwrap(), parts.next());
            assert_eq!(mode, Some("ro"), "{volume}");
            let host = repo(host.trim_start_matches("./"));
            assert!(host.is_file(), "{volume}");
            (host, target.to_owned())
        })
        .collect();
    let config = strings(&image_config()["Cmd"]);
    assert!(
        mounts.iter().any(|(_, target)| config.contains(target)),
        "compose mounts the file the image's command reads: {mounts:?} {config:?}"
    );
    // The gateway reaches the replicas on the port the image exposes and listens on.
    let gateway = std::fs::read_to_string(repo("config/gateway.conf")).unwrap();
    assert!(
        gateway.contains("server upload-tickets-1:8080;"),
        "{gateway}"
    );
    assert!(image_config()["ExposedPorts"]["8080/tcp"].is_object());

    // The stack's MinIO and Valkey, played by s3s-fs (strict POST policies) and
    // redis-server on loopback, with the credentials compose hands the replica.
    let settings: toml::Value =
        toml::from_str(&std::fs::read_to_string(&mounts[0].0).unwrap()).unwrap();
    let bucket = settings["tenants"]["dev"]["bucket"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = Store::start_keyed(
        Kind::S3sFs,
        value("AWS_ACCESS_KEY_ID"),
        value("AWS_SECRET_ACCESS_KEY"),
    )
    .await;
    store.create_bucket(&bucket).await;
    let redis = Redis::start();
    // Only the addresses of the compose network are replaced, by the environment.
    let mut env = environment.clone();
    // On this machine's network the service listens on loopback only (in the stack, on
    // its own network, the image's 0.0.0.0).
    // The admin listener (metrics, readiness) on a loopback port of its own too.
    let admin = format!("127.0.0.1:{}", free_port());
    env.extend(pairs(&[
        ("UPLOAD_TICKETS__SERVER__LISTEN", LOOPBACK_8080),
        ("UPLOAD_TICKETS__SERVER__ADMIN_LISTEN", admin.as_str()),
        ("UPLOAD_TICKETS__S3__ENDPOINT", store.endpoint.as_str()),
        (
            "UPLOAD_TICKETS__S3__SERVICE_ENDPOINT",
            store.endpoint.as_str(),
        ),
        ("UPLOAD_TICKETS__REDIS__URL", redis.url().as_str()),
    ]));
    let health = strings(&replica["healthcheck"]["test"]);
    let container = Container::new();
    let mut service = Service::start(&container, &env, &mounts).await;
    assert_eq!(service.ids(), "65532:65532");
    let admin = format!("http://{admin}");
    wait_ready_at(&admin).await;
    assert!(
        healthy(&container, &health),
        "compose's health check passes"
    );
    // Compose puts metrics and readiness on the admin port, off the public one.
    assert_eq!(get(&format!("{admin}/metrics")).await.0, 200);
    assert_eq!(get(&format!("{BASE}/metrics")).await.0, 404);

    let auth = &settings["auth"];
    let claims = json!({
        "iss": auth["issuer"].as_str().unwrap(), "aud": auth["audience"].as_str().unwrap(),
        "sub": "alice", "tenant": "dev", "iat": now(), "exp": now() + 600,
    });
    let secret = value("UPLOAD_TICKETS_JWT_SECRET");
    let token = sign(
        Algorithm::HS256,
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
        None,
    );
    let file = b"hello from the container\n";
    let (status, issued) = ticket(
        &token,
        json!({"filename": "hello.txt", "content_type": "text/plain", "size": file.len()}),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    assert!(
        issued["url"].as_str().unwrap().starts_with(&store.endpoint),
        "{issued}"
    );
    let (status, said) = post_form(&issued, &[], file).await;
    assert!(matches!(status, 200 | 201 | 204), "{status} {said}");
    let key = issued["key"].as_str().unwrap();
    let object = store
        .client
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(object.body.collect().await.unwrap().to_vec(), file);

    service.terminate();
    assert!(service.wait(Duration::from_secs(30)).await.success());
}
