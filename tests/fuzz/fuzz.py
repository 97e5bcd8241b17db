#!/usr/bin/python3
"""Runs the libFuzzer targets built by `make fuzz` (build/fuzz/fuzz_<name>).

For each target: builds its seed folder (build/fuzz/seeds/<name>/) from the
recorded fixtures, the pricing tables and tests/fuzz/seeds/, runs the fuzzer
for a bounded time over its corpus (build/fuzz/corpus/<name>/, kept between
runs) plus the seeds, and prints executions, exec/s, corpus size and whether
it crashed. Crashing inputs land in build/fuzz/crashes/<name>/. Totals over
all runs are kept in build/fuzz/stats.json (for BENCHMARKS.md). Exits 1 when
any target crashed.

    fuzz.py [--seconds N] [--jobs N] [TARGET...]
"""
import argparse
import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build", "fuzz")
FIX = "tests/fixtures"
SHARED_FIX = os.path.join(os.path.dirname(ROOT), "shared", "fixtures")
SCHED = "kube-scheduler-v1.32"
API = "kube-apiserver-v1.32"


def fixture_globs(pattern):
    """Files matching pattern under tests/fixtures and ../shared/fixtures."""
    out, seen = [], set()
    paths = sorted(glob.glob(os.path.join(ROOT, FIX, pattern)))
    if os.path.isdir(SHARED_FIX):
        paths += sorted(glob.glob(os.path.join(SHARED_FIX, pattern)))
    for p in paths:  # the two copies are mostly the same: each content once
        h = hashlib.sha1(read(p)).digest()
        if h not in seen:
            seen.add(h)
            out.append(p)
    return out


def read(path):
    with open(path, "rb") as f:
        return f.read()


def compact(data):
    """A JSON document on one line (newlines never occur inside JSON strings)."""
    return data.replace(b"\r", b"").replace(b"\n", b"")


def files(*patterns):
    out = []
    for p in patterns:
        out += sorted(glob.glob(os.path.join(ROOT, p)))
    return [read(f) for f in out if os.path.isfile(f)]


def quantities():
    """Every quantity string in the fixtures' allocatable, capacity, requests,
    limits and overhead, and in the pricing tables' memory fields, plus a few
    edge cases."""
    found = set()

    def walk(v, under=False):
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, k in ("allocatable", "capacity", "requests", "limits", "overhead"))
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif under and isinstance(v, str):
            found.add(v)

    for f in fixture_globs("*/*/*.json") + fixture_globs("*/*.json"):
        try:
            walk(json.loads(read(f)))
        except ValueError:
            pass
    for f in fixture_globs(API + "/watch-pods.stream"):
        for line in read(f).splitlines():
            try:
                walk(json.loads(line))
            except ValueError:
                pass
    for f in glob.glob(os.path.join(ROOT, "pricing/tables/*.yaml")):
        found.update(m.decode() for m in re.findall(rb"memory: ([0-9.]+[A-Za-z]*)", read(f)))
    found.update(["0", "0.1m", "250m", "1.5", "1.5Gi", "1e3", "1E-3", "+12k", "-0", "-1",
                  ".5", "5.", "9223372036854775807", "9223372036854775807m", "8Ei",
                  "0.000000001", "123456789012345678901234567890123456789e-30"])
    return [q.encode() for q in sorted(found)]


def slim(data):
    """A JSON document without managedFields and images (most of a recorded object's
    bytes, none of them read), on one line: small inputs fuzz faster."""
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k not in ("managedFields", "images")}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v
    try:
        return json.dumps(strip(json.loads(data)), separators=(",", ":")).encode()
    except ValueError:
        return compact(data)


def node_events():
    """ADDED, MODIFIED and DELETED watch lines for the fixture nodes."""
    out = []
    for f in fixture_globs(SCHED + "/inputs/node-*.json"):
        node = slim(read(f))
        for t in (b"ADDED", b"MODIFIED", b"DELETED"):
            out.append(b'{"type":"' + t + b'","object":' + node + b"}")
    return out


def watch_seeds():
    lines = []
    for f in fixture_globs(API + "/watch-pods.stream"):
        stream = read(f)
        raw = [l for l in stream.splitlines() if l.strip()]
        lines.append(raw[0])  # one event as recorded, managedFields and all
        lines += [slim(l) for l in raw]
    pages = [slim(read(f)) for f in fixture_globs(API + "/list-*.json")]
    nodes = node_events()
    added = [n for n in nodes if b'"ADDED"' in n[:20]]
    # A whole session: nodes listed, pods listed, then the watch.
    session = b"\n".join(pages + added + lines[1:])
    return lines + pages + nodes + [b"\n".join(added), b"\n".join(lines[1:]), session]


def seeds_for(name):
    if name == "request":
        return [read(f) for f in fixture_globs(SCHED + "/*/*.json")
                if "/inputs/" not in f]
    if name == "pricing":
        return files("pricing/tables/*.yaml", "tests/fuzz/seeds/pricing/*")
    if name == "queues":
        return files("tests/fuzz/seeds/queues/*")
    if name == "quantity":
        return quantities()
    if name == "kubeconfig":
        return files("tests/fuzz/seeds/kubeconfig/*")
    if name == "config":
        return files("tests/fuzz/seeds/config/*")
    if name == "http_head":
        return files("tests/fuzz/seeds/http_head/*")
    if name == "watch":
        return watch_seeds()
    if name == "ytree":
        return (files("pricing/tables/*.yaml", "tests/fuzz/seeds/*/*")
                + [read(f) for f in fixture_globs(SCHED + "/inputs/*.yaml")])
    if name == "simulate":
        return files("tests/fuzz/seeds/simulate/*")
    if name == "jscan":
        return ([read(f) for f in fixture_globs("*/*/*.json") + fixture_globs("*/*.json")]
                + watch_seeds())
    return []


# Inputs of a few KB reach every branch of these; bigger ones only slow
# them (bigger seeds are cut to this). Other targets get room past their
# largest seed, which must stay whole (a pricing table, a full-node request).
MAX_LEN = {"watch": 16384, "jscan": 16384, "ytree": 16384, "quantity": 128, "simulate": 65536}

DICTS = {"request": "json.dict", "watch": "json.dict", "jscan": "json.dict",
         "pricing": "yaml.dict", "queues": "yaml.dict", "kubeconfig": "yaml.dict",
         "config": "yaml.dict", "ytree": "yaml.dict", "quantity": "quantity.dict",
         "simulate": "json.dict"}


def write_seeds(name):
    d = os.path.join(BUILD, "seeds", name)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        os.unlink(os.path.join(d, old))
    blobs = seeds_for(name)
    # Fixed crashers stay in every run.
    blobs += files("tests/fuzz/regressions/%s/*" % name)
    for b in blobs:
        with open(os.path.join(d, hashlib.sha1(b).hexdigest()), "wb") as f:
            f.write(b)
    return d, len(set(blobs)), max([len(b) for b in blobs] + [0])


def run_target(name, seconds):
    binary = os.path.join(BUILD, "fuzz_" + name)
    corpus = os.path.join(BUILD, "corpus", name)
    crashes = os.path.join(BUILD, "crashes", name)
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(crashes, exist_ok=True)
    seeds, n_seeds, largest = write_seeds(name)
    before = set(os.listdir(crashes))
    cmd = [binary, "-max_total_time=%d" % seconds, "-timeout=10", "-rss_limit_mb=2048",
           "-max_len=%d" % MAX_LEN.get(name, max(65536, largest)), "-print_final_stats=1", "-artifact_prefix=" + crashes + "/"]
    if name in DICTS:
        cmd.append("-dict=" + os.path.join(ROOT, "tests", "fuzz", "dicts", DICTS[name]))
    cmd += [corpus, seeds]
    log_path = os.path.join(BUILD, "logs", name + ".log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    start = time.time()
    with open(log_path, "wb") as log:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    took = time.time() - start
    text = read(log_path).decode("utf-8", "replace")
    execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
    rate = re.findall(r"stat::average_exec_per_sec:\s*(\d+)", text)
    if not execs:  # crashed before the final stats: the last status line
        m = re.findall(r"^#(\d+)\s", text, re.M)
        execs = m[-1:] or ["0"]
    # The corpus as libFuzzer counts it (the folder also keeps inputs that
    # later ones made redundant).
    corp = re.findall(r"corp: (\d+)/", text)
    new = sorted(set(os.listdir(crashes)) - before)
    crashed = proc.returncode != 0 or bool(new)
    return {"target": name, "seconds": took, "execs": int(execs[-1]),
            "exec_s": int(rate[-1]) if rate else int(int(execs[-1]) / max(took, 1)),
            "corpus": int(corp[-1]) if corp else len(os.listdir(corpus)), "seeds": n_seeds, "crashed": crashed,
            "artifacts": [os.path.join(crashes, a) for a in new], "log": log_path,
            "rc": proc.returncode}


def record(results):
    """Adds the runs to build/fuzz/stats.json (totals per target)."""
    path = os.path.join(BUILD, "stats.json")
    try:
        with open(path) as f:
            stats = json.load(f)
    except (OSError, ValueError):
        stats = {}
    for r in results:
        s = stats.setdefault(r["target"], {"seconds": 0, "execs": 0, "runs": 0, "crashes": 0})
        s["seconds"] += r["seconds"]
        s["execs"] += r["execs"]
        s["runs"] += 1
        s["crashes"] += int(r["crashed"])
        s["corpus"] = r["corpus"]
    with open(path, "w") as f:
        json.dump(stats, f, indent=1, sort_keys=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("targets", nargs="*")
    args = ap.parse_args()
    targets = args.targets or sorted(
        os.path.basename(p)[len("fuzz_"):-2]
        for p in glob.glob(os.path.join(ROOT, "tests", "fuzz", "fuzz_*.c")))
    for t in targets:
        if not os.access(os.path.join(BUILD, "fuzz_" + t), os.X_OK):
            print("no fuzz target build/fuzz/fuzz_%s (run make fuzz-build)" % t)
            return 2
    print("fuzzing %d target(s) for %d s each, %d at a time" %
          (len(targets), args.seconds, args.jobs))
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda t: run_target(t, args.seconds), targets))
    record(results)
    print("%-11s %8s %12s %8s %7s  %s" % ("target", "seconds", "executions", "exec/s",
                                           "corpus", "result"))
    for r in results:
        print("%-11s %8.0f %12d %8d %7d  %s" % (
            r["target"], r["seconds"], r["execs"], r["exec_s"], r["corpus"],
            "CRASH: " + ", ".join(r["artifacts"] or ["see " + r["log"]]) if r["crashed"]
            else "ok"))
    bad = [r for r in results if r["crashed"]]
    if bad:
        print("%d target(s) crashed; logs in build/fuzz/logs/, minimise with "
              "build/fuzz/fuzz_<name> -minimize_crash=1 -runs=10000 FILE" % len(bad))
        return 1
    print("no crashes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
