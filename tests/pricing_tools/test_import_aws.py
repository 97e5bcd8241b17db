"""import-aws and aws-offer-url on a hand-made offer file (fixtures/aws-offer.json).

The fixture holds AWS's real m5.large record (SKU 6C86BEPQVG73ZGGR, $0.096,
with a reserved term) next to test SKUs for every variant the importer must
leave out. The expected table below is worked out by hand from it.
"""

import json
from decimal import Decimal

import pytest

from tools_support import DATA, cli, fixture, header_text, read_json, table, write_json

OFFER = fixture("aws-offer.json")

# By hand from fixtures/aws-offer.json, region us-east-1: the Linux / Shared /
# NA / Used / "No License required" product of each type, its Hrs price.
EXPECTED = {
    "c5.metal": {"vcpu": 96, "memory": "192Gi", "onDemand": Decimal("4.08")},
    "g4dn.xlarge": {"vcpu": 4, "memory": "16Gi", "gpus": 1, "gpuKind": "nvidia-t4",
                    "onDemand": Decimal("0.526")},
    "m5.large": {"vcpu": 2, "memory": "8Gi", "onDemand": Decimal("0.096")},
    "t3.nano": {"vcpu": 2, "memory": "512Mi", "onDemand": Decimal("0.0052")},    # "0.5 GiB"
    "x1e.32xlarge": {"vcpu": 128, "memory": "3904Gi",                             # "3,904 GiB"
                     "onDemand": Decimal("26.688")},
}


def run_import(tmp_path, *extra, offer=OFFER):
    out = tmp_path / "out.yaml"
    p = cli("import-aws", "--offer", offer, "--out", out, *extra)
    return p, out


def test_expected_table(tmp_path):
    p, out = run_import(tmp_path, "--region", "us-east-1")
    assert p.returncode == 0, p.stderr
    doc = table(out)
    d = doc.data
    assert d["instanceTypes"] == EXPECTED
    assert (d["currency"], d["date"], d["defaultRegion"]) == ("USD", "2021-02-05", "us-east-1")
    assert "version 20210205204500" in d["source"] and "2021-02-05" in d["source"]
    # M/T/A1 median: m5.large 0.096 and t3.nano 0.0052 -> 0.0506.
    assert d["unknownInstanceTypes"] == {"policy": "default-price", "onDemand": Decimal("0.0506")}
    assert d["spot"]["fallbackRatio"] == Decimal("0.35")
    assert "ESTIMATE" in d["spot"]["fallbackSource"]
    header = header_text(doc)
    assert "GENERATED FILE" in header
    assert "tests/pricing_tools/fixtures/aws-offer.json" in header
    # Left out with a reason: no on-demand term, a zero price.
    assert "with no on-demand price in the file (1): m5.xlarge." in header
    assert "with a zero on-demand price (1): m5.2xlarge." in header
    # The fixture's own note about where its records come from is kept.
    assert "6C86BEPQVG73ZGGR" in header
    assert "15 products read" in p.stderr and "5 instance types" in p.stderr


def test_the_region_is_taken_from_the_file_when_it_holds_one(tmp_path):
    data = read_json(OFFER)
    data["products"] = {k: v for k, v in data["products"].items()
                        if v["attributes"].get("regionCode") != "us-west-2"}
    offer = write_json(tmp_path / "one-region.json", data)
    p, out = run_import(tmp_path, offer=offer)
    assert p.returncode == 0, p.stderr
    assert table(out).data["instanceTypes"] == EXPECTED
    # With two regions in the file, it asks.
    p, _ = run_import(tmp_path)
    assert p.returncode == 3
    assert "covers regions us-east-1, us-west-2: give --region" in p.stderr


def test_other_region_from_the_same_file(tmp_path):
    p, out = run_import(tmp_path, "--region", "us-west-2")
    assert p.returncode == 0, p.stderr
    assert table(out).data["instanceTypes"] == {
        "m5.large": {"vcpu": 2, "memory": "8Gi", "onDemand": Decimal("0.096")}}


def test_facts_csv_gives_gpu_kind_and_count(tmp_path):
    p, out = run_import(tmp_path, "--region", "us-east-1",
                        "--facts", f"{DATA}/aws-instance-types.csv")
    assert p.returncode == 0, p.stderr
    g = table(out).data["instanceTypes"]["g4dn.xlarge"]
    assert (g["gpus"], g["gpuKind"]) == (1, "nvidia-t4")
    assert "aws-instance-types.csv" in header_text(table(out))


def test_region_with_no_products(tmp_path):
    p, out = run_import(tmp_path, "--region", "ap-south-2")
    assert p.returncode == 3
    assert "tests/pricing_tools/fixtures/aws-offer.json: region ap-south-2: no Linux " \
           "on-demand instance products" in p.stderr
    assert "regions in the file: us-east-1, us-west-2" in p.stderr
    assert not out.exists()


def test_region_with_products_but_no_prices(tmp_path):
    data = read_json(OFFER)
    data["terms"]["OnDemand"] = {}
    p, out = run_import(tmp_path, "--region", "us-east-1",
                        offer=write_json(tmp_path / "noprices.json", data))
    assert p.returncode == 3
    assert "region us-east-1: 7 Linux on-demand products but no on-demand prices" in p.stderr


def test_region_index_check_and_offer_url(tmp_path):
    index = f"{DATA}/aws/region_index.json"
    p = cli("aws-offer-url", "--region-index", index, "--region", "eu-west-1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ("https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/"
                                "AmazonEC2/20261202000000/eu-west-1/index.json")
    p = cli("aws-offer-url", "--region-index", index, "--region", "mars-east-1")
    assert p.returncode == 3
    assert "region 'mars-east-1': not in the region index; regions: eu-west-1, us-east-1, " \
           "us-west-2" in p.stderr
    p, _ = run_import(tmp_path, "--region", "mars-east-1", "--region-index", index)
    assert p.returncode == 3 and "not in the region index" in p.stderr


def test_duplicated_sku_with_different_prices(tmp_path):
    text = open(OFFER).read()
    # The same SKU twice in terms.OnDemand (a duplicate JSON key), priced apart.
    dup = ('"TESTT3NANO000001": {"TESTT3NANO000001.JRTCKXETXF": {"priceDimensions": '
           '{"r": {"unit": "Hrs", "beginRange": "0", "pricePerUnit": {"USD": "0.0099"}}}}},\n')
    head, terms = text.split('"OnDemand"', 1)
    text = head + '"OnDemand"' + terms.replace('"TESTT3NANO000001": {\n',
                                               dup + '"TESTT3NANO000001": {\n', 1)
    offer = tmp_path / "dup.json"
    offer.write_text(text)
    p, out = run_import(tmp_path, "--region", "us-east-1", offer=str(offer))
    assert p.returncode == 3
    assert "terms.OnDemand SKU TESTT3NANO000001: listed twice with different prices " \
           "(0.0099 and 0.0052)" in p.stderr
    assert not out.exists()


def test_two_skus_for_one_type_with_different_prices(tmp_path):
    data = read_json(OFFER)
    twin = json.loads(json.dumps(data["products"]["TESTT3NANO000001"]))
    twin["sku"] = "TESTT3NANOTWIN01"
    data["products"]["TESTT3NANOTWIN01"] = twin
    data["terms"]["OnDemand"]["TESTT3NANOTWIN01"] = {"TESTT3NANOTWIN01.JRTCKXETXF": {
        "priceDimensions": {"x": {"unit": "Hrs", "beginRange": "0",
                                  "pricePerUnit": {"USD": "0.0060000000"}}}}}
    p, _ = run_import(tmp_path, "--region", "us-east-1",
                      offer=write_json(tmp_path / "twin.json", data))
    assert p.returncode == 3
    assert "instance type t3.nano: SKUs TESTT3NANO000001 (0.0052) and TESTT3NANOTWIN01 " \
           "(0.006) are both Linux on-demand, with different prices" in p.stderr
    # Same price twice is one product sold under two SKUs: fine.
    data["terms"]["OnDemand"]["TESTT3NANOTWIN01"]["TESTT3NANOTWIN01.JRTCKXETXF"][
        "priceDimensions"]["x"]["pricePerUnit"]["USD"] = "0.0052"
    p, out = run_import(tmp_path, "--region", "us-east-1",
                        offer=write_json(tmp_path / "twin.json", data))
    assert p.returncode == 0, p.stderr
    assert table(out).data["instanceTypes"] == EXPECTED


def test_one_sku_with_two_hourly_prices(tmp_path):
    data = read_json(OFFER)
    term = data["terms"]["OnDemand"]["TESTC5METAL00001"]["TESTC5METAL00001.JRTCKXETXF"]
    term["priceDimensions"]["second"] = {"unit": "Hrs", "beginRange": "0",
                                         "pricePerUnit": {"USD": "5.0"}}
    p, _ = run_import(tmp_path, "--region", "us-east-1",
                      offer=write_json(tmp_path / "two.json", data))
    assert p.returncode == 3
    assert "terms.OnDemand SKU TESTC5METAL00001: has different hourly prices" in p.stderr


@pytest.mark.parametrize("cut", [100, 5000, -40])
def test_truncated_download(tmp_path, cut):
    text = open(OFFER).read()
    offer = tmp_path / "cut.json"
    offer.write_text(text[:cut])
    p, out = run_import(tmp_path, "--region", "us-east-1", offer=str(offer))
    assert p.returncode == 3, p.stderr
    assert f"{offer}:" in p.stderr and "truncated" in p.stderr
    assert not out.exists()


@pytest.mark.parametrize("doc,message", [
    ({"Items": [], "NextPageLink": None}, "not an AWS Price List offer file"),
    ({"offerCode": "AmazonRDS", "products": {}}, "offerCode: is 'AmazonRDS', expected "
     "'AmazonEC2'"),
    ({"offerCode": "AmazonEC2", "products": {"X": "not a record"}},
     "products SKU X: not a product record"),
    ([{"products": {}}], "expected '{' (a JSON object), found '['"),
])
def test_wrong_format(tmp_path, doc, message):
    p, _ = run_import(tmp_path, "--region", "us-east-1",
                      offer=write_json(tmp_path / "wrong.json", doc))
    assert p.returncode == 3
    assert message in p.stderr, p.stderr


def test_missing_currency(tmp_path):
    p, _ = run_import(tmp_path, "--region", "us-east-1", "--currency", "CNY")
    assert p.returncode == 3
    assert "SKU 6C86BEPQVG73ZGGR rate 6C86BEPQVG73ZGGR.JRTCKXETXF.6YS6EN2CT7: no " \
           "pricePerUnit.CNY" in p.stderr


def test_missing_input_file(tmp_path):
    p, _ = run_import(tmp_path, "--region", "us-east-1", offer=str(tmp_path / "nope.json"))
    assert p.returncode == 3
    assert "nope.json" in p.stderr and "No such file" in p.stderr


def test_usage_errors_exit_2(tmp_path):
    p = cli("import-aws", "--out", tmp_path / "x.yaml")
    assert p.returncode == 2 and "--offer" in p.stderr
    p = cli("import-aws", "--offer", OFFER, "--out", tmp_path / "x.yaml", "--date", "2026-13-01")
    assert p.returncode == 3 and "2026-13-01" in p.stderr
    p = cli("no-such-command")
    assert p.returncode == 2


def test_import_aws_spot_is_the_same_command_under_pricing_py(tmp_path):
    import subprocess
    import sys
    from tools_support import TABLES, TOOLS
    adv = write_json(tmp_path / "adv.json", {
        "ranges": [{"index": 0, "label": "<5%", "max": 5}, {"index": 1, "label": "5-10%", "max": 11},
                   {"index": 2, "label": "10-15%", "max": 16}, {"index": 3, "label": "15-20%", "max": 22},
                   {"index": 4, "label": ">20%", "max": 100}],
        "spot_advisor": {"us-east-1": {"Linux": {"m5.large": {"s": 70, "r": 1}}}}})
    common = ["--table", f"{TABLES}/aws-us-east-1.yaml", "--advisor", adv,
              "--advisor-date", "2026-12-01"]
    p = cli("import-aws-spot", *common, "--out", tmp_path / "a.yaml")
    assert p.returncode == 0, p.stderr
    q = subprocess.run([sys.executable, f"{TOOLS}/import_aws_spot.py", *common,
                        "--out", str(tmp_path / "b.yaml")], capture_output=True, text=True)
    assert q.returncode == 0, q.stderr
    assert (tmp_path / "a.yaml").read_bytes() == (tmp_path / "b.yaml").read_bytes()
    m5 = table(tmp_path / "a.yaml").data["instanceTypes"]["m5.large"]
    assert m5["regions"] == {"us-east-1": {"spotInterruptionRate": Decimal("0.075")}}
    # A refused input is exit status 3, as for every importer.
    bad = write_json(tmp_path / "bad.json", {"ranges": [], "spot_advisor": {
        "us-east-1": {"Linux": {"m5.large": {"r": 9}}}}})
    p = cli("import-aws-spot", "--table", f"{TABLES}/aws-us-east-1.yaml", "--advisor", bad,
            "--out", tmp_path / "c.yaml")
    assert p.returncode == 3 and "unknown range index 9" in p.stderr
