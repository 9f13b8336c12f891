//! `deploy/kubernetes`: the manifests validate against the Kubernetes schemas (PyPI
//! `kubernetes-validate`, offline), and they run what compose runs: the same image, the
//! same command, the same probes, the same configuration keys and secrets.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::helpers::tool;

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn yaml(relative: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo(relative)).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).expect("YAML"))
        .collect()
}

/// The manifests kustomization.yaml applies, each file once.
fn manifests() -> Vec<String> {
    let kustomization = &yaml("deploy/kubernetes/kustomization.yaml")[0];
    kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

/// The ConfigMap kustomize generates from config.toml, as a manifest.
fn config_map(dir: &Path) -> PathBuf {
    let config = std::fs::read_to_string(repo("deploy/kubernetes/config.toml")).unwrap();
    let manifest = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "upload-tickets-config"},
        "data": {"config.toml": config},
    });
    let path = dir.join("configmap.yaml");
    std::fs::write(&path, serde_norway::to_string(&manifest).unwrap()).unwrap();
    path
}

#[test]
fn the_kubernetes_manifests_validate_against_the_schemas() {
    let listed: BTreeSet<String> = manifests().into_iter().collect();
    let present: BTreeSet<String> = std::fs::read_dir(repo("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present, "kustomization.yaml applies every manifest");
    let dir = std::env::temp_dir().join(format!("manifests-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files: Vec<PathBuf> = listed
        .iter()
        .map(|n| repo(&format!("deploy/kubernetes/{n}")))
        .collect();
    files.push(config_map(&dir));
    // 1.34: the preStop sleep action is GA; and the newest schemas the package has.
    for version in ["1.34.0", "1.37.0"] {
        let output = Command::new(tool("kubernetes-validate-venv/bin/kubernetes-validate"))
            .args(["--strict", "--no-warn", "-k", version])
            .args(&files)
            .output()
            .expect("kubernetes-validate runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{version}:\n{text}");
        assert_eq!(text.matches(" passed ").count(), files.len() + 1, "{text}");
    }
    // The validator refuses what it should: a field no schema has.
    let broken = dir.join("broken.yaml");
    let pdb = std::fs::read_to_string(repo("deploy/kubernetes/pdb.yaml")).unwrap();
    std::fs::write(&broken, pdb.replace("minAvailable", "minAvailible")).unwrap();
    let output = Command::new(tool("kubernetes-validate-venv/bin/kubernetes-validate"))
        .args(["--strict", "-k", "1.34.0"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every key of a TOML file, as dotted paths.
fn keys(relative: &str) -> BTreeSet<String> {
    fn walk(prefix: &str, value: &toml::Value, into: &mut BTreeSet<String>) {
        if let toml::Value::Table(table) = value {
            for (key, value) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                walk(&path, value, into);
                into.insert(path);
            }
        }
    }
    let text = std::fs::read_to_string(repo(relative)).unwrap();
    let value: toml::Value = toml::from_str(&text).unwrap();
    let mut found = BTreeSet::new();
    walk("", &value, &mut found);
    found
}

#[test]
fn kubernetes_runs_what_compose_runs() {
    let compose: Value =
        serde_norway::from_str(&std::fs::read_to_string(repo("docker-compose.yml")).unwrap())
            .unwrap();
    let replica = &compose["services"]["upload-tickets-1"];
    let deployment = yaml("deploy/kubernetes/deployment.yaml").remove(0);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];

    // The image compose builds and tags, by the name the kustomization sets.
    let image = replica["image"].as_str().unwrap();
    let kustomization = &yaml("deploy/kubernetes/kustomization.yaml")[0];
    let tagged = &kustomization["images"][0];
    assert_eq!(container["image"], tagged["name"]);
    assert_eq!(
        format!(
            "{}:{}",
            tagged["name"].as_str().unwrap(),
            tagged["newTag"].as_str().unwrap()
        ),
        image
    );
    // The image's own command, and its config where the ConfigMap is mounted.
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    assert!(dockerfile.contains(r#"CMD ["serve", "--config", "/etc/upload-tickets/config.toml"]"#));
    assert_eq!(
        container["args"],
        serde_json::json!(["serve", "--config", "/etc/upload-tickets/config.toml"])
    );
    assert_eq!(
        container["volumeMounts"][0]["mountPath"],
        "/etc/upload-tickets"
    );
    assert_eq!(
        replica["volumes"][0],
        "./config/compose.toml:/etc/upload-tickets/config.toml:ro"
    );
    // The probes: liveness where the image's HEALTHCHECK and compose's look (/livez on
    // the public port), readiness on the admin port both configurations set.
    assert!(dockerfile.contains("http://127.0.0.1:8080/livez"));
    assert_eq!(
        replica["healthcheck"]["test"],
        serde_json::json!(["CMD", "/usr/local/bin/upload-tickets", "healthcheck"])
    );
    let port = |name: &str| {
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["containerPort"].as_u64().unwrap())
            .unwrap()
    };
    for probe in ["startupProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/livez");
        assert_eq!(container[probe]["httpGet"]["port"], "http");
    }
    assert_eq!(port("http"), 8080);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(port("admin"), 9090);
    // The same configuration keys; values differ (hosts, region, origins). Compose adds
    // its MinIO's endpoints, the cluster the pod's drain time.
    let ours = keys("deploy/kubernetes/config.toml");
    let composed = keys("config/compose.toml");
    let only = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> Vec<String> {
        a.difference(b).cloned().collect()
    };
    assert_eq!(only(&ours, &composed), ["server.shutdown_grace_seconds"]);
    assert_eq!(
        only(&composed, &ours),
        ["s3.endpoint", "s3.force_path_style", "s3.service_endpoint"]
    );
    let config: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo("deploy/kubernetes/config.toml")).unwrap())
            .unwrap();
    assert_eq!(
        config["server"]["admin_listen"].as_str(),
        Some("0.0.0.0:9090")
    );
    assert_eq!(config["server"]["listen"].as_str(), Some("0.0.0.0:8080"));
    // The pod's end: the pause before SIGTERM, then the drain, within the grace period.
    let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    let drain = config["server"]["shutdown_grace_seconds"]
        .as_integer()
        .unwrap() as u64;
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() > pause + drain);
    // The secrets the configuration names, in the Secret and in compose's environment.
    let secret = yaml("deploy/kubernetes/secret.yaml").remove(0);
    assert_eq!(
        container["envFrom"][0]["secretRef"]["name"],
        secret["metadata"]["name"]
    );
    for setting in [
        &config["server"]["handle_secret_env"],
        &config["auth"]["hmac_secret_env"],
    ] {
        let name = setting.as_str().unwrap();
        assert!(secret["stringData"].get(name).is_some(), "{name}");
        assert!(replica["environment"].get(name).is_some(), "{name}");
    }
    // A non-root, read-only container.
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert!(dockerfile.contains("USER 65532:65532"));
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
}

/// The ConfigMap's configuration is one the service takes.
#[test]
fn the_kubernetes_configuration_is_valid() {
    let output = Command::new(env!("CARGO_BIN_EXE_upload-tickets"))
        .args(["check-config", "--config"])
        .arg(repo("deploy/kubernetes/config.toml"))
        .env_clear()
        .env(
            "UPLOAD_TICKETS_JWT_SECRET",
            "a-jwt-secret-of-at-least-32-bytes-long!!",
        )
        .env(
            "UPLOAD_TICKETS_HANDLE_SECRET",
            "a-handle-key-of-at-least-32-bytes-long",
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
