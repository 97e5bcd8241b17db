#!/usr/bin/python3
"""make bench, pricing import: peak memory and time of `pricing.py import-aws`
on a generated 200 MB AWS offer file, next to json.load of the same file.

The offer file (tests/pricing_tools/gen_offer.py: the real file's nesting,
a realistic share of reserved terms and non-Linux variants) is made once in
build/bench/data. Each measurement runs in its own child process, and the
peak RSS is that child's (getrusage RUSAGE_CHILDREN of a one-child probe).
Figures are printed, never asserted.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "build/bench/data")
OFFER = os.path.join(DATA, "offer-200mb.json")
PYTHON = "/usr/bin/python3"

PROBE = ("import resource, subprocess, sys, time; t = time.monotonic(); "
         "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE); "
         "dt = time.monotonic() - t; "
         "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, dt)")


def measure(cmd):
    out = subprocess.run([PYTHON, "-c", PROBE] + cmd, capture_output=True, text=True,
                         check=True).stdout.split()
    rc, kib, secs = int(out[0]), int(out[1]), float(out[2])
    if rc != 0:
        raise SystemExit(f"{cmd} failed ({rc})")
    return kib / 1024, secs


def main():
    os.makedirs(DATA, exist_ok=True)
    if not os.path.exists(OFFER):
        print("generating a 200 MB offer file ...", flush=True)
        subprocess.run([PYTHON, os.path.join(ROOT, "tests/pricing_tools/gen_offer.py"), OFFER,
                        "--mb", "136"], check=True, stdout=subprocess.DEVNULL)
    size = os.path.getsize(OFFER) / 1e6
    out = os.path.join(DATA, "offer-200mb.yaml")
    rss, secs = measure([PYTHON, os.path.join(ROOT, "pricing/tools/pricing.py"), "import-aws",
                         "--offer", OFFER, "--region", "us-east-1", "--out", out])
    whole_rss, whole_secs = measure([PYTHON, "-c",
                                     f"import json; json.load(open({OFFER!r}))"])
    print(f"\npricing import (issue #15): AWS offer file of {size:.0f} MB "
          f"(synthetic, tests/pricing_tools/gen_offer.py), Python {sys.version.split()[0]}:")
    print(f"  pricing.py import-aws (streamed):  peak RSS {rss:6.1f} MiB  {secs:5.1f} s "
          f"({size / secs:.0f} MB/s)")
    print(f"  json.load of the whole file:       peak RSS {whole_rss:6.1f} MiB  "
          f"{whole_secs:5.1f} s  (for comparison)")


if __name__ == "__main__":
    main()
