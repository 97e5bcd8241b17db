"""Import Azure Retail Prices API pages into a pricing table.

Inputs (download commands in pricing/README.md, "Importers"):
  * --prices FILE...: pages of https://prices.azure.com/api/retail/prices,
    {"Items": [...], "NextPageLink": ..., "Count": n}; a file may also hold
    a JSON list of such pages (what `pricing.py fetch` writes);
  * --skus FILE: the VM sizes' facts, a resource-SKUs listing: the output of
    `az vm list-skus` (a JSON list) or the Microsoft.Compute/skus REST
    response ({"value": [...]}), each with capabilities vCPUs, MemoryGB,
    GPUs; or --facts-table TABLE to take vcpu/memory/gpus from an existing
    pricing table (for a refresh without Azure credentials).

An item is a price of the table when serviceName is "Virtual Machines",
armRegionName is the region, type is "Consumption" (pay-as-you-go; not
Reservation or DevTestConsumption), unitOfMeasure "1 Hour", its productName
does not name Windows (Linux price, no licence) and it is not a "Low
Priority" meter (retired; not the Spot offer). Items whose skuName or
meterName ends in "Spot" are the spot price of armSkuName; the others its
on-demand price. isPrimaryMeterRegion false items (copies for secondary
meter regions) are left out. retailPrice is the price used.

Refused, naming the file and the item (meterId, else meterName): two
different prices for one VM size and offer, another currency than the one
asked for, items that are not objects, no items for the region.
"""

import collections
import os
import re
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tablebuild  # noqa: E402
from tablebuild import input_error  # noqa: E402

RETAIL_PRICES_URL = "https://prices.azure.com/api/retail/prices"

# GPU model by VM size name, from the Microsoft Learn GPU size pages
# (https://learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/).
AZURE_GPU_KINDS = [
    (re.compile(r"_T4_"), "nvidia-t4"),
    (re.compile(r"_A100_"), "nvidia-a100"),
    (re.compile(r"_A10_"), "nvidia-a10"),
    (re.compile(r"_H100_"), "nvidia-h100"),
    (re.compile(r"_H200_"), "nvidia-h200"),
    (re.compile(r"_V620_"), "amd-radeon-pro-v620"),
    (re.compile(r"_MI300X_"), "amd-mi300x"),
    (re.compile(r"^Standard_N[CD][0-9]+r?s_v[23]$"), "nvidia-v100"),
]


def _item_name(item, i):
    return f"Items[{i}] (meterId {item['meterId']})" if item.get("meterId") else \
        f"Items[{i}] (meterName {item.get('meterName')!r})"


def read_prices(paths, region, currency="USD"):
    """({(armSkuName, 'onDemand'|'spot'): (price, record name, path)},
    notes, stats)."""
    prices, notes, stats = {}, [], collections.Counter()
    regions = collections.Counter()
    for path in paths:
        data = tablebuild.load_json(path)
        if isinstance(data, dict):
            notes += tablebuild.notes_of(data.get("_comment"), path)
        for p, page in enumerate(tablebuild.pages_of(path, data, "Items",
                                                         "an Azure Retail Prices API page")):
            items = page.get("Items")
            if not isinstance(items, list):
                raise input_error(path, f"page {p}", "Items is not a list")
            for i, item in enumerate(items):
                name = _item_name(item, i) if isinstance(item, dict) else f"Items[{i}]"
                if not isinstance(item, dict):
                    raise input_error(path, name, "not an object")
                stats["items"] += 1
                if item.get("serviceName") != "Virtual Machines":
                    continue
                regions[item.get("armRegionName")] += 1
                if item.get("armRegionName") != region:
                    continue
                reason = None
                if item.get("type") != "Consumption":
                    reason = "not pay-as-you-go"
                elif item.get("unitOfMeasure") != "1 Hour":
                    reason = "not per hour"
                elif "Windows" in str(item.get("productName", "")):
                    reason = "Windows"
                elif str(item.get("skuName", "")).endswith("Low Priority") or \
                        str(item.get("meterName", "")).endswith("Low Priority"):
                    reason = "Low Priority"
                elif item.get("isPrimaryMeterRegion") is False:
                    reason = "secondary meter region"
                if reason:
                    stats[reason] += 1
                    continue
                sku = item.get("armSkuName")
                if not isinstance(sku, str) or not sku:
                    stats["no armSkuName"] += 1
                    continue
                if item.get("currencyCode") != currency:
                    raise input_error(path, name, f"currencyCode {item.get('currencyCode')!r}, "
                                      f"expected {currency!r}")
                price = tablebuild.decimal_price(item.get("retailPrice"), path, name,
                                                 "retailPrice")
                spot = str(item.get("skuName", "")).endswith("Spot") or \
                    str(item.get("meterName", "")).endswith("Spot")
                key = (sku, "spot" if spot else "onDemand")
                if key in prices and prices[key][0] != price:
                    old = prices[key]
                    raise input_error(path, name,
                                      f"{sku} {key[1]} costs {price} here and {old[0]} in "
                                      f"{tablebuild.display_path(old[2])} {old[1]}: two "
                                      "different prices for one VM size")
                prices.setdefault(key, (price, name, path))
                stats["spot" if spot else "on-demand"] += 1
    if not any(k[1] == "onDemand" for k in prices):
        seen = ", ".join(sorted(str(r) for r in regions)) or "none"
        raise input_error(paths[0] if len(paths) == 1 else ", ".join(paths), f"region {region}",
                          f"no Linux pay-as-you-go Virtual Machines prices for this region "
                          f"({stats['items']} items read; regions in the input: {seen})")
    return prices, notes, stats


def read_skus(path):
    """{VM size: (vcpu, memory MiB, gpus)} from a resource-SKUs listing."""
    data = tablebuild.load_json(path)
    notes = []
    if isinstance(data, dict):
        notes = tablebuild.notes_of(data.get("_comment"), path)
        data = data.get("value")
    if not isinstance(data, list):
        raise input_error(path, None, "not a resource-SKUs listing (a JSON list, or "
                          "{\"value\": [...]})")
    out = {}
    for i, rec in enumerate(data):
        if not isinstance(rec, dict) or rec.get("resourceType") != "virtualMachines":
            continue
        name = rec.get("name")
        caps = {c.get("name"): c.get("value") for c in rec.get("capabilities") or []
                if isinstance(c, dict)}
        try:
            vcpu = int(caps["vCPUs"])
            mib = int(Decimal(str(caps["MemoryGB"])) * 1024)
            gpus = int(caps.get("GPUs") or 0)
        except (KeyError, ValueError, ArithmeticError):
            raise input_error(path, f"[{i}] {name}", "capabilities vCPUs/MemoryGB/GPUs "
                              "missing or not numbers") from None
        facts = (vcpu, mib, gpus)
        if name in out and out[name] != facts:
            raise input_error(path, f"[{i}] {name}", "listed twice with different capabilities")
        out[name] = facts
    return out, notes


def gpu_kind(name):
    return next((kind for pat, kind in AZURE_GPU_KINDS if pat.search(name)), "")


def general_purpose(name):
    return bool(re.match(r"Standard_[BD][0-9]", name))


def import_prices(prices_paths, *, region, skus=None, facts_table=None, date=None,
                  source=None, currency="USD", command=""):
    prices, notes, stats = read_prices(prices_paths, region, currency)
    if skus:
        facts, sku_notes = read_skus(skus)
        facts = {n: (v, m, g, gpu_kind(n) if g else "") for n, (v, m, g) in facts.items()}
    elif facts_table:
        facts, sku_notes = tablebuild.facts_from_table(facts_table), []
    else:
        raise tablebuild.InputError("give --skus (a resource-SKUs listing) or --facts-table")
    entries, skipped = {}, collections.defaultdict(list)
    unknown_kind = []
    for (sku, cap) in sorted(prices):
        if cap != "onDemand":
            continue
        if sku not in facts:
            skipped["without vCPU/memory facts in the SKU listing"].append(sku)
            continue
        vcpu, mib, gpus, kind = facts[sku]
        if gpus and not kind:
            unknown_kind.append(sku)
        spot = prices.get((sku, "spot"), (None,))[0]
        entries[sku] = tablebuild.entry(vcpu, mib, prices[(sku, cap)][0], gpus, kind, spot)
    spot_only = sorted(s for s, c in prices if c == "spot" and (s, "onDemand") not in prices)
    skipped["with a spot price but no pay-as-you-go price"] = spot_only
    if not date:
        date = tablebuild.today()
    source = tablebuild.with_date(source, f"Azure Retail Prices API ({RETAIL_PRICES_URL}), "
                                  f"Virtual Machines Linux pay-as-you-go, {region}, read {date}",
                                  date)
    inputs = [("Retail Prices API pages", p,
               [f"{stats['items']} items read." if i == 0 else "(see the first file)"],
               notes if i == 0 else []) for i, p in enumerate(prices_paths)]
    if skus:
        inputs.append(("VM sizes (resource SKUs listing)", skus,
                       ["vCPUs, MemoryGB (GiB) and GPUs capabilities"], sku_notes))
    else:
        inputs.append(("VM sizes: vcpu, memory, gpus of the existing table", facts_table,
                       [], []))
    rules = [
        "# Imported: serviceName 'Virtual Machines', type Consumption, unitOfMeasure '1 Hour',",
        "# not Windows (productName), not 'Low Priority'; retailPrice. Meters ending in 'Spot'",
        f"# are spot prices. {stats['on-demand']} pay-as-you-go and {stats['spot']} spot "
        f"prices matched; left out: {stats['Windows']} Windows, {stats['Low Priority']} Low "
        "Priority,",
        f"# {stats['not pay-as-you-go']} reservation/dev-test, "
        f"{stats['secondary meter region']} secondary-meter-region items.",
    ]
    rules += tablebuild.unknown_gpu_lines(unknown_kind, "")
    with_spot = sum(1 for e in entries.values() if "spot" in e)
    doc = tablebuild.build(
        title=f"Microsoft Azure virtual machine pricing table, region {region}, "
              f"{currency} per hour.",
        command=command, inputs=inputs, rules=rules, skipped=skipped,
        currency=currency, source=source, date=date, region=region,
        entries=entries, general_purpose=general_purpose,
        general_purpose_text="B and D series sizes",
        spot_block={"fallbackRatio": tablebuild.SPOT_FALLBACK_RATIO,
                    "fallbackSource": tablebuild.spot_fallback_source(
                        "Replace it with the '... Spot' meters of the Azure Retail Prices API.")},
        spot_note=[f"# Spot: {with_spot} of {len(entries)} sizes have a Spot meter price in the "
                   "input; the others", "# use spot.fallbackRatio below, an estimate."])
    text = tablebuild.render(doc)
    return text, {"region": region, "types": len(entries), "items": stats["items"],
                  "spot": with_spot, "skipped": {k: v for k, v in skipped.items() if v}}

