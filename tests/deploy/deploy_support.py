"""Helpers for tests/deploy: render the kustomizations, read the rendered
objects, and run the real cost-extender the way the manifests do.

- Rendering: with Debian bookworm's kubectl 1.20 (kustomize v2.0.3, the
  oldest we support; `make build/tools/kubectl` provides it) and with any
  other kubectl on PATH.
- Running: the binary (the ASan build, as tests/blackbox uses) is started
  inside a private network namespace, so the configs' own listen addresses
  (0.0.0.0:8888, 127.0.0.1:8888) are used unchanged and never clash with
  anything on the machine. The test talks to it through sockets opened in
  that namespace (setns in a short-lived thread). Needs root (unshare).
"""

import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
sys.path.insert(0, str(REPO / "tests" / "blackbox"))
sys.path.insert(0, str(REPO / "tests" / "apiserver_double"))

from extender_harness import (BINARY, SCHEDULER_HEADERS, Metrics,  # noqa: E402
                              binary_env, parse_log_lines)

RELEASE_BINARY = REPO / "bin" / "cost-extender"
PRICING_SRC = REPO / "pricing" / "tables" / "aws-us-east-1.yaml"
KUBECTL_OLD = Path(os.environ.get("CE_KUBECTL_OLD") or REPO / "build" / "tools" / "kubectl")

# Every kustomization under deploy/ (test_every_kustomization_is_listed keeps
# this list complete).
KUSTOMIZATIONS = ["shared", "base", "monitoring", "mtls", "default-scheduler",
                  "secondary-scheduler", "secondary-scheduler/example", "pricing-refresher",
                  "cost-report"]

# Where the manifests mount the extender's files inside the container; the
# tests lay the same tree out under a temporary folder.
CONTAINER_PREFIX = "/etc/cost-extender/"

GENERATED_HASH = re.compile(r"^(?P<base>.+)-(?P<hash>[a-z0-9]{10})$")


# ------------------------------------------------------------- rendering --

def kubectl_version(kubectl):
    out = subprocess.run([str(kubectl), "version", "--client"], capture_output=True,
                         text=True, timeout=60)
    m = re.search(r'GitVersion:"v(\d+)\.(\d+)|Client Version: v(\d+)\.(\d+)', out.stdout)
    if not m:
        return None
    g = [x for x in m.groups() if x is not None]
    return int(g[0]), int(g[1])


def old_kubectl():
    if not KUBECTL_OLD.exists():
        pytest.fail("%s not found: run `make build/tools/kubectl` (Debian's kubernetes-client, "
                    "kubectl 1.20 with kustomize v2.0.3)" % KUBECTL_OLD, pytrace=False)
    return KUBECTL_OLD


def other_kubectls():
    """kubectl binaries on PATH that are not the old one (newer kustomize)."""
    found = shutil.which("kubectl")
    if not found:
        return []
    if KUBECTL_OLD.exists() and os.path.realpath(found) == os.path.realpath(KUBECTL_OLD):
        return []
    return [Path(found)]


def kubectl_env(tmp=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    if tmp:
        env["HOME"] = str(tmp)
    return env


_render_cache = {}


def render(kubectl, kdir):
    """(text, [objects]) of `kubectl kustomize deploy/<kdir>`; fails the test
    with kubectl's message when it does not render."""
    key = (str(kubectl), kdir)
    if key not in _render_cache:
        path = kdir if isinstance(kdir, Path) else DEPLOY / kdir
        p = subprocess.run([str(kubectl), "kustomize", str(path)], capture_output=True,
                           text=True, timeout=120, env=kubectl_env())
        if p.returncode != 0:
            pytest.fail("`%s kustomize %s` failed (exit %d):\n%s"
                        % (kubectl, path, p.returncode, p.stderr), pytrace=False)
        docs = [d for d in yaml.safe_load_all(p.stdout) if d is not None]
        _render_cache[key] = (p.stdout, docs)
    return _render_cache[key]


def objects(kdir):
    """The objects deploy/<kdir> renders to with the old kustomize."""
    return render(old_kubectl(), kdir)[1]


def normalized(docs):
    """Objects with kustomize's content-hash suffixes on generated ConfigMap
    names (and every reference to them) replaced by -HASH, sorted; each
    kustomize version hashes in its own way."""
    text = json.dumps(docs, sort_keys=True)
    for d in docs:
        if d.get("kind") == "ConfigMap":
            m = GENERATED_HASH.match(d["metadata"]["name"])
            if m:
                text = text.replace('"%s"' % m.group(0), '"%s-HASH"' % m.group("base"))
    out = json.loads(text)
    # kustomize v2 writes empty labels/annotations on a generator with
    # behavior: replace; v5 leaves them out. Same object either way.
    for o in out:
        for k in ("labels", "annotations"):
            if o["metadata"].get(k) == {}:
                del o["metadata"][k]
    return sorted(out, key=lambda o: (o["kind"], o["metadata"].get("namespace", ""),
                                      o["metadata"]["name"]))


def find(docs, kind, name=None, namespace=None):
    return [d for d in docs if d.get("kind") == kind
            and (name is None or d["metadata"]["name"] == name)
            and (namespace is None or d["metadata"].get("namespace") == namespace)]


def one(docs, kind, name=None, namespace=None):
    found = find(docs, kind, name, namespace)
    assert len(found) == 1, "want exactly one %s %s/%s, found %d" % (
        kind, namespace, name, len(found))
    return found[0]


def all_containers(pod_spec):
    return list(pod_spec.get("initContainers") or []) + list(pod_spec.get("containers") or [])


def container(pod_spec, name):
    for c in all_containers(pod_spec):
        if c["name"] == name:
            return c
    raise AssertionError("no container %s in %s" % (name, [c["name"] for c in
                                                          all_containers(pod_spec)]))


def configmap_file(docs, namespace, pod_spec, cont, path):
    """The (ConfigMap object, key) a file path inside the container comes
    from, following volumeMounts and volumes the way the kubelet does.
    Fails when the file is not under a ConfigMap volume mounted as a folder."""
    mounts = sorted(cont.get("volumeMounts") or [], key=lambda m: -len(m["mountPath"]))
    for m in mounts:
        mp = m["mountPath"].rstrip("/") + "/"
        if not path.startswith(mp):
            continue
        assert "subPath" not in m and "subPathExpr" not in m, \
            "%s is mounted with subPath, which never receives ConfigMap updates" % mp
        rel = path[len(mp):]
        vols = {v["name"]: v for v in pod_spec.get("volumes") or []}
        assert m["name"] in vols, "volumeMount %s has no volume" % m["name"]
        vol = vols[m["name"]]
        assert "configMap" in vol, "%s is not a ConfigMap volume: %s" % (path, vol)
        key = rel
        for item in vol["configMap"].get("items") or []:
            if item["path"] == rel:
                key = item["key"]
        assert "/" not in key, "%s is not a key of the volume's ConfigMap" % rel
        cm = one(docs, "ConfigMap", vol["configMap"]["name"], namespace)
        return cm, key
    raise AssertionError("%s is not under any volumeMount of container %s"
                         % (path, cont["name"]))


def flag_value(args, flag):
    """The value of --flag in a container's args (--flag V or --flag=V)."""
    for i, a in enumerate(args):
        if a == flag:
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def port_of(listen):
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def resolve_port(cont, port):
    """A probe or Service port given by name or number -> number."""
    if isinstance(port, int):
        return port
    for p in cont.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    raise AssertionError("container %s has no port named %s" % (cont["name"], port))


def load_yaml_file(path):
    with open(path) as f:
        return yaml.safe_load(f)


# ------------------------------------------------------------ namespaces --

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def _setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns(%s): %s" % (path, os.strerror(e)))
    finally:
        os.close(fd)


class NetNS:
    """A private network namespace with only loopback, kept by a sleeping
    `unshare --net` process. Sockets and servers made by in_ns() live in it."""

    def __init__(self):
        unshare = shutil.which("unshare") or "/usr/bin/unshare"
        self.proc = subprocess.Popen([unshare, "--net", "--", "/bin/sh", "-c",
                                      "echo up; exec sleep 3600"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if line.strip() != b"up":
            err = self.proc.stderr.read().decode(errors="replace")
            self.proc.wait()
            pytest.fail("cannot make a network namespace (`unshare --net` needs root): %s"
                        % err.strip(), pytrace=False)
        self.path = "/proc/%d/ns/net" % self.proc.pid
        self.in_ns(self._loopback_up)

    @staticmethod
    def _loopback_up():
        import fcntl
        import struct
        siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = struct.pack("16sH14s", b"lo", 0, b"")
            flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, req)[:18])[1]
            fcntl.ioctl(s, siocsifflags, struct.pack("16sH14s", b"lo", flags | iff_up, b""))

    def in_ns(self, fn, *args, **kwargs):
        """Runs fn in a thread that has joined the namespace; returns its
        result (sockets it makes stay in the namespace)."""
        box = {}

        def run():
            try:
                _setns(self.path)
                box["value"] = fn(*args, **kwargs)
            except BaseException as e:  # noqa: B902 - re-raised below
                box["error"] = e
        t = threading.Thread(target=run, name="in-netns")
        t.start()
        t.join()
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def connect(self, port, timeout=10):
        return self.in_ns(socket.create_connection, ("127.0.0.1", port), timeout)

    def command(self, argv):
        nsenter = shutil.which("nsenter") or "/usr/bin/nsenter"
        return [nsenter, "--net=" + self.path, "--"] + list(argv)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Reply %d %r>" % (self.status, self.body[:300])


def http_request(ns, port, method, path, body=None, headers=None, timeout=10):
    sock = ns.connect(port, timeout)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.sock = sock
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


# ------------------------------------------------------------- processes --

def clean_env(extra=None):
    """The binary's environment: sanitizer options, and nothing that would
    point it at a cluster unless the test says so."""
    env = {k: v for k, v in binary_env().items()
           if k != "KUBECONFIG" and not k.startswith("KUBERNETES_")}
    env.update(extra or {})
    return env


class Daemon:
    """One cost-extender started inside a NetNS, with its stderr in a file.
    stop() sends SIGTERM and checks a clean exit: status 0 (sanitizer
    reports and leaks make it non-zero) and JSON-only logs."""

    def __init__(self, ns, argv, workdir, name, env=None, wrap=None):
        self.ns = ns
        self.argv = list(argv)
        self.name = name
        self.stderr_path = Path(workdir) / ("%s.stderr.log" % name)
        cmd = self.argv if wrap is None else wrap(self.argv)
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(ns.command(cmd), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._err,
                                     env=env if env is not None else clean_env(),
                                     cwd=str(workdir))
        self.stopped = False

    def stderr_text(self):
        try:
            return self.stderr_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def logs(self, strict=False):
        text = self.stderr_text()
        text = text[: text.rfind("\n") + 1]
        return parse_log_lines(text, strict=strict)

    def running(self):
        return self.proc.poll() is None

    def request(self, port, method, path, body=None, headers=None, timeout=10):
        assert self.running(), "cost-extender (%s) exited (%s):\n%s" % (
            self.name, self.proc.returncode, self.stderr_text()[-4000:])
        return http_request(self.ns, port, method, path, body, headers, timeout)

    def wait_status(self, port, path, want=200, timeout=20):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.running():
                break
            try:
                last = http_request(self.ns, port, "GET", path, timeout=2)
                if last.status == want:
                    return last
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise AssertionError("GET %s never answered %d within %ss (last: %r, exit code %s)\n"
                             "stderr:\n%s" % (path, want, timeout, last, self.proc.poll(),
                                              self.stderr_text()[-6000:]))

    def wait_log(self, pred, timeout=15, what="log line"):
        deadline = time.monotonic() + timeout
        while True:
            for r in self.logs():
                if pred(r):
                    return r
            if time.monotonic() > deadline or not self.running():
                raise AssertionError("no %s within %ss; stderr:\n%s"
                                     % (what, timeout, self.stderr_text()[-6000:]))
            time.sleep(0.05)

    def metrics(self, port):
        r = self.request(port, "GET", "/metrics")
        assert r.status == 200, r
        return Metrics(r.body.decode("utf-8"))

    def stop(self, timeout=20):
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._err.close()
            raise AssertionError("cost-extender (%s) did not exit within %ss of SIGTERM"
                                 % (self.name, timeout))
        self._err.close()
        assert rc == 0, "cost-extender (%s) exited %s after SIGTERM:\n%s" % (
            self.name, rc, self.stderr_text()[-6000:])
        parse_log_lines(self.stderr_text(), strict=True)
        return rc


def scheduler_post(daemon, port, url_prefix_path, verb, body):
    """POST <urlPrefix path>/<verb> as kube-scheduler does."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    return daemon.request(port, "POST", "%s/%s" % (url_prefix_path.rstrip("/"), verb), body,
                          dict(SCHEDULER_HEADERS))


# ---------------------------------------------------- ConfigMap volumes --

class ConfigMapVolume:
    """A folder laid out as the kubelet lays out a ConfigMap volume: the
    keys are symlinks to ..data/<key>, ..data a symlink to a timestamped
    folder; update() writes a new folder and swaps ..data with one rename,
    as the kubelet's atomic writer does."""

    def __init__(self, path, data):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.n = 0
        self.update(data)

    def update(self, data):
        self.n += 1
        ts = "..2026_11_25_00_00_%02d.%09d" % (self.n, self.n)
        d = self.path / ts
        d.mkdir()
        for key, value in data.items():
            (d / key).write_text(value)
        tmp = self.path / "..data_tmp"
        os.symlink(ts, tmp)
        old = os.readlink(self.path / "..data") if (self.path / "..data").is_symlink() else None
        os.replace(tmp, self.path / "..data")
        for key in data:
            link = self.path / key
            if not link.is_symlink():
                os.symlink("..data/" + key, link)
        if old:
            shutil.rmtree(self.path / old)


def rewrite_prefix(text, root):
    """The manifests' container paths, moved under root."""
    return text.replace(CONTAINER_PREFIX, str(root).rstrip("/") + CONTAINER_PREFIX)


def binary_under_test():
    if not BINARY.exists():
        pytest.fail("binary %s not found: build it with `make build/asan/cost-extender` "
                    "(or set CE_BINARY)" % BINARY, pytrace=False)
    return BINARY
