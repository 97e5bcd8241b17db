"""Import Google Cloud Billing Catalog SKUs (Compute Engine) into a table.

Compute Engine does not sell machine types; it bills each machine family's
vCPUs and memory by the hour ("N2 Instance Core running in Americas",
"N2 Instance Ram running in Americas") and attached GPUs per GPU ("Nvidia
L4 GPU running in Americas"), with "Spot Preemptible ..." SKUs for Spot
VMs. So a machine type's hourly price is arithmetic over its facts:

    price = guestCpus x Core price
          + memoryMb / 1024 x Ram price (per GiB hour)
          + sum over accelerators: guestAcceleratorCount x GPU price

done for the on-demand SKUs (usageType OnDemand) and again for the spot
ones (usageType Preemptible) when the family has both. Decimal arithmetic,
so n2-standard-4 in us-central1 is 4 x 0.031611 + 16 x 0.004237 = 0.194236
exactly, which is what Google's price pages show.

Inputs (download commands in pricing/README.md, "Importers"):
  * --skus FILE...: pages of services/6F81-5844-456A/skus ({"skus": [...],
    "nextPageToken": ...}), or a list of such pages;
  * --machine-types FILE: `gcloud compute machine-types list --format=json`
    for one zone of the region (a JSON list), or the REST machineTypes.list
    response ({"items": [...]}); or --facts-table TABLE for a refresh that
    keeps the vcpu/memory/gpus of an existing table (then GPU counts are
    known but not their model, so GPU types are left out).

SKUs are matched by description (family prefix, then Core/Ram, see
FAMILIES) and by serviceRegions containing the region; commitments, custom
and sole-tenant SKUs do not match and are ignored. Where a SKU for one
region and a SKU for several ("... running in Americas") both match, the
one for fewer regions is the price. Shared-core types
(isSharedCpu: e2-micro/small/medium, f1-micro, g1-small) are billed by
other rules and left out, as are types whose family has no Core or no Ram
SKU in the input.

Refused, naming the file and skuId: two SKUs for one family, component,
usage and set of regions with different prices, an unknown usage unit, a currency other
than the one asked for, no Compute Engine SKUs for the region.
"""

import collections
import os
import re
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tablebuild  # noqa: E402
from tablebuild import input_error  # noqa: E402

COMPUTE_SERVICE_ID = "6F81-5844-456A"
CATALOG_URL = f"https://cloudbilling.googleapis.com/v1/services/{COMPUTE_SERVICE_ID}/skus"

# Description prefix (after "Spot Preemptible ") -> machine family. From the
# Catalog's Compute Engine SKU descriptions.
FAMILIES = {
    "E2 Instance": "e2", "N1 Predefined Instance": "n1", "N2 Instance": "n2",
    "N2D AMD Instance": "n2d", "N4 Instance": "n4", "C2D AMD Instance": "c2d",
    "C3 Instance": "c3", "C3D Instance": "c3d", "C4 Instance": "c4",
    "C4A Arm Instance": "c4a", "T2D AMD Instance": "t2d", "T2A Arm Instance": "t2a",
    "Compute optimized": "c2", "M3 Memory-optimized Instance": "m3",
    "A2 Instance": "a2", "A3 Instance": "a3", "G2 Instance": "g2", "H3 Instance": "h3",
    "Z3 Instance": "z3",
}
# GPU SKU description prefix -> accelerator type (machine types' facts).
GPUS = {
    "Nvidia Tesla T4": "nvidia-tesla-t4", "Nvidia Tesla V100": "nvidia-tesla-v100",
    "Nvidia Tesla P100": "nvidia-tesla-p100", "Nvidia Tesla P4": "nvidia-tesla-p4",
    "Nvidia Tesla A100 80GB": "nvidia-a100-80gb", "Nvidia Tesla A100": "nvidia-tesla-a100",
    "Nvidia L4": "nvidia-l4", "Nvidia H100 80GB": "nvidia-h100-80gb",
}
UNITS = {"Core": "h", "Ram": "GiBy.h", "GPU": "h"}
USAGE = {"OnDemand": "onDemand", "Preemptible": "spot"}

_DESC = re.compile(r"(?P<spot>Spot Preemptible )?(?P<prefix>.+?) (?P<part>Core|Ram) running in ")
_GPU_DESC = re.compile(r"(?P<spot>Spot Preemptible )?(?P<prefix>.+?) GPU running in ")


def _unit_price(sku, path, name, currency):
    """(price per usage unit, usageUnit, effectiveTime) of the latest
    pricingInfo, first tier."""
    infos = sku.get("pricingInfo")
    if not isinstance(infos, list) or not infos:
        raise input_error(path, name, "no pricingInfo")
    info = max(infos, key=lambda i: str(i.get("effectiveTime", "")) if isinstance(i, dict) else "")
    expr = info.get("pricingExpression") if isinstance(info, dict) else None
    rates = expr.get("tieredRates") if isinstance(expr, dict) else None
    if not isinstance(rates, list) or not rates:
        raise input_error(path, name, "no pricingExpression.tieredRates")
    first = min(rates, key=lambda r: Decimal(str(r.get("startUsageAmount", 0))))
    money = first.get("unitPrice") if isinstance(first, dict) else None
    if not isinstance(money, dict):
        raise input_error(path, name, "tieredRates without unitPrice")
    if money.get("currencyCode") != currency:
        raise input_error(path, name, f"currencyCode {money.get('currencyCode')!r}, expected "
                          f"{currency!r}")
    try:
        price = Decimal(str(money.get("units") or "0")) + Decimal(int(money.get("nanos") or 0)) \
            / Decimal(10 ** 9)
    except (ValueError, ArithmeticError):
        raise input_error(path, name, f"unitPrice {money!r} is not units + nanos") from None
    if price < 0:
        raise input_error(path, name, f"negative price {price}")
    return price.normalize() if price else Decimal(0), expr.get("usageUnit"), \
        info.get("effectiveTime")


def read_skus(paths, region, currency="USD"):
    """({(family or accelerator, 'Core'|'Ram'|'GPU', 'onDemand'|'spot'):
    (price, skuId, path, number of serviceRegions)}, notes, stats)."""
    prices, notes, stats = {}, [], collections.Counter()
    regions, times = collections.Counter(), set()
    for path in paths:
        data = tablebuild.load_json(path)
        if isinstance(data, dict):
            notes += tablebuild.notes_of(data.get("_comment"), path)
        for page in tablebuild.pages_of(path, data, "skus", "a Cloud Billing Catalog skus page"):
            skus = page.get("skus")
            if not isinstance(skus, list):
                raise input_error(path, None, "skus is not a list")
            for i, sku in enumerate(skus):
                if not isinstance(sku, dict):
                    raise input_error(path, f"skus[{i}]", "not an object")
                name = f"SKU {sku.get('skuId') or i} ({sku.get('description')!r})"
                stats["skus"] += 1
                cat = sku.get("category") or {}
                if cat.get("serviceDisplayName") != "Compute Engine" or \
                        cat.get("resourceFamily") != "Compute":
                    continue
                for r in sku.get("serviceRegions") or []:
                    regions[r] += 1
                if region not in (sku.get("serviceRegions") or []):
                    continue
                usage = USAGE.get(cat.get("usageType"))
                if usage is None:
                    continue            # commitments and the like
                desc = str(sku.get("description", ""))
                m = _DESC.match(desc)
                g = _GPU_DESC.match(desc) if not m else None
                if m and m.group("prefix") in FAMILIES:
                    key = (FAMILIES[m.group("prefix")], m.group("part"))
                elif g and g.group("prefix") in GPUS:
                    key = (GPUS[g.group("prefix")], "GPU")
                else:
                    stats["descriptions not matched"] += 1
                    continue
                if bool((m or g).group("spot")) != (usage == "spot"):
                    raise input_error(path, name, f"usageType {cat.get('usageType')} does not "
                                      "agree with the description")
                price, unit, when = _unit_price(sku, path, name, currency)
                if unit != UNITS[key[1]]:
                    raise input_error(path, name, f"usageUnit {unit!r}, expected "
                                      f"{UNITS[key[1]]!r} for a {key[1]} SKU")
                if when:
                    times.add(str(when))
                full = key + (usage,)
                # A SKU for fewer regions is the more specific price: it wins
                # over a multi-region one ("... running in Americas").
                spread = len(sku.get("serviceRegions") or [])
                if full in prices:
                    old = prices[full]
                    if spread > old[3]:
                        stats["overridden by a region-specific SKU"] += 1
                        continue
                    if spread == old[3] and old[0] != price:
                        raise input_error(path, name, f"{key[0]} {key[1]} {usage} costs {price} "
                                          f"here and {old[0]} in SKU {old[1]}: two SKUs for "
                                          "the same regions with different prices")
                    if spread == old[3]:
                        continue
                    stats["overridden by a region-specific SKU"] += 1
                prices[full] = (price, sku.get("skuId"), path, spread)
                stats["matched"] += 1
    if not prices:
        seen = ", ".join(sorted(regions)) or "none"
        raise input_error(paths[0] if len(paths) == 1 else ", ".join(paths), f"region {region}",
                          f"no Compute Engine Core/Ram SKUs for this region ({stats['skus']} "
                          f"SKUs read; regions in the input: {seen})")
    return prices, notes, stats, sorted(times)


def read_machine_types(path):
    """{name: (guestCpus, memoryMb, ((acceleratorType, count), ...), shared)}."""
    data = tablebuild.load_json(path)
    notes = []
    if isinstance(data, dict):
        notes = tablebuild.notes_of(data.get("_comment"), path)
        items = data.get("items")
        if isinstance(items, dict):        # aggregatedList: {"zones/x": {"machineTypes": []}}
            items = [mt for z in items.values() for mt in (z or {}).get("machineTypes", [])]
        data = items
    if not isinstance(data, list):
        raise input_error(path, None, "not a machine-types listing (a JSON list, or "
                          "{\"items\": [...]})")
    out = {}
    for i, mt in enumerate(data):
        name = mt.get("name") if isinstance(mt, dict) else None
        if not isinstance(name, str):
            raise input_error(path, f"[{i}]", "not a machine type (no name)")
        try:
            cpus, mem = int(mt["guestCpus"]), int(mt["memoryMb"])
            acc = tuple(sorted((a["guestAcceleratorType"], int(a["guestAcceleratorCount"]))
                               for a in mt.get("accelerators") or []))
        except (KeyError, TypeError, ValueError):
            raise input_error(path, f"[{i}] {name}", "guestCpus/memoryMb/accelerators "
                              "missing or not numbers") from None
        facts = (cpus, mem, acc, bool(mt.get("isSharedCpu")))
        if name in out and out[name] != facts:
            raise input_error(path, f"[{i}] {name}", "listed twice with different facts")
        out[name] = facts
    return out, notes


def gpu_kind(accelerator):
    """nvidia-tesla-a100 -> nvidia-a100: the table's gpuKind style."""
    return accelerator.replace("nvidia-tesla-", "nvidia-")


def machine_price(cpus, mem_mib, accelerators, family, prices, usage):
    core, ram = prices.get((family, "Core", usage)), prices.get((family, "Ram", usage))
    if core is None or ram is None:
        return None
    total = cpus * core[0] + Decimal(mem_mib) / 1024 * ram[0]
    for acc, count in accelerators:
        gpu = prices.get((acc, "GPU", usage))
        if gpu is None:
            return None
        total += count * gpu[0]
    return total.normalize()


def general_purpose(name):
    return "-standard-" in name


def import_skus(sku_paths, *, region, machine_types=None, facts_table=None, date=None,
                source=None, currency="USD", command=""):
    prices, notes, stats, times = read_skus(sku_paths, region, currency)
    if machine_types:
        types, mt_notes = read_machine_types(machine_types)
    elif facts_table:
        mt_notes = []
        types = {n: (v, m, (("unknown-gpu", g),) if g else (), False)
                 for n, (v, m, g, _k) in tablebuild.facts_from_table(facts_table).items()}
    else:
        raise tablebuild.InputError("give --machine-types (a machine-types listing) or "
                                    "--facts-table")
    entries, skipped = {}, collections.defaultdict(list)
    for name, (cpus, mem, acc, shared) in sorted(types.items()):
        family = name.split("-")[0]
        if shared:
            skipped["shared-core types (billed differently)"].append(name)
            continue
        od = machine_price(cpus, mem, acc, family, prices, "onDemand")
        if od is None:
            why = ("a GPU without a GPU SKU in the input" if acc and
                   machine_price(cpus, mem, (), family, prices, "onDemand") is not None
                   else "no Core/Ram SKU for the family in the input")
            skipped[why].append(name)
            continue
        spot = machine_price(cpus, mem, acc, family, prices, "spot")
        gpus = sum(c for _, c in acc)
        kind = gpu_kind(acc[0][0]) if acc else ""
        entries[name] = tablebuild.entry(cpus, mem, od, gpus, kind, spot)
    date = date or tablebuild.today()
    source = tablebuild.with_date(source, f"Google Cloud Billing Catalog API ({CATALOG_URL}), "
                                  f"Compute Engine Core/Ram/GPU SKUs, {region}, read {date}", date)
    when = f"; effectiveTime {times[0]} .. {times[-1]}" if times else ""
    inputs = [("Cloud Billing Catalog SKUs", p,
               [f"{stats['skus']} SKUs read, {stats['matched']} Compute Engine Core/Ram/GPU "
                f"SKUs of {region}{when}." if i == 0 else "(see the first file)"],
               notes if i == 0 else []) for i, p in enumerate(sku_paths)]
    if machine_types:
        inputs.append(("Machine types", machine_types,
                       ["guestCpus, memoryMb, accelerators, isSharedCpu"], mt_notes))
    else:
        inputs.append(("Machine types: vcpu, memory, gpus of the existing table",
                       facts_table, [], []))
    rules = ["# Price of a machine type = guestCpus x '<family> Instance Core' + memoryMb/1024",
             "# x '<family> Instance Ram' (per GiB) + GPUs x '<GPU> GPU', each per hour; spot",
             "# the same with the 'Spot Preemptible' SKUs (usageType Preemptible)."]
    unit_lines = []
    for (fam, part, usage), (price, sku_id, _p, _n) in sorted(prices.items()):
        unit_lines.append(f"{fam} {part} {usage} {price} (SKU {sku_id})")
    rules += tablebuild.wrap("Unit prices used: " + "; ".join(unit_lines) + ".", indent="# ")
    with_spot = sum(1 for e in entries.values() if "spot" in e)
    doc = tablebuild.build(
        title=f"Google Cloud Compute Engine pricing table, region {region}, {currency} per hour.",
        command=command, inputs=inputs, rules=rules, skipped=skipped,
        currency=currency, source=source, date=date, region=region,
        entries=entries, general_purpose=general_purpose,
        general_purpose_text="*-standard-* machine types",
        spot_note=[f"# Spot: {with_spot} of {len(entries)} machine types priced from Spot "
                   "Preemptible SKUs; a type", "# without one is priced at its on-demand "
                   "price on a spot node (no fallbackRatio)."])
    text = tablebuild.render(doc)
    return text, {"region": region, "types": len(entries), "skus": stats["skus"],
                  "spot": with_spot, "skipped": {k: v for k, v in skipped.items() if v}}

