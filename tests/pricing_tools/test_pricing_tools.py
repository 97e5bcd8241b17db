"""Tests for the pricing tables and their tools (pricing/tables, pricing/tools).

Run from the repository root:

    /usr/bin/python3 -m pytest tests/pricing_tools

The tools are stdlib-only; these tests need only pytest. The one check that
cross-reads the tables with an independent YAML parser uses PyYAML when it is
installed (Debian: python3-yaml) and is skipped otherwise.
"""

import csv
import glob
import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOOLS = os.path.join(REPO, "pricing", "tools")
TABLES = os.path.join(REPO, "pricing", "tables")
DATA = os.path.join(REPO, "pricing", "data")
AWS_TABLE = os.path.join(TABLES, "aws-us-east-1.yaml")
NODE_FIXTURES = os.path.join(REPO, "tests", "fixtures", "kube-scheduler-v1.32",
                             "inputs", "node-*.json")

sys.path.insert(0, TOOLS)
import pricingtable  # noqa: E402
import import_aws_spot  # noqa: E402


def run_tool(script, *args):
    return subprocess.run([sys.executable, os.path.join(TOOLS, script), *args],
                          cwd=REPO, capture_output=True, text=True)


def load_table(path):
    return pricingtable.load(path).data


def read_csv(name):
    with open(os.path.join(DATA, name), newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


# ------------------------------------------------------------ AWS table --

def test_committed_aws_table_is_exactly_the_generator_output(tmp_path):
    out = tmp_path / "aws.yaml"
    res = run_tool("gen_aws_table.py", "--out", str(out))
    assert res.returncode == 0, res.stderr
    with open(AWS_TABLE, "rb") as f:
        committed = f.read()
    assert out.read_bytes() == committed, (
        "pricing/tables/aws-us-east-1.yaml differs from the generator's output; "
        "regenerate it with: /usr/bin/python3 pricing/tools/gen_aws_table.py "
        "--out pricing/tables/aws-us-east-1.yaml")


def test_generator_reports_skipped_types_on_stderr(tmp_path):
    res = run_tool("gen_aws_table.py", "--out", str(tmp_path / "aws.yaml"))
    assert res.returncode == 0
    # Priced in the CSV, no facts row, no hand-written override.
    assert "dl1.24xlarge" in res.stderr
    assert "p3.2xlarge" not in res.stderr


def test_every_node_fixture_instance_type_is_priced():
    types = load_table(AWS_TABLE)["instanceTypes"]
    seen = set()
    for path in sorted(glob.glob(NODE_FIXTURES)):
        with open(path) as f:
            labels = json.load(f)["metadata"]["labels"]
        itype = labels["node.kubernetes.io/instance-type"]
        seen.add(itype)
        assert itype in types, f"{itype} (from {os.path.basename(path)}) not priced"
        assert types[itype]["onDemand"] > 0
    # The fixtures are the five types the brief names; make sure the glob
    # actually found them, so this test cannot pass vacuously.
    assert seen == {"m5.large", "c5.xlarge", "r5.2xlarge", "p3.2xlarge", "g5.xlarge"}


def test_aws_table_prices_and_facts_come_from_the_csvs():
    types = load_table(AWS_TABLE)["instanceTypes"]
    prices = {r["instance_type"]: Decimal(r["on_demand_usd_per_hour"])
              for r in read_csv("aws-us-east-1-on-demand.csv")}
    facts = {r["instance_type"]: r for r in read_csv("aws-instance-types.csv")}
    # Exactly the priced types that have facts (from the CSV or the overrides).
    import gen_aws_table
    expected = {t for t in prices if t in facts or t in gen_aws_table.FACT_OVERRIDES}
    assert set(types) == expected
    for name, e in types.items():
        assert e["onDemand"] == prices[name], name
        if name in facts:
            f = facts[name]
            assert e["vcpu"] == int(f["vcpu"]), name
            assert e["memory"] == f"{f['memory_mib']}Mi", name
            assert e.get("gpus", 0) == int(f["gpu_count"] or 0), name
    assert types["m5.large"] == {"vcpu": 2, "memory": "8192Mi",
                                 "onDemand": Decimal("0.096")}
    assert types["g5.xlarge"]["gpuKind"] == "nvidia-a10g"
    assert types["g5.xlarge"]["gpus"] == 1
    # p3.2xlarge has no facts row: 8 vCPU, 61 GiB, one V100 from AWS docs.
    assert types["p3.2xlarge"] == {"vcpu": 8, "memory": "62464Mi", "gpus": 1,
                                   "gpuKind": "nvidia-v100",
                                   "onDemand": Decimal("3.06")}


def test_aws_table_header_spot_and_default_price():
    doc = pricingtable.load(AWS_TABLE)
    data = doc.data
    header = "\n".join(doc.header)
    for needle in ("aws-us-east-1-on-demand.csv", "aws-instance-types.csv",
                   "2026-07-20T13:44:30Z", "GENERATED FILE",
                   "pricing/tools/gen_aws_table.py --out pricing/tables/aws-us-east-1.yaml"):
        assert needle in header
    assert data["date"] == "2026-07-20"
    assert "2026-07-20T13:44:30Z" in data["source"]
    assert data["defaultRegion"] == "us-east-1"
    # No invented spot prices anywhere; the fallback is labelled an estimate.
    assert not any("spot" in e or "regions" in e for e in data["instanceTypes"].values())
    assert data["spot"]["fallbackRatio"] == Decimal("0.35")
    assert "ESTIMATE" in data["spot"]["fallbackSource"]
    # Default price: median of the M/T/A1 families, recomputed here.
    import gen_aws_table
    general = sorted(e["onDemand"] for n, e in data["instanceTypes"].items()
                     if gen_aws_table.GENERAL_PURPOSE.match(n))
    mid = len(general) // 2
    expect = general[mid] if len(general) % 2 else (general[mid - 1] + general[mid]) / 2
    assert data["unknownInstanceTypes"] == {"policy": "default-price", "onDemand": expect}


# -------------------------------------------------------- spot importer --

HISTORY = {"SpotPriceHistory": [
    # m5.large in us-east-1a: three Linux prices out of time order; the
    # newest (0.05 at 07-21) must win, not the last listed or the lowest.
    {"AvailabilityZone": "us-east-1a", "InstanceType": "m5.large",
     "ProductDescription": "Linux/UNIX", "SpotPrice": "0.040000",
     "Timestamp": "2026-07-20T10:00:00+00:00"},
    {"AvailabilityZone": "us-east-1a", "InstanceType": "m5.large",
     "ProductDescription": "Linux/UNIX", "SpotPrice": "0.050000",
     "Timestamp": "2026-07-21T10:00:00+00:00"},
    {"AvailabilityZone": "us-east-1a", "InstanceType": "m5.large",
     "ProductDescription": "Linux/UNIX", "SpotPrice": "0.045000",
     "Timestamp": "2026-07-19T10:00:00.000Z"},
    # A newer Windows row in the same zone must be ignored.
    {"AvailabilityZone": "us-east-1a", "InstanceType": "m5.large",
     "ProductDescription": "Windows", "SpotPrice": "0.900000",
     "Timestamp": "2026-07-22T10:00:00+00:00"},
    {"AvailabilityZone": "us-east-1c", "InstanceType": "m5.large",
     "ProductDescription": "SUSE Linux", "SpotPrice": "0.800000",
     "Timestamp": "2026-07-22T10:00:00+00:00"},
    {"AvailabilityZone": "us-east-1b", "InstanceType": "m5.large",
     "ProductDescription": "Linux/UNIX", "SpotPrice": "0.030000",
     "Timestamp": "2026-07-21T09:00:00+00:00"},
    {"AvailabilityZone": "us-east-1d", "InstanceType": "m5.large",
     "ProductDescription": "Linux/UNIX", "SpotPrice": "0.036000",
     "Timestamp": "2026-07-21T09:00:00+00:00"},
    # A Local Zone: stays a zone of us-east-1, not part of the median.
    {"AvailabilityZone": "us-east-1-bos-1a", "InstanceType": "m5.large",
     "ProductDescription": "Linux/UNIX", "SpotPrice": "0.070000",
     "Timestamp": "2026-07-21T09:00:00+00:00"},
    {"AvailabilityZone": "us-west-2a", "InstanceType": "c5.xlarge",
     "ProductDescription": "Linux/UNIX (Amazon VPC)", "SpotPrice": "0.061000",
     "Timestamp": "2026-07-21T09:00:00+00:00"},
    {"AvailabilityZone": "us-west-2b", "InstanceType": "c5.xlarge",
     "ProductDescription": "Linux/UNIX", "SpotPrice": "0.065000",
     "Timestamp": "2026-07-21T09:00:00+00:00"},
    # Not in the table: skipped, reported.
    {"AvailabilityZone": "us-east-1a", "InstanceType": "zz9.huge",
     "ProductDescription": "Linux/UNIX", "SpotPrice": "1.0",
     "Timestamp": "2026-07-21T09:00:00+00:00"},
]}

ADVISOR = {
    "ranges": [
        {"index": 0, "label": "<5%", "dots": 0, "max": 5},
        {"index": 1, "label": "5-10%", "dots": 1, "max": 11},
        {"index": 2, "label": "10-15%", "dots": 2, "max": 16},
        {"index": 3, "label": "15-20%", "dots": 3, "max": 22},
        {"index": 4, "label": ">20%", "dots": 4, "max": 100},
    ],
    "spot_advisor": {
        "us-east-1": {"Linux": {"m5.large": {"s": 70, "r": 0},
                                "c5.xlarge": {"s": 60, "r": 4},
                                "r5.2xlarge": {"s": 66, "r": 1}},
                      "Windows": {"m5.large": {"s": 50, "r": 3}}},
        "us-west-2": {"Linux": {"c5.xlarge": {"s": 65, "r": 2},
                                "m5.large": {"s": 71, "r": 3}}},
        # Not in the regions of the spot history: must not be written.
        "eu-west-1": {"Linux": {"m5.large": {"s": 72, "r": 1}}},
    },
}


@pytest.fixture
def imported(tmp_path):
    hist = tmp_path / "spot-history.json"
    adv = tmp_path / "spot-advisor.json"
    out = tmp_path / "out.yaml"
    hist.write_text(json.dumps(HISTORY))
    adv.write_text(json.dumps(ADVISOR))
    res = run_tool("import_aws_spot.py", "--table", AWS_TABLE, "--spot-history",
                   str(hist), "--advisor", str(adv), "--advisor-date", "2026-07-21",
                   "--out", str(out))
    assert res.returncode == 0, res.stderr
    return {"res": res, "out": out, "hist": hist, "adv": adv,
            "doc": pricingtable.load(out)}


def test_importer_latest_linux_price_per_zone(imported):
    m5 = imported["doc"].data["instanceTypes"]["m5.large"]
    zones = m5["regions"]["us-east-1"]["zones"]
    assert zones["us-east-1a"] == {"spot": Decimal("0.05")}   # newest, not Windows
    assert zones["us-east-1b"] == {"spot": Decimal("0.03")}
    assert zones["us-east-1d"] == {"spot": Decimal("0.036")}
    assert "us-east-1c" not in zones                            # SUSE only
    assert zones["us-east-1-bos-1a"] == {"spot": Decimal("0.07")}  # Local Zone
    assert set(m5["regions"]) == {"us-east-1", "us-west-2"}     # no us-east-1-bos


def test_importer_region_spot_is_median_of_regular_zones(imported):
    types = imported["doc"].data["instanceTypes"]
    # median(0.05, 0.03, 0.036) = 0.036; the 0.07 Local Zone is left out.
    assert types["m5.large"]["regions"]["us-east-1"]["spot"] == Decimal("0.036")
    # Even count: mean of the middle two.
    c5 = types["c5.xlarge"]["regions"]["us-west-2"]
    assert c5["spot"] == Decimal("0.063")
    assert c5["zones"] == {"us-west-2a": {"spot": Decimal("0.061")},
                           "us-west-2b": {"spot": Decimal("0.065")}}
    # Top-level on-demand untouched, and no top-level spot invented.
    assert types["m5.large"]["onDemand"] == Decimal("0.096")
    assert "spot" not in types["m5.large"]


def test_importer_interruption_rate_band_midpoints(imported):
    types = imported["doc"].data["instanceTypes"]
    assert types["m5.large"]["regions"]["us-east-1"]["spotInterruptionRate"] == Decimal("0.025")
    assert types["c5.xlarge"]["regions"]["us-east-1"]["spotInterruptionRate"] == Decimal("0.25")
    assert types["r5.2xlarge"]["regions"]["us-east-1"] == {
        "spotInterruptionRate": Decimal("0.075")}
    assert types["c5.xlarge"]["regions"]["us-west-2"]["spotInterruptionRate"] == Decimal("0.125")
    assert types["m5.large"]["regions"]["us-west-2"] == {"spotInterruptionRate": Decimal("0.175")}
    # eu-west-1 is not a region of the spot history, so it is not imported.
    assert all("eu-west-1" not in e.get("regions", {}) for e in types.values())


def test_importer_output_is_a_valid_table_with_provenance(imported):
    doc = imported["doc"]
    assert pricingtable.check_table(doc.data) == []
    assert "describe-spot-price-history (spot-history.json; newest price " \
           "2026-07-21T10:00:00Z)" in doc.data["source"]
    assert "Spot Instance Advisor data (spot-advisor.json, 2026-07-21)" in doc.data["source"]
    assert doc.data["source"].startswith("AWS EC2 on-demand list prices")
    assert import_aws_spot.HEADER_BEGIN in doc.header
    assert doc.data["date"] == "2026-07-20"
    stderr = imported["res"].stderr
    assert "zz9.huge" in stderr
    assert "2 for other operating systems ignored" in stderr
    # Everything not imported is unchanged.
    before = load_table(AWS_TABLE)["instanceTypes"]
    after = doc.data["instanceTypes"]
    assert set(before) == set(after)
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {"m5.large", "c5.xlarge", "r5.2xlarge"}


def test_importer_rerun_replaces_instead_of_stacking(imported, tmp_path):
    again = tmp_path / "again.yaml"
    res = run_tool("import_aws_spot.py", "--table", str(imported["out"]),
                   "--spot-history", str(imported["hist"]), "--advisor",
                   str(imported["adv"]), "--advisor-date", "2026-07-21",
                   "--out", str(again))
    assert res.returncode == 0, res.stderr
    assert again.read_bytes() == imported["out"].read_bytes()


def test_importer_drops_zones_missing_from_new_data(imported, tmp_path):
    hist = tmp_path / "newer.json"
    hist.write_text(json.dumps({"SpotPriceHistory": [
        {"AvailabilityZone": "us-east-1b", "InstanceType": "m5.large",
         "ProductDescription": "Linux/UNIX", "SpotPrice": "0.031",
         "Timestamp": "2026-07-23T09:00:00+00:00"}]}))
    out = tmp_path / "newer.yaml"
    res = run_tool("import_aws_spot.py", "--table", str(imported["out"]),
                   "--spot-history", str(hist), "--out", str(out))
    assert res.returncode == 0, res.stderr
    reg = load_table(out)["instanceTypes"]["m5.large"]["regions"]["us-east-1"]
    assert reg["zones"] == {"us-east-1b": {"spot": Decimal("0.031")}}
    assert reg["spot"] == Decimal("0.031")
    # The rate imported earlier is kept: this run brought no advisor data.
    assert reg["spotInterruptionRate"] == Decimal("0.025")


def test_importer_refuses_unknown_advisor_bands(tmp_path):
    adv = tmp_path / "adv.json"
    bad = json.loads(json.dumps(ADVISOR))
    bad["ranges"][4]["label"] = ">25%"
    adv.write_text(json.dumps(bad))
    out = tmp_path / "out.yaml"
    res = run_tool("import_aws_spot.py", "--table", AWS_TABLE, "--advisor", str(adv),
                   "--out", str(out))
    assert res.returncode != 0
    assert ">25%" in res.stderr
    assert not out.exists()


def test_importer_advisor_only_uses_default_region(tmp_path):
    adv = tmp_path / "adv.json"
    adv.write_text(json.dumps(ADVISOR))
    out = tmp_path / "out.yaml"
    res = run_tool("import_aws_spot.py", "--table", AWS_TABLE, "--advisor", str(adv),
                   "--advisor-date", "2026-07-21", "--out", str(out))
    assert res.returncode == 0, res.stderr
    types = load_table(out)["instanceTypes"]
    assert types["m5.large"]["regions"] == {
        "us-east-1": {"spotInterruptionRate": Decimal("0.025")}}
    assert "us-west-2" not in types["c5.xlarge"]["regions"]


@pytest.mark.parametrize("zone,expected", [
    ("us-east-1a", ("us-east-1", True)),
    ("us-east-1-bos-1a", ("us-east-1", False)),           # Local Zone
    ("us-east-1-wl1-bos-wlz-1", ("us-east-1", False)),    # Wavelength Zone
    ("us-gov-west-1b", ("us-gov-west-1", True)),
    ("ap-southeast-2c", ("ap-southeast-2", True)),
    ("eu-central-1-ham-1a", ("eu-central-1", False)),
    ("nonsense", None),
])
def test_zone_to_region(zone, expected):
    assert import_aws_spot.zone_region(zone) == expected


# ------------------------------------------------------ shipped tables --

SHIPPED = sorted(glob.glob(os.path.join(TABLES, "*.yaml")))


def test_the_three_tables_are_shipped():
    names = {os.path.basename(p) for p in SHIPPED}
    assert {"aws-us-east-1.yaml", "gcp-us-central1.yaml", "azure-eastus.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_shipped_table_is_valid(path):
    doc = pricingtable.load(path)
    data = doc.data
    for key in ("apiVersion", "kind", "currency", "source", "date",
                "unknownInstanceTypes", "instanceTypes"):
        assert key in data, f"{key} missing"
    assert pricingtable.check_table(data) == []
    # Every table explains itself in a header comment, and the date it
    # records is the one its source shows (named in `source` too).
    assert doc.header
    assert data["date"] in data["source"]
    # Our writer reproduces the file exactly, so import_aws_spot.py on it
    # changes only what it imports.
    with open(path, encoding="utf-8") as f:
        assert pricingtable.dump(doc) == f.read()


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_shipped_table_reads_the_same_with_pyyaml(path):
    yaml = pytest.importorskip("yaml")
    with open(path, encoding="utf-8") as f:
        theirs = yaml.safe_load(f)

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Decimal):
            return float(v)
        return v

    assert plain(pricingtable.load(path).data) == theirs


def test_gcp_and_azure_tables_keys_and_known_prices():
    gcp = load_table(os.path.join(TABLES, "gcp-us-central1.yaml"))
    azure = load_table(os.path.join(TABLES, "azure-eastus.yaml"))
    assert gcp["defaultRegion"] == "us-central1"
    assert azure["defaultRegion"] == "eastus"
    assert gcp["instanceTypes"]["n2-standard-4"]["onDemand"] == Decimal("0.194236")
    assert azure["instanceTypes"]["Standard_NC4as_T4_v3"]["gpuKind"] == "nvidia-t4"
    assert azure["instanceTypes"]["Standard_D4s_v5"]["onDemand"] == Decimal("0.192")
    # Spot is never cheaper than on-demand and GPU types say which GPU.
    for table in (gcp, azure):
        for name, e in table["instanceTypes"].items():
            if "spot" in e:
                assert e["spot"] < e["onDemand"], name
            assert bool(e.get("gpus")) == bool(e.get("gpuKind")), name
    # No Azure spot list prices could be sourced: none may appear.
    assert not any("spot" in e for e in azure["instanceTypes"].values())


# ------------------------------------------------------ the YAML reader --

@pytest.mark.parametrize("text,message", [
    ("a: 1\na: 2\n", "duplicate key"),
    ("a: {b: 1, b: 2}\n", "duplicate key"),
    ("a: &x 1\nb: *x\n", "anchors"),
    ("a:\n\tb: 1\n", "tab"),
    ("a:\n  - 1\n", "block sequences"),
    ("a: {b: 1,\n  c: 2}\n", "one line"),
    ("a: x: y\n", "quote"),
    ("a: 1\n---\nb: 2\n", "one YAML document"),
])
def test_reader_rejects_what_it_does_not_support(text, message):
    with pytest.raises(pricingtable.TableError) as e:
        pricingtable.parse(text)
    assert message in str(e.value)


def test_check_table_catches_bad_values():
    data = load_table(os.path.join(TABLES, "azure-eastus.yaml"))
    data["instanceTypes"]["Standard_D4s_v5"]["onDemand"] = Decimal("-1")
    data["instanceTypes"]["Standard_D2s_v5"]["vcpu"] = 0
    data["instanceTypes"]["Standard_D8s_v5"]["memry"] = "8Gi"
    data["spot"]["fallbackRatio"] = Decimal("1.5")
    errors = "\n".join(pricingtable.check_table(data))
    assert "Standard_D4s_v5: onDemand" in errors
    assert "Standard_D2s_v5: vcpu" in errors
    assert "unknown field 'memry'" in errors
    assert "fallbackRatio" in errors
