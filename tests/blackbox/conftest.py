"""pytest fixtures for the cost-extender black-box tests.

The harness itself (process control, HTTP client, log and metrics parsers)
is in extender_harness.py. Run from the repository root:

    /usr/bin/python3 -m pytest tests/blackbox
"""

import shutil

import pytest

from extender_harness import BINARY, INPUTS, PRICING_SRC, Extender
# The report hook (item.rep_call, for teardown) and the binary check, shared.
from extender_harness import _binary_exists, pytest_runtest_makereport  # noqa: E402,F401
from extender_harness import check_all_exited_cleanly  # noqa: E402


# ------------------------------------------------------------- pytest glue --

@pytest.fixture
def workdir(tmp_path):
    """tmp_path with pricing.yaml (a copy of the bundled AWS table) and
    nodes/ (only the six node fixtures)."""
    shutil.copyfile(PRICING_SRC, tmp_path / "pricing.yaml")
    nodes = tmp_path / "nodes"
    nodes.mkdir()
    for p in sorted(INPUTS.glob("node-*.json")):
        shutil.copyfile(p, nodes / p.name)
    return tmp_path


@pytest.fixture
def start_extender(request, workdir):
    """Factory: start_extender(*extra_args, pricing=..., nodes=..., wait_ready=True,
    port=None) starts a cost-extender with --listen 127.0.0.1:<free port>
    --reload-interval 0.2 and the extra flags (later flags win). pricing and
    nodes default to the files in workdir; None leaves the flag out. port:
    see Extender. At teardown every process gets SIGTERM and must exit 0
    with JSON-only stderr (not checked when the test xfailed, so that a
    known bug is reported once, as the xfail)."""
    started = []
    default = object()

    def start(*args, pricing=default, nodes=default, wait_ready=True, name=None, port=None):
        ext = Extender(workdir,
                       args,
                       workdir / "pricing.yaml" if pricing is default else pricing,
                       workdir / "nodes" if nodes is default else nodes,
                       name or "ce%d" % len(started),
                       port=port)
        started.append(ext)
        return ext.start(wait_ready=wait_ready)

    yield start

    check_all_exited_cleanly(request, started)


@pytest.fixture
def extender(start_extender):
    """A ready cost-extender with the default files and flags."""
    return start_extender()


