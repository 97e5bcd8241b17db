"""Test doubles for `pricing.py refresh`: a provider price endpoint and the
two Kubernetes API calls the refresher makes.

ProviderDouble serves fixed files (AWS region index and offer file), and
pages (Azure Retail Prices with NextPageLink, Cloud Billing Catalog with
nextPageToken and an API key), on a loopback port the OS picks.

ConfigMapApiDouble is GET and PATCH (JSON merge patch) of one ConfigMap,
with the API server's rules that matter here: a bearer token is required,
PATCH needs application/merge-patch+json, and a patch carrying a
resourceVersion that is no longer current is refused with 409 Conflict.
Every request is recorded as (method, path).
"""

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server:
    def __init__(self, handler_cls):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
        self.httpd.double = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.requests = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ProviderDouble(_Server):
    """files: {path: bytes}; azure_pages / gcp_pages: lists of page dicts."""

    def __init__(self, files=None, azure_pages=None, gcp_pages=None, gcp_key=None,
                 truncate=None, next_link_host=None):
        self.files = files or {}
        self.azure_pages = azure_pages or []
        self.gcp_pages = gcp_pages or []
        self.gcp_key = gcp_key
        self.truncate = truncate or {}
        self.next_link_host = next_link_host
        super().__init__(_ProviderHandler)


class _ProviderHandler(_Handler):
    def do_GET(self):
        d = self.server.double
        parts = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(parts.query))
        d.requests.append(("GET", self.path))
        if parts.path in d.files:
            body = d.files[parts.path]
            if parts.path in d.truncate:
                body = body[:d.truncate[parts.path]]
            return self.reply(200, body)
        if parts.path == "/api/retail/prices":
            i = int(q.get("$skip", "0"))
            if "$filter" not in q and i == 0:
                return self.reply(400, {"error": "the test double wants a $filter"})
            page = dict(d.azure_pages[i])
            if i + 1 < len(d.azure_pages):
                host = d.next_link_host or d.url
                page["NextPageLink"] = f"{host}/api/retail/prices?$skip={i + 1}"
            else:
                page["NextPageLink"] = None
            return self.reply(200, page)
        if parts.path == "/v1/services/6F81-5844-456A/skus":
            if q.get("key") != d.gcp_key:
                return self.reply(403, {"error": {"message": "API key not valid"}})
            i = int(q.get("pageToken") or 0)
            page = dict(d.gcp_pages[i])
            page["nextPageToken"] = str(i + 1) if i + 1 < len(d.gcp_pages) else ""
            return self.reply(200, page)
        self.reply(404, {"error": "not found"})


class ConfigMapApiDouble(_Server):
    TOKEN = "test-double-token"

    def __init__(self, namespace, name, data, resource_version="100"):
        self.path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
        self.cm = {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": name, "namespace": namespace,
                                "resourceVersion": resource_version, "annotations": {}},
                   "data": dict(data)}
        self.edit_before_patch = None      # callable run between GET and PATCH
        self.patches = []
        super().__init__(_ApiHandler)


def merge(target, patch):
    """RFC 7386 JSON merge patch."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            merge(target[k], v)
        else:
            target[k] = v
    return target


class _ApiHandler(_Handler):
    def _auth(self, d):
        if self.headers.get("Authorization") != f"Bearer {d.TOKEN}":
            self.reply(401, {"kind": "Status", "message": "Unauthorized", "code": 401})
            return False
        return True

    def do_GET(self):
        d = self.server.double
        d.requests.append(("GET", self.path))
        if not self._auth(d):
            return
        if self.path != d.path:
            return self.reply(404, {"kind": "Status", "message": "not found", "code": 404})
        self.reply(200, d.cm)
        if d.edit_before_patch:
            d.edit_before_patch(d)

    def do_PATCH(self):
        d = self.server.double
        d.requests.append(("PATCH", self.path))
        if not self._auth(d):
            return
        if self.path != d.path:
            return self.reply(404, {"kind": "Status", "message": "not found", "code": 404})
        if self.headers.get("Content-Type") != "application/merge-patch+json":
            return self.reply(415, {"kind": "Status", "message": "unsupported media type"})
        patch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        d.patches.append(patch)
        rv = (patch.get("metadata") or {}).get("resourceVersion")
        if rv is not None and rv != d.cm["metadata"]["resourceVersion"]:
            return self.reply(409, {"kind": "Status", "reason": "Conflict", "code": 409,
                                    "message": "Operation cannot be fulfilled on configmaps: "
                                               "the object has been modified"})
        merge(d.cm, patch)
        d.cm["metadata"]["resourceVersion"] = str(int(d.cm["metadata"]["resourceVersion"]) + 1)
        self.reply(200, d.cm)
