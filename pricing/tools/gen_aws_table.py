#!/usr/bin/env python3
"""Generate pricing/tables/aws-us-east-1.yaml from the public data in pricing/data.

Usage (from the repository root):

    /usr/bin/python3 pricing/tools/gen_aws_table.py --out pricing/tables/aws-us-east-1.yaml

Python 3 standard library only. Inputs (each names its source and date in
its `#` header lines, which are copied into the table's header comment):

* pricing/data/aws-us-east-1-on-demand.csv -- on-demand list price per type
* pricing/data/aws-instance-types.csv      -- vCPUs, memory (MiB), GPUs

Every instance type with an on-demand price is written, with its vCPUs,
memory and GPUs from the facts file. A few priced types have no facts row;
FACT_OVERRIDES below supplies them where the public AWS documentation states
them plainly; the rest are skipped and listed on stderr (a type without
vCPU/memory cannot be a valid table entry, and guessing them would be worse
than the unknownInstanceTypes default).

No spot prices are written: AWS publishes none that stay true for long (they
move by the hour and differ by zone). spot.fallbackRatio carries an explicit,
labelled estimate instead; import_aws_spot.py replaces it with real data.

The output is deterministic (sorted, no timestamps) so that
tests/pricing_tools checks that the committed table is exactly what this
script produces.
"""

import argparse
import csv
import os
import re
import sys
import textwrap
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pricingtable  # noqa: E402  (stdlib-only helper next to this script)

TOOLS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.normpath(os.path.join(TOOLS_DIR, "..", ".."))
DEFAULT_PRICES = os.path.join(REPO_ROOT, "pricing", "data", "aws-us-east-1-on-demand.csv")
DEFAULT_FACTS = os.path.join(REPO_ROOT, "pricing", "data", "aws-instance-types.csv")
COMMAND = ("/usr/bin/python3 pricing/tools/gen_aws_table.py "
           "--out pricing/tables/aws-us-east-1.yaml")

REGION = "us-east-1"

# Priced types missing from aws-instance-types.csv, filled in from the AWS
# specification tables. Only types whose figures AWS states plainly are
# listed; memory is in MiB (GiB * 1024). Not listed, so skipped: cr1.8xlarge,
# dl1.24xlarge (Gaudi accelerators), f1.* (FPGAs), g2.* and the u-*tb1
# high-memory hosts -- either accelerators our `gpus` field does not model or
# retired types nobody schedules pods on; we would rather leave them to the
# unknownInstanceTypes default than hand-type figures we have not checked.
AWS_SPECS_URL = "https://docs.aws.amazon.com/ec2/latest/instancetypes/"
P3_URL = "https://aws.amazon.com/ec2/instance-types/p3/"
FACT_OVERRIDES = {
    # P3: NVIDIA Tesla V100 (16 GB), 8 vCPU / 61 GiB per GPU.
    "p3.2xlarge": {"vcpu": 8, "memory_mib": 61 * 1024, "gpus": 1,
                   "gpu_kind": "nvidia-v100", "source": P3_URL},
    "p3.8xlarge": {"vcpu": 32, "memory_mib": 244 * 1024, "gpus": 4,
                   "gpu_kind": "nvidia-v100", "source": P3_URL},
    "p3.16xlarge": {"vcpu": 64, "memory_mib": 488 * 1024, "gpus": 8,
                    "gpu_kind": "nvidia-v100", "source": P3_URL},
    # P2 (previous generation): NVIDIA K80 GPUs.
    "p2.xlarge": {"vcpu": 4, "memory_mib": 61 * 1024, "gpus": 1,
                  "gpu_kind": "nvidia-k80", "source": AWS_SPECS_URL},
    "p2.8xlarge": {"vcpu": 32, "memory_mib": 488 * 1024, "gpus": 8,
                   "gpu_kind": "nvidia-k80", "source": AWS_SPECS_URL},
    "p2.16xlarge": {"vcpu": 64, "memory_mib": 732 * 1024, "gpus": 16,
                    "gpu_kind": "nvidia-k80", "source": AWS_SPECS_URL},
    # G3 (previous generation): NVIDIA Tesla M60 GPUs.
    "g3s.xlarge": {"vcpu": 4, "memory_mib": 31232, "gpus": 1,  # 30.5 GiB
                   "gpu_kind": "nvidia-m60", "source": AWS_SPECS_URL},
    "g3.4xlarge": {"vcpu": 16, "memory_mib": 122 * 1024, "gpus": 1,
                   "gpu_kind": "nvidia-m60", "source": AWS_SPECS_URL},
    "g3.8xlarge": {"vcpu": 32, "memory_mib": 244 * 1024, "gpus": 2,
                   "gpu_kind": "nvidia-m60", "source": AWS_SPECS_URL},
    "g3.16xlarge": {"vcpu": 64, "memory_mib": 488 * 1024, "gpus": 4,
                    "gpu_kind": "nvidia-m60", "source": AWS_SPECS_URL},
    # I3 bare metal: 72 logical processors, 512 GiB.
    "i3.metal": {"vcpu": 72, "memory_mib": 512 * 1024, "gpus": 0,
                 "gpu_kind": "", "source": AWS_SPECS_URL},
}

# AWS's "General purpose" category is the M, T and A1 families (plus Mac,
# which is sold as dedicated hosts only and has no row in the price file).
GENERAL_PURPOSE = re.compile(r"(m[0-9]|t[0-9]|a1)")

SPOT_FALLBACK_RATIO = Decimal("0.35")
SPOT_FALLBACK_SOURCE = (
    "ESTIMATE, not a published price. AWS says Spot is 'up to 90% off "
    "On-Demand'; real savings vary by type, zone and hour. We assume a typical "
    "~65% saving, i.e. spot = 0.35 x on-demand, for types without a spot "
    "price. Replace it with real prices from `aws ec2 "
    "describe-spot-price-history` via pricing/tools/import_aws_spot.py.")


def read_commented_csv(path):
    """Rows of a CSV whose first lines are `#` comments; returns
    (comment lines without '#', list of row dicts)."""
    header, body = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") and not body:
                header.append(line[1:].strip())
            else:
                body.append(line)
    return header, list(csv.DictReader(body))


def display_path(path):
    """Repository-relative path for the header (stable across checkouts)."""
    rel = os.path.relpath(os.path.abspath(path), REPO_ROOT)
    return path if rel.startswith("..") else rel.replace(os.sep, "/")


def gpu_kind(row):
    """`nvidia-a10g` style kind from the facts row ('' when no GPU)."""
    maker = row["gpu_manufacturer"].strip().lower()
    name = row["gpu_name"].strip().lower()
    return f"{maker}-{name}" if maker and name else name


def build(prices_path, facts_path):
    """Return (Document, list of skipped instance types)."""
    price_header, price_rows = read_commented_csv(prices_path)
    fact_header, fact_rows = read_commented_csv(facts_path)
    facts = {r["instance_type"]: r for r in fact_rows}

    source_line = next((h for h in price_header if h.startswith("Source:")), None)
    if source_line is None:
        raise SystemExit(f"{prices_path}: no '# Source:' header line")
    m = re.search(r"\b([0-9]{4}-[0-9]{2}-[0-9]{2})(T[0-9:]+Z)?", source_line)
    if m is None:
        raise SystemExit(f"{prices_path}: no date in the Source header line")
    price_date = m.group(1)

    entries, comments, skipped = {}, {}, []
    for row in price_rows:
        name = row["instance_type"].strip()
        price = Decimal(row["on_demand_usd_per_hour"].strip())
        if name in facts:
            f = facts[name]
            vcpu, mem = int(f["vcpu"]), int(f["memory_mib"])
            # gpu_count is 0 for fractional-GPU types (g6f); they get no
            # gpuKind either, since a whole-GPU request cannot land on them.
            gpus = int(f["gpu_count"]) if f["gpu_count"].strip() else 0
            kind = gpu_kind(f) if gpus > 0 else ""
        elif name in FACT_OVERRIDES:
            o = FACT_OVERRIDES[name]
            vcpu, mem, gpus, kind = o["vcpu"], o["memory_mib"], o["gpus"], o["gpu_kind"]
            comments[("instanceTypes", name)] = {
                "before": [],
                "inline": f"# not in {os.path.basename(facts_path)}; "
                          f"vcpu/memory/gpus from {o['source']}"}
        else:
            skipped.append(name)
            continue
        entry = {"vcpu": vcpu, "memory": f"{mem}Mi"}
        if gpus > 0:
            entry["gpus"] = gpus
            entry["gpuKind"] = kind
        entry["onDemand"] = price
        entries[name] = entry

    general = [e["onDemand"] for n, e in entries.items() if GENERAL_PURPOSE.match(n)]
    default_price = pricingtable.median(general)

    header = [
        f"# AWS EC2 pricing table, region {REGION}, USD per hour.",
        "#",
        "# GENERATED FILE, do not edit by hand. Regenerate with:",
        f"#   {COMMAND}",
        "# (tests/pricing_tools fails when this file differs from the generator's output.)",
        "#",
        f"# On-demand prices: {display_path(prices_path)}",
    ] + [f"#   {h}" for h in price_header] + [
        f"# vCPU, memory, GPUs: {display_path(facts_path)}",
    ] + [f"#   {h}" for h in fact_header] + [
        "#   (this file gives no date of its own)",
        f"#   {len(FACT_OVERRIDES)} priced types missing from it are filled in by hand in",
        "#   gen_aws_table.py (FACT_OVERRIDES, AWS instance type specifications);",
    ] + textwrap.wrap(f"{len(skipped)} priced types without known facts are left out: "
                      + ", ".join(sorted(skipped)) + ".",
                      width=86, initial_indent="#   ", subsequent_indent="#   ",
                      break_on_hyphens=False) + [
        "#",
        "# gpus counts whole GPUs as scheduled through nvidia.com/gpu or amd.com/gpu;",
        "# Inferentia/Trainium accelerators (aws.amazon.com/neuron) are not GPUs here,",
        "# and fractional-GPU types (g6f) have gpus 0.",
        "#",
        "# Spot: no spot prices are listed. AWS spot prices change by the hour and by",
        "# zone, so a fixed list would be wrong within days; spot.fallbackRatio below",
        "# is an estimate. Import real figures with pricing/tools/import_aws_spot.py.",
    ]
    data = {
        "apiVersion": pricingtable.API_VERSION,
        "kind": pricingtable.KIND,
        "currency": "USD",
        "source": "AWS EC2 on-demand list prices (Linux, shared tenancy), "
                  f"{REGION}: " + source_line[len("Source:"):].strip().rstrip("."),
        "date": price_date,
        "defaultRegion": REGION,
        "spot": {
            "fallbackRatio": SPOT_FALLBACK_RATIO,
            "fallbackSource": SPOT_FALLBACK_SOURCE,
        },
        "unknownInstanceTypes": {
            "policy": "default-price",
            "onDemand": default_price,
        },
        "instanceTypes": entries,
    }
    comments[("unknownInstanceTypes", "onDemand")] = {
        "before": [
            f"# The median on-demand price of the {len(general)} general-purpose types",
            "# (M, T and A1 families, every size) listed below. Deliberately not",
            "# a cheap price: a node of a type this table does not know should not",
            "# look like a bargain to the scheduler.",
        ],
        "inline": None,
    }
    return pricingtable.Document(data, header, comments), skipped


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="table to write ('-' for stdout)")
    ap.add_argument("--prices", default=DEFAULT_PRICES,
                    help="on-demand price CSV (default: %(default)s)")
    ap.add_argument("--facts", default=DEFAULT_FACTS,
                    help="instance type facts CSV (default: %(default)s)")
    args = ap.parse_args(argv)

    doc, skipped = build(args.prices, args.facts)
    errors = pricingtable.check_table(doc.data)
    if errors:
        raise SystemExit("generated table is invalid:\n  " + "\n  ".join(errors))
    text = pricingtable.dump(doc)
    if skipped:
        print(f"gen_aws_table: skipped {len(skipped)} priced instance types with no "
              f"vCPU/memory facts: {', '.join(sorted(skipped))}", file=sys.stderr)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        print(f"gen_aws_table: wrote {len(doc.data['instanceTypes'])} instance types "
              f"to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
