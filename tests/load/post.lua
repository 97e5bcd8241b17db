-- wrk script: POST the file named by env BODY to the path given on the
-- command line, as kube-scheduler does (JSON, keep-alive), and print the
-- summary as one JSON line (wrk counts replies outside 2xx/3xx as status
-- errors; the daemon answers 200 or an error status, never 3xx).
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "Go-http-client/1.1"

function done(summary, latency, requests)
  io.write(string.format(
    "RESULT {\"requests\": %d, \"errors_connect\": %d, \"errors_read\": %d, \"errors_write\": %d, " ..
    "\"errors_status\": %d, \"errors_timeout\": %d, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, " ..
    "\"duration_s\": %.3f}\n",
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, summary.duration / 1e6))
end
