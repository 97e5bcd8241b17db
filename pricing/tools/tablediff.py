"""Compare two pricing tables price by price: `pricing.py diff OLD NEW`.

A price point is one (instance type, capacity type, region, zone) of a
table: an entry's top-level onDemand/spot/reserved, the same fields of its
regions and zones, and unknownInstanceTypes' defaults (listed under the
name "(unknown types)"). The diff lists the points added, removed and
changed (with the percent change), the instance types whose facts
(vcpu, memory, gpus, gpuKind) changed, and a summary line.

Thresholds make it a gate for a refresh pipeline: with --max-change P the
exit status is 1 when a price moved by more than P percent either way;
with --max-removed P, when more than P percent of the old price points
are gone (an import that lost half the types is broken, not cheaper). A
changed currency fails either threshold: prices are not comparable.
"""

import json
import math
import os
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pricingtable  # noqa: E402
import tablebuild  # noqa: E402

CAPACITIES = ("onDemand", "spot", "reserved")
UNKNOWN = "(unknown types)"


def load(path):
    """Table data: read with the stdlib subset reader, or with PyYAML when
    the file uses YAML the subset reader refuses (hand-written tables)."""
    try:
        return pricingtable.load(path).data
    except pricingtable.TableError as e:
        try:
            import yaml
        except ImportError:
            raise tablebuild.InputError(f"{tablebuild.display_path(path)}: {e}") from None
        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except yaml.YAMLError as ye:
            raise tablebuild.InputError(f"{tablebuild.display_path(path)}: {ye}") from None
        return data
    except OSError as e:
        raise tablebuild.InputError(f"{tablebuild.display_path(path)}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise tablebuild.InputError(f"{tablebuild.display_path(path)}: not UTF-8 text") from None


def _num(v):
    if isinstance(v, bool) or not isinstance(v, (int, float, Decimal)):
        return None
    return Decimal(str(v)) if not isinstance(v, Decimal) else v


def price_points(data, path):
    if not isinstance(data, dict) or not isinstance(data.get("instanceTypes"), dict):
        raise tablebuild.InputError(f"{tablebuild.display_path(path)}: not a pricing table "
                                    "(no instanceTypes mapping)")
    out = {}
    unknown = data.get("unknownInstanceTypes")
    if isinstance(unknown, dict):
        for cap in ("onDemand", "spot"):
            if _num(unknown.get(cap)) is not None:
                out[(UNKNOWN, cap, "", "")] = _num(unknown[cap])
    for name, e in data["instanceTypes"].items():
        if not isinstance(e, dict):
            continue
        levels = [("", "", e)]
        for rname, r in (e.get("regions") or {}).items():
            if isinstance(r, dict):
                levels.append((rname, "", r))
                for zname, z in (r.get("zones") or {}).items():
                    if isinstance(z, dict):
                        levels.append((rname, zname, z))
        for region, zone, d in levels:
            for cap in CAPACITIES:
                if _num(d.get(cap)) is not None:
                    out[(str(name), cap, region, zone)] = _num(d[cap])
    return out


def facts(data):
    return {str(n): (e.get("vcpu"), e.get("memory"), e.get("gpus", 0), e.get("gpuKind", ""))
            for n, e in data["instanceTypes"].items() if isinstance(e, dict)}


def percent(old, new):
    if old == new:
        return 0.0
    if old == 0:
        return math.inf
    return float((new - old) / old * 100)


def compare(old_path, new_path):
    old, new = load(old_path), load(new_path)
    po, pn = price_points(old, old_path), price_points(new, new_path)
    result = {
        "old": tablebuild.display_path(old_path), "new": tablebuild.display_path(new_path),
        "types": [len(old["instanceTypes"]), len(new["instanceTypes"])],
        "added": [(k, pn[k]) for k in sorted(pn.keys() - po.keys())],
        "removed": [(k, po[k]) for k in sorted(po.keys() - pn.keys())],
        "changed": [(k, po[k], pn[k], percent(po[k], pn[k]))
                    for k in sorted(po.keys() & pn.keys()) if po[k] != pn[k]],
        "unchanged": sum(1 for k in po.keys() & pn.keys() if po[k] == pn[k]),
        "old_points": len(po),
        "facts": [], "meta": [],
    }
    fo, fn = facts(old), facts(new)
    for name in sorted(fo.keys() & fn.keys()):
        if fo[name] != fn[name]:
            result["facts"].append((name, fo[name], fn[name]))
    for key in ("currency", "date", "source", "defaultRegion"):
        if old.get(key) != new.get(key):
            result["meta"].append((key, old.get(key), new.get(key)))
    ratio = [(d.get("spot") or {}).get("fallbackRatio") if isinstance(d.get("spot"), dict)
             else None for d in (old, new)]
    if ratio[0] != ratio[1]:
        result["meta"].append(("spot.fallbackRatio", ratio[0], ratio[1]))
    result["currency_changed"] = old.get("currency") != new.get("currency")
    return result


def judge(result, max_change=None, max_removed=None):
    """[reasons the change must not go live] for the thresholds given."""
    reasons = []
    if max_change is None and max_removed is None:
        return reasons
    if result["currency_changed"]:
        reasons.append("the currency changed: prices are not comparable")
    if max_change is not None:
        over = [c for c in result["changed"] if abs(c[3]) > max_change]
        if over:
            reasons.append(f"{len(over)} price(s) changed by more than {fmt_pct(max_change)}"
                           f" (largest: {point_name(max(over, key=lambda c: abs(c[3]))[0])} "
                           f"{fmt_change(max(over, key=lambda c: abs(c[3]))[3])})")
    if max_removed is not None and result["old_points"]:
        share = len(result["removed"]) / result["old_points"] * 100
        if share > max_removed:
            reasons.append(f"{len(result['removed'])} of {result['old_points']} price points "
                           f"removed ({share:.1f}%, more than {fmt_pct(max_removed)})")
    return reasons


def fmt_pct(p):
    return f"{p:g}%"


def fmt_change(p):
    return "new (was 0)" if math.isinf(p) else f"{p:+.2f}%"


def point_name(key):
    name, cap, region, zone = key
    where = "/".join(x for x in (region, zone) if x)
    return f"{name} {cap}" + (f" {where}" if where else "")


def fmt_price(p):
    return pricingtable.format_scalar(p) if p is not None else "-"


def render_text(result, reasons, summary_only=False):
    lines = [f"--- {result['old']}", f"+++ {result['new']}"]
    if not summary_only:
        for key, old, new in result["meta"]:
            lines.append(f"{'meta':8} {key}: {old!r} -> {new!r}")
        rows = ([("added", k, None, p, None) for k, p in result["added"]]
                + [("removed", k, p, None, None) for k, p in result["removed"]]
                + [("changed", k, o, n, pct) for k, o, n, pct in result["changed"]])
        rows.sort(key=lambda r: r[1])
        for what, key, old, new, pct in rows:
            change = fmt_change(pct) if pct is not None else ""
            lines.append(f"{what:8} {point_name(key):56} {fmt_price(old):>12} -> "
                         f"{fmt_price(new):<12} {change}".rstrip())
        for name, old, new in result["facts"]:
            lines.append(f"{'facts':8} {name}: vcpu/memory/gpus/gpuKind {old} -> {new}")
    largest = max(result["changed"], key=lambda c: abs(c[3]), default=None)
    biggest = (f" (largest: {point_name(largest[0])} {fmt_change(largest[3])})"
               if largest else "")
    lines.append(f"summary: {result['types'][0]} -> {result['types'][1]} instance types; "
                 f"price points: {len(result['added'])} added, {len(result['removed'])} "
                 f"removed, {len(result['changed'])} changed{biggest}, "
                 f"{result['unchanged']} unchanged; {len(result['facts'])} facts changed")
    for r in reasons:
        lines.append(f"FAIL: {r}")
    return "\n".join(lines) + "\n"


def render_json(result, reasons):
    def key(k):
        return {"type": k[0], "capacity": k[1], "region": k[2] or None, "zone": k[3] or None}
    out = {
        "old": result["old"], "new": result["new"], "instanceTypes": result["types"],
        "added": [dict(key(k), price=str(p)) for k, p in result["added"]],
        "removed": [dict(key(k), price=str(p)) for k, p in result["removed"]],
        "changed": [dict(key(k), old=str(o), new=str(n),
                         percent=None if math.isinf(pct) else round(pct, 4))
                    for k, o, n, pct in result["changed"]],
        "unchanged": result["unchanged"],
        "facts": [{"type": n, "old": list(o), "new": list(nw)} for n, o, nw in result["facts"]],
        "meta": [{"field": f, "old": o, "new": n} for f, o, n in result["meta"]],
        "ok": not reasons, "reasons": reasons,
    }
    return json.dumps(out, indent=2, default=str) + "\n"


def main_diff(args):
    result = compare(args.old, args.new)
    reasons = judge(result, args.max_change, args.max_removed)
    out = render_json(result, reasons) if args.format == "json" else \
        render_text(result, reasons, args.summary_only)
    sys.stdout.write(out)
    return 1 if reasons else 0
