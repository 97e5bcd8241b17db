"""The incremental JSON reader (pricing/tools/jsonstream.py) and the AWS
import's memory on a large offer file.

The reader must give exactly what json.loads gives, whatever the chunk
size (records and names cut at every possible place), and a clear error
with line and column for truncated or broken input. The memory test runs
the real import on a generated 60 MB offer file in a child process and
checks its peak RSS against what loading the file whole takes: a bound,
not a timing, so it cannot flake on a busy machine.
"""

import io
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOOLS = os.path.join(REPO, "pricing", "tools")
sys.path.insert(0, TOOLS)
sys.path.insert(0, os.path.dirname(__file__))
import gen_offer  # noqa: E402
import jsonstream  # noqa: E402

DOC = {
    "formatVersion": "v1.0", "n": -12.5e3, "big": 123456789012345678901234567890,
    "products": {"A": {"sku": "A", "attributes": {"memory": "8 GiB", "uni": "é ✓ \u2028 \"q\""}},
                 "B": {"sku": "B", "list": [1, 2.5, None, True, False, "x" * 50]},
                 "": {}},
    "terms": {"OnDemand": {"A": {"p": "0.0960000000"}}, "Reserved": {"A": {"p": [1, [2, [3]]]}}},
    "empty": {}, "arr": [], "tail": "end",
}


def walk(text, chunk):
    """Read DOC's shape the way the AWS importer does: stream products and
    terms.OnDemand, skip terms.Reserved unread, decode everything else."""
    s = jsonstream.JSONStream(io.StringIO(text), "doc.json", chunk_chars=chunk)
    out = {}
    s.begin_object()
    for key in s.members():
        if key == "products":
            s.begin_object()
            out[key] = {sku: s.read_value() for sku in s.members()}
        elif key == "terms":
            s.begin_object()
            out[key] = {}
            for t in s.members():
                if t == "OnDemand":
                    s.begin_object()
                    out[key][t] = {sku: s.read_value() for sku in s.members()}
        elif key == "arr":
            s.begin_array()
            out[key] = list(s.items())
        else:
            out[key] = s.read_value()
    s.end()
    return out


def expected():
    e = json.loads(json.dumps(DOC))
    del e["terms"]["Reserved"]
    return e


@pytest.mark.parametrize("indent", [None, 1, 4])
def test_same_values_as_json_for_every_chunk_size(indent):
    text = json.dumps(DOC, indent=indent, ensure_ascii=False)
    for chunk in list(range(1, 40)) + [97, 1000, 1 << 20]:
        assert walk(text, chunk) == expected(), f"chunk {chunk}"


def test_unconsumed_members_are_skipped_without_decoding_them_whole():
    # A skipped object is walked member by member, so a value limit far
    # below the object's size is never hit: each member is small.
    reserved = {f"SKU{i}": {"term": {"p": "0.06", "n": i}} for i in range(2000)}
    text = json.dumps({"terms": {"Reserved": reserved, "OnDemand": {"X": 1}}})
    s = jsonstream.JSONStream(io.StringIO(text), "t.json", chunk_chars=64,
                              max_value_chars=4096)
    s.begin_object()
    for key in s.members():
        assert key == "terms"
        s.begin_object()
        seen = {}
        for t in s.members():
            if t == "OnDemand":
                s.begin_object()
                seen = {k: s.read_value() for k in s.members()}
    s.end()
    assert seen == {"X": 1}


@pytest.mark.parametrize("text,message,line,col", [
    ('{"a": {"b": 1', "truncated", 1, 14),                        # ends inside products
    ('{"a": {"b": "xyz', "truncated", 1, 13),
    ('{"a": 1,', "truncated", 1, 9),
    ('{"a": 1}\n{"b": 2}', "after the end of the JSON document", 2, 1),
    ('{"a" 1}', "expected ':' after member name 'a'", 1, 6),
    ('{"a": 1 "b": 2}', "expected ',' or '}' after the value of 'a'", 1, 9),
    ('{\n  "a": {\n    "x": tru\n  }\n}', "Expecting value", 3, 10),
    ('[1, 2]', "expected '{'", 1, 1),
    ('', "truncated", 1, 1),
])
def test_errors_name_file_line_and_column(text, message, line, col):
    for chunk in (1, 3, 1 << 20):
        s = jsonstream.JSONStream(io.StringIO(text), "offer.json", chunk_chars=chunk)
        with pytest.raises(jsonstream.JSONStreamError) as e:
            s.begin_object()
            for _ in s.members():
                if s._peek() == "{":
                    s.begin_object()
                    for _ in s.members():
                        s.read_value()
            s.end()
        assert message in str(e.value), (chunk, str(e.value))
        assert str(e.value).startswith(f"offer.json:{line}:{col}: "), (chunk, str(e.value))


def test_a_single_huge_value_is_refused():
    text = '{"products": {"A": "' + "x" * 5000 + '"}}'
    s = jsonstream.JSONStream(io.StringIO(text), "big.json", chunk_chars=100,
                              max_value_chars=1000)
    s.begin_object()
    with pytest.raises(jsonstream.JSONStreamError, match="larger than"):
        for _ in s.members():
            s.begin_object()
            for _ in s.members():
                s.read_value()


def test_long_value_spanning_many_chunks_reads_correctly():
    val = {"list": list(range(20000))}
    text = json.dumps({"k": val})
    s = jsonstream.JSONStream(io.StringIO(text), "x.json", chunk_chars=7)
    s.begin_object()
    got = {k: s.read_value() for k in s.members()}
    assert got == {"k": val}


def run_with_peak_rss(cmd):
    """(CompletedProcess, peak RSS in MiB of that child alone)."""
    probe = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], "
             "capture_output=True, text=True); "
             "print(p.returncode); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
             "sys.stdout.write(p.stderr)")
    p = subprocess.run([sys.executable, "-c", probe] + cmd, capture_output=True, text=True,
                       cwd=REPO, timeout=900)
    lines = p.stdout.splitlines()
    return int(lines[0]), int(lines[1]) / 1024, "\n".join(lines[2:])


def test_import_of_a_60_mb_offer_file_streams(tmp_path):
    offer = tmp_path / "offer.json"
    want = gen_offer.generate(str(offer), 60 * 10**6)
    size_mb = offer.stat().st_size / 2**20
    assert size_mb > 55
    out = tmp_path / "table.yaml"
    rc, rss, err = run_with_peak_rss([sys.executable, os.path.join(TOOLS, "pricing.py"),
                                      "import-aws", "--offer", str(offer), "--out", str(out)])
    assert rc == 0, err
    sys.path.insert(0, TOOLS)
    import pricingtable
    types = pricingtable.load(str(out)).data["instanceTypes"]
    assert {t: e["onDemand"] for t, e in types.items()} == \
        {t: p.normalize() for t, p in want.items()}
    # Loading the file whole takes several times its size; the stream stays
    # near the interpreter's own footprint (about 15 MiB) plus a read chunk.
    rc2, rss_whole, _ = run_with_peak_rss([sys.executable, "-c",
                                           f"import json; json.load(open({str(offer)!r}))"])
    assert rc2 == 0
    assert rss_whole > 2 * size_mb
    assert rss < 60, f"import peak RSS {rss:.0f} MiB for a {size_mb:.0f} MiB file " \
                     f"(json.load: {rss_whole:.0f} MiB)"

