//! The Kubernetes example (docs/kubernetes/binlake.yaml): valid for Kubernetes 1.37 as
//! kubernetes-validate checks it (strict: no unknown fields), each container's `--config`
//! names a file of the ConfigMap, and that file loads in binlake with only the environment
//! variables its container is given, with the sections its command needs.

use std::path::Path;

use crate::support::lake::python;

/// What a Python reading of the manifest yields: the ConfigMap's files, and per container its
/// args and the names of its environment variables.
#[derive(serde::Deserialize)]
struct Manifest {
    files: std::collections::BTreeMap<String, String>,
    containers: Vec<Container>,
}

#[derive(serde::Deserialize)]
struct Container {
    name: String,
    args: Vec<String>,
    env: Vec<String>,
}

const READ_MANIFEST: &str = r#"
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
files = next(d["data"] for d in docs if d["kind"] == "ConfigMap")
containers = [
    {"name": c["name"], "args": c["args"], "env": [e["name"] for e in c.get("env", [])]}
    for d in docs if d["kind"] == "Deployment"
    for c in d["spec"]["template"]["spec"]["containers"]
]
print(json.dumps({"files": files, "containers": containers}))
"#;

#[test]
fn the_kubernetes_example_is_valid_and_each_pod_loads_its_config() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/kubernetes/binlake.yaml");
    let validate = crate::run_ok(
        std::process::Command::new(python())
            .args(["-m", "kubernetes_validate", "--strict", "-k", "1.37.0"])
            .arg(&manifest),
    );
    let report = String::from_utf8_lossy(&validate.stdout);
    for kind in [
        "namespace/binlake",
        "configmap/binlake-config",
        "deployment/binlake-source-shop01",
        "deployment/binlake-sink",
        "service/binlake-metrics",
    ] {
        assert!(
            report.contains(&format!("passed for resource {kind}")),
            "{kind}: {report}"
        );
    }
    let read = crate::run_ok(
        std::process::Command::new(python())
            .args(["-c", READ_MANIFEST])
            .arg(&manifest),
    );
    let manifest: Manifest = serde_json::from_slice(&read.stdout).unwrap();
    let mut commands = Vec::new();
    for c in &manifest.containers {
        let [command, flag, path] = &c.args[..] else {
            panic!("{}: args {:?}", c.name, c.args);
        };
        assert_eq!(flag, "--config", "{}", c.name);
        let file = path.strip_prefix("/etc/binlake/").unwrap();
        let text = manifest
            .files
            .get(file)
            .unwrap_or_else(|| panic!("{}: {file} is not in the ConfigMap", c.name));
        // Only the variables the container is given: a `${...}` it lacks fails the load.
        let env = |name: &str| c.env.iter().any(|e| e == name).then(|| "x".to_string());
        let config = binlake::config::Config::parse(text, file, Path::new("/"), &env)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        match command.as_str() {
            "source" => {
                config.source("source").unwrap();
            }
            "sink" => {
                config.lake("sink").unwrap();
            }
            other => panic!("{}: command {other}", c.name),
        }
        commands.push(command.clone());
    }
    commands.sort();
    assert_eq!(commands, ["sink", "source"]);
}
