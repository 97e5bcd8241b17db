"""What every importer shares: input errors, facts, defaults, the header.

The importers (aws_offer.py, azure_retail.py, gcp_catalog.py) turn a
provider's published price data into {instance type: entry}; this module
turns that into a pricing table with a header that says where every figure
came from, checks it against the format's rules, and writes it.

Errors in an input are InputError, whose message names the file and the
record (SKU, meter, line) so a refresh pipeline's log says what to look at.
"""

import datetime
import json
import os
import re
import sys
import textwrap
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pricingtable  # noqa: E402

TOOLS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.normpath(os.path.join(TOOLS_DIR, "..", ".."))

# The spot estimate shared by the providers whose price data carries no spot
# prices (AWS offer files) or not for every type (Azure). Same wording as
# the generated AWS table.
SPOT_FALLBACK_RATIO = Decimal("0.35")


def spot_fallback_source(provider_hint):
    return ("ESTIMATE, not a published price. Spot capacity is advertised at up "
            "to 90% off on-demand; real savings vary by type, zone and hour. We "
            "assume a typical ~65% saving, i.e. spot = 0.35 x on-demand, for types "
            f"without a spot price. {provider_hint}")


class InputError(Exception):
    """An input file we cannot import; the message names file and record."""


def input_error(path, record, message):
    where = f"{display_path(path)}: {record}" if record else display_path(path)
    return InputError(f"{where}: {message}")


def display_path(path):
    """Repository-relative path when inside the repository (stable across
    checkouts), else the path as given."""
    if path in (None, "-"):
        return "-"
    rel = os.path.relpath(os.path.abspath(path), REPO_ROOT)
    return path if rel.startswith("..") else rel.replace(os.sep, "/")


def parse_date(text, what="--date"):
    if text is None:
        return None
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            datetime.date.fromisoformat(text)
            return text
    except ValueError:
        pass
    raise InputError(f"{what} must be a YYYY-MM-DD date, got {text!r}")


def today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def memory_quantity(mib):
    """8192 -> '8Gi', 1536 -> '1536Mi' (the table format's quantities)."""
    mib = int(mib)
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def notes_of(value, path):
    """The `_comment` lines a sample file carries about its own origin (a
    list of strings or one string); real provider files have none."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise input_error(path, "_comment", "must be a string or a list of strings")


def wrap(text, indent="#   ", width=86):
    return textwrap.wrap(text, width=width, initial_indent=indent,
                         subsequent_indent=indent, break_on_hyphens=False) or [indent.rstrip()]


def load_json(path):
    """json.load of a (small) input file; errors name the file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except UnicodeDecodeError as e:
        raise input_error(path, f"byte {e.start}", "not UTF-8 text") from None
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}"
        if e.msg.startswith("Unterminated string"):
            raise input_error(path, where, "truncated JSON: the file ends inside the string "
                              "that starts here (incomplete download?)") from None
        if e.pos >= len(e.doc.rstrip()) - 1:
            raise input_error(path, where, f"truncated JSON: {e.msg} (incomplete "
                              "download?)") from None
        raise input_error(path, where, e.msg) from None


def decimal_price(value, path, record, what="price"):
    """A price from a JSON string or number, as an exact Decimal >= 0."""
    try:
        d = Decimal(str(value))
    except Exception:
        raise input_error(path, record, f"{what} {value!r} is not a number") from None
    if not d.is_finite() or d < 0:
        raise input_error(path, record, f"{what} {value!r} is not a finite price >= 0")
    return d.normalize() if d != 0 else Decimal(0)


def entry(vcpu, memory_mib, on_demand, gpus=0, gpu_kind="", spot=None):
    e = {"vcpu": int(vcpu), "memory": memory_quantity(memory_mib)}
    if gpus:
        e["gpus"] = int(gpus)
        e["gpuKind"] = gpu_kind
    e["onDemand"] = on_demand
    if spot is not None:
        e["spot"] = spot
    return e


def facts_from_table(path):
    """{type: (vcpu, memory MiB, gpus, gpuKind)} from an existing pricing
    table: the facts a refresh keeps when the provider's own facts listing
    is not at hand (Azure and GCP need credentials for theirs)."""
    doc = pricingtable.load(path)
    out = {}
    for name, e in (doc.data.get("instanceTypes") or {}).items():
        if not isinstance(e, dict):
            continue
        mem = quantity_mib(e.get("memory"))
        if mem is None or not isinstance(e.get("vcpu"), int):
            continue
        out[name] = (e["vcpu"], mem, int(e.get("gpus") or 0), e.get("gpuKind") or "")
    return out


_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti)?\Z")
_FACTOR = {None: Decimal(1) / (1 << 20), "Ki": Decimal(1) / 1024, "Mi": Decimal(1),
           "Gi": Decimal(1024), "Ti": Decimal(1 << 20)}


def quantity_mib(q):
    """MiB in a table memory quantity ('8Gi', '8192Mi', bytes), or None."""
    if isinstance(q, int):
        q = str(q)
    m = _QUANTITY.match(q) if isinstance(q, str) else None
    if not m:
        return None
    return int(Decimal(m.group(1)) * _FACTOR[m.group(2)])


def default_price(entries, general_purpose):
    """unknownInstanceTypes.onDemand: the median on-demand price of the
    general-purpose types (all non-GPU types when the predicate finds none).
    Deliberately not a cheap price: an unknown node must not look like a
    bargain. Returns (price, the types it is the median of)."""
    names = [n for n in entries if general_purpose(n)]
    if not names:
        names = [n for n, e in entries.items() if not e.get("gpus")] or list(entries)
    return pricingtable.median(entries[n]["onDemand"] for n in names), names


def pages_of(path, data, key, what):
    """The pages in an input file: one page ({key: [...], ...}) or a list of
    pages (what `pricing.py fetch` writes)."""
    if isinstance(data, dict) and key in data:
        return [data]
    if isinstance(data, list) and all(isinstance(p, dict) and key in p for p in data):
        return data
    raise input_error(path, None, f"not {what} ({{\"{key}\": [...], ...}}) or a list of pages")


def with_date(source, default, date):
    """The `source` text: given or default, naming the date (the table
    format's rule: a table's date is the one its source shows)."""
    source = source or default
    return source if date in source else f"{source} ({date})"


def unknown_gpu_lines(names, hint):
    if not names:
        return []
    return wrap("GPU model not known for: " + ", ".join(names) + f" (gpuKind left empty{hint}).",
                indent="# ")


def build(*, title, command, inputs, rules, skipped, currency, source, date, region, entries,
          general_purpose, general_purpose_text, spot_block=None, spot_note=None):
    """The pricing table Document.

    title        -- first header line
    command      -- the command that regenerates this table
    inputs       -- [(label, path, [description lines], [notes])]
    rules        -- header lines: what was imported and how
    skipped      -- {reason: [names]} left out
    """
    header = [f"# {title}", "#",
              "# GENERATED FILE, do not edit by hand. Regenerate with:"]
    header += shell_lines(command)
    header.append("#")
    for label, path, lines, notes in inputs:
        header.append(f"# {label}: {display_path(path)}")
        for line in lines:
            header += wrap(line)
        if notes:
            header.append("#   What the file says about itself (_comment):")
            for n in notes:
                header += wrap(n, indent="#     ")
    header.append("#")
    header += rules
    for reason, names in sorted(skipped.items()):
        if names:
            header += wrap(f"Left out, {reason} ({len(names)}): "
                           + ", ".join(sorted(names)) + ".", indent="# ")
    if spot_note:
        header.append("#")
        header += spot_note
    if not entries:
        raise InputError("no instance type could be priced from the inputs")
    price, names = default_price(entries, general_purpose)
    data = {"apiVersion": pricingtable.API_VERSION, "kind": pricingtable.KIND,
            "currency": currency, "source": source, "date": date, "defaultRegion": region}
    if spot_block:
        data["spot"] = spot_block
    data["unknownInstanceTypes"] = {"policy": "default-price", "onDemand": price}
    data["instanceTypes"] = entries
    comments = {("unknownInstanceTypes", "onDemand"): {
        "before": [f"# The median on-demand price of the {len(names)} {general_purpose_text}"
                   " below:", "# an unknown node must not look like a bargain."],
        "inline": None}}
    return pricingtable.Document(data, header, comments)


def render(doc):
    """The table's text, after checking it against the format's rules."""
    errors = pricingtable.check_table(doc.data)
    if errors:
        raise InputError("the generated table would be invalid:\n  " + "\n  ".join(errors))
    return pricingtable.dump(doc)


def write(text, out):
    if out == "-":
        sys.stdout.write(text)
        return
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, out)


def command_line(subcommand, args):
    """[words] of `python3 pricing/tools/pricing.py SUB ARGS`, paths made
    repository-relative (the header stays the same across checkouts)."""
    out = ["python3", "pricing/tools/pricing.py", subcommand]
    for a in args:
        if "://" not in a and (os.sep in a or os.path.exists(a)):
            a = display_path(a)
        out.append(a)
    return out


def shell_lines(words, width=86):
    """A command as comment lines a user can paste: quoted where needed,
    broken between words with a trailing backslash."""
    if isinstance(words, str):
        words = [words]
    quoted = [w if re.fullmatch(r"[A-Za-z0-9_./:=,@%+-]+", w) else
              "'" + w.replace("'", "'\\''") + "'" for w in words]
    lines, cur = [], "#  "
    for w in quoted:
        if len(cur) + 1 + len(w) > width - 2 and cur != "#  ":
            lines.append(cur + " \\")
            cur = "#    "
        cur += " " + w
    lines.append(cur)
    return lines
