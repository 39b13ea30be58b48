-- wrk script: the read-heavy mix, GETs of one content's summary, the
-- content drawn from the same Zipf law as the view events (mostly the hot
-- ids, which the views phase has counted).
--
--   wrk -t2 -c32 -d5s --latency -s bench/wrk/reads.lua http://127.0.0.1:PORT \
--       -- path=/engagement/summary/ seed=42 prefix=c
--
-- done() prints one line: BENCH {"requests":..., "latency_us":{...}}

local src = debug.getinfo(1, "S").source
local dir = src:match("^@(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local gen = require "gen"

local next_id = 0

function setup(thread)
    next_id = next_id + 1
    thread:set("id", next_id)
end

local cdf, n, path, prefix

function init(args)
    local o = gen.options(args)
    path = o.path or "/engagement/summary/"
    prefix = o.prefix
    n = o.n_content
    cdf = gen.zipf_cdf(n, o.zipf_s)
    math.randomseed(o.seed + 7919 * id)
end

function request()
    if not cdf then
        return wrk.format("GET", "/")
    end
    return wrk.format("GET", path .. prefix .. gen.zipf_draw(cdf, n))
end

function done(summary, latency, requests)
    io.write("BENCH ", gen.json(gen.summary(summary, latency)), "\n")
end
