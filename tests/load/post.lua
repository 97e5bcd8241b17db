-- wrk script: POST the file named by env BODY to the path given on the
-- command line, as kube-scheduler does (JSON, keep-alive), and print the
-- summary as one JSON line (wrk counts replies outside 2xx/3xx as status
-- errors; the daemon answers 200 or an error status, never 3xx).
--
-- With env EXPECT (reply body files separated by ":"), every reply body is
-- compared with them byte for byte: the summary counts the replies that
-- matched each one and those that matched none, and the first of those is
-- written to env MISMATCH_OUT (when set).
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "Go-http-client/1.1"

local expect = {}
local expect_env = os.getenv("EXPECT")
if expect_env and expect_env ~= "" then
  for path in string.gmatch(expect_env, "[^:]+") do
    local e = assert(io.open(path, "rb"))
    expect[#expect + 1] = e:read("*a")
    e:close()
  end
end

-- Per thread (each wrk thread has its own Lua state); summed in done().
checked = 0
mismatched = 0
matched = {}
for i = 1, #expect do matched[i] = 0 end
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

if #expect > 0 then
  function response(status, headers, body)
    checked = checked + 1
    for i = 1, #expect do
      if body == expect[i] then
        matched[i] = matched[i] + 1
        return
      end
    end
    mismatched = mismatched + 1
    local out = os.getenv("MISMATCH_OUT")
    if mismatched == 1 and out then
      local m = io.open(out, "wb")
      if m then
        m:write(tostring(status) .. "\n" .. tostring(body))
        m:close()
      end
    end
  end
end

function done(summary, latency, requests)
  local c, bad = 0, 0
  local per = {}
  for i = 1, #expect do per[i] = 0 end
  for _, t in ipairs(threads) do
    c = c + (t:get("checked") or 0)
    bad = bad + (t:get("mismatched") or 0)
    local m = t:get("matched")
    for i = 1, #expect do per[i] = per[i] + ((m and m[i]) or 0) end
  end
  io.write(string.format(
    "RESULT {\"requests\": %d, \"errors_connect\": %d, \"errors_read\": %d, \"errors_write\": %d, " ..
    "\"errors_status\": %d, \"errors_timeout\": %d, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, " ..
    "\"duration_s\": %.3f, \"bodies_checked\": %d, \"bodies_mismatched\": %d, \"bodies_matched\": [%s]}\n",
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, summary.duration / 1e6, c, bad,
    table.concat(per, ", ")))
end
