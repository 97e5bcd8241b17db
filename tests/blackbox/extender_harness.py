"""Black-box harness for cost-extender: starts the built binary, talks HTTP.

Used by conftest.py (fixtures) and the test modules (helpers).

The binary under test is build/asan/cost-extender (AddressSanitizer +
UndefinedBehaviorSanitizer); set CE_BINARY to test another one. Every daemon
a test starts is stopped with SIGTERM at the end of the test and must exit 0
(a sanitizer report or a leak makes it exit non-zero), and every line it
wrote to stderr must be a JSON log record with ts, level and msg.

Only the standard library and pytest are used.
"""

import gzip
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "kube-scheduler-v1.32"
INPUTS = FIXTURES / "inputs"
PRICING_SRC = REPO / "pricing" / "tables" / "aws-us-east-1.yaml"
BINARY = Path(os.environ.get("CE_BINARY") or REPO / "build" / "asan" / "cost-extender").resolve()

# What kube-scheduler's Go HTTP client sends with every extender call
# (PROTOCOL.md, "Wire format"); Host and Content-Length are added per call.
SCHEDULER_HEADERS = {
    "Content-Type": "application/json",
    "Accept-Encoding": "gzip",
    "User-Agent": "Go-http-client/1.1",
}

LOG_LEVELS = {"debug", "info", "warn", "error"}

# Sanitizer settings: leaks and UB make the process exit non-zero.
SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=66",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    "LSAN_OPTIONS": "exitcode=66",
}


def binary_env():
    env = dict(os.environ)
    for k, v in SAN_ENV.items():
        env.setdefault(k, v)
    return env


# --------------------------------------------------------------- fixtures --

def load_fixture(rel):
    with open(FIXTURES / rel, "rb") as f:
        return f.read()


def node_inputs():
    """The six Node objects created in the recording cluster, by name."""
    nodes = {}
    for p in sorted(INPUTS.glob("node-*.json")):
        n = json.loads(p.read_text())
        nodes[n["metadata"]["name"]] = n
    assert len(nodes) == 6, "expected six node fixtures in %s" % INPUTS
    return nodes


GPU_INSTANCE_TYPES = {"p3.2xlarge", "g5.xlarge"}


def instance_type(node):
    return node["metadata"]["labels"]["node.kubernetes.io/instance-type"]


def is_gpu_node(node):
    return instance_type(node) in GPU_INSTANCE_TYPES


def is_spot_node(node):
    return node["metadata"]["labels"].get("karpenter.sh/capacity-type") == "spot"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------- logs --

def parse_log_lines(text, strict=True):
    """Parses JSON-lines logs. With strict, every complete line must be a
    JSON object with string ts, level (debug/info/warn/error) and msg;
    otherwise unparsable lines are skipped."""
    records = []
    for i, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            ok = (isinstance(rec, dict) and isinstance(rec.get("ts"), str)
                  and rec.get("level") in LOG_LEVELS and isinstance(rec.get("msg"), str))
        except ValueError:
            ok = False
        if not ok:
            if strict:
                raise AssertionError("stderr line %d is not a JSON log record with ts, "
                                     "level, msg: %r" % (i + 1, line[:500]))
            continue
        records.append(rec)
    return records


def decode_stderr(raw):
    """stderr must be UTF-8 (JSON text is UTF-8); report where it is not."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        start = raw.rfind(b"\n", 0, e.start) + 1
        end = raw.find(b"\n", e.start)
        raise AssertionError("stderr is not valid UTF-8 (%s) in line: %r"
                             % (e.reason, raw[start:end if end >= 0 else None][:500]))


# ---------------------------------------------------------------- metrics --

_SAMPLE_RE = re.compile(
    r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+(-?[0-9]+))?$")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)')
METRIC_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_prom_value(s):
    if s in ("+Inf", "Inf"):
        return float("inf")
    if s == "-Inf":
        return float("-inf")
    if s == "NaN":
        return float("nan")
    if not re.match(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$", s):
        raise AssertionError("bad sample value %r" % s)
    return float(s)


def parse_labels(s, line):
    labels = {}
    pos = 0
    s = s or ""
    while pos < len(s):
        m = _LABEL_RE.match(s, pos)
        assert m, "bad label set in metrics line %r" % line
        name, val = m.group(1), m.group(2)
        assert name not in labels, "duplicate label %s in %r" % (name, line)
        labels[name] = val.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        pos = m.end()
        if m.group(3) == "":
            break
    assert pos >= len(s.rstrip()), "trailing garbage in label set of %r" % line
    return labels


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) in ("histogram", "summary"):
            return name[: -len(suffix)]
    return name


class Metrics:
    """A parsed /metrics page. Parsing checks the text exposition format
    0.0.4: every line is a HELP/TYPE/other comment, blank, or a sample; TYPE
    comes before a family's samples and at most once; a family's samples
    are contiguous; no sample (name + labels) appears twice."""

    def __init__(self, text):
        assert text.endswith("\n"), "exposition must end with a line feed"
        self.text = text
        self.samples = []  # (name, labels dict, value)
        self.types = {}
        self.helps = {}
        seen_families = []
        seen_series = set()
        for line in text.split("\n"):
            if line == "":
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                    assert len(parts) >= 3, "bad comment line %r" % line
                    name = parts[2]
                    assert re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", name), line
                    if parts[1] == "TYPE":
                        assert len(parts) == 4 and parts[3] in METRIC_TYPES, \
                            "bad TYPE line %r" % line
                        assert name not in self.types, "TYPE given twice for %s" % name
                        assert name not in seen_families, \
                            "TYPE for %s after its samples" % name
                        self.types[name] = parts[3]
                    else:
                        assert name not in self.helps, "HELP given twice for %s" % name
                        self.helps[name] = parts[3] if len(parts) == 4 else ""
                continue
            m = _SAMPLE_RE.match(line)
            assert m, "line is not a Prometheus sample: %r" % line
            name, labels, value = m.group(1), parse_labels(m.group(2), line), \
                parse_prom_value(m.group(3))
            fam = family_of(name, self.types)
            if seen_families and seen_families[-1] != fam:
                assert fam not in seen_families, \
                    "samples of %s are not contiguous (line %r)" % (fam, line)
            if not seen_families or seen_families[-1] != fam:
                seen_families.append(fam)
            key = (name, tuple(sorted(labels.items())))
            assert key not in seen_series, "sample given twice: %r" % line
            seen_series.add(key)
            self.samples.append((name, labels, value))

    def get(self, name, default=None, **labels):
        """Value of the one sample of name whose labels include labels."""
        found = [v for n, l, v in self.samples
                 if n == name and all(l.get(k) == str(v2) for k, v2 in labels.items())]
        if not found:
            if default is not None:
                return default
            raise KeyError("no sample %s%r in /metrics" % (name, labels))
        assert len(found) == 1, "several samples match %s%r" % (name, labels)
        return found[0]

    def value(self, name, **labels):
        """Like get, but 0 for a series not exported yet (counters that
        appear on first increment)."""
        return self.get(name, default=0.0, **labels)

    def series(self, name):
        return [(l, v) for n, l, v in self.samples if n == name]


# ----------------------------------------------------------------- client --

class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name)

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise AssertionError("reply (status %d) is not UTF-8 JSON: %s: %r"
                                 % (self.status, e, self.body[:300]))

    def __repr__(self):
        return "<Reply %d %r>" % (self.status, self.body[:300])


def do_request(port, method, path, body=None, headers=None, timeout=30, conn=None):
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if hdrs.get("content-encoding", "").lower() == "gzip":
            data = gzip.decompress(data)
        return Reply(r.status, hdrs, data)
    finally:
        if own:
            conn.close()


class Extender:
    """One cost-extender process started by a test."""

    def __init__(self, workdir, args, pricing, nodes, name, port=None):
        """port: None to pick a free port and pass --listen; a number when
        the listen address comes from elsewhere (a --config file)."""
        self.fixed_port = port
        self.workdir = Path(workdir)
        self.extra_args = list(args)
        self.pricing = pricing
        self.nodes = nodes
        self.name = name
        self.port = None
        self.proc = None
        self.stderr_path = self.workdir / ("%s.stderr.log" % name)
        self.returncode = None
        self.checked = False

    # -- process --------------------------------------------------------
    def command(self):
        cmd = [str(BINARY)]
        if self.fixed_port is None:
            cmd += ["--listen", "127.0.0.1:%d" % self.port]
        cmd += ["--reload-interval", "0.2"]
        if self.pricing is not None:
            cmd += ["--pricing", str(self.pricing)]
        if self.nodes is not None:
            cmd += ["--nodes-file", str(self.nodes)]
        return cmd + self.extra_args

    def start(self, wait_ready=True, timeout=15):
        for _attempt in range(3):
            self.port = self.fixed_port or free_port()
            self._stderr_file = open(self.stderr_path, "wb")
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=self._stderr_file,
                                         env=binary_env(), cwd=str(self.workdir))
            started = self._wait_started(timeout)
            if started:
                break
            # Lost a race for the port with another process: try another.
            if "cannot start HTTP server" in self.stderr_text() and not self.fixed_port:
                self.proc.wait()
                self._stderr_file.close()
                continue
            self._fail_start("did not log \"cost-extender started\" within %ds" % timeout)
        else:
            self._fail_start("could not find a free port")
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def _wait_started(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(r.get("msg") == "cost-extender started" for r in self.logs(strict=False)):
                return True
            if self.fixed_port:
                # The log level may hide the line: ask the port (checking
                # that our process is still the one alive).
                try:
                    if self.get("/healthz", timeout=1).status == 200 and self.proc.poll() is None:
                        return True
                except OSError:
                    pass
            if self.proc.poll() is not None:
                return False
            time.sleep(0.01)
        return False

    def _fail_start(self, why):
        rc = self.proc.poll()
        if rc is None:
            self.proc.kill()
            self.proc.wait()
        self.checked = True
        pytest.fail("cost-extender (%s) %s; exit code %s; command %s\nstderr:\n%s"
                    % (self.name, why, self.proc.returncode, " ".join(self.command()),
                       self.stderr_text()[-6000:]), pytrace=False)

    def wait_ready(self, timeout=15):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                last = self.get("/readyz", timeout=2)
                if last.status == 200:
                    return last
            except OSError as e:
                last = e
            time.sleep(0.02)
        pytest.fail("cost-extender (%s) not ready within %ss (last /readyz: %r, exit code %s)"
                    "\nstderr:\n%s" % (self.name, timeout, last, self.proc.poll(),
                                       self.stderr_text()[-6000:]), pytrace=False)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        assert self.running(), "cost-extender exited early:\n" + self.stderr_text()[-4000:]
        self.proc.send_signal(sig)

    def stop(self, timeout=20):
        """SIGTERM (if still running) and wait; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("cost-extender (%s) did not exit within %ss of SIGTERM\n"
                                 "stderr:\n%s" % (self.name, timeout, self.stderr_text()[-6000:]))
        finally:
            self._stderr_file.close()
        return self.returncode

    def check_clean_exit(self):
        """Stops the process and asserts exit 0 and JSON-only stderr."""
        self.checked = True
        rc = self.stop()
        assert rc == 0, ("cost-extender (%s) exited %s after SIGTERM (sanitizer report or "
                         "crash?)\nstderr:\n%s" % (self.name, rc, self.stderr_text()[-12000:]))
        parse_log_lines(decode_stderr(self.stderr_path.read_bytes()), strict=True)

    # -- stderr ---------------------------------------------------------
    def stderr_text(self):
        try:
            return self.stderr_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def logs(self, strict=True):
        """Parsed log records so far (complete lines only)."""
        text = self.stderr_text()
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        return parse_log_lines(text, strict=strict)

    def log_count(self):
        return len(self.logs(strict=False))

    def wait_log(self, pred, timeout=10, since=0, what="log line"):
        """Polls for a log record (after the first `since` records) matching
        pred; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            recs = self.logs(strict=False)[since:]
            for r in recs:
                if pred(r):
                    return r
            if time.monotonic() > deadline:
                raise AssertionError("no %s within %ss; log since mark:\n%s"
                                     % (what, timeout, "\n".join(json.dumps(r) for r in recs)))
            time.sleep(0.02)

    # -- HTTP -----------------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=30, conn=None):
        return do_request(self.port, method, path, body, headers, timeout, conn)

    def get(self, path, timeout=30):
        return self.request("GET", path, timeout=timeout)

    def call(self, verb, body, prefix="/v1", timeout=30, conn=None):
        """POST <urlPrefix>/<verb> the way kube-scheduler does."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        return self.request("POST", "%s/%s" % (prefix, verb), body=body,
                            headers=dict(SCHEDULER_HEADERS), timeout=timeout, conn=conn)

    def metrics(self):
        r = self.get("/metrics")
        assert r.status == 200, r
        return Metrics(r.body.decode("utf-8"))

    def wait_metric(self, name, pred, timeout=10, **labels):
        deadline = time.monotonic() + timeout
        while True:
            v = self.metrics().value(name, **labels)
            if pred(v):
                return v
            if time.monotonic() > deadline:
                raise AssertionError("metric %s%r stayed at %r for %ss"
                                     % (name, labels, v, timeout))
            time.sleep(0.05)


# --------------------------------------------------------------- helpers --

def poll(pred, timeout=10, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("%s not reached within %ss" % (what, timeout))
        time.sleep(interval)


def atomic_write(path, data):
    """Replaces path with data the way careful writers do (rename)."""
    path = Path(path)
    tmp = path.with_name(".%s.tmp%d" % (path.name, threading.get_ident()))
    if isinstance(data, str):
        data = data.encode()
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def scores_of(reply):
    assert reply.status == 200, reply
    body = reply.json()
    assert isinstance(body, list), body
    return {e["Host"]: e["Score"] for e in body}


# ---------------------------------------------------------------- oracles --
# Independent, deliberately simple re-statements of the documented rules
# (pricing/README.md, PROTOCOL.md), used to say what a reply must contain.

_FLOW_ENTRY = re.compile(r"^  ([A-Za-z0-9._-]+): \{([^}]*)\}")


def read_table_prices(path):
    """Instance type -> {onDemand, spot?} from a table written with one
    flow mapping per type (as the bundled AWS table is), and the spot
    fallbackRatio."""
    prices, ratio = {}, None
    for line in Path(path).read_text().splitlines():
        m = re.match(r"^\s+fallbackRatio:\s*([0-9.]+)", line)
        if m:
            ratio = float(m.group(1))
        m = _FLOW_ENTRY.match(line)
        if m:
            fields = dict(kv.split(": ", 1) for kv in m.group(2).split(", "))
            entry = {"onDemand": float(fields["onDemand"])}
            if "spot" in fields:
                entry["spot"] = float(fields["spot"])
            prices[m.group(1)] = entry
    return prices, ratio


def node_list_price(node, table_path=PRICING_SRC):
    prices, ratio = read_table_prices(table_path)
    p = prices[instance_type(node)]
    if is_spot_node(node):
        return p.get("spot", p["onDemand"] * ratio if ratio else p["onDemand"])
    return p["onDemand"]


_SUFFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "m": 1e-3,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(s):
    m = re.match(r"^([0-9.]+)([a-zA-Z]*)$", str(s))
    assert m and m.group(2) in _SUFFIX, "oracle cannot read quantity %r" % s
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def _requests(c):
    req = dict(c.get("resources", {}).get("limits", {}) or {})
    req.update(c.get("resources", {}).get("requests", {}) or {})
    return {k: quantity(v) for k, v in req.items()}


def _add(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def _max(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = max(out.get(k, 0), v)
    return out


def pod_effective_requests(pod):
    """Kubernetes' effective pod request: max(app containers + sidecars,
    each init container + the sidecars started before it)."""
    spec = pod["spec"]
    sidecars, init_peak = {}, {}
    for ic in spec.get("initContainers", []) or []:
        r = _requests(ic)
        if ic.get("restartPolicy") == "Always":
            sidecars = _add(sidecars, r)
            init_peak = _max(init_peak, sidecars)
        else:
            init_peak = _max(init_peak, _add(r, sidecars))
    app = sidecars
    for c in spec.get("containers", []) or []:
        app = _add(app, _requests(c))
    return _max(app, init_peak)


def pod_fits_node(pod, node):
    need = pod_effective_requests(pod)
    alloc = {k: quantity(v) for k, v in node["status"]["allocatable"].items()}
    return all(v <= alloc.get(k, 0) for k, v in need.items() if v > 0)


def pod_annotations(pod):
    return pod["metadata"].get("annotations") or {}


def expected_verdicts(pod, nodes, table_path=PRICING_SRC):
    """name -> True (passes) / False for the given Node objects, by the
    documented policy: spot never/only, max-node-price, resources."""
    ann = pod_annotations(pod)
    spot = ann.get("cost-extender.io/spot", "allow")
    max_price = ann.get("cost-extender.io/max-node-price")
    out = {}
    for n in nodes:
        ok = pod_fits_node(pod, n)
        if spot == "never" and is_spot_node(n):
            ok = False
        if spot == "only" and not is_spot_node(n):
            ok = False
        if max_price is not None and node_list_price(n, table_path) > float(max_price):
            ok = False
        out[n["metadata"]["name"]] = ok
    return out


# ------------------------------------------------------------ raw sockets --

def raw_connect(port, timeout=10):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def request_head(method, path, headers):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
    lines += ["%s: %s" % kv for kv in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(body, size=8192):
    out = []
    for i in range(0, len(body), size):
        c = body[i:i + size]
        out.append(b"%x\r\n" % len(c) + c + b"\r\n")
    out.append(b"0\r\n\r\n")
    return out


def read_response(sock, timeout=10):
    """Reads one HTTP/1.1 response with a Content-Length body from a raw
    socket. Returns a Reply, or None if the peer closed before sending
    anything."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            if not data:
                return None
            raise AssertionError("connection closed inside the reply head: %r" % data)
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("iso-8859-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed inside the reply body")
        rest += chunk
    return Reply(status, headers, rest[:n])


def wait_closed(sock, timeout):
    """Seconds until the peer closes sock (reading and dropping anything it
    sends), or None if still open after timeout."""
    start = time.monotonic()
    sock.settimeout(0.1)
    while time.monotonic() - start < timeout:
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - start
    return None


def pod_score_requests(pod):
    """Requests for scoring: as pod_effective_requests, but an app container
    without a cpu or memory request counts 100m / 200Mi (README, Cost
    model; the scheduler's own non-zero defaults)."""
    pod = json.loads(json.dumps(pod))
    for c in pod["spec"].get("containers", []) or []:
        req = c.setdefault("resources", {}).setdefault("requests", {})
        lim = c["resources"].get("limits", {}) or {}
        if "cpu" not in req and "cpu" not in lim:
            req["cpu"] = "100m"
        if "memory" not in req and "memory" not in lim:
            req["memory"] = "200Mi"
    return pod_effective_requests(pod)


def pod_cost_on_node(pod, node, table_path=PRICING_SRC):
    """Node price x the pod's dominant share of the node (README, Cost
    model). The bundled AWS table has no interruption rates, so spot prices
    carry no risk surcharge."""
    need = pod_score_requests(pod)
    alloc = {k: quantity(v) for k, v in node["status"]["allocatable"].items()}
    share = 0.0
    for k, v in need.items():
        if v > 0 and alloc.get(k):
            share = max(share, min(1.0, v / alloc[k]))
    return node_list_price(node, table_path) * share


def _ratio(best, cost, scale):
    import math
    if not cost > 0:
        return scale
    return int(math.floor(scale * min(1.0, best / cost) + 0.5))


def expected_scores(pod, nodes, table_path=PRICING_SRC):
    """Scores 0..10 by the README's rule: the cheapest fitting candidate 10,
    the others round(10 * cheapest / cost); refused nodes 0; with spot:
    prefer (and both kinds fitting) spot nodes 5..10, the others 0..4."""
    ok = expected_verdicts(pod, nodes, table_path)
    fit = [n for n in nodes if ok[n["metadata"]["name"]]]
    cost = {n["metadata"]["name"]: pod_cost_on_node(pod, n, table_path) for n in fit}
    spot = {n["metadata"]["name"] for n in fit if is_spot_node(n)}
    others = set(cost) - spot
    prefer = pod_annotations(pod).get("cost-extender.io/spot") == "prefer"
    out = {n["metadata"]["name"]: 0 for n in nodes}
    if not cost:
        return out
    if prefer and spot and others:
        best_spot = min(cost[n] for n in spot)
        best_other = min(cost[n] for n in others)
        for n in spot:
            out[n] = 5 + _ratio(best_spot, cost[n], 5)
        for n in others:
            out[n] = _ratio(best_other, cost[n], 4)
    else:
        best = min(cost.values())
        for n in cost:
            out[n] = _ratio(best, cost[n], 10)
    return out


# --- pytest glue, imported by the suites' conftest.py files -------------------

@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session", autouse=True)
def _binary_exists():
    if not BINARY.exists():
        pytest.exit("binary %s not found: build it with `make -j2 build/asan/cost-extender` "
                    "or set CE_BINARY" % BINARY, returncode=2)


def check_all_exited_cleanly(request, started):
    """Fixture teardown for the extenders a test started: each one the test
    did not check itself gets SIGTERM and must exit 0 with JSON-only stderr
    and no sanitizer report (an xfailed test's are only stopped); all
    failures are reported together."""
    rep = getattr(request.node, "rep_call", None)
    xfailed = rep is not None and hasattr(rep, "wasxfail") and rep.skipped
    errors = []
    for ext in started:
        if ext.checked:
            if ext.proc is not None and ext.proc.poll() is None:
                ext.stop()
            continue
        if xfailed:
            ext.stop()
            continue
        try:
            ext.check_clean_exit()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)
