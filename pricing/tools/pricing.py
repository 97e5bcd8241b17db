#!/usr/bin/env python3
"""pricing: make, compare, check and refresh cost-extender pricing tables.

    python3 pricing/tools/pricing.py COMMAND [options]     (--help per command)

Commands
  import-aws        AWS Price List offer file (EC2, one region) -> table
  aws-offer-url     the offer file URL of a region, from the region index
  import-aws-spot   merge spot price history / Spot Advisor data into a table
  import-aws-csv    the CSV snapshot in pricing/data -> tables/aws-us-east-1.yaml
  import-azure      Azure Retail Prices API pages + VM SKU facts -> table
  import-gcp        Cloud Billing Catalog SKUs + machine types -> table
  diff OLD NEW      price-by-price comparison; --max-change makes it a gate
  validate FILE     the daemon's own loader (cost-extender --check) on a table
  regenerate        rebuild the shipped tables from pricing/data (--check)
  fetch             download a region's price data from the provider
  refresh           fetch, import, diff against the live ConfigMap, validate,
                    apply: what the deploy/pricing-refresher CronJob runs

Exit status (every command): 0 done / no problem found; 1 the check failed
(diff over a threshold, table invalid, shipped table out of date, refresh
blocked); 2 bad command line; 3 an input file or download is unusable (the
message names the file and the record); 4 cost-extender binary not found or
not runnable; 5 Kubernetes API error (refresh).

Python 3 standard library only. See pricing/README.md.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aws_offer  # noqa: E402
import azure_retail  # noqa: E402
import gcp_catalog  # noqa: E402
import gen_aws_table  # noqa: E402
import import_aws_spot  # noqa: E402
import pricingtable  # noqa: E402
import tablebuild  # noqa: E402
import tablediff  # noqa: E402
from jsonstream import JSONStreamError  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INPUT, EXIT_BINARY, EXIT_API = range(6)

REPO = tablebuild.REPO_ROOT
TABLES = os.path.join(REPO, "pricing", "tables")

# The shipped tables and the import that makes each (with --out
# pricing/tables/<name>). `regenerate --check` (run by tests/pricing_tools)
# fails when a committed table differs from what its import produces now.
_US_WEST_2_SOURCE = (
    "AWS EC2 on-demand list prices (Linux, shared tenancy) of us-west-2 for the T3, M5, C5, "
    "R5, M6i, C6i, R6i, G4dn, G5 and P3 families, which AWS prices the same as us-east-1: "
    "the values of the AWS Price List API snapshot of 2026-07-20 "
    "(pricing/data/aws-us-east-1-on-demand.csv) in a sample us-west-2 offer file, not a "
    "download of the us-west-2 offer")
_EU_WEST_1_SOURCE = (
    "AWS EC2 on-demand list prices (Linux, shared tenancy) of eu-west-1 for the T3, M5 and "
    "C5 families as known to the cost-extender developers on 2026-12-02 (AWS EC2 On-Demand "
    "pricing page), in a sample offer file; not a dated download: verify with import-aws on "
    "the real offer file")
_AZURE_SOURCE = (
    "Azure Retail Prices API, Linux pay-as-you-go, {region}, via initialOnDemandPrices in "
    "Azure/karpenter-provider-azure pkg/providers/pricing/zz_generated.pricing.go (stamped "
    "2023-12-18T14:34:50Z, commit 0499866a), reshaped into Retail Prices API pages")
_GCP_SOURCE = (
    "Google Cloud Billing Catalog API list prices for {region}, Core/Ram unit prices solved "
    "from the per-machine-type prices in pricing.yml of "
    "github.com/Cyclenerd/google-cloud-pricing-cost-calculator (generated "
    "2025-03-06T03:53:56Z, commit 0166a59e)")
SHIPPED_TABLES = {
    "aws-us-east-1.yaml": ["import-aws-csv"],
    "aws-us-west-2.yaml": [
        "import-aws", "--offer", "pricing/data/aws/offer-us-west-2.json",
        "--region-index", "pricing/data/aws/region_index.json", "--region", "us-west-2",
        "--facts", "pricing/data/aws-instance-types.csv", "--date", "2026-07-20",
        "--source", _US_WEST_2_SOURCE],
    "aws-eu-west-1.yaml": [
        "import-aws", "--offer", "pricing/data/aws/offer-eu-west-1.json",
        "--region-index", "pricing/data/aws/region_index.json", "--region", "eu-west-1",
        "--facts", "pricing/data/aws-instance-types.csv", "--date", "2026-12-02",
        "--source", _EU_WEST_1_SOURCE],
    "azure-eastus.yaml": [
        "import-azure", "--prices", "pricing/data/azure/retail-prices-eastus.json",
        "--skus", "pricing/data/azure/vm-skus.json", "--region", "eastus",
        "--date", "2023-12-18", "--source", _AZURE_SOURCE.format(region="eastus")],
    "azure-westeurope.yaml": [
        "import-azure", "--prices", "pricing/data/azure/retail-prices-westeurope.json",
        "--skus", "pricing/data/azure/vm-skus.json", "--region", "westeurope",
        "--date", "2023-12-18", "--source", _AZURE_SOURCE.format(region="westeurope")],
    "gcp-us-central1.yaml": [
        "import-gcp", "--skus", "pricing/data/gcp/compute-skus.json",
        "--machine-types", "pricing/data/gcp/machine-types-us-central1-a.json",
        "--region", "us-central1", "--date", "2025-03-06",
        "--source", _GCP_SOURCE.format(region="us-central1")],
    "gcp-europe-west1.yaml": [
        "import-gcp", "--skus", "pricing/data/gcp/compute-skus.json",
        "--machine-types", "pricing/data/gcp/machine-types-europe-west1-b.json",
        "--region", "europe-west1", "--date", "2025-03-06",
        "--source", _GCP_SOURCE.format(region="europe-west1")],
}


# --------------------------------------------------------------- parser --

def _common_import(p, region_required=True):
    p.add_argument("--region", required=region_required, help="provider region code")
    p.add_argument("--out", required=True, help="table to write ('-' for stdout)")
    p.add_argument("--date", help="YYYY-MM-DD the data was read (default: from the input, "
                   "else today)")
    p.add_argument("--source", help="text for the table's `source` field (default: "
                   "describes the inputs)")
    p.add_argument("--currency", default="USD", help="currency to import (default %(default)s)")


def parser():
    ap = argparse.ArgumentParser(
        prog="pricing.py", description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 ok, 1 check failed, 2 usage, 3 bad input, 4 no "
               "cost-extender binary, 5 Kubernetes API error. See pricing/README.md.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("import-aws", help="AWS Price List offer file -> table")
    p.add_argument("--offer", required=True, help="AmazonEC2 offer file (index.json)")
    p.add_argument("--region-index", help="region_index.json, to check --region against")
    p.add_argument("--facts", help="instance-types CSV for GPU kinds "
                   "(pricing/data/aws-instance-types.csv)")
    _common_import(p, region_required=False)

    # Listed for --help; main() hands its arguments to import_aws_spot.py.
    sub.add_parser("import-aws-spot", add_help=False,
                   help="merge AWS spot price history / Spot Advisor data into a table")

    p = sub.add_parser("aws-offer-url", help="URL of a region's EC2 offer file")
    p.add_argument("--region-index", required=True)
    p.add_argument("--region", required=True)

    p = sub.add_parser("import-azure", help="Azure Retail Prices pages -> table")
    p.add_argument("--prices", required=True, nargs="+", metavar="FILE",
                   help="Retail Prices API pages (a page, or a list of pages, per file)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--skus", help="resource SKUs listing (az vm list-skus --output json)")
    g.add_argument("--facts-table", help="take vcpu/memory/gpus from this pricing table")
    _common_import(p)

    p = sub.add_parser("import-gcp", help="Cloud Billing Catalog SKUs -> table")
    p.add_argument("--skus", required=True, nargs="+", metavar="FILE",
                   help="services/6F81-5844-456A/skus pages")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--machine-types", help="gcloud compute machine-types list --format=json")
    g.add_argument("--facts-table", help="take vcpu/memory/gpus from this pricing table")
    _common_import(p)

    p = sub.add_parser("diff", help="compare two tables price by price")
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--max-change", type=float, metavar="PERCENT",
                   help="exit 1 when a price moved by more than PERCENT either way")
    p.add_argument("--max-removed", type=float, metavar="PERCENT",
                   help="exit 1 when more than PERCENT of the old price points are gone")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--summary-only", action="store_true", help="only the summary line")

    p = sub.add_parser("validate", help="check a table with the daemon's own loader")
    p.add_argument("file")
    p.add_argument("--binary", help="cost-extender binary (default: $COST_EXTENDER_BINARY, "
                   "bin/cost-extender, cost-extender on PATH)")

    p = sub.add_parser("regenerate", help="rebuild the shipped tables from pricing/data")
    p.add_argument("tables", nargs="*", metavar="NAME",
                   help="tables to rebuild (default: all): " + ", ".join(SHIPPED_TABLES))
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 when a committed table differs")

    csv_parser(sub)
    import refresh  # here: its options join this parser
    refresh.add_parsers(sub)
    return ap


PASSTHROUGH = {"import-aws-spot": import_aws_spot.main}


def err(msg):
    print(f"pricing: {msg}", file=sys.stderr)


# ---------------------------------------------------------------- imports --

def import_text(args, command=None):
    """(table text, stderr summary) of an import-* command."""
    command = command or tablebuild.command_line(args.command, args.raw)
    if args.command == "import-aws-csv":
        doc, skipped = gen_aws_table.build(args.prices, args.facts)
        return tablebuild.render(doc), (f"import-aws-csv: {len(doc.data['instanceTypes'])} "
                                        f"instance types ({len(skipped)} without facts)")
    date = tablebuild.parse_date(args.date)
    if args.command == "import-aws":
        text, s = aws_offer.import_offer(args.offer, region=args.region,
                                         region_index=args.region_index, facts_csv=args.facts,
                                         date=date, source=args.source,
                                         currency=args.currency, command=command)
        what = f"{s['products']} products read; {s['types']} instance types for {s['region']}"
    elif args.command == "import-azure":
        text, s = azure_retail.import_prices(args.prices, region=args.region, skus=args.skus,
                                             facts_table=args.facts_table, date=date,
                                             source=args.source, currency=args.currency,
                                             command=command)
        what = (f"{s['items']} items read; {s['types']} VM sizes ({s['spot']} with spot) "
                f"for {s['region']}")
    else:
        text, s = gcp_catalog.import_skus(args.skus, region=args.region,
                                          machine_types=args.machine_types,
                                          facts_table=args.facts_table, date=date,
                                          source=args.source, currency=args.currency,
                                          command=command)
        what = (f"{s['skus']} SKUs read; {s['types']} machine types ({s['spot']} with "
                f"spot) for {s['region']}")
    left = sum(len(v) for v in s["skipped"].values())
    if left:
        what += f"; {left} left out (listed in the table header)"
    return text, f"{args.command}: {what}"


def run_import(args):
    text, summary = import_text(args)
    tablebuild.write(text, args.out)
    print(f"{summary}; wrote {args.out}", file=sys.stderr)
    return EXIT_OK


def csv_parser(sub):
    p = sub.add_parser("import-aws-csv", help="pricing/data CSVs -> tables/aws-us-east-1.yaml")
    p.add_argument("--prices", default=gen_aws_table.DEFAULT_PRICES)
    p.add_argument("--facts", default=gen_aws_table.DEFAULT_FACTS)
    p.add_argument("--out", default=os.path.join(TABLES, "aws-us-east-1.yaml"))


# ------------------------------------------------------------- validate --

def find_binary(given=None):
    candidates = [given, os.environ.get("COST_EXTENDER_BINARY"),
                  os.path.join(REPO, "bin", "cost-extender"),
                  shutil.which("cost-extender"), "/usr/local/bin/cost-extender"]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def validate(path, binary=None, out=sys.stdout):
    """EXIT_OK when both our checks and the daemon's loader accept path."""
    status = EXIT_OK
    try:
        problems = pricingtable.check_table(pricingtable.load(path).data)
        for p in problems:
            print(f"{tablebuild.display_path(path)}: {p}", file=out)
        if problems:
            status = EXIT_FAILED
    except pricingtable.TableError as e:
        # Outside the subset the tools write; the daemon has the last word.
        print(f"{tablebuild.display_path(path)}: note: not in the tools' YAML subset ({e}); "
              "checking with the daemon only", file=out)
    except (OSError, UnicodeDecodeError) as e:
        print(f"{tablebuild.display_path(path)}: cannot read: {e}", file=out)
        return EXIT_INPUT
    exe = find_binary(binary)
    if exe is None:
        print("pricing: validate: no cost-extender binary (build it with `make`, or give "
              "--binary or $COST_EXTENDER_BINARY)", file=out)
        return EXIT_BINARY
    with tempfile.TemporaryDirectory() as empty:
        # Only the table is checked: no kubeconfig, no service account.
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["HOME"] = empty
        try:
            p = subprocess.run([exe, "--check", "--pricing", path, "--service-account-dir",
                                empty], capture_output=True, text=True, timeout=120, env=env)
        except (OSError, subprocess.TimeoutExpired) as e:
            print(f"pricing: validate: cannot run {exe}: {e}", file=out)
            return EXIT_BINARY
    for line in (p.stdout + p.stderr).splitlines():
        print(f"cost-extender --check: {line}", file=out)
    if p.returncode != 0:
        return EXIT_FAILED
    return status


# ----------------------------------------------------------- regenerate --

def shipped_args(name):
    argv = list(SHIPPED_TABLES[name])
    if argv[0] != "import-aws-csv":
        argv += ["--out", f"pricing/tables/{name}"]
    args = parser().parse_args(argv)
    args.raw = argv[1:]
    return args


def regenerate(names, check):
    unknown = [n for n in names if n not in SHIPPED_TABLES]
    if unknown:
        err(f"regenerate: not a shipped table: {', '.join(unknown)} "
            f"(shipped: {', '.join(SHIPPED_TABLES)})")
        return EXIT_USAGE
    status = EXIT_OK
    cwd = os.getcwd()
    os.chdir(REPO)          # the manifest's paths are repository-relative
    try:
        for name in names or SHIPPED_TABLES:
            args = shipped_args(name)
            text, summary = import_text(args, ["python3", "pricing/tools/pricing.py",
                                               "regenerate", name])
            path = os.path.join(TABLES, name)
            if check:
                with open(path, encoding="utf-8") as f:
                    same = f.read() == text
                print(f"{name}: {'up to date' if same else 'DIFFERS from its import'}")
                if not same:
                    status = EXIT_FAILED
            else:
                tablebuild.write(text, path)
                print(f"{name}: {summary}")
    finally:
        os.chdir(cwd)
    if status:
        err("regenerate: run `python3 pricing/tools/pricing.py regenerate` and commit the "
            "tables with the data or code change")
    return status


# ------------------------------------------------------------------ main --

def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in PASSTHROUGH:
        return PASSTHROUGH[argv[0]](argv[1:])
    ap = parser()
    args = ap.parse_args(argv)
    args.raw = argv[1:]
    import refresh
    try:
        if args.command.startswith("import-"):
            return run_import(args)
        if args.command == "aws-offer-url":
            print(aws_offer.offer_url(args.region_index, args.region))
            return EXIT_OK
        if args.command == "diff":
            return tablediff.main_diff(args)
        if args.command == "validate":
            return validate(args.file, args.binary)
        if args.command == "regenerate":
            return regenerate(args.tables, args.check)
        return refresh.run(args)
    except JSONStreamError as e:
        err(f"error: {tablebuild.display_path(e.name)}:{e.line}:{e.column}: {e.message}")
    except tablebuild.InputError as e:
        err(f"error: {e}")
    except SystemExit as e:
        if isinstance(e.code, str):       # gen_aws_table refuses an input this way
            err(f"error: {e.code}")
        else:
            raise
    except OSError as e:
        err(f"error: {e.filename or ''}: {e.strerror or e}")
    return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
