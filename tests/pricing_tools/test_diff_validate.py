"""pricing.py diff and validate: output, exit status, thresholds.

validate runs the real daemon binary (bin/cost-extender, built by make
test) as its gate, so these tests also prove the tables the importers
write are tables the daemon accepts.
"""

import json
import os
import shutil
import stat

import pytest

from tools_support import REPO, TABLES, cli

OLD = """apiVersion: cost-extender.io/v1alpha1
kind: PricingTable
currency: USD
source: "test table, 2026-01-01"
date: "2026-01-01"

unknownInstanceTypes:
  policy: default-price
  onDemand: 0.5

instanceTypes:
  a.large: {vcpu: 2, memory: 8Gi, onDemand: 0.1, spot: 0.04}
  b.large: {vcpu: 2, memory: 8Gi, onDemand: 0.2}
  c.large: {vcpu: 2, memory: 4Gi, onDemand: 0.3, regions: {us-x-1: {spot: 0.09, zones: {us-x-1a: {spot: 0.08}}}}}
  d.large: {vcpu: 4, memory: 16Gi, onDemand: 1.0}
"""

NEW = """apiVersion: cost-extender.io/v1alpha1
kind: PricingTable
currency: USD
source: "test table, 2026-02-01"
date: "2026-02-01"

unknownInstanceTypes:
  policy: default-price
  onDemand: 0.5

instanceTypes:
  a.large: {vcpu: 2, memory: 8Gi, onDemand: 0.11, spot: 0.04}
  b.large: {vcpu: 2, memory: 8Gi, onDemand: 0.3}
  c.large: {vcpu: 2, memory: 8Gi, onDemand: 0.3, regions: {us-x-1: {spot: 0.09}}}
  d.large: {vcpu: 4, memory: 16Gi, onDemand: 1.0}
  e.large: {vcpu: 2, memory: 8Gi, onDemand: 0.12}
"""


@pytest.fixture
def pair(tmp_path):
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(OLD)
    new.write_text(NEW)
    return old, new


def test_diff_output_lists_every_price_point(pair):
    old, new = pair
    p = cli("diff", old, new)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == f"--- {old}" and lines[1] == f"+++ {new}"
    body = [" ".join(line.split()) for line in lines[2:]]
    assert body == [
        "meta date: '2026-01-01' -> '2026-02-01'",
        "meta source: 'test table, 2026-01-01' -> 'test table, 2026-02-01'",
        # a.large: (0.11 - 0.1) / 0.1 = +10 %; b.large: 0.1/0.2 = +50 %.
        "changed a.large onDemand 0.1 -> 0.11 +10.00%",
        "changed b.large onDemand 0.2 -> 0.3 +50.00%",
        "removed c.large spot us-x-1/us-x-1a 0.08 -> -",
        "added e.large onDemand - -> 0.12",
        "facts c.large: vcpu/memory/gpus/gpuKind (2, '4Gi', 0, '') -> (2, '8Gi', 0, '')",
        # Old points: unknown 1 + a 2 + b 1 + c 3 + d 1 = 8; unchanged:
        # unknown, a spot, c onDemand, c us-x-1 spot, d onDemand = 5.
        "summary: 4 -> 5 instance types; price points: 1 added, 1 removed, 2 changed "
        "(largest: b.large onDemand +50.00%), 5 unchanged; 1 facts changed",
    ]


@pytest.mark.parametrize("flags,status,fail", [
    ([], 0, None),
    (["--max-change", "60"], 0, None),
    (["--max-change", "50"], 0, None),          # exactly 50 % is allowed
    (["--max-change", "20"], 1, "1 price(s) changed by more than 20% (largest: b.large "
                                "onDemand +50.00%)"),
    (["--max-change", "5"], 1, "2 price(s) changed by more than 5% (largest: b.large "
                               "onDemand +50.00%)"),
    (["--max-removed", "20"], 0, None),         # 1 of 8 points = 12.5 %
    (["--max-removed", "10"], 1, "1 of 8 price points removed (12.5%, more than 10%)"),
])
def test_diff_thresholds_and_exit_status(pair, flags, status, fail):
    old, new = pair
    p = cli("diff", old, new, *flags)
    assert p.returncode == status, p.stdout + p.stderr
    fails = [line for line in p.stdout.splitlines() if line.startswith("FAIL: ")]
    assert fails == ([f"FAIL: {fail}"] if fail else [])


def test_diff_price_drop_counts_too(pair):
    old, new = pair
    p = cli("diff", new, old, "--max-change", "30")
    assert p.returncode == 1
    line = next(x for x in p.stdout.splitlines() if x.startswith("changed  b.large"))
    assert line.split()[-4:] == ["0.3", "->", "0.2", "-33.33%"]
    assert "FAIL: 1 price(s) changed by more than 30% (largest: b.large onDemand " \
           "-33.33%)" in p.stdout


def test_diff_identical_tables(tmp_path):
    src = os.path.join(TABLES, "aws-us-east-1.yaml")
    p = cli("diff", src, src, "--max-change", "0", "--max-removed", "0")
    assert p.returncode == 0
    assert "price points: 0 added, 0 removed, 0 changed, 1357 unchanged" in p.stdout


def test_diff_currency_change_fails_any_threshold(pair, tmp_path):
    old, new = pair
    eur = tmp_path / "eur.yaml"
    eur.write_text(NEW.replace("currency: USD", "currency: EUR"))
    assert cli("diff", old, eur).returncode == 0
    p = cli("diff", old, eur, "--max-change", "1000")
    assert p.returncode == 1
    assert "FAIL: the currency changed: prices are not comparable" in p.stdout


def test_diff_json(pair):
    old, new = pair
    p = cli("diff", old, new, "--format", "json", "--max-change", "20")
    assert p.returncode == 1
    d = json.loads(p.stdout)
    assert d["ok"] is False and len(d["reasons"]) == 1
    assert d["instanceTypes"] == [4, 5]
    assert d["changed"] == [
        {"type": "a.large", "capacity": "onDemand", "region": None, "zone": None,
         "old": "0.1", "new": "0.11", "percent": 10.0},
        {"type": "b.large", "capacity": "onDemand", "region": None, "zone": None,
         "old": "0.2", "new": "0.3", "percent": 50.0}]
    assert d["removed"] == [{"type": "c.large", "capacity": "spot", "region": "us-x-1",
                             "zone": "us-x-1a", "price": "0.08"}]
    assert d["added"] == [{"type": "e.large", "capacity": "onDemand", "region": None,
                           "zone": None, "price": "0.12"}]


def test_diff_summary_only(pair):
    old, new = pair
    p = cli("diff", old, new, "--summary-only")
    assert [line.split(":")[0] for line in p.stdout.splitlines()] == ["--- " + str(old),
                                                                      "+++ " + str(new),
                                                                      "summary"]


def test_diff_of_something_that_is_not_a_table(pair, tmp_path):
    old, _ = pair
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: x\n")
    p = cli("diff", old, bad)
    assert p.returncode == 3
    assert f"pricing: error: {bad}: not a pricing table (no instanceTypes mapping)" in p.stderr
    bad.write_text("instanceTypes: [a, table\n")
    p = cli("diff", old, bad)
    assert p.returncode == 3 and str(bad) in p.stderr


def test_diff_missing_file(pair, tmp_path):
    old, _ = pair
    p = cli("diff", old, tmp_path / "gone.yaml")
    assert p.returncode == 3 and "gone.yaml" in p.stderr


def test_diff_reads_yaml_outside_the_tools_subset(pair, tmp_path):
    pytest.importorskip("yaml")
    old, _ = pair
    multi = tmp_path / "multi.yaml"
    # A multi-line flow mapping: valid YAML the daemon accepts, that the
    # stdlib reader refuses; diff falls back to PyYAML when installed.
    multi.write_text(OLD.replace("d.large: {vcpu: 4, memory: 16Gi, onDemand: 1.0}",
                                 "d.large: {vcpu: 4,\n    memory: 16Gi, onDemand: 2.0}"))
    p = cli("diff", old, multi)
    assert p.returncode == 0, p.stderr
    assert "changed  d.large onDemand" in p.stdout and "+100.00%" in p.stdout


# ------------------------------------------------------------- validate --

BINARY = os.path.join(REPO, "bin", "cost-extender")


def need_binary():
    if not os.access(BINARY, os.X_OK):
        pytest.fail("bin/cost-extender not built (make test builds it)", pytrace=False)


@pytest.mark.parametrize("name", sorted(os.listdir(TABLES)))
def test_validate_accepts_every_shipped_table(name):
    need_binary()
    p = cli("validate", os.path.join(TABLES, name), "--binary", BINARY)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"cost-extender --check: pricing table {TABLES}/{name}: ok" in p.stdout


def test_validate_rejects_with_the_daemons_message(pair, tmp_path):
    need_binary()
    old, _ = pair
    bad = tmp_path / "bad.yaml"
    bad.write_text(OLD.replace("onDemand: 0.2}", "onDemand: -0.2}"))
    p = cli("validate", bad, "--binary", BINARY)
    assert p.returncode == 1
    # Our own check names the type; the daemon names line and column.
    assert f"{bad}: instanceTypes.b.large: onDemand must be a finite number" in p.stdout
    assert f"cost-extender --check: pricing table: {bad}:13:45: " in p.stdout


def test_validate_gate_is_the_daemon_even_for_yaml_the_tools_cannot_read(tmp_path):
    need_binary()
    anchors = tmp_path / "anchors.yaml"
    anchors.write_text(OLD.replace("  a.large: {", "  a.large: &x {").replace(
        "  d.large: {vcpu: 4, memory: 16Gi, onDemand: 1.0}", "  d.large: *x"))
    p = cli("validate", anchors, "--binary", BINARY)
    assert p.returncode == 1
    assert "not in the tools' YAML subset" in p.stdout
    assert "cost-extender --check: pricing table" in p.stdout


def test_validate_ignores_the_callers_cluster_settings(pair, tmp_path):
    need_binary()
    old, _ = pair
    broken = tmp_path / "kubeconfig"
    broken.write_text("this is not a kubeconfig")
    env = dict(os.environ, KUBECONFIG=str(broken))
    p = cli("validate", old, "--binary", BINARY, env=env)
    assert p.returncode == 0, p.stdout


def test_validate_without_a_binary_exits_4(pair, tmp_path):
    old, _ = pair
    env = {k: v for k, v in os.environ.items() if k != "COST_EXTENDER_BINARY"}
    env["PATH"] = "/nonexistent"
    # A copy of the tools outside the repository, so bin/cost-extender is not found.
    tools = tmp_path / "tools"
    shutil.copytree(os.path.join(REPO, "pricing", "tools"), tools,
                    ignore=shutil.ignore_patterns("__pycache__"))
    import subprocess
    import sys
    p = subprocess.run([sys.executable, str(tools / "pricing.py"), "validate", str(old)],
                       capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert p.returncode == 4, p.stdout + p.stderr
    assert "no cost-extender binary" in p.stdout


def test_validate_binary_from_environment(pair, tmp_path):
    old, _ = pair
    fake = tmp_path / "fake-extender"
    fake.write_text("#!/bin/sh\necho \"pricing table $3: rejected by the test double\"\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, COST_EXTENDER_BINARY=str(fake))
    p = cli("validate", old, env=env)
    assert p.returncode == 1
    assert "rejected by the test double" in p.stdout
