#!/usr/bin/python3
"""Runs every test suite and prints one closing line: "N passed, N failed".

make test calls this with the cmocka unit test binaries (built with
AddressSanitizer and UndefinedBehaviorSanitizer) as arguments; it then runs
the pytest suites that drive the built binaries over HTTP. Exit status is 0
only when every test passed and every suite ran.
"""
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every folder under tests/ holding test_*.py files is a pytest suite.
PYTEST_DIRS = sorted(
    os.path.relpath(d, ROOT)
    for d in (os.path.join(ROOT, "tests", n) for n in os.listdir(os.path.join(ROOT, "tests")))
    if os.path.isdir(d) and any(f.startswith("test_") and f.endswith(".py") for f in os.listdir(d)))


def run_unit(binary):
    """Runs one cmocka binary with TAP output; returns (passed, failed)."""
    env = dict(os.environ, CMOCKA_MESSAGE_OUTPUT="TAP")
    # Leak checks and UB reports make the binary exit non-zero.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    proc = subprocess.run([binary], cwd=ROOT, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    passed = len(re.findall(r"^ok \d+", proc.stdout, re.M))
    failed = len(re.findall(r"^not ok \d+", proc.stdout, re.M))
    name = os.path.basename(binary)
    if proc.returncode != 0 and failed == 0:
        # Crashed, or a sanitizer found something after the tests passed.
        failed = 1
    status = "ok" if failed == 0 else "FAILED"
    print(f"unit  {name:<28} {passed:4d} passed {failed:3d} failed  {status}")
    if failed:
        sys.stdout.write(out[-6000:])
    return passed, failed


def run_pytest(dirs):
    """Runs pytest on the black-box suites; returns (passed, failed)."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "junit.xml")
        cmd = ["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider",
               f"--junitxml={xml}", *dirs]
        proc = subprocess.run(cmd, cwd=ROOT)
        if not os.path.exists(xml):
            print("pytest did not run (exit %d)" % proc.returncode)
            return 0, 1
        root = ET.parse(xml).getroot()
        suites = [root] if root.tag == "testsuite" else list(root)
        total = sum(int(s.get("tests", 0)) for s in suites)
        bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
        skipped = sum(int(s.get("skipped", 0)) for s in suites)
        passed = total - bad - skipped
        if proc.returncode not in (0,) and bad == 0:
            bad = 1
        print(f"pytest {' '.join(dirs)}: {passed} passed, {bad} failed, {skipped} skipped")
        return passed, bad


def main():
    start = time.time()
    passed = failed = 0
    for binary in sys.argv[1:]:
        p, f = run_unit(binary)
        passed += p
        failed += f
    dirs = [d for d in PYTEST_DIRS if os.path.isdir(os.path.join(ROOT, d))]
    if dirs:
        p, f = run_pytest(dirs)
        passed += p
        failed += f
    print(f"\nall suites took {time.time() - start:.0f} s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
