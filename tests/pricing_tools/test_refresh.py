"""`pricing.py refresh` (what deploy/pricing-refresher runs) and `fetch`,
against test doubles of the providers' endpoints and of the Kubernetes API
(refresh_doubles.py), with the real daemon binary as the validate gate.

The refresher may only ever GET and PATCH the one ConfigMap; it must not
PATCH when the diff is over a threshold, when nothing changed, when the
new table fails validation, or when the download is broken; and a patch
must not overwrite an edit made since it read the table.
"""

import os
import stat

import pytest

from refresh_doubles import ConfigMapApiDouble, ProviderDouble
from tools_support import DATA, REPO, TABLES, cli, read_json, table

BINARY = os.path.join(REPO, "bin", "cost-extender")
NS, NAME = "cost-extender", "cost-extender-pricing"
CM_PATH = f"/api/v1/namespaces/{NS}/configmaps/{NAME}"
US_WEST_2 = "/offers/v1.0/aws/AmazonEC2/20261202000000/us-west-2/index.json"


def shipped(name):
    with open(os.path.join(TABLES, name), encoding="utf-8") as f:
        return f.read()


@pytest.fixture
def token(tmp_path):
    p = tmp_path / "token"
    p.write_text(ConfigMapApiDouble.TOKEN + "\n")
    return p


@pytest.fixture
def doubles():
    started = []

    def start(cls, *args, **kwargs):
        d = cls(*args, **kwargs)
        started.append(d)
        return d
    yield start
    for d in started:
        d.close()


def aws_provider(doubles, **kw):
    with open(os.path.join(DATA, "aws", "region_index.json"), "rb") as f:
        index = f.read()
    with open(os.path.join(DATA, "aws", "offer-us-west-2.json"), "rb") as f:
        offer = f.read()
    return doubles(ProviderDouble, files={
        "/offers/v1.0/aws/AmazonEC2/current/region_index.json": index, US_WEST_2: offer}, **kw)


def refresh(api, token, provider_flag, *extra, binary=BINARY):
    if not os.access(binary, os.X_OK):
        pytest.fail("bin/cost-extender not built (make test builds it)", pytrace=False)
    return cli("refresh", "--api-server", api.url, "--token-file", token,
               "--binary", binary, *provider_flag, *extra)


def aws_refresh(api, token, provider, *extra, **kw):
    return refresh(api, token, ["--provider", "aws", "--region", "us-west-2",
                                "--aws-pricing-url", provider.url,
                                "--facts", os.path.join(DATA, "aws-instance-types.csv")],
                   *extra, **kw)


def test_aws_refresh_applies_a_reviewed_change(doubles, token):
    live = shipped("aws-us-west-2.yaml").replace(
        "m5.large: {vcpu: 2, memory: 8Gi, onDemand: 0.096}",
        "m5.large: {vcpu: 2, memory: 8Gi, onDemand: 0.09}")
    api = doubles(ConfigMapApiDouble, NS, NAME, {"pricing.yaml": live})
    provider = aws_provider(doubles)
    p = aws_refresh(api, token, provider)
    assert p.returncode == 0, p.stdout + p.stderr
    # The review: one change, +6.67 %, under the default 25 %.
    assert "changed  m5.large onDemand" in p.stdout and "+6.67%" in p.stdout
    assert "1 changed" in p.stdout and "FAIL" not in p.stdout
    assert "cost-extender --check: pricing table" in p.stdout and ": ok," in p.stdout
    assert api.requests == [("GET", CM_PATH), ("PATCH", CM_PATH)]
    (patch,) = api.patches
    assert patch["metadata"]["resourceVersion"] == "100"
    new = api.cm["data"]["pricing.yaml"]
    assert "onDemand: 0.096}" in new and "GENERATED FILE" in new
    assert "pricing.py refresh --provider aws --region us-west-2" in new
    ann = api.cm["metadata"]["annotations"]
    assert ann["cost-extender.io/pricing-source"].startswith("AWS Price List API offer file")
    assert ann["cost-extender.io/pricing-refreshed-at"].endswith("Z")
    assert provider.requests == [
        ("GET", "/offers/v1.0/aws/AmazonEC2/current/region_index.json"), ("GET", US_WEST_2)]
    assert "applied: 82 instance types" in p.stderr


def test_aws_refresh_blocked_by_max_change(doubles, token):
    live = shipped("aws-us-west-2.yaml").replace("onDemand: 0.096}", "onDemand: 0.04}", 1)
    api = doubles(ConfigMapApiDouble, NS, NAME, {"pricing.yaml": live})
    p = aws_refresh(api, token, aws_provider(doubles))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "FAIL: 1 price(s) changed by more than 25%" in p.stdout
    assert "refresh blocked, the live table stays" in p.stderr
    assert api.requests == [("GET", CM_PATH)]
    assert api.cm["data"]["pricing.yaml"] == live
    # A reviewer who accepts it raises the threshold for one run.
    p = aws_refresh(api, token, aws_provider(doubles), "--max-change", "200")
    assert p.returncode == 0, p.stdout + p.stderr
    assert api.requests[-1] == ("PATCH", CM_PATH)


def test_aws_refresh_blocked_when_types_disappear(doubles, token):
    # The live table knows types the import does not: more than 5 % of the
    # price points would go (an import that lost types is broken).
    extra = "".join(f"  zz{i}.large: {{vcpu: 2, memory: 8Gi, onDemand: 0.1}}\n"
                    for i in range(10))
    live = shipped("aws-us-west-2.yaml") + extra
    api = doubles(ConfigMapApiDouble, NS, NAME, {"pricing.yaml": live})
    p = aws_refresh(api, token, aws_provider(doubles))
    assert p.returncode == 1
    assert "FAIL: 10 of 93 price points removed (10.8%, more than 5%)" in p.stdout
    assert api.requests == [("GET", CM_PATH)]


def test_aws_refresh_with_nothing_new_leaves_the_table(doubles, token):
    live = shipped("aws-us-west-2.yaml")
    api = doubles(ConfigMapApiDouble, NS, NAME, {"pricing.yaml": live})
    p = aws_refresh(api, token, aws_provider(doubles))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "no price or instance type changed: the live table stays" in p.stderr
    assert api.requests == [("GET", CM_PATH)]


def test_refresh_never_overwrites_an_edit_made_meanwhile(doubles, token):
    live = shipped("aws-us-west-2.yaml").replace("onDemand: 0.096}", "onDemand: 0.09}", 1)
    api = doubles(ConfigMapApiDouble, NS, NAME, {"pricing.yaml": live})

    def someone_edits(d):
        d.cm["data"]["pricing.yaml"] = "# edited by hand\n" + live
        d.cm["metadata"]["resourceVersion"] = "101"
    api.edit_before_patch = someone_edits
    p = aws_refresh(api, token, aws_provider(doubles))
    assert p.returncode == 5, p.stdout + p.stderr
    assert "HTTP 409" in p.stderr and "the next run retries" in p.stderr
    assert api.cm["data"]["pricing.yaml"].startswith("# edited by hand")


def test_refresh_blocked_when_validate_fails(doubles, token, tmp_path):
    live = shipped("aws-us-west-2.yaml").replace("onDemand: 0.096}", "onDemand: 0.09}", 1)
    api = doubles(ConfigMapApiDouble, NS, NAME, {"pricing.yaml": live})
    fake = tmp_path / "rejecting-extender"
    fake.write_text("#!/bin/sh\necho \"pricing table $3:1:1: rejected by the test double\"\n"
                    "exit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    p = aws_refresh(api, token, aws_provider(doubles), binary=str(fake))
    assert p.returncode == 1
    assert "rejected by the test double" in p.stdout
    assert "does not pass `validate`" in p.stderr
    assert api.requests == [("GET", CM_PATH)]


def test_refresh_dry_run(doubles, token):
    live = shipped("aws-us-west-2.yaml").replace("onDemand: 0.096}", "onDemand: 0.09}", 1)
    api = doubles(ConfigMapApiDouble, NS, NAME, {"pricing.yaml": live})
    p = aws_refresh(api, token, aws_provider(doubles), "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "dry run: not applied" in p.stderr
    assert api.requests == [("GET", CM_PATH)]


def test_truncated_download_stops_the_refresh(doubles, token):
    live = shipped("aws-us-west-2.yaml")
    api = doubles(ConfigMapApiDouble, NS, NAME, {"pricing.yaml": live})
    provider = aws_provider(doubles, truncate={US_WEST_2: 50000})
    p = aws_refresh(api, token, provider)
    assert p.returncode == 3
    assert "offer-us-west-2.json" in p.stderr and "truncated" in p.stderr
    assert api.requests == [("GET", CM_PATH)]


def test_region_not_in_the_index(doubles, token):
    api = doubles(ConfigMapApiDouble, NS, NAME, {"pricing.yaml": shipped("aws-us-west-2.yaml")})
    p = refresh(api, token, ["--provider", "aws", "--region", "ap-east-9",
                             "--aws-pricing-url", aws_provider(doubles).url])
    assert p.returncode == 3
    assert "region 'ap-east-9' is not in the AmazonEC2 region index (eu-west-1, us-east-1, " \
           "us-west-2)" in p.stderr


def test_api_errors_exit_5(doubles, tmp_path):
    api = doubles(ConfigMapApiDouble, NS, NAME, {"pricing.yaml": shipped("aws-us-west-2.yaml")})
    wrong = tmp_path / "wrong-token"
    wrong.write_text("nope")
    p = refresh(api, wrong, ["--provider", "aws", "--region", "us-west-2"])
    assert p.returncode == 5
    assert f"GET {CM_PATH}: HTTP 401: Unauthorized" in p.stderr
    api2 = doubles(ConfigMapApiDouble, NS, "other", {"pricing.yaml": "x"})
    token = tmp_path / "t"
    token.write_text(ConfigMapApiDouble.TOKEN)
    p = refresh(api2, token, ["--provider", "aws", "--region", "us-west-2"])
    assert p.returncode == 5 and "HTTP 404" in p.stderr
    p = refresh(api, token, ["--provider", "aws", "--region", "us-west-2", "--key", "nope"])
    assert p.returncode == 5 and "has no key 'nope'" in p.stderr


def test_azure_refresh_follows_pages_and_keeps_the_live_facts(doubles, token):
    page = read_json(os.path.join(DATA, "azure", "retail-prices-eastus.json"))
    items = page["Items"]
    pages = [dict(page, Items=items[:20]), dict(page, Items=items[20:])]
    live = shipped("azure-eastus.yaml").replace("onDemand: 0.192}", "onDemand: 0.2}")
    api = doubles(ConfigMapApiDouble, NS, NAME, {"pricing.yaml": live})
    provider = doubles(ProviderDouble, azure_pages=pages)
    p = refresh(api, token, ["--provider", "azure", "--region", "eastus",
                             "--azure-prices-url", provider.url + "/api/retail/prices"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "changed  Standard_D4s_v5 onDemand" in p.stdout and "-4.00%" in p.stdout
    new = table_of(api.cm["data"]["pricing.yaml"])
    assert len(new["instanceTypes"]) == 33
    assert new["instanceTypes"]["Standard_NC4as_T4_v3"]["gpuKind"] == "nvidia-t4"
    first, second = provider.requests
    assert "armRegionName+eq+%27eastus%27" in first[1] and "Consumption" in first[1]
    assert second[1] == "/api/retail/prices?$skip=1"


def test_azure_next_page_link_to_another_host_is_refused(doubles, token):
    page = read_json(os.path.join(DATA, "azure", "retail-prices-eastus.json"))
    api = doubles(ConfigMapApiDouble, NS, NAME, {"pricing.yaml": shipped("azure-eastus.yaml")})
    provider = doubles(ProviderDouble, azure_pages=[page, page],
                       next_link_host="http://169.254.169.254")
    p = refresh(api, token, ["--provider", "azure", "--region", "eastus",
                             "--azure-prices-url", provider.url + "/api/retail/prices"])
    assert p.returncode == 3
    assert "NextPageLink http://169.254.169.254/api/retail/prices?$skip=1 leaves" in p.stderr
    assert len(provider.requests) == 1


def test_gcp_refresh_with_an_api_key(doubles, token, tmp_path):
    page = read_json(os.path.join(DATA, "gcp", "compute-skus.json"))
    pages = [dict(page, skus=page["skus"][:10]), dict(page, skus=page["skus"][10:])]
    live = shipped("gcp-us-central1.yaml").replace("onDemand: 0.194236,", "onDemand: 0.2,")
    api = doubles(ConfigMapApiDouble, NS, NAME, {"pricing.yaml": live})
    provider = doubles(ProviderDouble, gcp_pages=pages, gcp_key="secret-key-123")
    key = tmp_path / "key"
    key.write_text("secret-key-123\n")
    flags = ["--provider", "gcp", "--region", "us-central1", "--api-key-file", key,
             "--gcp-catalog-url", provider.url + "/v1/services/6F81-5844-456A/skus"]
    p = refresh(api, token, flags)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "changed  n2-standard-4 onDemand" in p.stdout
    assert len(table_of(api.cm["data"]["pricing.yaml"])["instanceTypes"]) == 89
    assert len(provider.requests) == 2 and "pageToken=1" in provider.requests[1][1]
    # A wrong key: the error names the URL but never the key.
    key.write_text("wrong-key")
    p = refresh(api, token, flags)
    assert p.returncode == 3
    assert "HTTP 403" in p.stderr and "key=REDACTED" in p.stderr
    assert "wrong-key" not in p.stderr


def test_fetch_then_import_offline(doubles, tmp_path):
    provider = aws_provider(doubles)
    out = tmp_path / "dl"
    p = cli("fetch", "aws", "--region", "us-west-2", "--out-dir", out,
            "--aws-pricing-url", provider.url)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [f"offer: {out}/offer-us-west-2.json",
                                     f"region_index: {out}/region_index.json"]
    p = cli("import-aws", "--offer", out / "offer-us-west-2.json", "--region", "us-west-2",
            "--out", tmp_path / "t.yaml")
    assert p.returncode == 0, p.stderr
    assert table(tmp_path / "t.yaml").data["instanceTypes"]["m5.large"]["onDemand"] == \
        table(os.path.join(TABLES, "aws-us-west-2.yaml")).data["instanceTypes"]["m5.large"][
            "onDemand"]


def test_refresh_from_an_input_dir(doubles, token, tmp_path):
    # The air-gapped way: files fetched elsewhere, given with --input-dir.
    d = tmp_path / "in"
    d.mkdir()
    (d / "offer-us-west-2.json").write_bytes(open(os.path.join(DATA, "aws",
                                                               "offer-us-west-2.json"), "rb").read())
    live = shipped("aws-us-west-2.yaml").replace("onDemand: 0.096}", "onDemand: 0.09}", 1)
    api = doubles(ConfigMapApiDouble, NS, NAME, {"pricing.yaml": live})
    p = refresh(api, token, ["--provider", "aws", "--region", "us-west-2", "--input-dir", d])
    assert p.returncode == 0, p.stdout + p.stderr
    assert api.requests[-1] == ("PATCH", CM_PATH)
    p = refresh(api, token, ["--provider", "azure", "--region", "eastus", "--input-dir", d])
    assert p.returncode == 3 and "retail-prices-eastus.json: not found" in p.stderr


def table_of(text):
    import pricingtable
    return pricingtable.parse(text).data


def test_the_verbs_the_refresher_uses_are_the_ones_it_declares(doubles, token):
    """tests/deploy checks the rendered Role grants refresh.API_VERBS on the
    one ConfigMap and nothing more; this checks the refresher needs no more."""
    import refresh
    live = shipped("aws-us-west-2.yaml").replace("onDemand: 0.096}", "onDemand: 0.09}", 1)
    api = doubles(ConfigMapApiDouble, NS, NAME, {"pricing.yaml": live})
    assert aws_refresh(api, token, aws_provider(doubles)).returncode == 0
    assert {m.lower() for m, _ in api.requests} == set(refresh.API_VERBS) == {"get", "patch"}
    assert {path for _, path in api.requests} == {refresh.configmap_path(NS, NAME)}
