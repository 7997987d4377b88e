-- wrk script used by the Palisade benchmark harness.
-- Environment:
--   BENCH_ACCEPT  optional Accept header value (e.g. the PEP 691 JSON type)
--   BENCH_PATHS   optional file with one request path per line; each request
--                 then picks a random path (otherwise the URL's path is used
--                 and the request is pre-built, as plain wrk does)
-- done() prints one line "BENCHJSON {...}" with counts and latency
-- percentiles in microseconds.

local accept = os.getenv("BENCH_ACCEPT")
if accept and accept ~= "" then
   wrk.headers["Accept"] = accept
end

local paths_file = os.getenv("BENCH_PATHS")
if paths_file and paths_file ~= "" then
   local paths = {}
   for line in io.lines(paths_file) do
      if line ~= "" then paths[#paths + 1] = line end
   end
   local n = #paths
   local counter = 0
   function setup(thread)
      counter = counter + 1
      thread:set("seed", counter)
   end
   function init(args)
      -- (wrk.init calls this function; it must not call wrk.init back)
      math.randomseed(os.time() * 1000 + (seed or 0))
   end
   function request()
      return wrk.format(nil, paths[math.random(n)])
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
