"""Fetch a provider's price data, and refresh a live pricing ConfigMap.

`pricing.py fetch PROVIDER --region R --out-dir DIR` downloads what the
importers read, from the providers' documented public endpoints:
  aws    region_index.json, then that region's AmazonEC2 offer file
         (streamed to disk; several hundred MB);
  azure  Retail Prices API pages, $filter serviceName 'Virtual Machines',
         armRegionName R, priceType Consumption, following NextPageLink;
  gcp    Cloud Billing Catalog services/6F81-5844-456A/skus pages with an
         API key (--api-key-file), following nextPageToken.

`pricing.py refresh` is what the deploy/pricing-refresher CronJob runs:

  1. GET the ConfigMap (cost-extender/cost-extender-pricing) through the
     in-cluster API (service account token and CA);
  2. fetch (or take --input-dir) and import a new table; Azure and GCP
     keep the vcpu/memory/gpus of the live table (their own facts listings
     need cloud credentials), AWS takes them from the offer file;
  3. diff live -> new with --max-change / --max-removed: over a threshold,
     stop (exit 1) without touching anything;
  4. no price or fact changed: stop (exit 0), the live table stays;
  5. `validate` the new table with the daemon's own loader;
  6. PATCH the ConfigMap (JSON merge patch carrying the resourceVersion
     read in step 1, so an edit made meanwhile is never overwritten: 409,
     exit 5), with annotations saying when and from what.

Every download has a size limit, a timeout, and follows next-page links
only to the host it started from.
"""

import datetime
import json
import os
import ssl
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aws_offer  # noqa: E402
import azure_retail  # noqa: E402
import gcp_catalog  # noqa: E402
import tablebuild  # noqa: E402
import tablediff  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INPUT, EXIT_BINARY, EXIT_API = range(6)
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
MAX_OFFER_BYTES = 4 << 30       # the largest regional EC2 offer is well under 1 GB
MAX_PAGE_BYTES = 64 << 20
MAX_PAGES = 20000
CONFIGMAP_LIMIT = 1000000       # a ConfigMap (the whole object) is at most 1 MiB
# The API verbs the refresher uses, on its one ConfigMap: what the Role in
# deploy/pricing-refresher grants (tests/deploy checks the two agree).
API_VERBS = ("get", "patch")
USER_AGENT = "cost-extender-pricing/0.1 (+https://github.com/cost-extender)"
ANNOTATION_AT = "cost-extender.io/pricing-refreshed-at"
ANNOTATION_SOURCE = "cost-extender.io/pricing-source"


class FetchError(tablebuild.InputError):
    """A download failed; the message names the URL."""


class ApiError(Exception):
    """The Kubernetes API refused or failed a request."""


def log(msg):
    print(f"pricing: {msg}", file=sys.stderr, flush=True)


# -------------------------------------------------------------- download --

def _open(url, timeout, headers=None):
    req = urllib.request.Request(url, headers=dict({"User-Agent": USER_AGENT}, **(headers or {})))
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        body = e.read(300).decode("utf-8", "replace").strip()
        raise FetchError(f"{_redact(url)}: HTTP {e.code} {e.reason}"
                         + (f": {body}" if body else "")) from None
    except (urllib.error.URLError, OSError) as e:
        raise FetchError(f"{_redact(url)}: {getattr(e, 'reason', e)}") from None


def _redact(url):
    """The URL without query values that look like keys."""
    parts = urllib.parse.urlsplit(url)
    q = [(k, "REDACTED" if k.lower() in ("key", "api_key", "apikey") else v)
         for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))


def download(url, path, limit, timeout=300):
    """Stream url to path (atomically), at most limit bytes."""
    tmp = path + ".part"
    total = 0
    with _open(url, timeout) as r, open(tmp, "wb") as f:
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise FetchError(f"{_redact(url)}: larger than {limit >> 20} MiB; refusing")
            f.write(chunk)
    os.replace(tmp, path)
    return total


def get_json(url, timeout=120, limit=MAX_PAGE_BYTES):
    with _open(url, timeout, {"Accept": "application/json"}) as r:
        data = r.read(limit + 1)
    if len(data) > limit:
        raise FetchError(f"{_redact(url)}: response larger than {limit >> 20} MiB")
    try:
        return json.loads(data)
    except ValueError as e:
        raise FetchError(f"{_redact(url)}: not JSON ({e})") from None


def _same_host(url, start):
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(start)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def fetch_aws(region, out_dir, base=aws_offer.PRICING_BASE):
    index = os.path.join(out_dir, "region_index.json")
    download(base + "/offers/v1.0/aws/AmazonEC2/current/region_index.json", index,
             MAX_PAGE_BYTES)
    regions = aws_offer.read_region_index(index)
    if region not in regions:
        raise FetchError(f"region {region!r} is not in the AmazonEC2 region index "
                         f"({', '.join(sorted(regions))})")
    offer = os.path.join(out_dir, f"offer-{region}.json")
    size = download(base + regions[region], offer, MAX_OFFER_BYTES, timeout=1800)
    log(f"fetch aws: {size / 1e6:.1f} MB offer file for {region}")
    return {"offer": offer, "region_index": index}


def fetch_azure(region, out_dir, url=azure_retail.RETAIL_PRICES_URL):
    filt = (f"serviceName eq 'Virtual Machines' and armRegionName eq '{region}' "
            "and priceType eq 'Consumption'")
    start = url + "?" + urllib.parse.urlencode({"$filter": filt})
    pages, nxt = [], start
    while nxt:
        if len(pages) >= MAX_PAGES:
            raise FetchError(f"{start}: more than {MAX_PAGES} pages; refusing")
        if not _same_host(nxt, start):
            raise FetchError(f"NextPageLink {nxt} leaves {start}; refusing to follow it")
        page = get_json(nxt)
        if not isinstance(page, dict) or not isinstance(page.get("Items"), list):
            raise FetchError(f"{nxt}: not a Retail Prices API page")
        pages.append(page)
        nxt = page.get("NextPageLink")
    path = os.path.join(out_dir, f"retail-prices-{region}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(pages, f)
    log(f"fetch azure: {sum(len(p['Items']) for p in pages)} items in {len(pages)} pages")
    return {"prices": [path]}


def fetch_gcp(region, out_dir, api_key_file, url=gcp_catalog.CATALOG_URL):
    if not api_key_file:
        raise FetchError("the Cloud Billing Catalog API needs an API key: give --api-key-file")
    with open(api_key_file, encoding="utf-8") as f:
        key = f.read().strip()
    pages, token = [], None
    while True:
        if len(pages) >= MAX_PAGES:
            raise FetchError(f"{url}: more than {MAX_PAGES} pages; refusing")
        q = {"key": key, "pageSize": "5000", "currencyCode": "USD"}
        if token:
            q["pageToken"] = token
        page = get_json(url + "?" + urllib.parse.urlencode(q))
        if not isinstance(page, dict) or not isinstance(page.get("skus"), list):
            raise FetchError(f"{url}: not a Cloud Billing Catalog skus page")
        pages.append(page)
        token = page.get("nextPageToken")
        if not token:
            break
    path = os.path.join(out_dir, "compute-skus.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(pages, f)
    log(f"fetch gcp: {sum(len(p['skus']) for p in pages)} SKUs in {len(pages)} pages "
        f"(all regions; import-gcp --region {region} picks its own)")
    return {"skus": [path]}


def fetch(args, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    if args.provider == "aws":
        return fetch_aws(args.region, out_dir, args.aws_pricing_url)
    if args.provider == "azure":
        return fetch_azure(args.region, out_dir, args.azure_prices_url)
    return fetch_gcp(args.region, out_dir, args.api_key_file, args.gcp_catalog_url)


def inputs_in(provider, region, directory):
    """The files `fetch` would have written, found in directory."""
    def need(name):
        p = os.path.join(directory, name)
        if not os.path.isfile(p):
            raise tablebuild.InputError(f"{p}: not found (expected what `pricing.py fetch "
                                        f"{provider}` writes)")
        return p
    if provider == "aws":
        return {"offer": need(f"offer-{region}.json"), "region_index": None}
    if provider == "azure":
        return {"prices": [need(f"retail-prices-{region}.json")]}
    return {"skus": [need("compute-skus.json")]}


# ------------------------------------------------------------ kubernetes --

class Kube:
    """The few API calls the refresher makes: GET and PATCH of one ConfigMap."""

    def __init__(self, server=None, token_file=None, ca_file=None):
        if not server:
            host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), \
                os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise ApiError("not in a cluster (KUBERNETES_SERVICE_HOST unset) and no "
                               "--api-server given")
            server = f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}"
            token_file = token_file or os.path.join(SA_DIR, "token")
            ca_file = ca_file or os.path.join(SA_DIR, "ca.crt")
        self.server = server.rstrip("/")
        self.token_file = token_file
        self.ctx = None
        if self.server.startswith("https://"):
            self.ctx = ssl.create_default_context(cafile=ca_file) if ca_file else \
                ssl.create_default_context()

    def request(self, method, path, body=None, content_type=None):
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.token_file:
            # Re-read each time: projected tokens are rotated by the kubelet.
            with open(self.token_file, encoding="utf-8") as f:
                headers["Authorization"] = "Bearer " + f.read().strip()
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type or "application/json"
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60, context=self.ctx) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            detail = e.read(2000).decode("utf-8", "replace")
            try:
                detail = json.loads(detail).get("message", detail)
            except ValueError:
                pass
            raise ApiError(f"{method} {path}: HTTP {e.code}: {detail}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise ApiError(f"{method} {path}: {getattr(e, 'reason', e)}") from None


def configmap_path(namespace, name):
    return (f"/api/v1/namespaces/{urllib.parse.quote(namespace)}/configmaps/"
            f"{urllib.parse.quote(name)}")


# --------------------------------------------------------------- refresh --

def import_new(args, files, live_path, command):
    if args.provider == "aws":
        text, s = aws_offer.import_offer(files["offer"], region=args.region,
                                         region_index=files.get("region_index"),
                                         facts_csv=args.facts, command=command)
    elif args.provider == "azure":
        text, s = azure_retail.import_prices(files["prices"], region=args.region,
                                             skus=args.skus,
                                             facts_table=None if args.skus else live_path,
                                             command=command)
    else:
        text, s = gcp_catalog.import_skus(files["skus"], region=args.region,
                                          machine_types=args.machine_types,
                                          facts_table=None if args.machine_types else live_path,
                                          command=command)
    return text, s


def run_refresh(args):
    import pricing              # validate(); imported here (pricing imports us)
    kube = Kube(args.api_server, args.token_file, args.ca_file)
    path = configmap_path(args.namespace, args.configmap)
    try:
        cm = kube.request("GET", path)
    except ApiError as e:
        log(f"error: reading the live table: {e}")
        return EXIT_API
    live = (cm.get("data") or {}).get(args.key)
    rv = (cm.get("metadata") or {}).get("resourceVersion")
    if live is None:
        log(f"error: ConfigMap {args.namespace}/{args.configmap} has no key {args.key!r}")
        return EXIT_API
    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        live_path = os.path.join(work, "live.yaml")
        with open(live_path, "w", encoding="utf-8") as f:
            f.write(live)
        files = inputs_in(args.provider, args.region, args.input_dir) if args.input_dir \
            else fetch(args, os.path.join(work, "download"))
        command = (f"python3 pricing/tools/pricing.py refresh --provider {args.provider} "
                   f"--region {args.region} (deploy/pricing-refresher)")
        text, summary = import_new(args, files, live_path, command)
        new_path = os.path.join(work, "new.yaml")
        with open(new_path, "w", encoding="utf-8") as f:
            f.write(text)
        result = tablediff.compare(live_path, new_path)
        result["old"] = f"ConfigMap {args.namespace}/{args.configmap} {args.key}"
        result["new"] = f"{args.provider} {args.region} import"
        reasons = tablediff.judge(result, args.max_change, args.max_removed)
        sys.stdout.write(tablediff.render_text(result, reasons, summary_only=False))
        if reasons:
            log("refresh blocked, the live table stays: " + "; ".join(reasons))
            return EXIT_FAILED
        if not (result["added"] or result["removed"] or result["changed"] or result["facts"]):
            log("no price or instance type changed: the live table stays")
            return EXIT_OK
        if len(text.encode()) > CONFIGMAP_LIMIT:
            log(f"refresh blocked: the new table is {len(text.encode())} bytes, more than a "
                "ConfigMap holds")
            return EXIT_FAILED
        status = pricing.validate(new_path, args.binary, out=sys.stdout)
        if status != EXIT_OK:
            log("refresh blocked: the new table does not pass `validate`")
            return status
        if args.dry_run:
            log("dry run: not applied")
            return EXIT_OK
        source = pricing_source(text)
        patch = {"metadata": {"resourceVersion": rv, "annotations": {
            ANNOTATION_AT: datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"),
            ANNOTATION_SOURCE: source[:250]}},
            "data": {args.key: text}}
        try:
            kube.request("PATCH", path, patch, "application/merge-patch+json")
        except ApiError as e:
            log(f"error: applying the new table: {e}"
                + (" (the ConfigMap changed while refreshing; the next run retries)"
                   if "HTTP 409" in str(e) else ""))
            return EXIT_API
    log(f"applied: {summary['types']} instance types to ConfigMap "
        f"{args.namespace}/{args.configmap}; the extenders reload it within a minute")
    return EXIT_OK


def pricing_source(text):
    import pricingtable
    return str(pricingtable.parse(text).data.get("source", ""))


def add_parsers(sub):
    def providers(p):
        p.add_argument("--region", required=True)
        p.add_argument("--aws-pricing-url", default=aws_offer.PRICING_BASE,
                       help="AWS Price List base URL (a mirror; default %(default)s)")
        p.add_argument("--azure-prices-url", default=azure_retail.RETAIL_PRICES_URL)
        p.add_argument("--gcp-catalog-url", default=gcp_catalog.CATALOG_URL)
        p.add_argument("--api-key-file", help="GCP: file holding a Cloud Billing API key")

    p = sub.add_parser("fetch", help="download a region's price data")
    p.add_argument("provider", choices=("aws", "azure", "gcp"))
    p.add_argument("--out-dir", required=True)
    providers(p)

    p = sub.add_parser("refresh", help="fetch, import, diff, validate, apply to a ConfigMap")
    p.add_argument("--provider", required=True, choices=("aws", "azure", "gcp"))
    providers(p)
    p.add_argument("--namespace", default="cost-extender")
    p.add_argument("--configmap", default="cost-extender-pricing")
    p.add_argument("--key", default="pricing.yaml")
    p.add_argument("--max-change", type=float, default=25.0, metavar="PERCENT",
                   help="block when a price moves by more (default %(default)s)")
    p.add_argument("--max-removed", type=float, default=5.0, metavar="PERCENT",
                   help="block when more of the live price points go (default %(default)s)")
    p.add_argument("--input-dir", help="use files `fetch` wrote here instead of downloading")
    p.add_argument("--facts", help="AWS: instance-types CSV for GPU kinds")
    p.add_argument("--skus", help="Azure: resource-SKUs listing (default: facts of the "
                   "live table)")
    p.add_argument("--machine-types", help="GCP: machine-types listing (default: facts of "
                   "the live table)")
    p.add_argument("--work-dir", help="where downloads go (default: $TMPDIR)")
    p.add_argument("--binary", help="cost-extender binary for validate")
    p.add_argument("--dry-run", action="store_true", help="do everything but the PATCH")
    p.add_argument("--api-server", help="API server URL (default: in-cluster)")
    p.add_argument("--token-file", help="bearer token file (default: the service account's)")
    p.add_argument("--ca-file", help="API server CA (default: the service account's)")


def run(args):
    try:
        if args.command == "fetch":
            files = fetch(args, args.out_dir)
            for k, v in files.items():
                for p in (v if isinstance(v, list) else [v]):
                    if p:
                        print(f"{k}: {p}")
            return EXIT_OK
        return run_refresh(args)
    except ApiError as e:
        log(f"error: {e}")
        return EXIT_API
