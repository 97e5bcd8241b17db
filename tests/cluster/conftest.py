"""pytest fixtures for the cluster-connection tests (tests/cluster).

    /usr/bin/python3 -m pytest -q tests/cluster

api(...)  starts a KubeApiServerDouble in-process (TLS with a test CA and a
          bearer token by default, bookmarks every 0.5 s) and stops it at
          teardown, checking it raised nothing internally.
cluster_extender(api_or_kubeconfig, *flags, ...) starts build/asan/cost-extender
          with --kubeconfig and no --nodes-file; at teardown it gets SIGTERM
          and must exit 0 with JSON-only stderr (ASan/LSan/UBSan clean).
"""

import shutil

import pytest

from cluster_harness import BINARY, PRICING_SRC, Extender, KubeApiServerDouble
# The report hook (item.rep_call, for teardown) and the binary check, shared.
from extender_harness import _binary_exists, pytest_runtest_makereport  # noqa: E402,F401
from extender_harness import check_all_exited_cleanly  # noqa: E402


@pytest.fixture(autouse=True)
def _no_ambient_cluster(monkeypatch):
    """The node source must come from what each test passes, not from the
    environment pytest runs in."""
    for k in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def workdir(tmp_path):
    shutil.copyfile(PRICING_SRC, tmp_path / "pricing.yaml")
    return tmp_path


@pytest.fixture
def api():
    """Factory: api(**KubeApiServerDouble kwargs) -> a started double."""
    made = []

    def make(**kw):
        kw.setdefault("tls", True)
        kw.setdefault("bookmark_interval", 0.5)
        d = KubeApiServerDouble(**kw)
        made.append(d)
        return d

    yield make
    errors = []
    for d in made:
        errors += d.errors
        d.stop()
    assert not errors, "the API server double raised: %r" % errors


@pytest.fixture
def cluster_extender(request, workdir):
    """Factory: cluster_extender(target, *flags, wait_ready=True, nodes=None,
    name=None). target: a KubeApiServerDouble (a kubeconfig with its CA and
    token is written for it), a kubeconfig path, or None (no --kubeconfig)."""
    started = []

    def start(target, *flags, wait_ready=True, nodes=None, name=None, timeout=15):
        args = []
        if isinstance(target, KubeApiServerDouble):
            kc = workdir / ("kubeconfig-%d" % len(started))
            target.write_kubeconfig(str(kc))
            args += ["--kubeconfig", str(kc)]
        elif target is not None:
            args += ["--kubeconfig", str(target)]
        ext = Extender(workdir, args + list(flags), workdir / "pricing.yaml", nodes,
                       name or "ce%d" % len(started))
        started.append(ext)
        return ext.start(wait_ready=wait_ready, timeout=timeout)

    yield start

    check_all_exited_cleanly(request, started)
