"""Import an AWS Price List bulk offer file (AmazonEC2) into a pricing table.

Input: the offer file of one region, as AWS publishes it (see
pricing/README.md, "Importers", for the download commands), or the global
AmazonEC2 index.json with --region. It is streamed (jsonstream.py): a
400 MB regional file is read in constant memory.

What is imported, per instance type of the region:
  * products with productFamily "Compute Instance" or "Compute Instance
    (bare metal)" whose attributes say operatingSystem Linux, tenancy
    Shared, preInstalledSw NA, capacitystatus Used, licenseModel "No
    License required" (and marketoption OnDemand where the file has it):
    the plain Linux on-demand instance a Kubernetes node runs on. Windows,
    RHEL, SUSE, SQL Server images, dedicated instances and hosts, and
    capacity-reservation line items are left out;
  * its price: terms.OnDemand[sku], the priceDimensions with unit "Hrs"
    starting at 0, in the currency asked for (USD);
  * facts from the same product: vcpu, memory ("8 GiB"), gpu (count). The
    offer file does not name the GPU model: gpuKind comes from --facts (the
    instance-types CSV in pricing/data, which also corrects GPU counts such
    as g6f's fractional GPUs) or else from AWS_GPU_KINDS below.

Refused with a message naming the file and the SKU: a SKU listed twice in
products with different attributes, a SKU with two different hourly
prices, two SKUs for one instance type with different prices, no product
or no price for the region, and any JSON error (truncated download).
"""

import collections
import os
import re
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_aws_table  # noqa: E402
import tablebuild  # noqa: E402
from jsonstream import open_json  # noqa: E402
from tablebuild import input_error  # noqa: E402

PRICING_BASE = "https://pricing.us-east-1.amazonaws.com"
REGION_INDEX_URL = PRICING_BASE + "/offers/v1.0/aws/AmazonEC2/current/region_index.json"

FAMILIES = {"Compute Instance", "Compute Instance (bare metal)"}
WANTED = [("operatingSystem", "Linux"), ("tenancy", "Shared"), ("preInstalledSw", "NA"),
          ("capacitystatus", "Used"), ("licenseModel", "No License required")]
META_KEYS = ("formatVersion", "disclaimer", "offerCode", "version", "publicationDate")

# GPU model by instance family, from AWS's accelerated-computing instance
# type pages (https://aws.amazon.com/ec2/instance-types/#Accelerated_Computing),
# for offer-file imports without --facts. Families not listed get an empty
# gpuKind and a warning.
AWS_GPU_KINDS = {
    "p2": "nvidia-k80", "p3": "nvidia-v100", "p3dn": "nvidia-v100",
    "p4d": "nvidia-a100", "p4de": "nvidia-a100", "p5": "nvidia-h100",
    "p5e": "nvidia-h200", "p5en": "nvidia-h200", "g3": "nvidia-m60", "g3s": "nvidia-m60",
    "g4dn": "nvidia-t4", "g4ad": "amd-radeon-pro-v520", "g5": "nvidia-a10g",
    "g5g": "nvidia-t4g", "g6": "nvidia-l4", "g6e": "nvidia-l40s", "gr6": "nvidia-l4",
}

_MEMORY = re.compile(r"([0-9][0-9,]*(?:\.[0-9]+)?) GiB\Z")


def read_region_index(path):
    """{regionCode: currentVersionUrl} of the AmazonEC2 region index."""
    data = tablebuild.load_json(path)
    regions = data.get("regions") if isinstance(data, dict) else None
    if not isinstance(regions, dict) or not regions:
        raise input_error(path, None, "no 'regions' object: is this the AmazonEC2 "
                          "region_index.json?")
    out = {}
    for code, r in regions.items():
        url = r.get("currentVersionUrl") if isinstance(r, dict) else None
        if not isinstance(url, str) or not url.startswith("/"):
            raise input_error(path, f"region {code!r}", "no currentVersionUrl")
        out[code] = url
    return out


def offer_url(index_path, region):
    regions = read_region_index(index_path)
    if region not in regions:
        raise input_error(index_path, f"region {region!r}",
                          "not in the region index; regions: " + ", ".join(sorted(regions)))
    return PRICING_BASE + regions[region]


def _facts(attrs, path, sku):
    """(instanceType, vcpu, memory MiB, gpus) of a product, or a reason."""
    itype = attrs.get("instanceType")
    if not isinstance(itype, str) or not itype:
        return "without an instanceType"
    vcpu = attrs.get("vcpu")
    mem = _MEMORY.match(str(attrs.get("memory", "")))
    if not (isinstance(vcpu, str) and vcpu.isdigit() and int(vcpu) > 0) or not mem:
        return "without vcpu/memory facts"
    mib = int(Decimal(mem.group(1).replace(",", "")) * 1024)
    gpu = str(attrs.get("gpu", "0"))
    return (itype, int(vcpu), mib, int(gpu) if gpu.isdigit() else 0)


def _hourly_price(offers, path, sku, currency):
    """The one hourly on-demand price in terms.OnDemand[sku], or None."""
    if not isinstance(offers, dict):
        raise input_error(path, f"terms.OnDemand SKU {sku}", "not an object")
    found = {}
    for term_key, term in offers.items():
        dims = term.get("priceDimensions") if isinstance(term, dict) else None
        if not isinstance(dims, dict):
            raise input_error(path, f"terms.OnDemand SKU {sku} term {term_key}",
                              "no priceDimensions object")
        for rate, d in dims.items():
            if not isinstance(d, dict) or d.get("unit") not in ("Hrs", "Hours"):
                continue
            if str(d.get("beginRange", "0")) not in ("0", "0.0"):
                continue
            ppu = d.get("pricePerUnit")
            if not isinstance(ppu, dict) or currency not in ppu:
                raise input_error(path, f"terms.OnDemand SKU {sku} rate {rate}",
                                  f"no pricePerUnit.{currency}")
            found[rate] = tablebuild.decimal_price(ppu[currency], path,
                                                   f"terms.OnDemand SKU {sku} rate {rate}")
    prices = sorted(set(found.values()))
    if len(prices) > 1:
        raise input_error(path, f"terms.OnDemand SKU {sku}",
                          "has different hourly prices: "
                          + ", ".join(f"{r} {p}" for r, p in sorted(found.items())))
    return prices[0] if prices else None


def read_offer(path, region, currency="USD"):
    """Stream the offer file. Returns (meta, notes, {sku: facts + region},
    {sku: price}, stats)."""
    stats = collections.Counter()
    meta, notes, products, prices = {}, [], {}, {}
    products_seen = False
    f, s = open_json(path)
    with f:
        s.begin_object()
        for key in s.members():
            if key == "products":
                s.begin_object()
                for sku in s.members():
                    rec = s.read_value()
                    stats["products"] += 1
                    if not isinstance(rec, dict) or not isinstance(rec.get("attributes"), dict):
                        raise input_error(path, f"products SKU {sku}",
                                          "not a product record (no attributes object)")
                    if rec.get("productFamily") not in FAMILIES:
                        continue
                    attrs = rec["attributes"]
                    rc = attrs.get("regionCode")
                    stats["region " + str(rc)] += 1
                    if region is not None and rc != region:
                        continue
                    off = next((f"{k} {attrs.get(k)!r}" for k, v in WANTED
                                if attrs.get(k) != v), None)
                    if off is None and attrs.get("marketoption", "OnDemand") != "OnDemand":
                        off = f"marketoption {attrs.get('marketoption')!r}"
                    if off:
                        stats["not plain Linux on-demand"] += 1
                        continue
                    facts = _facts(attrs, path, sku)
                    if isinstance(facts, str):
                        stats["skip " + facts] += 1
                        continue
                    facts = facts + (rc,)
                    if sku in products and products[sku] != facts:
                        raise input_error(path, f"products SKU {sku}",
                                          "listed twice with different attributes")
                    products[sku] = facts
                products_seen = True
            elif key == "terms":
                s.begin_object()
                for term_type in s.members():
                    if term_type != "OnDemand":
                        continue            # Reserved etc.: skipped unread
                    s.begin_object()
                    for sku in s.members():
                        if products_seen and sku not in products:
                            continue
                        price = _hourly_price(s.read_value(), path, sku, currency)
                        stats["on-demand SKUs read"] += 1
                        if price is None:
                            continue
                        if sku in prices and prices[sku] != price:
                            raise input_error(path, f"terms.OnDemand SKU {sku}",
                                              f"listed twice with different prices "
                                              f"({prices[sku]} and {price})")
                        prices[sku] = price
            elif key in META_KEYS:
                meta[key] = s.read_value()
            elif key == "_comment":
                notes = tablebuild.notes_of(s.read_value(), path)
        s.end()
    if not stats["products"] and "offerCode" not in meta:
        raise input_error(path, None, "no products and no offerCode: not an AWS Price "
                          "List offer file")
    if meta.get("offerCode") not in (None, "AmazonEC2"):
        raise input_error(path, "offerCode", f"is {meta['offerCode']!r}, expected "
                          "'AmazonEC2' (the EC2 offer file)")
    return meta, notes, products, prices, stats


def _gpu_facts(facts_csv):
    if not facts_csv:
        return {}, []
    header, rows = gen_aws_table.read_commented_csv(facts_csv)
    out = {}
    for r in rows:
        count = int(r["gpu_count"]) if r.get("gpu_count", "").strip() else 0
        out[r["instance_type"]] = (count, gen_aws_table.gpu_kind(r) if count else "")
    return out, header


def general_purpose(name):
    return bool(gen_aws_table.GENERAL_PURPOSE.match(name))


def _entries(offer, products, priced, gpu_facts):
    """{type: entry}, {reason: [types]}, [GPU types of unknown model]: one
    entry per instance type; two SKUs of one type must agree on the price."""
    by_type = {}
    for sku in sorted(priced):
        itype, vcpu, mib, gpus, _ = products[sku]
        if itype in by_type and by_type[itype][0] != priced[sku]:
            other = by_type[itype][1]
            raise input_error(offer, f"instance type {itype}",
                              f"SKUs {other} ({by_type[itype][0]}) and {sku} "
                              f"({priced[sku]}) are both Linux on-demand, with "
                              "different prices")
        by_type.setdefault(itype, (priced[sku], sku, vcpu, mib, gpus))
    entries, skipped = {}, collections.defaultdict(list)
    skipped["with no on-demand price in the file"] = sorted(
        {products[s][0] for s in products if s not in priced} - set(by_type))
    unknown_kind = []
    for itype, (price, _sku, vcpu, mib, gpus) in sorted(by_type.items()):
        if price == 0:
            skipped["with a zero on-demand price"].append(itype)
            continue
        kind = ""
        if itype in gpu_facts:
            gpus, kind = gpu_facts[itype]
        elif gpus:
            kind = AWS_GPU_KINDS.get(itype.split(".")[0], "")
            if not kind:
                unknown_kind.append(itype)
        entries[itype] = tablebuild.entry(vcpu, mib, price, gpus, kind)
    return entries, skipped, unknown_kind


def import_offer(offer, *, region=None, region_index=None, facts_csv=None, date=None,
                 source=None, currency="USD", command="", log=None):
    """Returns (table text, summary dict)."""
    if region_index and region:
        offer_url(region_index, region)         # the region must exist
    meta, notes, products, prices, stats = read_offer(offer, region, currency)
    regions = sorted({p[4] for p in products.values()})
    if region is None:
        if len(regions) != 1:
            raise input_error(offer, None, "covers regions " + ", ".join(map(str, regions))
                              + ": give --region" if regions else
                              "has no Linux on-demand instance products")
        region = regions[0]
    seen = sorted(k[7:] for k in stats if k.startswith("region "))
    if not products:
        raise input_error(offer, f"region {region}",
                          f"no Linux on-demand instance products for this region "
                          f"({stats['products']} products read; regions in the file: "
                          f"{', '.join(seen) or 'none'})")
    priced = {sku: p for sku, p in prices.items() if sku in products}
    if not priced:
        raise input_error(offer, f"region {region}",
                          f"{len(products)} Linux on-demand products but no on-demand "
                          "prices in terms.OnDemand (truncated or filtered download?)")
    gpu_facts, facts_header = _gpu_facts(facts_csv)
    entries, skipped, unknown_kind = _entries(offer, products, priced, gpu_facts)
    pub = str(meta.get("publicationDate") or "")
    date = date or (pub[:10] if re.match(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", pub) else None)
    if not date:
        raise input_error(offer, "publicationDate", "missing: give --date")
    desc = (f"offerCode {meta.get('offerCode')}, formatVersion {meta.get('formatVersion')}, "
            f"version {meta.get('version')}, publicationDate {pub or '?'}")
    source = tablebuild.with_date(source, f"AWS Price List API offer file AmazonEC2 version "
                                  f"{meta.get('version')} (published {pub}), {region}, Linux "
                                  "shared-tenancy on-demand", date)
    inputs = [("Price List offer file", offer,
               [desc, f"{stats['products']} products read, {len(products)} of them Linux "
                f"on-demand instances in {region}, {len(entries)} instance types priced."],
               notes)]
    if facts_csv:
        inputs.append(("GPU counts and kinds", facts_csv,
                       ["(vCPU and memory come from the offer file)"] + facts_header, []))
    rules = [
        "# Imported: productFamily 'Compute Instance' / 'Compute Instance (bare metal)' with",
        "# operatingSystem Linux, tenancy Shared, preInstalledSw NA, capacitystatus Used,",
        "# licenseModel 'No License required'; price = terms.OnDemand, unit Hrs.",
    ]
    rules += tablebuild.unknown_gpu_lines(unknown_kind, "; give --facts")
    doc = tablebuild.build(
        title=f"AWS EC2 pricing table, region {region}, {currency} per hour.",
        command=command, inputs=inputs, rules=rules, skipped=skipped,
        currency=currency, source=source, date=date, region=region,
        entries=entries, general_purpose=general_purpose,
        general_purpose_text="general-purpose types (M, T and A1 families)",
        spot_block={"fallbackRatio": tablebuild.SPOT_FALLBACK_RATIO,
                    "fallbackSource": gen_aws_table.SPOT_FALLBACK_SOURCE},
        spot_note=["# Spot: AWS offer files carry no spot prices; spot.fallbackRatio below is",
                   "# an estimate. Merge real figures with `pricing.py import-aws-spot`."])
    text = tablebuild.render(doc)
    summary = {"region": region, "types": len(entries), "products": stats["products"],
               "skipped": {k: v for k, v in skipped.items() if v}, "unknown_gpu_kind": unknown_kind}
    return text, summary

