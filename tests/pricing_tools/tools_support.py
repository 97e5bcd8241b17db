"""Shared by the tests in tests/pricing_tools: paths and running the CLI."""

import json
import os
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOOLS = os.path.join(REPO, "pricing", "tools")
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
DATA = os.path.join(REPO, "pricing", "data")
TABLES = os.path.join(REPO, "pricing", "tables")
PRICING = os.path.join(TOOLS, "pricing.py")
sys.path.insert(0, TOOLS)

import pricingtable  # noqa: E402


def fixture(name):
    return os.path.join(FIXTURES, name)


def cli(*args, cwd=REPO, env=None, timeout=300):
    """Runs pricing.py; returns the CompletedProcess (text)."""
    return subprocess.run([sys.executable, PRICING, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=timeout)


def table(path):
    return pricingtable.load(str(path))


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)
    return str(path)


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def header_text(doc):
    """The header comment as one line of words (wrapping undone)."""
    return " ".join(line.lstrip("#").strip() for line in doc.header if line.strip("# "))
