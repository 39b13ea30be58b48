-- Writes a fixed number of view-event bodies of the workload (gen.lua) to
-- a file, one per line, and exits without sending anything: the
-- deterministic workload of the harness's instruction count (callgrind).
-- wrk is only the Lua (LuaJIT) that runs it, the same one that runs
-- views.lua, so the events are exactly those of wrk's first thread in the
-- measured load (same seed, same prefix): the same mix of new events,
-- retries, progress repeats and malformed bodies.
--
--   BENCH_FIXED_N=20000 BENCH_FIXED_OUT=/tmp/bodies BENCH_FIXED_SEED=42 \
--       wrk -t1 -c1 -d1s -s bench/wrk/fixed.lua http://127.0.0.1:1
--
-- The URL is never connected to: the script exits while wrk loads it.
-- Optional: BENCH_FIXED_PREFIX (c), BENCH_FIXED_THREAD (1).

local src = debug.getinfo(1, "S").source
local dir = src:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local gen = require "gen"

local n = tonumber(os.getenv("BENCH_FIXED_N") or "")
local out = os.getenv("BENCH_FIXED_OUT")
if not n or not out then
    io.stderr:write("fixed.lua: BENCH_FIXED_N and BENCH_FIXED_OUT are needed\n")
    os.exit(2)
end

local o = gen.options({
    "seed=" .. (os.getenv("BENCH_FIXED_SEED") or gen.defaults.seed),
    "prefix=" .. (os.getenv("BENCH_FIXED_PREFIX") or gen.defaults.prefix),
})
local g = gen.new(o, tonumber(os.getenv("BENCH_FIXED_THREAD") or "1"))

-- BENCH_FIXED_MARK=1 (the paced sender's file, bench/paced/paced.c):
-- each line is "<kind><unique>\t<body>", kind the first letter of new,
-- retry, progress or malformed, unique 1 when the event is the first valid
-- one of its (content, viewer) (the truth of the replay in gen.lua)
local mark = os.getenv("BENCH_FIXED_MARK") == "1"
local seen = {}
local f = assert(io.open(out, "w"))
for _ = 1, n do
    local kind, body, key = g:next()
    if mark then
        local u = "0"
        if key and not seen[key] then
            seen[key] = true
            u = "1"
        end
        f:write(kind:sub(1, 1), u, "\t")
    end
    f:write(body, "\n")
end
f:close()
io.write("BENCH ", gen.json({ n = n, new = g.new_n, retry = g.retry_n,
                              progress = g.progress_n, malformed = g.malformed_n,
                              ck = g.ck }), "\n")
os.exit(0)
