"""deploy/: the layered configs parse with the real relay, and the supervisors agree with them
(grace periods longer than relay.shutdown_timeout, probes on the telemetry port, non-root)."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.selection import parse_duration

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
ENVIRONMENTS = ("dev", "staging", "production")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _shutdown_timeout(env: str) -> float:
    layers = [_yaml(DEPLOY / "config" / "base.yaml"), _yaml(DEPLOY / "config" / f"{env}.yaml")]
    value = "15s"  # the relay's default
    for layer in layers:
        value = layer.get("relay", {}).get("shutdown_timeout", value)
    return parse_duration(value).total_seconds()


def _relay_binary() -> str:
    binary = os.environ.get("CONVEYOR_TEST_RELAY_BINARY") or str(REPO / "bin" / "conveyor")
    usable = os.access(binary, os.X_OK) and (
        subprocess.run([binary, "config", "--help"], capture_output=True, check=False).returncode
        == 0
    )
    if not usable:
        if os.environ.get("CI"):
            pytest.fail("bin/conveyor is missing or predates `config print`: make build")
        pytest.skip("bin/conveyor is missing or predates `config print` (make build)")
    return binary


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_layered_config_is_valid(env: str, tmp_path: Path) -> None:
    binary = _relay_binary()
    (tmp_path / "database-url").write_text("postgres://conveyor:db-s3cret@db:5432/shop\n")
    (tmp_path / "nats-password").write_text("nats-s3cret\n")
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "CONVEYOR_SECRETS_DIR": str(tmp_path),
        "DATABASE_URL": "postgres://conveyor:db-s3cret@db:5432/shop",
        "NATS_URL": "tls://nats:4222",
        "NATS_PASSWORD": "nats-s3cret",
    }
    done = subprocess.run(
        [
            binary,
            "config",
            "print",
            "--config",
            str(DEPLOY / "config" / "base.yaml"),
            "--config",
            str(DEPLOY / "config" / f"{env}.yaml"),
        ],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout + done.stderr
    printed = yaml.safe_load(done.stdout)
    assert [r["name"] for r in printed["routes"]] == ["orders", "all"]
    expected_db = "sqlite:///db.sqlite3" if env == "dev" else "postgres://conveyor:"
    assert printed["database"]["url"].startswith(expected_db)


def test_every_environment_file_is_documented() -> None:
    for name in ("base", *ENVIRONMENTS):
        text = (DEPLOY / "config" / f"{name}.yaml").read_text()
        assert text.startswith("#"), f"{name}.yaml should start with a comment saying how to use it"
        assert "--config" in text


def test_kubernetes_deployment() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "deployment.yaml").read_text()))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert {d["kind"] for d in docs} == {"Deployment", "PodDisruptionBudget", "NetworkPolicy"}
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 2
    assert pod["terminationGracePeriodSeconds"] > _shutdown_timeout("production")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CONVEYOR_TELEMETRY__LISTEN"] == "0.0.0.0:9464"  # probes reach the pod IP
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 9464}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["secrets"] == env["CONVEYOR_SECRETS_DIR"] == "/run/secrets/conveyor"
    secret = next(v for v in pod["volumes"] if v["name"] == "secrets")
    assert secret["secret"]["secretName"] == "conveyor-secrets"
    assert container["args"] == [
        "run",
        "--config",
        "/etc/conveyor/base.yaml",
        "--config",
        "/etc/conveyor/production.yaml",
    ]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["limits"]["memory"]


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    text = (DEPLOY / "systemd" / "conveyor.service").read_text()
    parser.read_string(re.sub(r"\s*\\\n\s*", " ", text))  # join continuation lines
    return parser


def test_systemd_unit() -> None:
    service = _unit()["Service"]
    assert parse_duration(service["TimeoutStopSec"]).total_seconds() > _shutdown_timeout(
        "production"
    )
    for key, value in {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "Restart": "on-failure",
        "KillSignal": "SIGTERM",
    }.items():
        assert service[key] == value, key
    assert service["EnvironmentFile"].lstrip("-").startswith("/etc/conveyor/")
    assert (
        "--config /etc/conveyor/base.yaml --config /etc/conveyor/production.yaml"
        in (service["ExecStart"])
    )


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "conveyor.service"
    # verify insists that ExecStart exists; point it at an executable that does.
    unit.write_text(
        (DEPLOY / "systemd" / "conveyor.service")
        .read_text()
        .replace("/usr/local/bin/conveyor", shutil.which("true") or "/bin/true")
    )
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    froms = [line for line in instructions if line.startswith("FROM ")]
    assert len(froms) == 2 and "golang:${GO_VERSION}" in froms[0] and " AS build" in froms[0]
    assert "distroless/static" in froms[1] and ":nonroot" in froms[1]
    assert "CGO_ENABLED=0" in text and "-trimpath" in text
    assert "USER 65532:65532" in instructions
    assert "EXPOSE 9464" in instructions
    assert "HEALTHCHECK NONE" in instructions
    assert "ENV CONVEYOR_TELEMETRY__LISTEN=0.0.0.0:9464" in instructions
    cmd = next(line for line in instructions if line.startswith("CMD "))
    for name in re.findall(r"/etc/conveyor/([\w.-]+\.yaml)", cmd):
        assert (DEPLOY / "config" / name).is_file(), name
    assert (DEPLOY / "Dockerfile.dockerignore").is_file()
    go = re.search(r"^go (\d+\.\d+)", (REPO / "go.mod").read_text(), re.M)
    assert go is not None and f"ARG GO_VERSION={go.group(1)}" in text
