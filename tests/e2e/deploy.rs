//! deploy/ must agree with the code: every manifest parses, and ports, health-probe service
//! names, binaries and environment variables are the ones the services really use.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use lots_proto::v1 as pb;
use serde::Deserialize as _;
use tonic::server::NamedService;

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

/// One service as the code defines it.
struct Service {
    binary: &'static str,
    grpc_port: u16,
    health_name: &'static str,
    env: BTreeSet<String>,
}

fn env_names(cmd: clap::Command) -> BTreeSet<String> {
    cmd.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()).collect()
}

fn services() -> Vec<Service> {
    use clap::Parser;
    let port = |p: std::net::SocketAddr| p.port();
    vec![
        Service {
            binary: "lots-intake",
            grpc_port: port(
                lots_intake::Config::try_parse_from(["lots-intake", "--company-key-file", "k"]).unwrap().grpc_addr,
            ),
            health_name: pb::intake_service_server::IntakeServiceServer::<lots_intake::grpc::IntakeApi>::NAME,
            env: env_names(lots_intake::Config::command()),
        },
        Service {
            binary: "lots-routing",
            grpc_port: port(lots_routing::Config::try_parse_from(["lots-routing"]).unwrap().grpc_addr),
            health_name: pb::task_service_server::TaskServiceServer::<lots_routing::grpc::RoutingApi>::NAME,
            env: env_names(lots_routing::Config::command()),
        },
        Service {
            binary: "lots-sla",
            grpc_port: port(lots_sla::Config::try_parse_from(["lots-sla"]).unwrap().grpc_addr),
            health_name: pb::alert_service_server::AlertServiceServer::<lots_sla::grpc::AlertApi>::NAME,
            env: env_names(lots_sla::Config::command()),
        },
        Service {
            binary: "lots-insight",
            grpc_port: port(lots_insight::Config::try_parse_from(["lots-insight"]).unwrap().grpc_addr),
            health_name: pb::case_status_service_server::SERVICE_NAME,
            env: env_names(lots_insight::Config::command()),
        },
    ]
}

/// Environment variables a service reads that are not its own flags.
const OTHER_ENV: [&str; 3] = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "RUST_LOG"];

fn known_env(name: &str, services: &[Service]) -> bool {
    OTHER_ENV.contains(&name) || services.iter().any(|s| s.env.contains(name))
}

#[test]
fn every_manifest_parses_and_deployments_match_the_services() {
    let services = services();
    let mut yamls = Vec::new();
    files(&deploy(), "yaml", &mut yamls);
    assert!(yamls.len() >= 8, "{yamls:?}");
    let mut deployments = 0;
    for path in &yamls {
        let text = std::fs::read_to_string(path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if value["kind"] == "ConfigMap" && value["metadata"]["name"] == "lots-env" {
                for (k, _) in value["data"].as_mapping().unwrap() {
                    let k = k.as_str().unwrap();
                    assert!(known_env(k, &services), "{}: {k} is read by no service", path.display());
                }
            }
            if value["kind"] != "Deployment" {
                continue;
            }
            let container = &value["spec"]["template"]["spec"]["containers"][0];
            let command = container["command"][0].as_str().unwrap_or_default();
            let Some(service) = services.iter().find(|s| command.ends_with(&format!("/{}", s.binary))) else {
                continue;
            };
            deployments += 1;
            let port = container["ports"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "grpc")
                .and_then(|p| p["containerPort"].as_u64())
                .unwrap();
            assert_eq!(port, u64::from(service.grpc_port), "{}: gRPC port", service.binary);
            // Probes use the plain-text health listener: gRPC itself may be TLS only.
            let health_port = container["env"]
                .as_sequence()
                .into_iter()
                .flatten()
                .find(|e| e["name"] == "LOTS_HEALTH_ADDR")
                .and_then(|e| e["value"].as_str())
                .and_then(|v| v.parse::<std::net::SocketAddr>().ok())
                .map(|a| u64::from(a.port()));
            assert!(health_port.is_some(), "{}: LOTS_HEALTH_ADDR", service.binary);
            for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                let grpc = &container[probe]["grpc"];
                assert_eq!(grpc["port"].as_u64(), health_port, "{} {probe} port", service.binary);
                assert_eq!(grpc["service"].as_str(), Some(service.health_name), "{} {probe} service", service.binary);
            }
            for env in container["env"].as_sequence().unwrap() {
                let name = env["name"].as_str().unwrap();
                assert!(known_env(name, &services), "{}: env {name} is read by no service", service.binary);
                if name == "LOTS_GRPC_ADDR" {
                    let addr: std::net::SocketAddr = env["value"].as_str().unwrap().parse().unwrap();
                    assert_eq!(addr.port(), service.grpc_port);
                }
            }
        }
    }
    assert_eq!(deployments, services.len(), "a Deployment per service");
}

#[test]
fn systemd_units_start_the_right_binaries_on_the_right_ports() {
    let services = services();
    for s in &services {
        let unit = std::fs::read_to_string(deploy().join(format!("systemd/{}.service", s.binary))).unwrap();
        assert!(unit.contains(&format!("ExecStart=/usr/local/bin/{}", s.binary)), "{}", s.binary);
        assert!(unit.contains(&format!("Environment=LOTS_GRPC_ADDR=0.0.0.0:{}", s.grpc_port)), "{}", s.binary);
    }
    let env = std::fs::read_to_string(deploy().join("systemd/lots.env.example")).unwrap();
    for line in env.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let name = line.split('=').next().unwrap();
        assert!(known_env(name, &services), "lots.env.example: {name} is read by no service");
    }
}

#[test]
fn the_nats_users_in_deploy_grant_each_service_exactly_its_subjects() {
    let conf = std::fs::read_to_string(deploy().join("nats/nats-cluster.conf")).unwrap();
    for (service, _) in lots_events::access::EMITS {
        let block = conf.split(&format!("user: {service}\n")).nth(1).and_then(|b| b.split("\n    }").next());
        let block = block.unwrap_or_else(|| panic!("no NATS user {service} in deploy/nats"));
        let wanted = lots_events::access::permissions(service, "").unwrap();
        let quoted = |s: &String| format!("{s:?}");
        let line = |name: &str| block.lines().find(|l| l.trim_start().starts_with(name)).unwrap_or("").to_owned();
        let strings = |l: &str| -> Vec<String> { l.split('"').skip(1).step_by(2).map(|s| format!("{s:?}")).collect() };
        let want = |v: &[String]| v.iter().map(quoted).collect::<Vec<_>>();
        let publish = line("publish");
        let (allow, deny) = publish.split_once("deny:").unwrap_or((&publish, ""));
        assert_eq!(strings(allow), want(&wanted.publish), "{service} publish");
        assert_eq!(strings(deny), want(&wanted.publish_deny), "{service} deny");
        assert_eq!(strings(&line("subscribe")), want(&wanted.subscribe), "{service} subscribe");
    }
}

#[test]
fn the_alert_rules_parse_and_name_only_metrics_the_services_export() {
    let text = std::fs::read_to_string(deploy().join("prometheus/rules.yaml")).unwrap();
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut sources = String::new();
    let mut rs = Vec::new();
    files(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates"), "rs", &mut rs);
    for f in rs {
        sources.push_str(&std::fs::read_to_string(f).unwrap());
    }
    let mut checked = 0;
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            for name in
                expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("lots_"))
            {
                // A histogram is exported under its name; Prometheus adds the series suffixes.
                let name = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
                assert!(
                    sources.contains(&format!("\"{name}\"")),
                    "{name} in rules.yaml is not exported by any service"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 5);
}
