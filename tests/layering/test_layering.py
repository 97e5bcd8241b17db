"""The layering of extender/, checked so that it cannot quietly regress.

The folders of extender/ are layers, lowest first:

    base     buffers, arena, JSON scanner, YAML tree, snapshots, logs, metrics registry
    kube     Kubernetes objects as plain structs (node facts, pod requests, node views)
    cost     pricing tables and the cost model
    gang     gang admission and the queue config
    cluster  Kubernetes API client, informers, the cluster state
    server   HTTP transport, wire protocol, handlers, config, the app's shared state

A file may include headers from its own layer and the layers below it, never
from one above: a lower layer hands results up through callbacks and plain
state (cluster_hooks, reloader callbacks) and main.c wires them to the app.
Files directly in extender/ (main.c) and folders not named above sit on top
and may include anything; no named layer may include them. extender/version.h
is a leaf that includes nothing, so any file may include it.

No file in extender/ may be longer than 1,000 lines.

Run directly to check another tree: python3 tests/layering/test_layering.py DIR
(DIR holds an extender/ folder; prints every violation, exits 1 if any).
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAYERS = ["base", "kube", "cost", "gang", "cluster", "server"]
LEAVES = {"version.h"}
MAX_LINES = 1000
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def sources(root):
    """Every .c and .h file under root/extender, as paths relative to extender/."""
    ext = os.path.join(root, "extender")
    out = []
    for d, _, files in os.walk(ext):
        for f in files:
            if f.endswith((".c", ".h")):
                out.append(os.path.relpath(os.path.join(d, f), ext))
    return sorted(out)


def layer_of(rel):
    """The layer a path (relative to extender/) belongs to: its index in LAYERS,
    or len(LAYERS) for main.c and folders not in LAYERS (the top)."""
    top = rel.split(os.sep)[0] if os.sep in rel else ""
    return LAYERS.index(top) if top in LAYERS else len(LAYERS)


def layer_name(rel):
    top = rel.split(os.sep)[0] if os.sep in rel else ""
    return top if top in LAYERS else (top or "extender/") + " (top)"


def resolve(root, rel, target):
    """Where a quoted include lands, relative to extender/ (as the compiler
    looks: next to the including file first, then from extender/, which the
    tests' -Iextender would allow); None when it lands nowhere in extender/."""
    ext = os.path.join(root, "extender")
    for base in (os.path.dirname(os.path.join(ext, rel)), ext):
        path = os.path.normpath(os.path.join(base, target))
        if os.path.isfile(path):
            r = os.path.relpath(path, ext)
            return None if r.startswith("..") else r
    return None


def layering_violations(root):
    """(file, include, where it lands or None, why) for every include that goes
    up a layer or lands nowhere."""
    bad = []
    for rel in sources(root):
        with open(os.path.join(root, "extender", rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        for target in INCLUDE.findall(text):
            got = resolve(root, rel, target)
            if got is None:
                bad.append((rel, target, None, "does not resolve to a file in extender/"))
            elif got in LEAVES:
                continue
            elif layer_of(got) > layer_of(rel):
                bad.append((rel, target, got, f"{layer_name(rel)} includes {layer_name(got)}, "
                                              "a higher layer"))
    return bad


def long_files(root):
    """(file, lines) for every file in extender/ over MAX_LINES lines."""
    out = []
    for rel in sources(root):
        with open(os.path.join(root, "extender", rel), encoding="utf-8", errors="replace") as f:
            n = sum(1 for _ in f)
        if n > MAX_LINES:
            out.append((rel, n))
    return out


def report(bad):
    return "\n".join(f"  extender/{f}: #include \"{t}\": {why}" for f, t, _, why in bad)


def test_no_lower_layer_includes_server():
    # The rule issue 16 set first: server/ is above every other layer.
    server = LAYERS.index("server")
    bad = [b for b in layering_violations(ROOT) if b[2] and layer_of(b[2]) == server]
    assert not bad, "files below server/ include server/ headers:\n" + report(bad)


def test_includes_follow_the_layer_order():
    bad = layering_violations(ROOT)
    assert not bad, ("includes that go up the layers (order: " + " < ".join(LAYERS) +
                     " < main.c):\n" + report(bad))


def test_no_source_file_over_1000_lines():
    big = long_files(ROOT)
    assert not big, "files over %d lines (split them by concern):\n%s" % (
        MAX_LINES, "\n".join(f"  extender/{f}: {n} lines" for f, n in big))


def test_every_layer_exists():
    # A renamed folder must be renamed here too, or its rules would stop applying.
    missing = [l for l in LAYERS if not os.path.isdir(os.path.join(ROOT, "extender", l))]
    assert not missing, f"layers named here but missing from extender/: {missing}"


def write(root, rel, text):
    path = os.path.join(root, "extender", rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_the_checks_catch_what_they_are_for(tmp_path):
    # A made-up tree with one of each mistake, and includes that are allowed.
    root = str(tmp_path)
    write(root, "version.h", "#define CE_VERSION \"x\"\n")
    write(root, "base/buf.h", "")
    write(root, "base/metrics.h", '#include "buf.h"\n')
    write(root, "server/app.h", '#include "../base/buf.h"\n#include "../version.h"\n')
    write(root, "server/metrics.h", "")
    write(root, "gang/gang.h", "")
    write(root, "cluster/cluster.c",
          '#include "../base/metrics.h"\n#include "../gang/gang.h"\n'
          '#include "../server/app.h"\n#  include "../server/metrics.h"\n#include <stdio.h>\n')
    write(root, "gang/gang.c", '#include "gang.h"\n#include "../cluster/cluster.h"\n')
    write(root, "kube/big.c", "int x;\n" * (MAX_LINES + 1))
    write(root, "kube/fits.c", "int x;\n" * MAX_LINES)
    write(root, "main.c", '#include "server/app.h"\n#include "cluster/cluster.c"\n')
    write(root, "sim/sim.c", '#include "../server/app.h"\n')
    write(root, "base/log.c", '#include "../sim/sim.c"\n')
    bad = {(f, t): why for f, t, _, why in layering_violations(root)}
    assert set(bad) == {
        ("cluster/cluster.c", "../server/app.h"),
        ("cluster/cluster.c", "../server/metrics.h"),
        ("gang/gang.c", "../cluster/cluster.h"),  # no such file: flagged as unresolved
        ("base/log.c", "../sim/sim.c"),           # a folder not named is above every layer
    }, bad
    assert "cluster includes server" in bad[("cluster/cluster.c", "../server/app.h")]
    assert "does not resolve" in bad[("gang/gang.c", "../cluster/cluster.h")]
    assert long_files(root) == [("kube/big.c", MAX_LINES + 1)]


if __name__ == "__main__":
    root = sys.argv[1] if len(sys.argv) > 1 else ROOT
    bad, big = layering_violations(root), long_files(root)
    if bad:
        print("layering violations:\n" + report(bad))
    for f, n in big:
        print(f"over {MAX_LINES} lines: extender/{f}: {n}")
    if not bad and not big:
        print("layering ok; no file over %d lines" % MAX_LINES)
    sys.exit(1 if bad or big else 0)
