"""Documentation that runs: every fenced block of README.md,
pricing/README.md and deploy/README.md is run or checked, so the docs
cannot drift from the code.

Each fence says what it holds with a second word in its info string
(```` ```sh run ````; renderers use the first word for highlighting):

  run           shell commands a user runs locally: run in a scratch copy of
                the checkout (every top-level entry linked, HOME a scratch
                folder, /tmp/ a scratch folder), against the daemon a
                `daemon` block of the same file started; 127.0.0.1:8888 and
                localhost:8888 are rewritten to its port. "# " lines after a command are its documented
                output: each must match an output line, in order ("..."
                matches anything). A command without documented output must
                exit 0.
  daemon        a command that starts the daemon (`make run`): started with
                its --listen moved to a free port, and must become ready.
  config        a cost-extender config file: `--check --config` with the
                /etc/cost-extender/ files it names laid out for real.
  pricing       a pricing table: `--check --pricing` (the strict loader: an
                unknown field fails).
  queues        a queue config: `--check --queues`.
  log           log lines: JSON objects with ts, level and msg, each msg a
                message the daemon's source logs.
  kubernetes    Kubernetes objects and kube-scheduler/kubeadm configs: parsed
                as YAML; extender verbs and the annotations we read checked.
  tree          a folder layout: every path in it exists.
  cluster       commands against a cluster or a control-plane node (kubectl,
                sudo): not run here (tests/deploy renders and runs what it can
                without a cluster); each command must need one.
  network       commands that download from a cloud provider or use its CLI
                (curl https://..., aws, az, gcloud, pricing.py fetch), or a
                cluster: not run here (tests/pricing_tools runs the importers
                against provider doubles); each command must need the network
                or a file an earlier command of the block downloads.
  manual        commands not run here for a reason listed in MANUAL.
  illustration  examples of messages: not run.

In `console` blocks commands begin with "$ ". Blocks without a known kind
fail the suite. Keys and flags named in the
prose are checked too: a dotted key of the config file, the pricing table
or the queue config must exist, and a --flag must be one of --help's (or of
the other programs the docs talk about, listed in OTHER_FLAGS).
"""

import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "blackbox"))
from extender_harness import BINARY, PRICING_SRC, binary_env, free_port  # noqa: E402
from test_messages import SWITCHES, help_entries  # noqa: E402

DOCS = ["README.md", "pricing/README.md", "deploy/README.md"]
KINDS = {"run", "daemon", "config", "pricing", "queues", "log", "kubernetes", "tree", "cluster",
         "network", "manual", "illustration"}

# Commands a `manual` block may hold, and why they are not run here.
MANUAL = {
    "make test": "it is the test run this suite is part of",
    "make image": "it needs a container engine (and says 'skipped' without one)",
    "make image-refresher": "it needs a container engine",
    "kustomize edit": "it needs the standalone kustomize and edits deploy/ in place",
    "cost-extender report --nodes nodes.json": "it reads the dumps a cluster block writes",
    "cost-extender report --kubeconfig": "it lists the nodes and pods of a live cluster",
}

# Flags of other programs the docs name (not cost-extender's).
OTHER_FLAGS = {
    "--config": "kube-scheduler (also ours)", "--kubeconfig": "kube-scheduler (also ours)",
    "--leader-elect": "kube-scheduler", "--authentication-kubeconfig": "kube-scheduler",
    "--authorization-kubeconfig": "kube-scheduler", "--bind-address": "kube-scheduler",
    "--server-side": "kubectl apply", "--dry-run": "kubectl", "--from-file": "kubectl",
}


# --------------------------------------------------------------- blocks --

class Block:
    def __init__(self, doc, line, lang, kind, text):
        self.doc, self.line, self.lang, self.kind, self.text = doc, line, lang, kind, text

    def __repr__(self):
        return "%s:%d (%s %s)" % (self.doc, self.line, self.lang, self.kind)


FENCE = re.compile(r"^( *)```(\S*)(?: +(\S+))?\s*$")


def blocks_of(doc):
    out, lines = [], (REPO / doc).read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang, kind = len(m.group(1)), m.group(2), m.group(3)
        body, j = [], i + 1
        while j < len(lines) and not re.match(r"^ {0,%d}```\s*$" % indent, lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        assert j < len(lines), "%s:%d: fence never closed" % (doc, i + 1)
        out.append(Block(doc, i + 1, lang, kind, "\n".join(body) + "\n"))
        i = j + 1
    return out


ALL = [b for d in DOCS for b in blocks_of(d)]


def of_kind(*kinds):
    return [pytest.param(b, id="%s:%d" % (b.doc, b.line)) for b in ALL if b.kind in kinds]


def test_every_block_says_what_it_is():
    unmarked = [b for b in ALL if b.kind not in KINDS]
    assert unmarked == [], "blocks without a known kind (see this file's docstring): %r" % unmarked
    assert len(ALL) >= 30 and {b.kind for b in ALL} == KINDS


# ------------------------------------------------------------ --help view --

def help_text():
    r = subprocess.run([str(BINARY), "--help"], capture_output=True, text=True, timeout=20,
                       env=binary_env())
    return r.stdout


HELP = help_entries(help_text())
CONFIG_KEYS = {e["key"] for f, e in HELP.items() if f not in SWITCHES}


# The binary a reader runs: bin/cost-extender, which finds the bundled
# table next to itself (the sanitizer build in build/asan/ has none there).
RELEASE = REPO / "bin" / "cost-extender"


def check(*args, cwd=None):
    env = {k: v for k, v in binary_env().items() if k != "KUBECONFIG"}
    return subprocess.run([str(RELEASE), *map(str, args), "--check"], capture_output=True,
                          text=True, timeout=60, env=env, cwd=cwd)


# ------------------------------------------------- files the configs name --

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def lay_out(path, root, tmp):
    """Makes the file a documented /etc/cost-extender/ path names, under root."""
    rel = path[len("/etc/cost-extender/"):]
    dest = root / rel
    name = dest.name
    if path.endswith("/"):                        # a folder of Node files
        dest.mkdir(parents=True, exist_ok=True)
        for p in (REPO / "tests/fixtures/kube-scheduler-v1.32/inputs").glob("node-*.json"):
            shutil.copy(p, dest)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    if rel.startswith("pricing/"):
        shutil.copy(PRICING_SRC, dest)
    elif rel.startswith("queues/"):
        shutil.copy(REPO / "deploy/shared/queues.yaml", dest)
    elif rel.startswith("tls/"):
        pki = tmp / "pki"
        if not pki.exists():
            pki.mkdir()
            openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
                    "ca.crt", "-days", "2", "-subj", "/CN=ca", cwd=pki)
            openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out",
                    "tls.crt", "-days", "2", "-subj", "/CN=cost-extender", cwd=pki)
        shutil.copy(pki / name, dest)
    elif name == "kubeconfig":
        # A kubeconfig with the context the example names; --check reads it
        # and contacts nothing.
        dest.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "default",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443",
                                                   "insecure-skip-tls-verify": True}}],
            "contexts": [{"name": n, "context": {"cluster": "c", "user": "u"}}
                         for n in ("default", "prod")],
            "users": [{"name": "u", "user": {"token": "t"}}]}))
    else:
        raise AssertionError("no idea what %s is: teach lay_out" % path)


def config_keys(doc, prefix=""):
    for k, v in (doc or {}).items():
        if isinstance(v, dict):
            yield from config_keys(v, prefix + k + ".")
        else:
            yield prefix + k


@pytest.mark.parametrize("block", of_kind("config"))
def test_config_blocks_pass_check(block, tmp_path):
    root = tmp_path / "etc"
    for path in sorted(set(re.findall(r"/etc/cost-extender/[^\s#\"']*", block.text))):
        lay_out(path, root, tmp_path)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(block.text.replace("/etc/cost-extender/", "%s/" % root))
    r = check("--config", cfg)
    assert r.returncode == 0, "%r: --check failed:\n%s%s" % (block, r.stdout, r.stderr)
    for k in config_keys(yaml.safe_load(block.text)):
        assert k in CONFIG_KEYS, "%r documents %s, which --help does not know" % (block, k)


def test_config_blocks_show_every_key():
    shown = set()
    for b in ALL:
        if b.kind == "config":
            shown |= set(config_keys(yaml.safe_load(b.text)))
    assert shown == CONFIG_KEYS, "keys in --help but in no README config example: %s" % (
        sorted(CONFIG_KEYS - shown))


@pytest.mark.parametrize("block", of_kind("pricing", "queues"))
def test_table_and_queue_blocks_load(block, tmp_path):
    f = tmp_path / "doc.yaml"
    f.write_text(block.text)
    args = ["--pricing", f] if block.kind == "pricing" else ["--pricing", PRICING_SRC,
                                                             "--queues", f]
    r = check(*args)
    assert r.returncode == 0, "%r:\n%s%s" % (block, r.stdout, r.stderr)


# ------------------------------------------------------------ kubernetes --

READ_ANNOTATIONS = set(re.findall(r'"(cost-extender\.io/[a-z-]+)"',
                                  (REPO / "extender/kube/pod_info.c").read_text()))


def walk(node):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


@pytest.mark.parametrize("block", of_kind("kubernetes"))
def test_kubernetes_blocks_are_yaml_and_use_our_verbs(block):
    docs = [d for d in yaml.safe_load_all(block.text) if d is not None]
    assert docs, block
    for node in (n for d in docs for n in walk(d)):
        if isinstance(node, dict) and "urlPrefix" in node:
            assert node.get("filterVerb") == "filter", block
            assert node.get("prioritizeVerb") == "prioritize", block
            assert node.get("bindVerb", "bind") == "bind", block
        if isinstance(node, dict) and isinstance(node.get("annotations"), dict):
            for k in node["annotations"]:
                if k.startswith("cost-extender.io/"):
                    assert k in READ_ANNOTATIONS, "%r: the daemon reads no %s" % (block, k)


# ------------------------------------------------------------- log, tree --

SOURCES = "\n".join(p.read_text() for p in (REPO / "extender").rglob("*.c"))


@pytest.mark.parametrize("block", of_kind("log"))
def test_log_blocks_are_what_the_daemon_logs(block):
    for line in block.text.strip().splitlines():
        rec = json.loads(line)
        assert set(rec) >= {"ts", "level", "msg"} and rec["level"] in (
            "debug", "info", "warn", "error"), line
        assert json.dumps(rec["msg"]) in SOURCES, "%r: no such log message: %s" % (block,
                                                                                  rec["msg"])


@pytest.mark.parametrize("block", of_kind("tree"))
def test_tree_blocks_name_what_exists(block):
    stack, seen = [], 0
    for line in block.text.splitlines():
        indent = len(line) - len(line.lstrip())
        if not line.strip() or indent >= 16:
            continue                              # a description's next line
        name = line.split()[0]
        depth = indent // 2
        stack = stack[:depth] + [name.rstrip("/")]
        rel = "/".join(stack)                     # from the top of the checkout
        found = list(REPO.glob(rel))
        assert found, "%r names %s, which does not exist" % (block, rel)
        seen += 1
    assert seen >= 5


# ---------------------------------------------------- cluster and manual --

def commands(text, console=False):
    """(command, documented output lines) of a shell block; in a console
    block commands start with "$ " and other lines are output."""
    out, cur, heredoc, open_ = [], None, None, False
    for line in text.splitlines():
        if console and not heredoc and not open_:
            if not line.startswith("$ "):
                if cur and line.strip():
                    cur[1].append(line)
                continue
            line = line[2:]
        if heredoc:
            cur[0] += "\n" + line
            if line.strip() == heredoc:
                heredoc, open_ = None, False
            continue
        if (line.startswith("# ") or line == "#") and cur and not open_:
            cur[1].append(line[2:])
            continue
        if not line.strip():
            continue
        if cur and open_:
            cur[0] += "\n" + line
        else:
            cur = [line, []]
            out.append(cur)
        m = re.search(r"<<-?\s*'?(\w+)'?", line)
        if m:
            heredoc, open_ = m.group(1), True
        else:
            open_ = line.rstrip().endswith("\\")
    return [tuple(c) for c in out]


def block_commands(block):
    return commands(block.text, console=block.lang == "console")


@pytest.mark.parametrize("block", of_kind("cluster"))
def test_cluster_blocks_need_a_cluster(block):
    cmds = [c for c, _ in block_commands(block)]
    # Talking to 8888 after a port-forward in the same block needs the cluster too.
    forwarded = any("port-forward" in c for c in cmds)
    for cmd in cmds:
        assert re.search(r"\b(kubectl|sudo)\b", cmd) or (forwarded and ":8888" in cmd), \
            "%r: %r needs no cluster: mark the block run, or move the command" % (block, cmd)


NETWORK = re.compile(r"\bcurl\b.*https://|\b(aws|az|gcloud|kubectl)\b|pricing\.py (fetch|refresh)\b")


@pytest.mark.parametrize("block", of_kind("network"))
def test_network_blocks_need_the_network(block):
    downloaded = []
    for cmd, _ in block_commands(block):
        assert NETWORK.search(cmd) or any(f in cmd for f in downloaded), \
            "%r: %r needs no network: mark the block run, or move the command" % (block, cmd)
        # What it writes, for the commands after it.
        downloaded += re.findall(r"(?:-o|>|--out-dir|--out)\s+(\S+?)/?(?:\s|$)", cmd)
        downloaded += [u.rsplit("/", 1)[1] for u in re.findall(r"-O\s+(\S+)", cmd)]


@pytest.mark.parametrize("block", of_kind("manual"))
def test_manual_blocks_say_why(block):
    for cmd, _ in block_commands(block):
        assert any(re.search(r"\b%s\b" % re.escape(m), cmd) for m in MANUAL), \
            "%r: %r is not run and MANUAL does not say why" % (block, cmd)


# ------------------------------------------------------------------ run --

def shadow_checkout(tmp_path):
    """A folder that is the checkout for every command (each top-level entry
    linked) but keeps what the commands write."""
    co = tmp_path / "checkout"
    co.mkdir()
    for p in REPO.iterdir():
        if p.name != ".git":
            (co / p.name).symlink_to(p)
    # What deploy/README.md's reader is assumed to have made.
    shutil.copy(PRICING_SRC, co / "my-table.yaml")
    shutil.copy(REPO / "deploy/shared/queues.yaml", co / "my-queues.yaml")
    (tmp_path / "home").mkdir()
    return co


def pattern(expected):
    return re.compile(".*".join(re.escape(p) for p in expected.split("...")))


def ready(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@pytest.mark.parametrize("doc", sorted({b.doc for b in ALL if b.kind in ("run", "daemon")}))
def test_run_blocks(doc, tmp_path):
    mine = [b for b in ALL if b.doc == doc and b.kind in ("run", "daemon")]
    co = shadow_checkout(tmp_path)
    env = dict(os.environ, HOME=str(tmp_path / "home"))
    env.pop("KUBECONFIG", None)
    port, daemon = free_port(), None
    try:
        scratch = tmp_path / "tmp"
        scratch.mkdir()
        for b in mine:
            for cmd, expected in block_commands(b):
                cmd = re.sub(r"(127\.0\.0\.1|localhost):8888", r"\g<1>:%d" % port, cmd)
                cmd = re.sub(r"(?<![\w.])/tmp/", "%s/" % scratch, cmd)
                if b.kind == "daemon":
                    assert daemon is None and cmd.split()[:2] == ["make", "run"], (b, cmd)
                    cmd = cmd.split("#")[0].strip() + " RUN_ARGS=--listen=127.0.0.1:%d" % port
                    daemon = subprocess.Popen(["bash", "-c", cmd], cwd=co, env=env,
                                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                              stderr=subprocess.STDOUT, start_new_session=True)
                    deadline = time.monotonic() + 120
                    while not ready(port):
                        assert daemon.poll() is None and time.monotonic() < deadline, \
                            "%r: %s did not become ready:\n%s" % (b, cmd, daemon.stdout.read())
                        time.sleep(0.1)
                    continue
                r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=co, env=env,
                                   capture_output=True, text=True, timeout=300)
                got = r.stdout.splitlines()
                if not expected:
                    assert r.returncode == 0, "%r: %s\nexit %d\n%s%s" % (
                        b, cmd, r.returncode, r.stdout, r.stderr)
                at = 0
                for want in expected:
                    p = pattern(want)
                    while at < len(got) and not p.fullmatch(got[at]):
                        at += 1
                    assert at < len(got), "%r: %s\ndocumented output %r not in:\n%s%s" % (
                        b, cmd, want, r.stdout, r.stderr)
                    at += 1
    finally:
        if daemon is not None:
            os.killpg(daemon.pid, signal.SIGTERM)    # make and the binary it ran
            daemon.wait(timeout=30)


# ---------------------------------------------------------------- prose --

def prose(doc):
    """The text outside fenced blocks."""
    return re.sub(r"^( *)```.*?^\1```\s*$", "", (REPO / doc).read_text(), flags=re.S | re.M)


def yaml_paths(node, prefix="", wild=("instanceTypes", "regions", "zones", "queues")):
    for k, v in (node or {}).items():
        path = prefix + k
        yield path
        if isinstance(v, dict):
            if k in wild:
                for child in v.values():
                    yield from yaml_paths(child, path + ".*.")
            else:
                yield from yaml_paths(v, path + ".")


def format_paths(kind):
    out = set()
    for b in ALL:
        if b.kind == kind:
            out |= set(yaml_paths(yaml.safe_load(b.text)))
    return out


def known(token, paths):
    parts = token.split(".")
    for p in paths:
        q = p.split(".")
        if len(q) == len(parts) and all(a == b or a == "*" for a, b in zip(q, parts)):
            return True
    return False


FILE_EXTENSIONS = {"yaml", "json", "md", "c", "h", "py", "crt", "csv", "lua", "sh"}


@pytest.mark.parametrize("doc", DOCS)
def test_keys_named_in_prose_exist(doc):
    paths = CONFIG_KEYS | format_paths("pricing") | format_paths("queues")
    tops = {p.split(".")[0] for p in paths if "." in p}
    bad = []
    for token in re.findall(r"`([a-z][A-Za-z]*(?:\.[a-zA-Z*]+)+)`", prose(doc)):
        if token.split(".")[-1] in FILE_EXTENSIONS or token.split(".")[0] not in tops:
            continue
        if not known(token, paths):
            bad.append(token)
    assert not bad, "%s names keys that are in no config, table or queue format: %s" % (doc, bad)


@functools.lru_cache(maxsize=None)
def pricing_tool_flags():
    """The flags of pricing/tools/pricing.py (the refresher's command too),
    from its own --help."""
    tool = [sys.executable, str(REPO / "pricing/tools/pricing.py")]
    top = subprocess.run(tool + ["--help"], capture_output=True, text=True, timeout=60).stdout
    cmds = re.findall(r"^    ([a-z][a-z-]+)", top, re.M)
    assert len(cmds) >= 5, top
    flags = set()
    for c in cmds:
        out = subprocess.run(tool + [c, "--help"], capture_output=True, text=True,
                             timeout=60).stdout
        flags |= set(re.findall(r"(--[a-z][a-z-]*)", out))
    return flags


@functools.lru_cache(maxsize=None)
def subcommand_flags():
    """The flags of `cost-extender report`, `explain` and `simulate`, from
    their own --help."""
    flags = set()
    for sub in ("report", "explain", "simulate"):
        out = subprocess.run([str(BINARY), sub, "--help"], capture_output=True, text=True,
                             timeout=20, env=binary_env()).stdout
        found = set(re.findall(r"(--[a-z][a-z-]*)", out))
        assert len(found) > 5, (sub, out)
        flags |= found
    return flags


@pytest.mark.parametrize("doc", DOCS)
def test_flags_named_in_prose_exist(doc):
    ours = {"--" + f for f in HELP} | subcommand_flags()
    tool = pricing_tool_flags()
    bad = sorted({f for f in re.findall(r"`(--[a-z][a-z-]*)", prose(doc))
                  if f not in ours | tool and f not in OTHER_FLAGS})
    assert not bad, "%s names flags --help does not know: %s" % (doc, bad)


# ------------------------------------------------- the flag and limit tables --

def table_after(heading):
    text = (REPO / "README.md").read_text()
    section = text[text.index(heading):]
    section = section[:section.index("\n## ", 1)]
    rows = [l for l in section.splitlines() if l.startswith("| ") and not l.startswith("| ---")]
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows[1:]]


def plain(cell):
    return cell.replace("`", "").strip()


def test_flag_table_is_help():
    rows = table_after("## Configuration")
    documented = [(plain(f).split()[0][2:], plain(k), plain(d)) for f, k, d in rows]
    want = [(f, e["key"], e["default"]) for f, e in HELP.items() if f not in SWITCHES]
    assert documented == want


def test_limits_table_names_real_flags_and_defaults():
    rows = table_after("## Limits")
    assert len(rows) >= 15
    for limit, default, flag, _ in rows:
        m = re.match(r"`(--[a-z-]+)`(?: \(`([A-Za-z.]+)`\))?", flag)
        if not m:
            assert plain(flag) == "fixed", flag
            continue
        f, key = m.group(1), m.group(2)
        e = HELP[f[2:]]
        assert key == e["key"], (limit, key, e["key"])
        assert plain(default).split()[0] == e["default"], (limit, default, e["default"])
    # Every limit flag of --help is in the table.
    limit_flags = {r[2].split("`")[1] for r in rows if r[2].startswith("`--")}
    for f in ("max-body-bytes", "max-header-bytes", "max-json-depth", "max-nodes",
              "max-containers-per-pod", "max-connections", "max-connections-per-client",
              "request-timeout", "connection-timeout", "max-headers", "max-uri-bytes",
              "header-timeout", "min-body-rate", "max-inflight-body-bytes"):
        assert "--" + f in limit_flags, f
