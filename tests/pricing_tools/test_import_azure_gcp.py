"""import-azure and import-gcp on hand-made provider pages (fixtures/).

Expected tables are worked out by hand from the fixtures; the GCP ones
spell out the arithmetic (vCPUs x Core + GiB x Ram + GPUs x GPU).
"""

import json
from decimal import Decimal

import pytest

from tools_support import TABLES, cli, fixture, header_text, read_json, table, write_json

AZ_PAGES = [fixture("azure-page-1.json"), fixture("azure-page-2.json")]
AZ_SKUS = fixture("azure-vm-skus.json")
GCP_SKUS = fixture("gcp-skus.json")
GCP_TYPES = fixture("gcp-machine-types.json")

# fixtures/azure-page-*.json, eastus: the Linux Consumption meter of each
# size; "... Spot" meters are spot; Low Priority, Windows, DevTest,
# Reservation, westeurope, the secondary-meter-region E4s v5 copy (0.31) and
# the Storage item are not prices of the table; Standard_D4s_v5 has no facts.
AZ_EXPECTED = {
    "Standard_D2s_v5": {"vcpu": 2, "memory": "8Gi", "onDemand": Decimal("0.096"),
                        "spot": Decimal("0.0192")},
    "Standard_E4s_v5": {"vcpu": 4, "memory": "32Gi", "onDemand": Decimal("0.252")},
    "Standard_NC4as_T4_v3": {"vcpu": 4, "memory": "28Gi", "gpus": 1, "gpuKind": "nvidia-t4",
                             "onDemand": Decimal("0.526"), "spot": Decimal("0.1578")},
}

# fixtures/gcp-skus.json, us-central1 (SKUs of "Americas" list it):
#   N2  Core 0.031611, Ram 0.004237 /GiB; spot Core 0.00976, Ram 0.001307
#   G2  Core 0.024, Ram 0.003; Nvidia L4 0.56 per GPU; no spot SKUs
#   E2  Core only (no Ram SKU): e2 types cannot be priced
# n2-standard-4  (4, 16 GiB): 4 x 0.031611 + 16 x 0.004237 = 0.126444 + 0.067792 = 0.194236
#                       spot: 4 x 0.00976  + 16 x 0.001307 = 0.03904  + 0.020912 = 0.059952
# n2-highmem-2   (2, 16 GiB): 2 x 0.031611 + 16 x 0.004237 = 0.063222 + 0.067792 = 0.131014
#                       spot: 2 x 0.00976  + 16 x 0.001307 = 0.01952  + 0.020912 = 0.040432
# g2-standard-4  (4, 16 GiB, 1 L4): 4 x 0.024 + 16 x 0.003 + 0.56 = 0.096 + 0.048 + 0.56 = 0.704
GCP_EXPECTED = {
    "g2-standard-4": {"vcpu": 4, "memory": "16Gi", "gpus": 1, "gpuKind": "nvidia-l4",
                      "onDemand": Decimal("0.704")},
    "n2-highmem-2": {"vcpu": 2, "memory": "16Gi", "onDemand": Decimal("0.131014"),
                     "spot": Decimal("0.040432")},
    "n2-standard-4": {"vcpu": 4, "memory": "16Gi", "onDemand": Decimal("0.194236"),
                      "spot": Decimal("0.059952")},
}


def azure(tmp_path, *extra, pages=AZ_PAGES, skus=AZ_SKUS, region="eastus"):
    out = tmp_path / "az.yaml"
    facts = ["--skus", skus] if skus else []
    p = cli("import-azure", "--prices", *pages, *facts, "--region", region,
            "--date", "2026-12-01", "--out", out, *extra)
    return p, out


def gcp(tmp_path, *extra, skus=(GCP_SKUS,), types=GCP_TYPES, region="us-central1"):
    out = tmp_path / "gcp.yaml"
    facts = ["--machine-types", types] if types else []
    p = cli("import-gcp", "--skus", *skus, *facts, "--region", region,
            "--date", "2026-12-01", "--out", out, *extra)
    return p, out


# ----------------------------------------------------------------- Azure --

def test_azure_expected_table(tmp_path):
    p, out = azure(tmp_path)
    assert p.returncode == 0, p.stderr
    doc = table(out)
    d = doc.data
    assert d["instanceTypes"] == AZ_EXPECTED
    assert (d["date"], d["defaultRegion"], d["currency"]) == ("2026-12-01", "eastus", "USD")
    # B and D series median: Standard_D2s_v5 alone.
    assert d["unknownInstanceTypes"]["onDemand"] == Decimal("0.096")
    assert d["spot"]["fallbackRatio"] == Decimal("0.35")
    header = header_text(doc)
    assert "1 Windows, 1 Low Priority" in header
    assert "2 reservation/dev-test, 1 secondary-meter-region items" in header
    assert "without vCPU/memory facts in the SKU listing (1): Standard_D4s_v5." in header
    assert "2 of 3 sizes have a Spot meter price" in header
    assert "13 items read; 3 VM sizes (2 with spot)" in p.stderr


def test_azure_pages_as_one_list_and_rest_skus_shape(tmp_path):
    pages = write_json(tmp_path / "pages.json", [read_json(f) for f in AZ_PAGES])
    skus = write_json(tmp_path / "skus.json", {"value": read_json(AZ_SKUS)})
    p, out = azure(tmp_path, pages=[pages], skus=skus)
    assert p.returncode == 0, p.stderr
    assert table(out).data["instanceTypes"] == AZ_EXPECTED


def test_azure_facts_from_an_existing_table(tmp_path):
    p, out = azure(tmp_path, "--facts-table", f"{TABLES}/azure-eastus.yaml", skus=None)
    assert p.returncode == 0, p.stderr
    types = table(out).data["instanceTypes"]
    # The shipped eastus table knows all four sizes, D4s_v5 included.
    assert set(types) == {"Standard_D2s_v5", "Standard_D4s_v5", "Standard_E4s_v5",
                          "Standard_NC4as_T4_v3"}
    assert types["Standard_NC4as_T4_v3"] == AZ_EXPECTED["Standard_NC4as_T4_v3"]


def test_azure_other_region(tmp_path):
    skus = read_json(AZ_SKUS)
    p, out = azure(tmp_path, region="westeurope")
    assert p.returncode == 0, p.stderr
    assert table(out).data["instanceTypes"] == {
        "Standard_D2s_v5": {"vcpu": 2, "memory": "8Gi", "onDemand": Decimal("0.115")}}
    assert skus


def test_azure_region_with_no_prices(tmp_path):
    p, out = azure(tmp_path, region="brazilsouth")
    assert p.returncode == 3
    assert "region brazilsouth: no Linux pay-as-you-go Virtual Machines prices for this " \
           "region (13 items read; regions in the input: eastus, westeurope)" in p.stderr
    assert not out.exists()


def test_azure_duplicated_meter_with_different_prices(tmp_path):
    page = read_json(AZ_PAGES[1])
    twin = dict(page["Items"][0], retailPrice=0.6, unitPrice=0.6, meterId="test-twin-meter")
    page["Items"].append(twin)
    bad = write_json(tmp_path / "dup.json", page)
    p, _ = azure(tmp_path, pages=[AZ_PAGES[0], bad])
    assert p.returncode == 3
    assert "dup.json: Items[5] (meterId test-twin-meter): Standard_NC4as_T4_v3 onDemand " \
           "costs 0.6 here and 0.526 in" in p.stderr and "two different prices" in p.stderr


@pytest.mark.parametrize("mutate,message", [
    (lambda t: t[:len(t) // 2], "truncated JSON"),
    (lambda t: t.replace('"Items"', '"Values"'), "not an Azure Retail Prices API page"),
    (lambda t: t.replace('"currencyCode": "USD"', '"currencyCode": "EUR"', 1),
     "currencyCode 'EUR', expected 'USD'"),
    (lambda t: t.replace('"retailPrice": 0.096', '"retailPrice": "cheap"', 1),
     "retailPrice 'cheap' is not a number"),
])
def test_azure_bad_input(tmp_path, mutate, message):
    bad = tmp_path / "bad.json"
    bad.write_text(mutate(open(AZ_PAGES[0]).read()))
    p, out = azure(tmp_path, pages=[str(bad), AZ_PAGES[1]])
    assert p.returncode == 3, p.stderr
    assert f"{bad}" in p.stderr and message in p.stderr, p.stderr
    assert not out.exists()


def test_azure_bad_skus_listing(tmp_path):
    skus = read_json(AZ_SKUS)
    skus[2]["capabilities"] = [{"name": "vCPUs", "value": "four"}]
    p, _ = azure(tmp_path, skus=write_json(tmp_path / "skus.json", skus))
    assert p.returncode == 3
    assert "skus.json: [2] Standard_E4s_v5: capabilities vCPUs/MemoryGB/GPUs missing or " \
           "not numbers" in p.stderr


# ------------------------------------------------------------------- GCP --

def test_gcp_expected_table_and_arithmetic(tmp_path):
    p, out = gcp(tmp_path)
    assert p.returncode == 0, p.stderr
    doc = table(out)
    d = doc.data
    assert d["instanceTypes"] == GCP_EXPECTED
    # *-standard-* median: n2-standard-4 0.194236, g2-standard-4 0.704 -> 0.449118.
    assert d["unknownInstanceTypes"] == {"policy": "default-price",
                                         "onDemand": Decimal("0.449118")}
    assert "spot" not in d          # every priced type has its own or none
    header = header_text(doc)
    assert "shared-core types (billed differently) (1): e2-micro." in header
    assert "no Core/Ram SKU for the family in the input (2): a2-highgpu-1g, " \
           "e2-standard-2." in header
    assert "n2 Core onDemand 0.031611 (SKU TEST-0001-N2CO)" in header
    assert "nvidia-l4 GPU onDemand 0.56 (SKU TEST-0011-L4GP)" in header
    assert "effectiveTime 2025-03-01T00:00:00.000Z" in header


def test_gcp_region_of_the_belgium_sku(tmp_path):
    # europe-west1 has only an N2 Core SKU in the fixture: nothing priceable.
    p, _ = gcp(tmp_path, region="europe-west1")
    assert p.returncode == 3
    assert "no instance type could be priced" in p.stderr


def test_gcp_region_with_no_skus(tmp_path):
    p, _ = gcp(tmp_path, region="asia-south2")
    assert p.returncode == 3
    assert "region asia-south2: no Compute Engine Core/Ram SKUs for this region (12 SKUs " \
           "read; regions in the input: europe-west1, us-central1, us-east1)" in p.stderr


def test_gcp_gpu_without_gpu_sku_is_left_out(tmp_path):
    pages = read_json(GCP_SKUS)
    pages[1]["skus"] = [s for s in pages[1]["skus"] if "L4" not in s["description"]]
    p, out = gcp(tmp_path, skus=(write_json(tmp_path / "s.json", pages),))
    assert p.returncode == 0, p.stderr
    assert "g2-standard-4" not in table(out).data["instanceTypes"]
    assert "a GPU without a GPU SKU in the input (1): g2-standard-4." in \
        header_text(table(out))


def test_gcp_region_specific_sku_wins_over_a_multi_region_one(tmp_path):
    pages = read_json(GCP_SKUS)
    specific = json.loads(json.dumps(pages[0]["skus"][2]))     # spot N2 Core, Americas
    specific["skuId"] = "TEST-9998-IOWA"
    specific["description"] = "Spot Preemptible N2 Instance Core running in Iowa"
    specific["serviceRegions"] = ["us-central1"]
    specific["pricingInfo"][0]["pricingExpression"]["tieredRates"][0]["unitPrice"]["nanos"] = \
        11000000
    for order in ([specific] + pages[0]["skus"], pages[0]["skus"] + [specific]):
        p, out = gcp(tmp_path, skus=(write_json(tmp_path / "s.json",
                                                [dict(pages[0], skus=order), pages[1]]),))
        assert p.returncode == 0, p.stderr
        # n2-standard-4 spot: 4 x 0.011 + 16 x 0.001307 = 0.044 + 0.020912 = 0.064912
        assert table(out).data["instanceTypes"]["n2-standard-4"]["spot"] == Decimal("0.064912")
        assert "n2 Core spot 0.011 (SKU TEST-9998-IOWA)" in header_text(table(out))
    # us-east1 is not in the specific SKU: it keeps the Americas price.
    p, out = gcp(tmp_path, region="us-east1", skus=(write_json(
        tmp_path / "s.json", [dict(pages[0], skus=pages[0]["skus"] + [specific]), pages[1]]),))
    assert table(out).data["instanceTypes"]["n2-standard-4"]["spot"] == Decimal("0.059952")


def test_gcp_duplicated_sku_with_different_prices(tmp_path):
    pages = read_json(GCP_SKUS)
    twin = json.loads(json.dumps(pages[0]["skus"][0]))
    twin["skuId"] = "TEST-9999-TWIN"
    twin["pricingInfo"][0]["pricingExpression"]["tieredRates"][0]["unitPrice"]["nanos"] = 35000000
    pages[1]["skus"].append(twin)
    p, _ = gcp(tmp_path, skus=(write_json(tmp_path / "s.json", pages),))
    assert p.returncode == 3
    assert "SKU TEST-9999-TWIN ('N2 Instance Core running in Americas'): n2 Core onDemand " \
           "costs 0.035 here and 0.031611 in SKU TEST-0001-N2CO: two SKUs for the same " \
           "regions with different prices" in p.stderr


@pytest.mark.parametrize("mutate,message", [
    (lambda t: t[:len(t) - 300], "truncated JSON"),
    (lambda t: t.replace('"skus"', '"items"'), "not a Cloud Billing Catalog skus page"),
    (lambda t: t.replace('"GiBy.h"', '"GBy.mo"', 1), "usageUnit 'GBy.mo', expected 'GiBy.h'"),
    (lambda t: t.replace('"currencyCode": "USD"', '"currencyCode": "JPY"', 1),
     "currencyCode 'JPY', expected 'USD'"),
    (lambda t: t.replace('"usageType": "Preemptible"', '"usageType": "OnDemand"', 1),
     "usageType OnDemand does not agree with the description"),
])
def test_gcp_bad_input(tmp_path, mutate, message):
    bad = tmp_path / "bad.json"
    bad.write_text(mutate(open(GCP_SKUS).read()))
    p, out = gcp(tmp_path, skus=(str(bad),))
    assert p.returncode == 3, p.stderr
    assert str(bad) in p.stderr and message in p.stderr, p.stderr
    assert not out.exists()


def test_gcp_machine_types_listed_twice_differently(tmp_path):
    mts = read_json(GCP_TYPES)
    mts[-1]["memoryMb"] = 8192          # the repeated n2-standard-4, now different
    p, _ = gcp(tmp_path, types=write_json(tmp_path / "mt.json", mts))
    assert p.returncode == 3
    assert "mt.json: [6] n2-standard-4: listed twice with different facts" in p.stderr


def test_gcp_rest_shapes_of_machine_types(tmp_path):
    mts = read_json(GCP_TYPES)
    for shape in ({"items": mts}, {"items": {"zones/us-central1-a": {"machineTypes": mts}}}):
        p, out = gcp(tmp_path, types=write_json(tmp_path / "mt.json", shape))
        assert p.returncode == 0, p.stderr
        assert table(out).data["instanceTypes"] == GCP_EXPECTED


def test_gcp_facts_from_an_existing_table(tmp_path):
    # The shipped table knows n2-standard-4 and n2-highmem-2; GPU types lose
    # their accelerator model that way and are left out.
    p, out = gcp(tmp_path, "--facts-table", f"{TABLES}/gcp-us-central1.yaml", types=None)
    assert p.returncode == 0, p.stderr
    types = table(out).data["instanceTypes"]
    assert types["n2-standard-4"] == GCP_EXPECTED["n2-standard-4"]
    assert types["n2-highmem-2"] == GCP_EXPECTED["n2-highmem-2"]
    assert not any(n.startswith("e2-") for n in types)
