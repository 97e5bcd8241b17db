"""The shipped tables are what their imports make from pricing/data, and the
data files say where their numbers come from.

`pricing.py regenerate --check NAME` rebuilds a table in memory from the
data files kept in the repository and compares it byte for byte with the
committed one. The cross-checks below hold the generated tables against
independent figures: the hand-written tables they replaced (copied per
machine type from the same sources) and the us-east-1 price file.
"""

import glob
import json
import os
import shutil
import sys
from decimal import Decimal

import pytest

from tools_support import DATA, REPO, TABLES, TOOLS, cli, table

sys.path.insert(0, TOOLS)
import pricing  # noqa: E402

SHIPPED = sorted(pricing.SHIPPED_TABLES)


def test_every_table_in_pricing_tables_is_in_the_manifest():
    assert sorted(os.listdir(TABLES)) == SHIPPED
    assert {"aws-us-east-1.yaml", "aws-us-west-2.yaml", "aws-eu-west-1.yaml",
            "azure-eastus.yaml", "azure-westeurope.yaml", "gcp-us-central1.yaml",
            "gcp-europe-west1.yaml"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_committed_table_is_exactly_its_import(name):
    p = cli("regenerate", "--check", name)
    assert p.returncode == 0, (
        f"{name} differs from what its import makes of pricing/data: run "
        f"`python3 pricing/tools/pricing.py regenerate {name}` and commit it\n{p.stdout}{p.stderr}")
    assert p.stdout.strip() == f"{name}: up to date"


def test_regenerate_check_notices_a_stale_table(tmp_path, monkeypatch, capsys):
    for name in ("azure-westeurope.yaml", "gcp-europe-west1.yaml"):
        shutil.copy(os.path.join(TABLES, name), tmp_path / name)
    stale = tmp_path / "gcp-europe-west1.yaml"
    stale.write_text(stale.read_text().replace("onDemand: 0.07371546", "onDemand: 0.07"))
    monkeypatch.setattr(pricing, "TABLES", str(tmp_path))
    assert pricing.regenerate(["azure-westeurope.yaml", "gcp-europe-west1.yaml"], True) == 1
    out = capsys.readouterr()
    assert "azure-westeurope.yaml: up to date" in out.out
    assert "gcp-europe-west1.yaml: DIFFERS from its import" in out.out
    # And without --check it writes the table back.
    assert pricing.regenerate(["gcp-europe-west1.yaml"], False) == 0
    assert stale.read_text() == open(os.path.join(TABLES, "gcp-europe-west1.yaml")).read()
    assert pricing.regenerate(["nope.yaml"], True) == 2


def test_data_files_stay_small_and_say_where_they_come_from():
    files = [f for f in glob.glob(os.path.join(DATA, "**", "*"), recursive=True)
             if os.path.isfile(f)]
    total = sum(os.path.getsize(f) for f in files)
    assert total < 3 * 2**20, f"pricing/data holds {total / 2**20:.1f} MiB"
    samples = [f for f in files if f.endswith(".json")]
    assert len(samples) == 9
    for f in samples:
        with open(f) as fh:
            notes = json.load(fh)["_comment"]
        text = " ".join(notes)
        assert text.startswith("Structure: "), f
        assert "read 2026-12-02" in text, f          # when the format's docs were read
    # The README lists every file.
    readme = open(os.path.join(DATA, "README.md")).read()
    for f in files:
        rel = os.path.relpath(f, DATA)
        if rel != "README.md":
            assert f"`{rel}`" in readme, rel


def types_of(name):
    return table(os.path.join(TABLES, name)).data["instanceTypes"]


def test_default_table_is_still_the_full_aws_us_east_1():
    assert len(types_of("aws-us-east-1.yaml")) == 1356
    assert open(os.path.join(REPO, "deploy", "shared", "pricing.yaml")).read() == \
        open(os.path.join(TABLES, "aws-us-east-1.yaml")).read()


def test_us_west_2_is_us_east_1_for_the_families_it_lists():
    east, west = types_of("aws-us-east-1.yaml"), types_of("aws-us-west-2.yaml")
    assert len(west) == 82
    import tablebuild
    for name, e in west.items():
        a, b = dict(e), dict(east[name])
        # The CSV generator writes 8192Mi, the importers 8Gi: the same quantity.
        assert tablebuild.quantity_mib(a.pop("memory")) == tablebuild.quantity_mib(b.pop("memory"))
        assert a == b, name
    assert west["m5.large"]["onDemand"] == Decimal("0.096")


def test_eu_west_1_prices_scale_with_vcpus_within_a_family():
    types = types_of("aws-eu-west-1.yaml")
    assert {n.split(".")[0] for n in types} == {"t3", "m5", "c5"}
    for fam, base in (("m5", Decimal("0.107")), ("c5", Decimal("0.096"))):
        for name, e in types.items():
            if name.startswith(fam + "."):
                assert e["onDemand"] == base * e["vcpu"] / 2, name
    assert types["t3.medium"]["onDemand"] == Decimal("0.0456")


# The hand-written tables these generated ones replace, copied type by type
# from the same sources (Cyclenerd pricing.yml of 2025-03-06 for GCP, the
# karpenter-provider-azure map for Azure): the generated prices must agree.
OLD_GCP_US_CENTRAL1 = {
    "e2-standard-2": ("0.06701142", "0.026792"), "e2-standard-4": ("0.13402284", "0.053584"),
    "e2-standard-8": ("0.26804568", "0.107168"), "n1-standard-4": ("0.189999", "0.05201"),
    "n2-standard-16": ("0.776944", "0.239808"), "n2-standard-2": ("0.097118", "0.029976"),
    "n2-standard-4": ("0.194236", "0.059952"), "n2-standard-8": ("0.388472", "0.119904"),
    "n2d-standard-2": ("0.084492", "0.016704"), "n2d-standard-4": ("0.168984", "0.033408"),
    "n2d-standard-8": ("0.337968", "0.066816"),
}
OLD_AZURE_EASTUS = {
    "Standard_D16s_v5": "0.768", "Standard_D2s_v5": "0.096", "Standard_D4s_v5": "0.192",
    "Standard_D8s_v5": "0.384", "Standard_E4s_v5": "0.252", "Standard_E8s_v5": "0.504",
    "Standard_F4s_v2": "0.169", "Standard_F8s_v2": "0.338",
    "Standard_NC24ads_A100_v4": "3.673", "Standard_NC4as_T4_v3": "0.526",
}


def test_generated_gcp_prices_agree_with_the_per_type_figures():
    types = types_of("gcp-us-central1.yaml")
    for name, (od, spot) in OLD_GCP_US_CENTRAL1.items():
        assert (types[name]["onDemand"], types[name]["spot"]) == (Decimal(od), Decimal(spot)), \
            name
    # europe-west1, against figures read from the same pricing.yml.
    eu = types_of("gcp-europe-west1.yaml")
    for name, od, spot in (("e2-standard-32", "1.17944736", "0.446656"),
                           ("n2-highmem-16", "1.152976", "0.119008"),
                           ("n2d-standard-224", "10.409952", "3.48096"),
                           ("n1-standard-96", "5.016168", "1.37724"),
                           ("n1-highmem-4", "0.260278", "0.071454")):
        assert (eu[name]["onDemand"], eu[name]["spot"]) == (Decimal(od), Decimal(spot)), name


def test_generated_azure_prices_agree_with_the_hand_written_table():
    types = types_of("azure-eastus.yaml")
    for name, od in OLD_AZURE_EASTUS.items():
        assert types[name]["onDemand"] == Decimal(od), name
    assert types["Standard_NC24ads_A100_v4"]["gpuKind"] == "nvidia-a100"
    assert not any("spot" in e for t in ("azure-eastus.yaml", "azure-westeurope.yaml")
                   for e in types_of(t).values())
