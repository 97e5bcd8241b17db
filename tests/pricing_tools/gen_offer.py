#!/usr/bin/python3
"""Write a large synthetic AWS Price List offer file (AmazonEC2 shape).

    gen_offer.py OUT.json --mb 200

For the streaming tests (tests/pricing_tools/test_jsonstream.py) and the
memory benchmark (tests/bench/bench_pricing.py). The records have the
attributes and nesting of the real file; the mix is like a real region's:
each instance type is sold in many variants (operating systems, tenancies,
capacity-reservation states, pre-installed software), of which exactly one
is the plain Linux on-demand product the importer keeps, and every SKU has
an on-demand term and several reserved terms (the bulk of a real file).

The kept products are instance types "gen<k>.<size>", priced
0.001 * (k + 1) * size_factor: expected() returns {type: price}.
The file is written record by record; the generator itself stays small.
"""

import argparse
import json
import os
from decimal import Decimal

SIZES = [("large", 1), ("xlarge", 2), ("2xlarge", 4), ("4xlarge", 8)]
VARIANTS = [(os_, ten, cap, sw)
            for os_ in ("Linux", "Windows", "RHEL", "SUSE")
            for ten in ("Shared", "Dedicated", "Host")
            for cap in ("Used", "UnusedCapacityReservation", "AllocatedCapacityReservation")
            for sw in ("NA", "SQL Std")]
RESERVED_TERMS = [("4NA7Y494T4", "1yr", "standard", "No Upfront"),
                  ("HU7G6KETJZ", "1yr", "standard", "Partial Upfront"),
                  ("6QCMYABX3D", "1yr", "standard", "All Upfront"),
                  ("BPH4J8HBKS", "3yr", "standard", "No Upfront"),
                  ("38NPMPTW36", "3yr", "standard", "Partial Upfront"),
                  ("NQ3QZPMQV9", "3yr", "standard", "All Upfront")]


def price(k, factor):
    return Decimal("0.001") * (k + 1) * factor


def product(sku, itype, vcpu, mib, variant):
    os_, ten, cap, sw = variant
    return {"sku": sku, "productFamily": "Compute Instance", "attributes": {
        "enhancedNetworkingSupported": "Yes", "intelTurboAvailable": "Yes",
        "memory": f"{mib // 1024} GiB", "dedicatedEbsThroughput": "Up to 4750 Mbps",
        "vcpu": str(vcpu), "capacitystatus": cap, "locationType": "AWS Region",
        "storage": "EBS only", "instanceFamily": "General purpose", "operatingSystem": os_,
        "intelAvx2Available": "Yes", "physicalProcessor": "Intel Xeon Platinum 8259 (Cascade Lake)",
        "clockSpeed": "3.1 GHz", "ecu": "10", "networkPerformance": "Up to 10 Gigabit",
        "servicename": "Amazon Elastic Compute Cloud", "instanceType": itype, "tenancy": ten,
        "usagetype": f"BoxUsage:{itype}", "normalizationSizeFactor": "4",
        "intelAvxAvailable": "Yes", "processorFeatures": "Intel AVX; Intel AVX2; Intel AVX512",
        "servicecode": "AmazonEC2",
        "licenseModel": "No License required", "currentGeneration": "Yes", "preInstalledSw": sw,
        "location": "US East (N. Virginia)", "processorArchitecture": "64-bit",
        "marketoption": "OnDemand", "regionCode": "us-east-1", "operation": "RunInstances"}}


def dims(sku, code, rate, p, desc):
    return {f"{sku}.{code}.{rate}": {
        "unit": "Hrs", "endRange": "Inf", "description": desc, "appliesTo": [],
        "rateCode": f"{sku}.{code}.{rate}", "beginRange": "0",
        "pricePerUnit": {"USD": f"{p:.10f}"}}}


def generate(path, target_bytes):
    """Writes the file; returns {kept type: Decimal price}."""
    expected = {}
    skus = []                 # (sku, price) for the terms
    with open(path, "w", encoding="utf-8") as f:
        f.write('{\n "formatVersion": "v1.0",\n "disclaimer": "synthetic test data",\n'
                ' "offerCode": "AmazonEC2",\n "version": "20991231000000",\n'
                ' "publicationDate": "2099-12-31T00:00:00Z",\n "products": {\n')
        first, k, n = True, 0, 0
        # A product record plus its terms is about 4.5 KB in this shape.
        while f.tell() * 3.0 < target_bytes:
            for size, factor in SIZES:
                itype = f"gen{k}.{size}"
                for v, variant in enumerate(VARIANTS):
                    sku = f"G{n:015d}"
                    n += 1
                    p = price(k, factor) * (1 if v == 0 else 2 + v % 3)
                    if v == 0:          # Linux, Shared, Used, NA: the one kept
                        expected[itype] = p
                    f.write(("" if first else ",\n") + json.dumps(sku) + ": "
                            + json.dumps(product(sku, itype, 2 * factor, 8192 * factor, variant)))
                    first = False
                    skus.append((sku, p))
            k += 1
        f.write('\n },\n "terms": {\n  "OnDemand": {\n')
        for i, (sku, p) in enumerate(skus):
            term = {f"{sku}.JRTCKXETXF": {
                "priceDimensions": dims(sku, "JRTCKXETXF", "6YS6EN2CT7", p,
                                        f"${p} per On Demand Linux Instance Hour"),
                "sku": sku, "effectiveDate": "2099-01-01T00:00:00Z",
                "offerTermCode": "JRTCKXETXF", "termAttributes": {}}}
            f.write(("" if i == 0 else ",\n") + json.dumps(sku) + ": " + json.dumps(term))
        f.write('\n  },\n  "Reserved": {\n')
        for i, (sku, p) in enumerate(skus):
            terms = {}
            for code, length, cls, opt in RESERVED_TERMS:
                terms[f"{sku}.{code}"] = {
                    "priceDimensions": dims(sku, code, "6YS6EN2CT7", p * Decimal("0.6"),
                                            "Linux/UNIX (Amazon VPC), reserved instance applied"),
                    "sku": sku, "effectiveDate": "2099-01-01T00:00:00Z", "offerTermCode": code,
                    "termAttributes": {"LeaseContractLength": length, "OfferingClass": cls,
                                       "PurchaseOption": opt}}
            f.write(("" if i == 0 else ",\n") + json.dumps(sku) + ": " + json.dumps(terms))
        f.write('\n  }\n }\n}\n')
    return expected


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--mb", type=float, default=200)
    args = ap.parse_args()
    expected = generate(args.out, int(args.mb * 1e6))
    print(f"{args.out}: {os.path.getsize(args.out) / 1e6:.1f} MB, {len(expected)} kept "
          "instance types")


if __name__ == "__main__":
    main()
