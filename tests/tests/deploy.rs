//! The Kubernetes deployment (`deploy/kubernetes`) against the ctrackd configuration it ships
//! (`ctrack.toml`, read by the daemon's own parser) and the image (`deploy/Dockerfile`): the
//! DaemonSet's security posture, its probes, its ports and its shutdown budget.
//!
//! `deploy/check.py` (run by `.ci/run`) validates the same manifests against the Kubernetes
//! schemas, renders the kustomization and runs the daemon with this configuration under the
//! DaemonSet's probes; these tests pin the choices so that a change to one file that the
//! others do not follow fails here.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ctrack_server::config::{Config, Listen};
use yaml_rust2::{Yaml, YamlLoader};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(relative: &str) -> String {
    let path = deploy_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The one YAML document of `deploy/<relative>`.
fn yaml(relative: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&read(relative))
        .unwrap_or_else(|e| panic!("deploy/{relative} is not YAML: {e}"));
    assert_eq!(docs.len(), 1, "deploy/{relative} holds one document");
    docs.remove(0)
}

fn str_of<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{what} is a string, got {y:?}"))
}

fn int_of(y: &Yaml, what: &str) -> i64 {
    y.as_i64()
        .unwrap_or_else(|| panic!("{what} is an integer, got {y:?}"))
}

fn list_of<'a>(y: &'a Yaml, what: &str) -> &'a [Yaml] {
    y.as_vec()
        .unwrap_or_else(|| panic!("{what} is a list, got {y:?}"))
}

fn strings<'a>(y: &'a Yaml, what: &str) -> Vec<&'a str> {
    list_of(y, what).iter().map(|v| str_of(v, what)).collect()
}

struct Deployment {
    daemonset: Yaml,
    kustomization: Yaml,
    /// `ctrack.toml` as ctrackd reads it (defaults filled in).
    config: Config,
    /// `ctrack.toml` as written.
    raw: toml::Table,
}

impl Deployment {
    fn load() -> Self {
        let text = read("kubernetes/ctrack.toml");
        let raw: toml::Table = toml::from_str(&text).expect("ctrack.toml is TOML");
        let config = Config::from_toml_str(&text)
            .unwrap_or_else(|e| panic!("ctrackd rejects deploy/kubernetes/ctrack.toml: {e}"));
        Self {
            daemonset: yaml("kubernetes/daemonset.yaml"),
            kustomization: yaml("kubernetes/kustomization.yaml"),
            config,
            raw,
        }
    }

    fn pod(&self) -> &Yaml {
        &self.daemonset["spec"]["template"]["spec"]
    }

    /// The only container.
    fn container(&self) -> &Yaml {
        let containers = list_of(&self.pod()["containers"], "containers");
        assert_eq!(containers.len(), 1, "one container: ctrackd");
        &containers[0]
    }

    fn grpc_addr(&self) -> SocketAddr {
        match &self.config.grpc.listen {
            Listen::Tcp(addr) => *addr,
            Listen::Unix(path) => panic!("gRPC must be reachable over TCP, not {}", path.display()),
        }
    }

    fn metrics_addr(&self) -> SocketAddr {
        self.config
            .metrics
            .listen
            .expect("the metrics endpoint is on: Prometheus and the probes read it")
    }

    /// The container port named `name`.
    fn port(&self, name: &str) -> i64 {
        let port = list_of(&self.container()["ports"], "ports")
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("a container port named {name}"));
        assert_eq!(str_of(&port["protocol"], "protocol"), "TCP");
        let number = int_of(&port["containerPort"], "containerPort");
        if !port["hostPort"].is_badvalue() {
            // With hostNetwork a host port can only be the container port itself.
            assert_eq!(int_of(&port["hostPort"], "hostPort"), number);
        }
        number
    }

    /// A probe's port: a number, or the name of a container port.
    fn probe_port(&self, port: &Yaml) -> i64 {
        match port {
            Yaml::Integer(n) => *n,
            Yaml::String(name) => self.port(name),
            other => panic!("a probe port is a number or a name, got {other:?}"),
        }
    }
}

/// The final stage of deploy/Dockerfile: (USER, EXPOSEd ports).
fn image_user_and_ports() -> (String, BTreeSet<i64>) {
    let text = read("Dockerfile");
    let final_stage = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .fold(Vec::new(), |mut stage: Vec<&str>, line| {
            if line.starts_with("FROM ") {
                stage.clear();
            }
            stage.push(line);
            stage
        });
    let user = final_stage
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER explicitly")
        .trim()
        .to_owned();
    let ports = final_stage
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(str::split_whitespace)
        .map(|p| {
            let number = p.strip_suffix("/tcp").expect("EXPOSEd ports are TCP");
            number.parse().expect("EXPOSE takes port numbers")
        })
        .collect();
    (user, ports)
}

#[test]
fn daemonset_runs_in_the_hosts_network_on_every_node() {
    let d = Deployment::load();
    let pod = d.pod();
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    assert_eq!(
        str_of(&pod["dnsPolicy"], "dnsPolicy"),
        "ClusterFirstWithHostNet"
    );
    assert_eq!(
        str_of(&pod["priorityClassName"], "priorityClassName"),
        "system-node-critical"
    );
    // A toleration with operator Exists and no key or effect tolerates every taint.
    let tolerations = list_of(&pod["tolerations"], "tolerations");
    assert!(
        tolerations
            .iter()
            .any(|t| t["operator"].as_str() == Some("Exists")
                && t["key"].is_badvalue()
                && t["effect"].is_badvalue()),
        "a toleration of every taint: {tolerations:?}"
    );
    let strategy = &d.daemonset["spec"]["updateStrategy"];
    assert_eq!(
        str_of(&strategy["type"], "updateStrategy.type"),
        "RollingUpdate"
    );
    assert_eq!(
        int_of(
            &strategy["rollingUpdate"]["maxUnavailable"],
            "maxUnavailable"
        ),
        1
    );
    // Old and new daemons never overlap on a node.
    assert_eq!(
        int_of(&strategy["rollingUpdate"]["maxSurge"], "maxSurge"),
        0
    );
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
}

#[test]
fn container_has_only_the_capabilities_capture_needs() {
    let d = Deployment::load();
    let pod = d.pod();
    for field in ["initContainers", "ephemeralContainers"] {
        assert!(pod[field].is_badvalue(), "no {field}");
    }
    for field in ["hostPID", "hostIPC"] {
        assert_ne!(pod[field].as_bool(), Some(true), "{field} stays off");
    }
    for volume in list_of(&pod["volumes"], "volumes") {
        assert!(
            volume["hostPath"].is_badvalue(),
            "no host directory is mounted: {volume:?}"
        );
    }
    assert_eq!(
        str_of(
            &pod["securityContext"]["seccompProfile"]["type"],
            "seccompProfile"
        ),
        "RuntimeDefault"
    );

    let security = &d.container()["securityContext"];
    assert_eq!(security["privileged"].as_bool(), Some(false));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    let capabilities = &security["capabilities"];
    assert_eq!(strings(&capabilities["drop"], "capabilities.drop"), ["ALL"]);
    let added: BTreeSet<&str> = strings(&capabilities["add"], "capabilities.add")
        .into_iter()
        .collect();
    assert_eq!(added, BTreeSet::from(["NET_ADMIN", "NET_RAW"]));
    assert_eq!(list_of(&capabilities["add"], "capabilities.add").len(), 2);
}

#[test]
fn user_is_the_images_and_consistent() {
    let d = Deployment::load();
    let (user, _) = image_user_and_ports();
    let uid: i64 = user
        .split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("the image's USER is numeric, got {user}"));
    // Root holding only NET_RAW and NET_ADMIN: a non-root process cannot hold them under
    // allowPrivilegeEscalation: false (deploy/README.md).
    assert_eq!(uid, 0, "the image runs as root");
    for (what, context) in [
        ("pod", &d.pod()["securityContext"]),
        ("container", &d.container()["securityContext"]),
    ] {
        assert_eq!(
            int_of(&context["runAsUser"], "runAsUser"),
            uid,
            "{what} runAsUser"
        );
        assert_eq!(
            context["runAsNonRoot"].as_bool(),
            Some(uid != 0),
            "{what} runAsNonRoot"
        );
    }
}

#[test]
fn ports_are_the_ones_the_config_listens_on() {
    let d = Deployment::load();
    // Written out in ctrack.toml, not left to the defaults (which are loopback only).
    for section in ["grpc", "metrics", "health"] {
        assert!(
            d.raw[section].get("listen").is_some(),
            "ctrack.toml sets {section}.listen"
        );
    }
    let grpc = d.grpc_addr();
    let metrics = d.metrics_addr();
    let health = d
        .config
        .health
        .listen
        .expect("the health-only endpoint is on");
    for addr in [grpc, metrics, health] {
        assert!(
            addr.ip().is_unspecified(),
            "{addr}: every node address, so the kubelet and clients reach it"
        );
    }
    assert_eq!(d.port("grpc"), i64::from(grpc.port()));
    assert_eq!(d.port("metrics"), i64::from(metrics.port()));
    assert_eq!(d.port("health"), i64::from(health.port()));
    let ports = list_of(&d.container()["ports"], "ports");
    assert_eq!(ports.len(), 3, "only the gRPC, metrics and health ports");

    let (_, exposed) = image_user_and_ports();
    assert_eq!(
        exposed,
        BTreeSet::from([
            i64::from(grpc.port()),
            i64::from(metrics.port()),
            i64::from(health.port())
        ]),
        "the Dockerfile EXPOSEs the same ports"
    );

    let annotations = &d.daemonset["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        str_of(&annotations["prometheus.io/scrape"], "scrape"),
        "true"
    );
    assert_eq!(
        str_of(&annotations["prometheus.io/port"], "port"),
        metrics.port().to_string()
    );
    assert_eq!(
        str_of(&annotations["prometheus.io/path"], "path"),
        "/metrics"
    );

    let service = yaml("kubernetes/service.yaml");
    let service_ports = list_of(&service["spec"]["ports"], "service ports");
    assert_eq!(
        service_ports.len(),
        1,
        "the Service exposes the metrics only"
    );
    assert_eq!(
        int_of(&service_ports[0]["port"], "port"),
        i64::from(metrics.port())
    );
    assert_eq!(
        d.probe_port(&service_ports[0]["targetPort"]),
        i64::from(metrics.port())
    );
}

#[test]
fn probes_are_native_grpc_on_the_plaintext_health_endpoint() {
    let d = Deployment::load();
    // The API requires client certificates, which the kubelet's gRPC probe cannot present;
    // the daemon's health-only endpoint ([health] listen) serves grpc.health.v1 in plaintext.
    let tls = d.config.grpc.tls.as_ref().expect("the API uses TLS");
    assert!(
        tls.client_ca.is_some(),
        "the API requires client certificates"
    );
    assert!(!d.config.grpc.insecure);
    let health = d
        .config
        .health
        .listen
        .expect("the health-only endpoint is on");
    assert_ne!(health.port(), d.grpc_addr().port());
    assert_eq!(d.port("health"), i64::from(health.port()));
    let container = d.container();
    for probe in ["livenessProbe", "readinessProbe"] {
        let grpc = &container[probe]["grpc"];
        assert!(!grpc.is_badvalue(), "{probe} is a native gRPC probe");
        assert_eq!(
            d.probe_port(&grpc["port"]),
            i64::from(health.port()),
            "{probe} port"
        );
        for other in ["httpGet", "exec", "tcpSocket"] {
            assert!(
                container[probe][other].is_badvalue(),
                "{probe} uses only grpc"
            );
        }
    }
    // Liveness asks for the service that is SERVING while the process runs; readiness for the
    // overall status, which follows capture.
    assert_eq!(
        str_of(
            &container["livenessProbe"]["grpc"]["service"],
            "livenessProbe.grpc.service"
        ),
        ctrack_server::daemon::LIVENESS_SERVICE
    );
    let readiness_service = &container["readinessProbe"]["grpc"]["service"];
    assert!(readiness_service.is_badvalue() || readiness_service.as_str() == Some(""));
    assert!(
        container["startupProbe"].is_badvalue(),
        "no startup probe: capture starts at once"
    );
}

#[test]
fn shutdown_fits_in_the_termination_grace_period() {
    let d = Deployment::load();
    let period = int_of(
        &d.pod()["terminationGracePeriodSeconds"],
        "terminationGracePeriodSeconds",
    );
    let grace = d.config.shutdown_grace;
    assert!(
        Duration::from_secs(u64::try_from(period).expect("a positive period")) > grace,
        "terminationGracePeriodSeconds {period} must exceed ctrackd's shutdown_grace {grace:?}"
    );
}

#[test]
fn config_and_tls_files_come_from_the_mounted_volume() {
    let d = Deployment::load();
    let container = d.container();
    let mounts = list_of(&container["volumeMounts"], "volumeMounts");
    assert_eq!(mounts.len(), 1, "one mount: /etc/ctrack");
    let mount = &mounts[0];
    assert_eq!(mount["readOnly"].as_bool(), Some(true));
    let mount_path = PathBuf::from(str_of(&mount["mountPath"], "mountPath"));
    let volume = list_of(&d.pod()["volumes"], "volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    let mut files = Vec::new(); // (path in the container, source kind, source name, key)
    for source in list_of(&volume["projected"]["sources"], "projected.sources") {
        for kind in ["configMap", "secret"] {
            let object = &source[kind];
            if object.is_badvalue() {
                continue;
            }
            for item in list_of(&object["items"], "items") {
                files.push((
                    mount_path.join(str_of(&item["path"], "path")),
                    kind,
                    str_of(&object["name"], "name"),
                    str_of(&item["key"], "key"),
                ));
            }
        }
    }
    let find = |path: &Path| {
        files
            .iter()
            .find(|(p, ..)| p == path)
            .unwrap_or_else(|| panic!("{} is not in the mounted volume", path.display()))
    };

    let args = strings(&container["args"], "args");
    assert_eq!(args.len(), 2);
    assert_eq!(args[0], "--config");
    let (_, kind, name, key) = find(Path::new(args[1]));
    assert_eq!((*kind, *key), ("configMap", "ctrack.toml"));
    let generator = list_of(&d.kustomization["configMapGenerator"], "configMapGenerator")
        .iter()
        .find(|g| g["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("kustomization.yaml generates the ConfigMap {name}"));
    assert_eq!(strings(&generator["files"], "files"), ["ctrack.toml"]);

    let tls = d.config.grpc.tls.as_ref().expect("the API uses TLS");
    let client_ca = tls.client_ca.as_ref().expect("mutual TLS");
    let mut secrets = BTreeSet::new();
    for (path, expected_key) in [
        (&tls.cert, "tls.crt"),
        (&tls.key, "tls.key"),
        (client_ca, "ca.crt"),
    ] {
        let (_, kind, name, key) = find(path);
        assert_eq!(
            (*kind, *key),
            ("secret", expected_key),
            "{}",
            path.display()
        );
        secrets.insert(*name);
    }
    assert_eq!(secrets, BTreeSet::from(["ctrack-tls"]), "one TLS Secret");
}

#[test]
fn resources_have_requests_and_limits() {
    let d = Deployment::load();
    let resources = &d.container()["resources"];
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                resources[bound][resource].as_str().is_some(),
                "resources.{bound}.{resource} is set"
            );
        }
    }
}

#[test]
fn kustomization_lists_every_manifest() {
    let d = Deployment::load();
    let listed: BTreeSet<&str> = strings(&d.kustomization["resources"], "resources")
        .into_iter()
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(deploy_dir().join("kubernetes"))
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed,
        present.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    assert_eq!(str_of(&d.kustomization["namespace"], "namespace"), "ctrack");
}
