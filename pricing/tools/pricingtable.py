"""Read, check and write cost-extender pricing tables, Python 3 stdlib only.

The tools must run on a bare `python3` (no PyYAML), so this module carries a
small reader and writer for the YAML subset that pricing tables use:

* block mappings (two-space indentation in what we write, any consistent
  indentation when reading), plain / single-quoted / double-quoted scalars,
  one-line flow mappings (`{vcpu: 2, memory: 8192Mi}`) and flow sequences;
* `#` comments, kept so that a tool rewriting a table (import_aws_spot.py)
  does not throw away the sources written next to the prices.

Anything outside that subset (block sequences, anchors, aliases, tags,
multi-line scalars, multi-line flow collections, duplicate keys, tabs) is
rejected with a line number instead of being half-understood; the daemon
rejects anchors, aliases and duplicates too (see pricing/README.md).

Numbers with a fraction or exponent are read as decimal.Decimal, so prices
keep exactly the digits written in the source (0.096 stays 0.096, no binary
float noise) and survive a read/write round trip byte for byte.
"""

import decimal
import json
import math
import re
from decimal import Decimal

API_VERSION = "cost-extender.io/v1alpha1"
KIND = "PricingTable"

# Canonical key orders used when writing; unknown keys follow, sorted.
TOP_LEVEL_ORDER = ["apiVersion", "kind", "currency", "source", "date",
                   "defaultRegion", "spot", "unknownInstanceTypes",
                   "instanceTypes"]
ENTRY_ORDER = ["vcpu", "memory", "gpus", "gpuKind", "onDemand", "spot",
               "reserved", "spotInterruptionRate", "source", "date", "regions"]
REGION_ORDER = ["onDemand", "spot", "reserved", "spotInterruptionRate", "zones"]

# Fields each level accepts, from pricing/README.md ("Format").
TOP_LEVEL_FIELDS = set(TOP_LEVEL_ORDER)
SPOT_FIELDS = {"fallbackRatio", "fallbackSource", "interruptionRate"}
UNKNOWN_FIELDS = {"policy", "onDemand", "spot"}
ENTRY_FIELDS = set(ENTRY_ORDER)
# The README example shows onDemand/spot/spotInterruptionRate/zones on a
# region and spot on a zone; "a field missing at one level is taken from the
# next level up", so reserved is accepted at both levels too.
REGION_FIELDS = set(REGION_ORDER)
ZONE_FIELDS = {"onDemand", "spot", "reserved", "spotInterruptionRate"}
POLICIES = {"default-price", "unschedulable"}
MAX_PRICE = Decimal(1000000)


class TableError(ValueError):
    """A table that is not in the subset we read, with its line number."""

    def __init__(self, message, line=None):
        self.line = line
        super().__init__(message if line is None else f"line {line}: {message}")


class Document:
    """A parsed table: the data plus the comments we want to write back.

    header   -- comment lines (with '#') before the first key
    comments -- {path tuple: {"before": [comment lines], "inline": text}}
                for block-level keys; comments inside one-line flow
                mappings cannot exist, so nothing is lost there.
    """

    def __init__(self, data=None, header=None, comments=None):
        self.data = {} if data is None else data
        self.header = [] if header is None else header
        self.comments = {} if comments is None else comments


# --------------------------------------------------------------- reading --

_INT_RE = re.compile(r"[-+]?[0-9]+\Z")
_FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_SPECIAL_FLOATS = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf,
                   ".nan": math.nan, ".Inf": math.inf, "+.Inf": math.inf,
                   "-.Inf": -math.inf, ".NaN": math.nan, ".INF": math.inf,
                   "+.INF": math.inf, "-.INF": -math.inf, ".NAN": math.nan}


def resolve_plain(text):
    """Type of an unquoted scalar (YAML 1.2 core schema)."""
    if text in ("null", "Null", "NULL", "~", ""):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT_RE.match(text):
        return int(text)
    if _FLOAT_RE.match(text):
        return Decimal(text)
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    return text


class _Flow:
    """Recursive-descent reader for one line's value: a scalar or a flow
    collection, followed by an optional comment."""

    def __init__(self, text, line):
        self.s = text
        self.i = 0
        self.line = line

    def error(self, message):
        raise TableError(f"{message} (column {self.i + 1} of the value)", self.line)

    def ws(self):
        while self.i < len(self.s) and self.s[self.i] == " ":
            self.i += 1

    def at_end_or_comment(self):
        self.ws()
        return self.i >= len(self.s) or self.s[self.i] == "#"

    def value(self, in_flow):
        self.ws()
        if self.i >= len(self.s):
            return None
        c = self.s[self.i]
        if c == "{":
            return self.mapping()
        if c == "[":
            return self.sequence()
        if c == '"':
            return self.double_quoted()
        if c == "'":
            return self.single_quoted()
        if c in "&*!|>%@`?":
            self.error(f"'{c}' (anchors, aliases, tags, block scalars, "
                       "directives) is not supported in pricing tables")
        if c == "-" and self.s[self.i:self.i + 2] in ("- ", "-"):
            self.error("block sequences are not supported in pricing tables")
        return self.plain(in_flow)

    def plain(self, in_flow, is_key=False):
        start = self.i
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "#" and self.i > start and self.s[self.i - 1] == " ":
                break
            if in_flow and c in ",[]{}":
                break
            if c == ":" and (self.i + 1 >= len(self.s)
                             or self.s[self.i + 1] == " "
                             or (in_flow and self.s[self.i + 1] in ",[]{}")):
                if is_key or in_flow:
                    break
                self.error("': ' inside a plain value; quote the value")
            self.i += 1
        text = self.s[start:self.i].rstrip()
        if not text:
            self.error("empty value")
        return text if is_key else resolve_plain(text)

    def double_quoted(self):
        start = self.i
        self.i += 1
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "\\":
                self.i += 2
                continue
            if c == '"':
                self.i += 1
                raw = self.s[start:self.i]
                try:
                    # The YAML escapes our tables use (\" \\ \n \t \uXXXX)
                    # are the JSON ones.
                    return json.loads(raw)
                except ValueError:
                    self.error("unsupported escape in double-quoted string")
            self.i += 1
        self.error("unterminated double-quoted string (multi-line strings "
                   "are not supported)")

    def single_quoted(self):
        self.i += 1
        out = []
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "'":
                if self.s[self.i + 1:self.i + 2] == "'":
                    out.append("'")
                    self.i += 2
                    continue
                self.i += 1
                return "".join(out)
            out.append(c)
            self.i += 1
        self.error("unterminated single-quoted string")

    def key(self):
        self.ws()
        if self.i < len(self.s) and self.s[self.i] == '"':
            return self.double_quoted()
        if self.i < len(self.s) and self.s[self.i] == "'":
            return self.single_quoted()
        if self.i < len(self.s) and self.s[self.i] in "&*!?{[":
            self.error("complex keys, anchors and tags are not supported")
        return self.plain(True, is_key=True)

    def mapping(self):
        self.i += 1
        out = {}
        self.ws()
        if self.s[self.i:self.i + 1] == "}":
            self.i += 1
            return out
        while True:
            k = self.key()
            self.ws()
            if self.s[self.i:self.i + 1] != ":":
                self.error(f"expected ':' after key {k!r}")
            self.i += 1
            v = self.value(True)
            if k in out:
                self.error(f"duplicate key {k!r}")
            out[k] = v
            self.ws()
            c = self.s[self.i:self.i + 1]
            if c == ",":
                self.i += 1
                if self.at_end_or_comment():
                    self.error("flow mappings must be on one line")
                continue
            if c == "}":
                self.i += 1
                return out
            self.error("expected ',' or '}' (flow mappings must be on one line)")

    def sequence(self):
        self.i += 1
        out = []
        self.ws()
        if self.s[self.i:self.i + 1] == "]":
            self.i += 1
            return out
        while True:
            out.append(self.value(True))
            self.ws()
            c = self.s[self.i:self.i + 1]
            if c == ",":
                self.i += 1
                continue
            if c == "]":
                self.i += 1
                return out
            self.error("expected ',' or ']' (flow sequences must be on one line)")

    def rest_comment(self):
        """After the value: nothing (None) or a comment (returned with its '#')."""
        self.ws()
        if self.i >= len(self.s):
            return None
        if self.s[self.i] == "#":
            return self.s[self.i:]
        self.error("unexpected text after the value")


def parse(text):
    """Parse a table into a Document; raise TableError outside the subset."""
    doc = Document()
    root = doc.data
    # Stack of open block mappings: (indent of their keys or None, dict, path,
    # line that opened them).
    stack = [[None, root, (), 0]]
    pending = []            # comment lines waiting for the next key
    seen_key = False
    opened_empty = []       # (parent dict, key, child dict) of "key:" lines
    for lineno, raw in enumerate(text.split("\n"), 1):
        body = raw.rstrip("\r")
        stripped = body.strip()
        lead = body[:len(body) - len(body.lstrip())]
        if "\t" in lead:
            raise TableError("tab in indentation", lineno)
        if not stripped:
            if not seen_key and doc.header:
                doc.header.append("")
            continue
        if stripped.startswith("#"):
            (pending if seen_key else doc.header).append(stripped)
            continue
        if stripped == "---" and not seen_key:
            continue
        if stripped in ("---", "...") or stripped.startswith("--- "):
            raise TableError("only one YAML document per table", lineno)
        if stripped.startswith("%"):
            raise TableError("YAML directives are not supported", lineno)
        indent = len(lead)
        while (len(stack) > 1 and stack[-1][0] is not None
               and indent < stack[-1][0]):
            stack.pop()
        top = stack[-1]
        if top[0] is None:
            if len(stack) > 1 and indent <= stack[-2][0]:
                # "key:" with nothing more indented below it: a null value.
                stack.pop()
                while (len(stack) > 1 and stack[-1][0] is not None
                       and indent < stack[-1][0]):
                    stack.pop()
                top = stack[-1]
            else:
                top[0] = indent
        if indent != top[0]:
            raise TableError(f"bad indentation ({indent} spaces, expected "
                             f"{top[0]})", lineno)
        seen_key = True
        flow = _Flow(stripped, lineno)
        if stripped.startswith("- ") or stripped == "-":
            raise TableError("block sequences are not supported in pricing "
                             "tables", lineno)
        key = flow.key()
        flow.ws()
        if flow.s[flow.i:flow.i + 1] != ":":
            raise TableError(f"expected 'key: value', got {stripped!r}", lineno)
        flow.i += 1
        container = top[1]
        if key in container:
            raise TableError(f"duplicate key {key!r}", lineno)
        path = top[2] + (key,)
        if flow.at_end_or_comment():
            comment = flow.rest_comment()
            child = {}
            container[key] = child
            opened_empty.append((container, key, child))
            stack.append([None, child, path, lineno])
        else:
            container[key] = flow.value(False)
            comment = flow.rest_comment()
        if pending or comment:
            doc.comments[path] = {"before": pending, "inline": comment}
        pending = []
    # "key:" lines that got no children are null, as in YAML.
    for container, key, child in opened_empty:
        if not child and container.get(key) is child:
            container[key] = None
    while doc.header and doc.header[-1] == "":
        doc.header.pop()
    return doc


def load(path):
    with open(path, encoding="utf-8") as f:
        return parse(f.read())


# --------------------------------------------------------------- writing --

_PLAIN_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]*\Z")
_YAML11_SPECIAL = re.compile(
    r"(y|n|yes|no|on|off|true|false|null)\Z|"      # YAML 1.1 booleans/null
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}|"             # timestamps
    r"0[xob]|[-+0-9][0-9_]*\Z|[0-9.]+(e[-+]?[0-9]+)?\Z",  # 1.1 numbers
    re.IGNORECASE)


def format_scalar(v):
    """One scalar as YAML text that every YAML parser reads back the same."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, Decimal):
        if not v.is_finite():
            raise ValueError(f"not a finite number: {v}")
        s = format(v.normalize(), "f")
        return s if "." in s else s + ".0"
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"not a finite number: {v}")
        return format_scalar(Decimal(repr(v)))
    if isinstance(v, str):
        if _PLAIN_SAFE.match(v) and not _YAML11_SPECIAL.match(v) \
                and isinstance(resolve_plain(v), str):
            return v
        # JSON string syntax is valid YAML double-quoted syntax.
        return json.dumps(v, ensure_ascii=True)
    raise TypeError(f"cannot write {type(v).__name__} into a pricing table")


def _ordered_keys(d, order):
    known = [k for k in order if k in d]
    return known + sorted(k for k in d if k not in order)


def format_flow(v):
    """Any value on one line; mapping keys sorted (deterministic output)."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{format_scalar(k)}: {format_flow(v[k])}"
                               for k in sorted(v)) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(format_flow(x) for x in v) + "]"
    return format_scalar(v)


def _format_ordered(d, order, special=None):
    parts = []
    for k in _ordered_keys(d, order):
        fmt = (special or {}).get(k)
        val = fmt(d[k]) if fmt and isinstance(d[k], dict) else format_flow(d[k])
        parts.append(f"{format_scalar(k)}: {val}")
    return "{" + ", ".join(parts) + "}"


def _format_named(d, fmt):
    parts = []
    for k in sorted(d):
        v = d[k]
        parts.append(f"{format_scalar(k)}: "
                     f"{fmt(v) if isinstance(v, dict) else format_flow(v)}")
    return "{" + ", ".join(parts) + "}"


def format_zone(z):
    return _format_ordered(z, REGION_ORDER)


def format_region(r):
    return _format_ordered(r, REGION_ORDER,
                           {"zones": lambda zs: _format_named(zs, format_zone)})


def format_entry(e):
    """One instance type on one line, fields in the README's order."""
    if not isinstance(e, dict):
        return format_flow(e)
    return _format_ordered(e, ENTRY_ORDER,
                           {"regions": lambda rs: _format_named(rs, format_region)})


def dump(doc):
    """Write a Document in the layout gen_aws_table.py produces.

    Top-level scalars first, then `spot`, `unknownInstanceTypes` in block
    style, then `instanceTypes` with one flow mapping per instance type
    (sorted). Comments recorded on block-level keys are written back; the
    caller gets the paths of comments that had to be dropped (comments inside
    a multi-line instance-type entry that is now written on one line) from
    dropped_comments().
    """
    out = list(doc.header)
    if out:
        out.append("")
    data = doc.data

    def comment_lines(path, indent):
        c = doc.comments.get(path)
        return [" " * indent + line for line in (c["before"] if c else [])]

    def inline(path):
        c = doc.comments.get(path)
        return f"  {c['inline']}" if c and c.get("inline") else ""

    def block(d, path, indent, order):
        lines = []
        for k in _ordered_keys(d, order):
            v = d[k]
            p = path + (k,)
            lines += comment_lines(p, indent)
            pad = " " * indent
            if isinstance(v, dict) and v:
                lines.append(f"{pad}{format_scalar(k)}:{inline(p)}")
                lines += block(v, p, indent + 2, [])
            else:
                lines.append(f"{pad}{format_scalar(k)}: {format_flow(v)}{inline(p)}")
        return lines

    keys = _ordered_keys(data, TOP_LEVEL_ORDER)
    blocks = [k for k in keys if isinstance(data[k], dict) and data[k]]
    scalars = [k for k in keys if k not in blocks]
    for k in scalars:
        out += comment_lines((k,), 0)
        out.append(f"{format_scalar(k)}: {format_flow(data[k])}{inline((k,))}")
    for k in blocks:
        out.append("")
        out += comment_lines((k,), 0)
        out.append(f"{format_scalar(k)}:{inline((k,))}")
        if k == "instanceTypes":
            for name in sorted(data[k]):
                p = (k, name)
                out += comment_lines(p, 2)
                out.append(f"  {format_scalar(name)}: "
                           f"{format_entry(data[k][name])}{inline(p)}")
        else:
            order = {"spot": ["fallbackRatio", "fallbackSource", "interruptionRate"],
                     "unknownInstanceTypes": ["policy", "onDemand", "spot"]}.get(k, [])
            out += block(data[k], (k,), 2, order)
    return "\n".join(out) + "\n"


def dropped_comments(doc):
    """Comment paths dump() cannot write (inside one-line entries)."""
    return sorted(p for p in doc.comments
                  if len(p) > 2 and p[0] == "instanceTypes")


# -------------------------------------------------------------- checking --

_QUANTITY_RE = re.compile(
    r"([0-9]+(\.[0-9]*)?|\.[0-9]+)"
    r"([eE][-+]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?\Z")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


def _is_number(v):
    return isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)


def check_table(data):
    """The validation rules of pricing/README.md that do not need the daemon.

    Returns a list of problems (empty when the table is valid). Used by the
    tests on every shipped table and by import_aws_spot.py before it writes.
    """
    errors = []

    def err(where, msg):
        errors.append(f"{where}: {msg}")

    def unknown(d, allowed, where):
        for k in d:
            if k not in allowed:
                err(where, f"unknown field {k!r}")

    def price(d, k, where, required=False):
        if k not in d:
            if required:
                err(where, f"missing required field {k!r}")
            return
        v = d[k]
        if not _is_number(v) or not math.isfinite(v) or v < 0 or v > MAX_PRICE:
            err(where, f"{k} must be a finite number in 0..1000000, got {v!r}")

    def fraction(d, k, where):
        if k in d:
            v = d[k]
            if not _is_number(v) or not math.isfinite(v) or not 0 <= v <= 1:
                err(where, f"{k} must be a number in 0..1, got {v!r}")

    if not isinstance(data, dict):
        return ["table: not a mapping"]
    unknown(data, TOP_LEVEL_FIELDS, "table")
    if data.get("apiVersion") != API_VERSION:
        err("apiVersion", f"must be {API_VERSION}")
    if data.get("kind") != KIND:
        err("kind", f"must be {KIND}")
    cur = data.get("currency")
    if not (isinstance(cur, str) and re.fullmatch(r"[A-Z]{3}", cur)):
        err("currency", "required, an ISO 4217 code")
    if not (isinstance(data.get("source"), str) and data["source"].strip()):
        err("source", "required, a non-empty string")
    if not (isinstance(data.get("date"), str) and _DATE_RE.match(data["date"])):
        err("date", "required, a YYYY-MM-DD string")
    if "defaultRegion" in data and not isinstance(data["defaultRegion"], str):
        err("defaultRegion", "must be a string")

    spot = data.get("spot")
    if spot is not None:
        if not isinstance(spot, dict):
            err("spot", "must be a mapping")
        else:
            unknown(spot, SPOT_FIELDS, "spot")
            fraction(spot, "fallbackRatio", "spot")
            fraction(spot, "interruptionRate", "spot")
            if "fallbackRatio" in spot and not (
                    isinstance(spot.get("fallbackSource"), str)
                    and spot["fallbackSource"].strip()):
                err("spot", "fallbackSource is required with fallbackRatio")

    unk = data.get("unknownInstanceTypes")
    if not isinstance(unk, dict):
        err("unknownInstanceTypes", "required mapping")
    else:
        unknown(unk, UNKNOWN_FIELDS, "unknownInstanceTypes")
        if unk.get("policy") not in POLICIES:
            err("unknownInstanceTypes", f"policy must be one of {sorted(POLICIES)}")
        price(unk, "onDemand", "unknownInstanceTypes",
              required=unk.get("policy") == "default-price")
        price(unk, "spot", "unknownInstanceTypes")

    types = data.get("instanceTypes")
    if not isinstance(types, dict) or not types:
        err("instanceTypes", "required, at least one entry")
        return errors
    for name, e in types.items():
        where = f"instanceTypes.{name}"
        if not isinstance(e, dict):
            err(where, "must be a mapping")
            continue
        unknown(e, ENTRY_FIELDS, where)
        v = e.get("vcpu")
        if not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            err(where, f"vcpu must be a positive integer, got {v!r}")
        m = e.get("memory")
        if not ((isinstance(m, str) and _QUANTITY_RE.match(m))
                or (isinstance(m, int) and not isinstance(m, bool) and m > 0)):
            err(where, f"memory must be a Kubernetes quantity, got {m!r}")
        if "gpus" in e and not (isinstance(e["gpus"], int)
                                and not isinstance(e["gpus"], bool)
                                and e["gpus"] >= 0):
            err(where, "gpus must be a non-negative integer")
        if "gpuKind" in e and not isinstance(e["gpuKind"], str):
            err(where, "gpuKind must be a string")
        price(e, "onDemand", where, required=True)
        price(e, "spot", where)
        price(e, "reserved", where)
        fraction(e, "spotInterruptionRate", where)
        for k in ("source", "date"):
            if k in e and not isinstance(e[k], str):
                err(where, f"{k} must be a string")
        if "date" in e and isinstance(e["date"], str) and not _DATE_RE.match(e["date"]):
            err(where, "date must be YYYY-MM-DD")
        regions = e.get("regions")
        if regions is None:
            continue
        if not isinstance(regions, dict):
            err(where, "regions must be a mapping")
            continue
        for rname, r in regions.items():
            rwhere = f"{where}.regions.{rname}"
            if not isinstance(r, dict):
                err(rwhere, "must be a mapping")
                continue
            unknown(r, REGION_FIELDS, rwhere)
            for k in ("onDemand", "spot", "reserved"):
                price(r, k, rwhere)
            fraction(r, "spotInterruptionRate", rwhere)
            zones = r.get("zones")
            if zones is None:
                continue
            if not isinstance(zones, dict):
                err(rwhere, "zones must be a mapping")
                continue
            for zname, z in zones.items():
                zwhere = f"{rwhere}.zones.{zname}"
                if not isinstance(z, dict):
                    err(zwhere, "must be a mapping")
                    continue
                unknown(z, ZONE_FIELDS, zwhere)
                for k in ("onDemand", "spot", "reserved"):
                    price(z, k, zwhere)
                fraction(z, "spotInterruptionRate", zwhere)
    return errors


def median(values):
    """Median of Decimals, exact (the mean of the middle two for even n)."""
    vs = sorted(values)
    if not vs:
        raise ValueError("median of nothing")
    mid = len(vs) // 2
    if len(vs) % 2:
        return vs[mid]
    with decimal.localcontext() as ctx:
        ctx.prec = 28
        return (vs[mid - 1] + vs[mid]) / 2
