"""Raw-socket HTTP clients for the hostile-network tests: a slowloris
(header trickle) attack from many loopback source addresses, a well-behaved
client measuring what it still gets, and a reader that returns the exact
bytes a server sent so tests can count status lines.

Standard library only. Used by tests/blackbox (ASan build, short runs) and
tests/load (release build, longer runs, figures for BENCHMARKS.md).
"""

import json
import selectors
import socket
import threading
import time


def read_all(sock, timeout=5.0, limit=1 << 20):
    """Everything the peer sends until it closes (or timeout passes with
    nothing new, or limit bytes). Returns (bytes, closed)."""
    sock.settimeout(0.2)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(data) < limit:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def parse_responses(data):
    """Splits raw bytes into HTTP/1.1 responses with Content-Length bodies.
    Returns a list of (status, headers dict, body) and the bytes left over
    (anything that is not a well-formed response)."""
    out = []
    while data:
        if not data.startswith(b"HTTP/1."):
            break
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        lines = data[:end].decode("iso-8859-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            break
        headers = {}
        ok = True
        for line in lines[1:]:
            if ":" not in line:
                ok = False
                break
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        if not ok or "content-length" not in headers:
            break
        n = int(headers["content-length"])
        body = data[end + 4:end + 4 + n]
        if len(body) < n:
            break
        out.append((int(parts[1]), headers, body))
        data = data[end + 4 + n:]
    return out, data


def exchange(port, raw, timeout=5.0, host="127.0.0.1", shut_wr=False):
    """Sends raw bytes on a new connection and reads until the server
    closes. Returns (responses, leftover bytes, closed)."""
    s = socket.create_connection((host, port), timeout=timeout)
    with s:
        try:
            s.sendall(raw)
            if shut_wr:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        data, closed = read_all(s, timeout)
    resps, rest = parse_responses(data)
    return resps, rest, closed


# ----------------------------------------------------------------- slowloris --

class _Background:
    """A client that runs in its own thread from start() to finish()."""

    def __init__(self):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def finish(self):
        self.stop.set()
        self.thread.join(30)


# Then one header value that never ends: "aaaa..." a byte a second.
TRICKLE_HEAD = b"POST /v1/filter HTTP/1.1\r\nHost: x\r\nX-Trickle: "


class Trickle(_Background):
    """n connections, spread over the source addresses, each sending a
    request head one byte a second and never finishing it. With reconnect,
    a connection the server closes is opened again at once, so the pressure
    stays on for the whole run. Records, per connection, how long the
    server kept it open."""

    def __init__(self, port, n=1000, sources=None, reconnect=True, interval=1.0):
        super().__init__()
        self.port = port
        self.n = n
        self.sources = sources or ["127.0.0.%d" % i for i in range(2, 12)]
        self.reconnect = reconnect
        self.interval = interval
        self.lifetimes = []      # seconds from its first byte to its close, per connection
        self.connect_errors = 0
        self.open_at_end = []    # ages of connections still open at stop
        self.opened = 0

    def _open(self, i):
        src = self.sources[i % len(self.sources)]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((src, 0))
        try:
            s.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            self.connect_errors += 1
            return None
        self.opened += 1
        return {"sock": s, "start": time.monotonic(), "first": None, "sent": 0, "i": i}

    def _run(self):
        sel = selectors.DefaultSelector()
        conns = {}
        for i in range(self.n):
            c = self._open(i)
            if c:
                conns[c["sock"]] = c
                sel.register(c["sock"], selectors.EVENT_READ, c)
        next_tick = time.monotonic()
        while not self.stop.is_set():
            timeout = max(0.0, next_tick - time.monotonic())
            for key, _ in sel.select(timeout=min(timeout, 0.05)):
                c = key.data
                try:
                    data = c["sock"].recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self._closed(sel, conns, c)
            if time.monotonic() >= next_tick:
                next_tick += self.interval
                for c in list(conns.values()):
                    b = TRICKLE_HEAD[c["sent"]:c["sent"] + 1] or b"a"
                    try:
                        c["sock"].send(b)
                        c["sent"] += 1
                        if c["first"] is None:
                            c["first"] = time.monotonic()
                    except BlockingIOError:
                        pass
                    except OSError:
                        self._closed(sel, conns, c)
        now = time.monotonic()
        for c in conns.values():
            self.open_at_end.append(now - (c["first"] or c["start"]))
            sel.unregister(c["sock"])
            c["sock"].close()
        sel.close()

    def _closed(self, sel, conns, c):
        if c["sock"] not in conns:
            return
        # Deadlines run from a request's first byte.
        self.lifetimes.append(time.monotonic() - (c["first"] or c["start"]))
        sel.unregister(c["sock"])
        del conns[c["sock"]]
        c["sock"].close()
        if self.reconnect and not self.stop.is_set():
            n = self._open(c["i"])
            if n:
                conns[n["sock"]] = n
                sel.register(n["sock"], selectors.EVENT_READ, n)



class GoodClient(_Background):
    """A well-behaved client on 127.0.0.1: one request after another, each on
    a new connection (the worst case: every request needs a free slot in
    the connection table), with a per-request timeout. Records successes
    and latencies in milliseconds."""

    def __init__(self, port, body, path="/v1/filter", timeout=2.0, pause=0.02,
                 new_connection=True):
        super().__init__()
        self.port = port
        self.body = body
        self.path = path
        self.timeout = timeout
        self.pause = pause
        self.new_connection = new_connection
        self.ok = 0
        self.failed = 0
        self.errors = {}
        self.latencies = []

    def _request(self, sock):
        head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (self.path, len(self.body))).encode()
        sock.sendall(head + self.body)
        data = b""
        while True:
            resps, _ = parse_responses(data)
            if resps:
                return resps[0]
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed without a reply")
            data += chunk

    def _run(self):
        sock = None
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
                sock.settimeout(max(0.01, self.timeout - (time.monotonic() - t0)))
                status, _, body = self._request(sock)
                if status == 200 and json.loads(body).get("Error") == "":
                    self.ok += 1
                    self.latencies.append((time.monotonic() - t0) * 1000)
                else:
                    self._fail("status %d" % status)
            except (OSError, ValueError) as e:
                self._fail(type(e).__name__)
                if sock:
                    sock.close()
                sock = None
            if self.new_connection and sock:
                sock.close()
                sock = None
            self.stop.wait(self.pause)
        if sock:
            sock.close()

    def _fail(self, why):
        self.failed += 1
        self.errors[why] = self.errors.get(why, 0) + 1


    def figures(self):
        lat = sorted(self.latencies)

        def pct(p):
            return round(lat[min(len(lat) - 1, int(len(lat) * p))], 2) if lat else None
        total = self.ok + self.failed
        return {"requests": total, "ok": self.ok,
                "success": round(self.ok / total, 4) if total else None,
                "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": round(lat[-1], 2) if lat else None,
                "errors": self.errors}
