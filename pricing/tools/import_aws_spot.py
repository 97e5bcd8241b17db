#!/usr/bin/env python3
"""Merge AWS spot prices and interruption rates into a pricing table.

Usage (from the repository root):

    aws ec2 describe-spot-price-history --region us-east-1 \\
        --product-descriptions Linux/UNIX --start-time "$(date -u +%FT%TZ)" \\
        > spot-history.json
    curl -o spot-advisor.json https://spot-bid-advisor.s3.amazonaws.com/spot-advisor-data.json
    /usr/bin/python3 pricing/tools/import_aws_spot.py \\
        --table pricing/tables/aws-us-east-1.yaml \\
        --spot-history spot-history.json --advisor spot-advisor.json \\
        --out my-aws-us-east-1.yaml

Python 3 standard library only (no PyYAML): tables are read and written with
pricing/tools/pricingtable.py, which handles the YAML subset pricing tables
use. The output keeps the input's header comment and its comments on block
keys and instance-type lines; it is written in the generator's layout (one
line per instance type), so comments inside a multi-line instance-type
entry are dropped (reported on stderr).

Inputs
  --spot-history FILE (repeatable): `aws ec2 describe-spot-price-history`
      JSON, {"SpotPriceHistory": [{"AvailabilityZone", "InstanceType",
      "ProductDescription", "SpotPrice", "Timestamp"}, ...]}.
  --advisor FILE: the AWS Spot Instance Advisor data, {"ranges": [{"index",
      "label", "max"}], "spot_advisor": {region: {"Linux": {type: {"s": saving
      %, "r": range index}}}}}.
  At least one of the two is needed.

What is written
  * Per zone: regions.<region>.zones.<zone>.spot = the newest Linux/UNIX
    price for that (type, zone). Rows for other operating systems (Windows,
    SUSE, Red Hat, ...) are ignored: their price includes a licence. If two
    rows have the same newest timestamp, the higher price wins (never make
    spot look cheaper than the data says).
  * Per region: regions.<region>.spot = the MEDIAN of that type's zone
    prices in the region's regular Availability Zones. Median rather than
    minimum because this region price is what a node whose zone has no price
    of its own is charged: the cheapest zone would understate what such a
    node most likely costs. Local Zones and Wavelength Zones keep their own
    zone entries but do not enter the median (their prices follow different
    capacity pools); a region with only such zones uses the median of those.
  * Region of a zone: the zone name up to and including the region's number,
    so us-east-1a -> us-east-1, us-east-1-bos-1a (Local Zone) -> us-east-1,
    us-east-1-wl1-bos-wlz-1 (Wavelength) -> us-east-1, us-gov-west-1a ->
    us-gov-west-1. Zone keys are the zone names as given, which is what EKS
    nodes carry in topology.kubernetes.io/zone.
  * Per region: regions.<region>.spotInterruptionRate from the Spot
    Instance Advisor "r" band, as the midpoint of the band (the advisor gives
    a band of monthly interruption frequency, not a number):
        r=0 "<5%"    -> 0.025     r=3 "15-20%" -> 0.175
        r=1 "5-10%"  -> 0.075     r=4 ">20%"   -> 0.25
        r=2 "10-15%" -> 0.125
    ">20%" has no upper bound; 0.25 is our assumption (the start of the
    band plus half a band width). If the input's labels differ from these,
    the import stops rather than mapping bands it does not understand.
    Rates are written for the regions of --regions, else for the regions seen
    in the spot history, else for the table's defaultRegion.
  * For each imported (type, region) the region's zone list is replaced by
    the imported one (zones missing from the new data are dropped, not kept
    stale); other region fields (onDemand, reserved) are kept. Types and
    regions not in the input are left untouched. Types that are not in the
    table are skipped (listed on stderr): the table needs their vCPUs and
    memory, which spot data does not carry.
  * The top-level `source` gets an "| imported: ..." suffix naming the input
    files and the newest price timestamp, and the header comment gets a
    marked block saying the same; both are replaced, not appended, when the
    import is run again on its own output. `date` keeps the on-demand date.
"""

import argparse
import datetime
import json
import os
import re
import sys
from decimal import Decimal, InvalidOperation

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pricingtable  # noqa: E402  (stdlib-only helper next to this script)

LINUX_PRODUCTS = {"Linux/UNIX", "Linux/UNIX (Amazon VPC)"}

# Spot Instance Advisor band index -> (label, monthly interruption rate taken
# as the band midpoint; see the module docstring).
ADVISOR_BANDS = {
    0: ("<5%", Decimal("0.025")),
    1: ("5-10%", Decimal("0.075")),
    2: ("10-15%", Decimal("0.125")),
    3: ("15-20%", Decimal("0.175")),
    4: (">20%", Decimal("0.25")),
}

IMPORT_MARK = " | imported: "
HEADER_BEGIN = "# --- spot data imported by pricing/tools/import_aws_spot.py ---"
HEADER_END = "# --- end of imported spot data ---"

_ZONE_RE = re.compile(r"(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]+)"
                      r"(?P<rest>[a-z]+|-[a-z0-9][a-z0-9-]*)\Z")


class RefusedInput(Exception):
    """An input we refuse to import (message explains why)."""


def zone_region(zone):
    """(region, is_regular_az) for an AWS zone name, or None if not one."""
    m = _ZONE_RE.match(zone)
    if not m:
        return None
    return m.group("region"), re.fullmatch(r"[a-z]", m.group("rest")) is not None


def parse_timestamp(text):
    ts = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is None:       # the CLI always writes an offset; be safe
        ts = ts.replace(tzinfo=datetime.timezone.utc)
    return ts


def read_spot_history(paths):
    """{(type, zone): (timestamp, price)} of the newest Linux/UNIX prices,
    plus counters for the summary."""
    latest = {}
    stats = {"rows": 0, "other_os": 0, "bad_zone": set()}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        rows = data.get("SpotPriceHistory") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise RefusedInput(f"{path}: no SpotPriceHistory list (is this "
                               "`aws ec2 describe-spot-price-history` output?)")
        for i, row in enumerate(rows):
            stats["rows"] += 1
            try:
                product = row["ProductDescription"]
                itype = row["InstanceType"]
                zone = row["AvailabilityZone"]
                price = Decimal(str(row["SpotPrice"]))
                ts = parse_timestamp(row["Timestamp"])
            except (KeyError, TypeError, ValueError, InvalidOperation) as e:
                raise RefusedInput(f"{path}: SpotPriceHistory[{i}]: {e!r}")
            if product not in LINUX_PRODUCTS:
                stats["other_os"] += 1
                continue
            if zone_region(zone) is None:
                stats["bad_zone"].add(zone)
                continue
            if not price.is_finite() or price < 0:
                raise RefusedInput(f"{path}: SpotPriceHistory[{i}]: bad price {price}")
            key = (itype, zone)
            if key not in latest or (ts, price) > latest[key]:
                latest[key] = (ts, price)
    return latest, stats


def read_advisor(path):
    """{region: {type: rate}} from Spot Instance Advisor data (Linux only)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    ranges = data.get("ranges") if isinstance(data, dict) else None
    advisor = data.get("spot_advisor") if isinstance(data, dict) else None
    if not isinstance(ranges, list) or not isinstance(advisor, dict):
        raise RefusedInput(f"{path}: expected {{'ranges': [...], 'spot_advisor': {{...}}}}")
    band_rate = {}
    for r in ranges:
        idx, label = r.get("index"), str(r.get("label", "")).replace(" ", "")
        if idx not in ADVISOR_BANDS or ADVISOR_BANDS[idx][0] != label:
            raise RefusedInput(
                f"{path}: range {r!r} is not one of the bands this tool maps "
                f"({ {i: b[0] for i, b in ADVISOR_BANDS.items()} }); refusing "
                "to guess its interruption rate")
        band_rate[idx] = ADVISOR_BANDS[idx][1]
    rates = {}
    for region, by_os in advisor.items():
        linux = (by_os or {}).get("Linux") or {}
        for itype, rec in linux.items():
            r = rec.get("r") if isinstance(rec, dict) else None
            if r not in band_rate:
                raise RefusedInput(f"{path}: {region}/Linux/{itype}: unknown "
                                   f"range index {r!r}")
            rates.setdefault(region, {})[itype] = band_rate[r]
    return rates


def merge(doc, latest, rates, rate_regions):
    """Apply the imported data to doc.data in place; return a summary dict."""
    types = doc.data["instanceTypes"]
    by_type_region = {}
    missing = set()
    for (itype, zone), (_, price) in latest.items():
        if itype not in types:
            missing.add(itype)
            continue
        region, regular = zone_region(zone)
        by_type_region.setdefault((itype, region), {})[zone] = (price, regular)

    for (itype, region), zones in sorted(by_type_region.items()):
        entry = types[itype]
        regions = entry.setdefault("regions", {})
        reg = dict(regions.get(region) or {})
        reg["zones"] = {z: {"spot": p} for z, (p, _) in sorted(zones.items())}
        regular = [p for p, is_az in zones.values() if is_az]
        reg["spot"] = pricingtable.median(regular or [p for p, _ in zones.values()])
        regions[region] = reg

    rated = 0
    for region in sorted(rate_regions):
        for itype, rate in sorted(rates.get(region, {}).items()):
            if itype not in types:
                continue
            regions = types[itype].setdefault("regions", {})
            reg = dict(regions.get(region) or {})
            reg["spotInterruptionRate"] = rate
            regions[region] = reg
            rated += 1
    return {"priced": len(by_type_region), "missing": sorted(missing),
            "rated": rated}


def record_provenance(doc, history_paths, latest, advisor_path, advisor_date,
                      rate_regions):
    """Write where the imported figures come from into source and header."""
    parts, lines = [], []
    if history_paths:
        newest = max((ts for ts, _ in latest.values()), default=None)
        oldest = min((ts for ts, _ in latest.values()), default=None)
        names = ", ".join(os.path.basename(p) for p in history_paths)
        when = (f"newest price {newest.strftime('%Y-%m-%dT%H:%M:%SZ')}"
                if newest else "no Linux/UNIX prices")
        parts.append(f"spot prices from aws ec2 describe-spot-price-history "
                     f"({names}; {when})")
        lines.append(f"# Spot prices: aws ec2 describe-spot-price-history output "
                     f"({names}), Linux/UNIX rows,")
        if newest:
            lines.append(f"#   newest price per type and zone, prices from "
                         f"{oldest.strftime('%Y-%m-%dT%H:%M:%SZ')} to "
                         f"{newest.strftime('%Y-%m-%dT%H:%M:%SZ')};")
        lines.append("#   region spot = median of the regular Availability Zones.")
    if advisor_path:
        name = os.path.basename(advisor_path)
        parts.append(f"interruption rates from AWS Spot Instance Advisor data "
                     f"({name}, {advisor_date})")
        lines.append(f"# Interruption rates: AWS Spot Instance Advisor data ({name}, "
                     f"read {advisor_date}),")
        lines.append(f"#   regions {', '.join(sorted(rate_regions)) or '(none)'}; band "
                     "midpoints <5%->0.025, 5-10%->0.075, 10-15%->0.125,")
        lines.append("#   15-20%->0.175, >20%->0.25 (an assumption: the band has no "
                     "upper bound).")

    src = doc.data.get("source", "")
    src = src.split(IMPORT_MARK)[0]
    doc.data["source"] = src + IMPORT_MARK + "; ".join(parts)

    # Replace an earlier import's block instead of stacking a second one.
    header = doc.header
    if HEADER_BEGIN in header:
        start = header.index(HEADER_BEGIN)
        end = header.index(HEADER_END, start) if HEADER_END in header[start:] else start
        del header[start:end + 1]
    tidy = []
    for line in header:                 # no runs of blank comment-less lines
        if line == "" and (not tidy or tidy[-1] == ""):
            continue
        tidy.append(line)
    while tidy and tidy[-1] == "":
        tidy.pop()
    header[:] = tidy + ([""] if tidy else [])
    header += [HEADER_BEGIN] + lines + [HEADER_END]


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Merge `aws ec2 describe-spot-price-history` output and/or "
                    "AWS Spot Instance Advisor data into a pricing table.")
    ap.add_argument("--table", required=True, help="pricing table to start from")
    ap.add_argument("--out", required=True,
                    help="table to write ('-' for stdout; may equal --table)")
    ap.add_argument("--spot-history", action="append", default=[],
                    metavar="FILE", help="describe-spot-price-history JSON (repeatable)")
    ap.add_argument("--advisor", metavar="FILE", help="Spot Instance Advisor JSON")
    ap.add_argument("--advisor-date", metavar="YYYY-MM-DD",
                    help="when the advisor data was downloaded (it carries no "
                         "date of its own; default: today, UTC)")
    ap.add_argument("--regions", metavar="R1,R2",
                    help="regions to take interruption rates for")
    args = ap.parse_args(argv)
    if not args.spot_history and not args.advisor:
        ap.error("give --spot-history and/or --advisor")
    advisor_date = args.advisor_date or datetime.datetime.now(
        datetime.timezone.utc).strftime("%Y-%m-%d")
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", advisor_date):
        ap.error("--advisor-date must be YYYY-MM-DD")

    def log(msg):
        print(f"import_aws_spot: {msg}", file=sys.stderr)

    try:
        doc = pricingtable.load(args.table)
        errors = pricingtable.check_table(doc.data)
        if errors:
            raise RefusedInput(f"{args.table} is not a valid table:\n  "
                               + "\n  ".join(errors))
        latest, stats = read_spot_history(args.spot_history)
        rates = read_advisor(args.advisor) if args.advisor else {}
        if args.regions:
            rate_regions = {r.strip() for r in args.regions.split(",") if r.strip()}
        elif latest:
            rate_regions = {zone_region(z)[0] for _, z in latest}
        elif doc.data.get("defaultRegion"):
            rate_regions = {doc.data["defaultRegion"]}
        elif args.advisor:
            raise RefusedInput("no --regions, no spot history and no defaultRegion: "
                               "which regions' interruption rates should be used?")
        else:
            rate_regions = set()
        summary = merge(doc, latest, rates, rate_regions)
        record_provenance(doc, args.spot_history, latest, args.advisor,
                          advisor_date, rate_regions)
        errors = pricingtable.check_table(doc.data)
        if errors:
            raise RefusedInput("the merged table would be invalid:\n  "
                               + "\n  ".join(errors))
    except (RefusedInput, pricingtable.TableError, OSError, ValueError) as e:
        log(f"error: {e}")
        return 3            # an input was refused (pricing/README.md, "Exit status")

    if args.spot_history:
        log(f"{stats['rows']} spot price rows, {stats['other_os']} for other operating "
            f"systems ignored, {len(latest)} (type, zone) prices, "
            f"{summary['priced']} (type, region) pairs written")
    if stats["bad_zone"]:
        log(f"ignored rows with unrecognised zone names: {', '.join(sorted(stats['bad_zone']))}")
    if summary["missing"]:
        log(f"skipped {len(summary['missing'])} instance types that are not in the "
            f"table: {', '.join(summary['missing'])}")
    if args.advisor:
        log(f"interruption rates written for {summary['rated']} (type, region) pairs "
            f"in {', '.join(sorted(rate_regions)) or 'no region'}")
    dropped = pricingtable.dropped_comments(doc)
    if dropped:
        log(f"dropped {len(dropped)} comments inside multi-line instance-type entries")
    text = pricingtable.dump(doc)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
