-- wrk script: POSTs of view events (see gen.lua for the stream).
--
--   wrk -t2 -c32 -d10s --latency -s bench/wrk/views.lua http://127.0.0.1:PORT \
--       -- path=/engagement/view seed=42 prefix=c
--
-- Arguments after -- (key=value): path (default /engagement/view), seed,
-- prefix, n_content, n_viewers, zipf_s, p_repeat, p_malformed, ring, rid
-- (put in every requestId, empty by default).
-- Each thread seeds math.random with seed + its thread id (1, 2, ...).
--
-- At the end, done() replays every thread's stream up to the number of
-- requests that thread generated and prints one line
--   BENCH {"requests":..., "latency_us":{...}, "sent":{...}, "truth":{...}}
-- where truth.unique is the true number of unique (content, viewer)
-- views among the valid events sent (requests in flight when wrk stopped
-- included: they were written to the socket and the server processes them).

local src = debug.getinfo(1, "S").source
local dir = src:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local gen = require "gen"

local threads = {}
local next_id = 0

-- main state: called once per thread before the thread's init()
function setup(thread)
    next_id = next_id + 1
    thread:set("id", next_id)
    threads[#threads + 1] = thread
end

-- thread state globals
local g, path
local headers = { ["Content-Type"] = "application/json" }
n_sent = 0      -- events generated (and written) by this thread
g_ck = nil      -- the stream's running checksum, checked by the replay
opts_str = ""

function init(args)
    local o = gen.options(args)
    path = o.path or "/engagement/view"
    g = gen.new(o, id)
    opts_str = table.concat(args, " ")
    -- wrk calls request() once in the first thread's state, right after
    -- init(), to check the script (script_verify_request) and never sends
    -- that request: answer it without advancing the stream. Its content id
    -- is outside the measured ids in case a wrk version did send it.
    verify_pending = (id == 1)
end

function request()
    if verify_pending then
        verify_pending = false
        return wrk.format("POST", path, headers,
            '{"contentId":"verify","sessionId":"verify","requestId":"verify"}')
    end
    local _, body = g:next()
    n_sent = n_sent + 1
    g_ck = g.ck
    return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
    local out = gen.summary(summary, latency)
    local counts, reported = {}, {}
    local o
    for i, t in ipairs(threads) do
        counts[i] = t:get("n_sent")
        reported[i] = { n = counts[i], ck = t:get("g_ck") }
        if not o then
            local a = {}
            for w in (t:get("opts_str") or ""):gmatch("%S+") do
                a[#a + 1] = w
            end
            o = gen.options(a)
        end
    end
    local r = gen.replay(o, counts)
    local ok = true
    for i, rep in ipairs(reported) do
        if rep.ck ~= nil and rep.ck ~= r.threads[i].ck then
            ok = false
        end
    end
    local total = 0
    for _, n in ipairs(counts) do
        total = total + n
    end
    out.sent = { total = total, new = r.new, retry = r.retry,
                 progress = r.progress, malformed = r.malformed,
                 valid = r.new + r.retry + r.progress }
    out.truth = { unique = r.unique, replay_matches = ok }
    out.threads = reported
    out.options = { seed = o.seed, prefix = o.prefix, n_content = o.n_content,
                    n_viewers = o.n_viewers, zipf_s = o.zipf_s,
                    p_repeat = o.p_repeat, p_malformed = o.p_malformed }
    io.write("BENCH ", gen.json(out), "\n")
end
