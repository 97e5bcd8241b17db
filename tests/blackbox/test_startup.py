"""Start-up as a new user meets it: the bundled pricing table found next to
the binary wherever it runs (a checkout, an install, neither), `make` and
`make install`, and one validation path: every refusal of start-up is also
--check's, with the same exit code and the same message."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from extender_harness import (BINARY, INPUTS, PRICING_SRC, REPO, binary_env, free_port,
                              parse_log_lines)
from test_tls import make_ca, make_cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """test_tls's certificates, made once for the module (RSA keys are slow
    to make and no test here changes them)."""
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_cert(d, "ca", "server", "localhost", "IP:127.0.0.1,DNS:localhost")
    make_cert(d, "ca", "client", "kube-scheduler")
    return d

RELEASE = REPO / "bin" / "cost-extender"
TABLE = "aws-us-east-1.yaml"
SYSTEM_TABLE = Path("/usr/share/cost-extender/pricing") / TABLE


def run(cmd, cwd="/", timeout=30, env=None):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, cwd=str(cwd), env=env or binary_env())


def errors_logged(stderr):
    """The refusals start-up logged: the "error" of each "cannot start"."""
    return [r["error"] for r in parse_log_lines(stderr) if r["msg"] == "cannot start"]


def wait_ready(port, proc, timeout):
    """Seconds until GET /readyz answers 200; fails after timeout."""
    import http.client
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        assert proc.poll() is None, "exited early: %s" % proc.stderr.read()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.02)
    pytest.fail("not ready within %ss" % timeout)


def serve(cmd, port, cwd="/", timeout=5):
    """Starts cmd (which listens on port), waits for readiness, stops it;
    returns (seconds to ready, log records)."""
    proc = subprocess.Popen([str(c) for c in cmd], cwd=str(cwd), env=binary_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        took = wait_ready(port, proc, timeout)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return took, parse_log_lines(err)


def nodes_dir(tmp_path):
    d = tmp_path / "nodes"
    d.mkdir()
    for p in INPUTS.glob("node-*.json"):
        shutil.copy(p, d)
    return d


# ------------------------------------------------ the bundled pricing table --

def test_checkout_binary_from_another_folder_is_ready_within_5s(tmp_path):
    # The project lead's CI hook, exactly: from /, the checkout's binary,
    # a folder of Node files, no --pricing.
    port = free_port()
    took, logs = serve([RELEASE, "--listen", "127.0.0.1:%d" % port,
                        "--nodes-file", nodes_dir(tmp_path)], port, cwd="/", timeout=5)
    found = REPO / "pricing" / "tables" / TABLE
    started = next(r for r in logs if r["msg"] == "cost-extender started")
    assert started["pricing"] == str(found) and "bundled" in started["pricing_from"], started
    assert any(r["msg"] == "pricing table loaded" and r["file"] == str(found) for r in logs)


def layout(root, where):
    """A copy of the binary under test in root/bin, with the bundled table
    where an install (share) or a checkout (pricing/tables) keeps it."""
    (root / "bin").mkdir(parents=True)
    exe = root / "bin" / "cost-extender"
    shutil.copy(BINARY, exe)
    if where:
        d = root / where
        d.mkdir(parents=True)
        shutil.copy(PRICING_SRC, d / TABLE)
        return exe, d / TABLE
    return exe, None


@pytest.mark.parametrize("where", ["share/cost-extender/pricing", "pricing/tables"])
def test_table_found_next_to_the_executable(tmp_path, where):
    exe, table = layout(tmp_path / "prefix", where)
    r = run([exe, "--check"], cwd=tmp_path)
    assert r.returncode == 0, r
    assert "pricing table %s: ok, 1356 instance types" % table in r.stdout, r.stdout
    # The install folder comes first.
    if where.startswith("share"):
        other = tmp_path / "prefix" / "pricing" / "tables"
        other.mkdir(parents=True)
        (other / TABLE).write_text("not: a table\n")
        assert run([exe, "--check"], cwd=tmp_path).returncode == 0


def test_no_table_anywhere_refuses_to_start_naming_the_paths(tmp_path):
    if SYSTEM_TABLE.exists():
        pytest.skip("%s exists on this machine" % SYSTEM_TABLE)
    exe, _ = layout(tmp_path / "p", None)
    tried = [str(tmp_path / "p" / "share/cost-extender/pricing" / TABLE),
             str(tmp_path / "p" / "pricing/tables" / TABLE), str(SYSTEM_TABLE)]
    r = run([exe, "--listen", "127.0.0.1:%d" % free_port()], timeout=10)
    assert r.returncode == 1, r
    (err,) = errors_logged(r.stderr)
    assert err == ("pricing table: no --pricing given and the bundled %s is not in any of %s"
                   % (TABLE, ", ".join(tried))), err
    c = run([exe, "--check"])
    assert c.returncode == 1 and err in c.stdout.splitlines(), c


def test_make_install_runs_from_any_folder(tmp_path):
    prefix, stage = tmp_path / "opt", tmp_path / "stage"
    for args in (["PREFIX=%s" % prefix], ["PREFIX=/usr/local", "DESTDIR=%s" % stage]):
        r = run(["make", "--no-print-directory", "install", *args], cwd=REPO, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
    for root in (prefix, stage / "usr" / "local"):
        for f in ["bin/cost-extender", "share/cost-extender/pricing/" + TABLE,
                  "share/cost-extender/pricing/gcp-us-central1.yaml",
                  "share/doc/cost-extender/README.md",
                  "share/doc/cost-extender/pricing/README.md",
                  "share/doc/cost-extender/deploy/README.md"]:
            assert (root / f).is_file(), f
        assert os.access(root / "bin/cost-extender", os.X_OK)
    port = free_port()
    _, logs = serve([prefix / "bin" / "cost-extender", "--listen", "127.0.0.1:%d" % port,
                     "--nodes-file", nodes_dir(tmp_path)], port, cwd=tmp_path, timeout=10)
    loaded = [r["file"] for r in logs if r["msg"] == "pricing table loaded"]
    assert loaded == [str(prefix / "share/cost-extender/pricing" / TABLE)], loaded


@pytest.mark.parametrize("goal", [[], ["install", "PREFIX=/nonexistent"]])
def test_make_installs_build_packages_first(goal):
    # On a fresh machine `make` must not fail on a missing header: the
    # default goal (and install) first runs the dpkg check `make run` does.
    r = run(["make", "-n", "--no-print-directory", *goal], cwd=REPO)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    check = next(i for i, l in enumerate(lines) if "dpkg -s" in l)
    for pkg in ("libmicrohttpd-dev", "libyaml-dev", "libcurl4-openssl-dev"):
        assert pkg in lines[check], lines[check]
    assert any("bin/cost-extender" in l for l in lines[check + 1:]), r.stdout


# --------------------------------------------------- one validation path --

def kubeconfig(path, **cluster):
    cluster = dict({"server": "https://127.0.0.1:1"}, **cluster)
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": cluster}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]}))
    return path


def refusal_cases(tmp, pki):
    d = nodes_dir(tmp)
    kc = kubeconfig(tmp / "kc.json")
    no_ca = kubeconfig(tmp / "kc-no-ca.json", **{"certificate-authority": str(tmp / "nope.crt")})
    (tmp / "folder").mkdir()
    return [
        # (name, flags, exit code, every refusal, in order; a trailing "*"
        # stands for GnuTLS's own words)
        ("no host", ["--listen", "nohost"], 1,
         ['--listen: bad listen address "nohost" (want host:port)']),
        ("port too big", ["--listen", "127.0.0.1:99999"], 1,
         ['--listen: bad port in listen address "127.0.0.1:99999"']),
        ("not an IP", ["--listen", "example.com:80"], 1,
         ['--listen: listen host "example.com" is not an IP address']),
        ("cert without key", ["--tls-cert", pki / "server.crt"], 2,
         ["--tls-cert needs --tls-key (tls.key)"]),
        ("key without cert", ["--tls-key", pki / "server.key"], 2,
         ["--tls-key needs --tls-cert (tls.cert)"]),
        ("client CA alone", ["--tls-client-ca", pki / "ca.crt"], 2,
         ["--tls-client-ca needs --tls-cert and --tls-key"]),
        ("missing key file", ["--tls-cert", pki / "server.crt", "--tls-key", tmp / "x.key"], 1,
         ["TLS: cannot open %s: No such file or directory" % (tmp / "x.key")]),
        ("key is a folder", ["--tls-cert", pki / "server.crt", "--tls-key", tmp / "folder"], 1,
         ["TLS: %s is not a regular file" % (tmp / "folder")]),
        ("key of another cert", ["--tls-cert", pki / "server.crt", "--tls-key",
                                 pki / "client.key"], 1,
         ["TLS: %s does not match the certificate in %s" % (pki / "client.key",
                                                           pki / "server.crt")]),
        ("client CA not PEM", ["--tls-cert", pki / "server.crt", "--tls-key", pki / "server.key",
                               "--tls-client-ca", pki / "server.csr"], 1,
         ["TLS: %s: no PEM CA certificate in it: *" % (pki / "server.csr")]),
        ("nodes file and kubeconfig", ["--nodes-file", d, "--kubeconfig", kc], 2,
         ["give --nodes-file (nodesFile) or --kubeconfig (kubeconfig), not both: node facts "
          "come from one place"]),
        ("nodes file and context", ["--nodes-file", d, "--context", "prod"], 2,
         ["--context (cluster.context) picks a kubeconfig context: it does nothing with "
          "--nodes-file"]),
        ("kubeconfig missing", ["--kubeconfig", tmp / "none.yaml"], 1, None),
        ("kubeconfig CA missing", ["--kubeconfig", no_ca], 1,
         ["cluster connection (kubeconfig %s, context c): its certificate-authority %s cannot "
          "be read: No such file or directory" % (no_ca, tmp / "nope.crt")]),
        ("every refusal, not the first", ["--listen", "nohost", "--tls-cert", pki / "server.crt"],
         2, ["--tls-cert needs --tls-key (tls.key)",
             '--listen: bad listen address "nohost" (want host:port)']),
    ]


# The cases by name, for parametrize; must be refusal_cases' names, in order.
CASE_NAMES = [
    "no host", "port too big", "not an IP", "cert without key", "key without cert",
    "client CA alone", "missing key file", "key is a folder", "key of another cert",
    "client CA not PEM", "nodes file and kubeconfig", "nodes file and context",
    "kubeconfig missing", "kubeconfig CA missing", "every refusal, not the first"]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_start_up_and_check_refuse_alike(name, tmp_path, pki):
    cases = refusal_cases(tmp_path, pki)
    assert [c[0] for c in cases] == CASE_NAMES
    (case,) = [c for c in cases if c[0] == name]
    _, flags, code, want = case
    base = ["--pricing", PRICING_SRC]
    if "--listen" not in flags:
        base += ["--listen", "127.0.0.1:%d" % free_port()]
    # KUBECONFIG from the environment must not decide the case.
    env = {k: v for k, v in binary_env().items() if k != "KUBECONFIG"}
    started = run([BINARY, *base, *flags], timeout=20, env=env)
    checked = run([BINARY, *base, *flags, "--check"], timeout=20, env=env)
    logged = errors_logged(started.stderr)
    assert started.returncode == code, (started.returncode, logged, started.stderr[-2000:])
    assert checked.returncode == code, checked
    if want is not None:
        assert len(logged) == len(want) and all(
            l == w or (w.endswith("*") and l.startswith(w[:-1])) for l, w in zip(logged, want)), \
            logged
    assert logged, started.stderr
    # --check prints each refusal as its own line, the same words.
    lines = checked.stdout.splitlines()
    assert [l for l in lines if l in logged] == logged, (lines, logged)
    # And says nothing is fine when start-up would refuse.
    assert not any(": ok" in l for l in lines), lines


@pytest.mark.parametrize("flags,mention", [
    (["--max-nodes", "0"], "--max-nodes: want 1 to 10000000, got \"0\""),
    (["--default-spot", "NEVER"], "--default-spot: want never, allow, prefer or only, got \"NEVER\""),
    (["--log-level", "warning"], "--log-level: want debug, info, warn or error, got \"warning\""),
    (["--no-such-flag"], "unknown flag: --no-such-flag"),
])
def test_bad_flags_refused_alike_by_start_up_and_check(flags, mention):
    for extra in ([], ["--check"]):
        r = run([BINARY, "--pricing", PRICING_SRC, *flags, *extra])
        assert r.returncode == 2, r
        assert r.stderr == "cost-extender: %s%s\n" % (mention, " (see --help)" if
                                                      "unknown" in mention else ""), r.stderr


def test_bad_config_file_refused_alike(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("listen: 127.0.0.1:1\nhttp:\n  maxBody: 1Mi\n")
    want = 'cost-extender: config file: %s:3:3: unknown setting "http.maxBody"\n' % cfg
    for extra in ([], ["--check"]):
        r = run([BINARY, "--config", cfg, *extra])
        assert (r.returncode, r.stderr) == (2, want), r


def test_check_approves_what_starts(tmp_path, pki):
    # The other way round: what --check calls good does start (HTTPS, a
    # client CA, a nodes file, queues).
    queues = tmp_path / "q.yaml"
    queues.write_text("apiVersion: cost-extender.io/v1alpha1\nkind: QueueConfig\n"
                      "queues:\n  batch: {capacity: {cpu: 8}}\n")
    port = free_port()
    flags = ["--listen", "127.0.0.1:%d" % port, "--pricing", PRICING_SRC, "--nodes-file",
             nodes_dir(tmp_path), "--queues", queues, "--tls-cert", pki / "server.crt",
             "--tls-key", pki / "server.key", "--tls-client-ca", pki / "ca.crt",
             "--leader-elect", "true"]
    c = run([BINARY, *flags, "--check"])
    assert c.returncode == 0, c
    assert "queue config %s: ok, 1 queue" % queues in c.stdout.splitlines(), c.stdout
    assert "nodes file %s: ok, 6 nodes, 0 unusable" % (tmp_path / "nodes") in c.stdout, c.stdout
    assert "note: gang admission needs the cluster connection: queues are loaded but not used" \
        in c.stdout.splitlines()
    assert "note: leader election needs the cluster connection: --leader-elect does nothing " \
        "here" in c.stdout.splitlines()
    p = subprocess.Popen([str(BINARY), *map(str, flags)], env=binary_env(),
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and p.poll() is None:
            try:
                import socket
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        assert p.poll() is None, p.stderr.read()
    finally:
        p.terminate()
        _, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    recs = parse_log_lines(err)
    assert any(r["msg"] == "gang admission needs the cluster connection: queues are loaded but "
               "not used" and r["level"] == "warn" for r in recs), err
    assert any(r["msg"].startswith("leader election needs the cluster connection")
               and r["level"] == "warn" for r in recs), err
