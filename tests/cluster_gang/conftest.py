"""pytest fixtures for the gang admission black-box tests (issue 4).

cost-extender (build/asan/cost-extender, or CE_BINARY) runs against the
Kubernetes API server test double (tests/apiserver_double, in-process) with
--kubeconfig and --queues. The process helpers come from
tests/blackbox/extender_harness.py, imported, not copied. Run from the
repository root:

    /usr/bin/python3 -m pytest tests/cluster_gang
"""

import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "blackbox"))
sys.path.insert(0, str(HERE.parent / "apiserver_double"))

from extender_harness import BINARY, PRICING_SRC, Extender  # noqa: E402
from kube_apiserver_double import KubeApiServerDouble  # noqa: E402
# The report hook (item.rep_call, for teardown) and the binary check, shared.
from extender_harness import _binary_exists, pytest_runtest_makereport  # noqa: E402,F401
from extender_harness import check_all_exited_cleanly  # noqa: E402


@pytest.fixture
def api():
    """A running API server double (plain HTTP, loopback)."""
    with KubeApiServerDouble(bookmark_interval=0.5) as double:
        yield double
        assert not double.errors, "exceptions inside the API server double: %r" % double.errors


@pytest.fixture
def start_gang_extender(request, tmp_path, api):
    """Factory: start_gang_extender(queues_yaml, *extra_args) starts a
    cost-extender on the double (--kubeconfig, --queues, the bundled AWS
    pricing table, no --nodes-file) and waits until /readyz is 200 (the
    initial node and pod lists are in). At teardown it gets SIGTERM and
    must exit 0 (no sanitizer report, no leak) with JSON-only stderr."""
    started = []
    shutil.copyfile(PRICING_SRC, tmp_path / "pricing.yaml")
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))

    def start(queues_yaml, *args):
        qpath = tmp_path / ("queues%d.yaml" % len(started))
        qpath.write_text(queues_yaml)
        ext = Extender(tmp_path,
                       ["--kubeconfig", str(kubeconfig), "--queues", str(qpath), *args],
                       tmp_path / "pricing.yaml", None, "gang%d" % len(started))
        started.append(ext)
        return ext.start(wait_ready=True, timeout=30)

    yield start

    check_all_exited_cleanly(request, started)
