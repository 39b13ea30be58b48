-- The view-event generator shared by views.lua (inside each wrk thread)
-- and by the exactness replay (views.lua's done(), in wrk's main Lua
-- state). Deterministic: the same (seed, thread) yields the same stream
-- of events, so the true number of unique (content, viewer) views among
-- the first n events of a thread can be recomputed after the run.
--
-- Every random draw goes through math.random of the Lua state that runs
-- the generator, seeded with math.randomseed(seed + thread). Only one
-- generator may be active per Lua state at a time (wrk gives each thread
-- its own state; the replay runs the threads' streams one after another).
--
-- The stream, per event:
--   p_malformed (1%)  a fresh event cut short at a random byte: never valid
--                     JSON (the closing brace is always missing)
--   p_repeat (10%)    a repeat of one of the last `ring` valid events:
--                     half exact retries (the same body, same requestId),
--                     half progress events of the same watch (same content,
--                     viewer and session, a new requestId, more watch time)
--   otherwise         a new event: content rank from a Zipf(s) law over
--                     n_content ids (a few viral hot ids), viewer uniform
--                     over n_viewers, watch time uniform in 0..120 s
-- Content ids are prefix..rank ("c1" is the hottest); the warmup uses
-- another prefix so that its events never touch the measured ids.

local M = {}

local floor, random, randomseed = math.floor, math.random, math.randomseed

local cdf_cache = {}

-- cumulative Zipf(s) distribution over ranks 1..n
local function zipf_cdf(n, s)
    local key = n .. ":" .. s
    local c = cdf_cache[key]
    if c then
        return c
    end
    c = {}
    local sum = 0
    for k = 1, n do
        sum = sum + k ^ (-s)
        c[k] = sum
    end
    for k = 1, n do
        c[k] = c[k] / sum
    end
    c[n] = 1.0
    cdf_cache[key] = c
    return c
end

-- a rank in 1..n, by binary search of the cdf
local function zipf_draw(c, n)
    local u = random()
    local lo, hi = 1, n
    while lo < hi do
        local mid = floor((lo + hi) / 2)
        if c[mid] < u then
            lo = mid + 1
        else
            hi = mid
        end
    end
    return lo
end

M.zipf_cdf = zipf_cdf
M.zipf_draw = zipf_draw

-- the options every user of the generator must agree on
M.defaults = {
    seed = 42,
    prefix = "c",
    n_content = 100000,
    n_viewers = 1000000,
    zipf_s = 1.0,
    p_repeat = 0.10,
    p_malformed = 0.01,
    ring = 1000,
    rid = "",       -- put in every requestId: streams run side by side
                    -- (bench/multi-edge, one wrk per edge) keep them distinct
    vprefix = "",   -- put in every viewer and session id: streams whose
                    -- viewers must not meet (bench/multi-edge --scope global)
}

-- parse "key=value" strings (wrk's arguments after --) over the defaults
function M.options(args)
    local o = {}
    for k, v in pairs(M.defaults) do
        o[k] = v
    end
    for _, a in ipairs(args or {}) do
        local k, v = a:match("^([%w_]+)=(.*)$")
        if k then
            o[k] = tonumber(v) or v
        end
    end
    return o
end

local G = {}
G.__index = G

function M.new(o, thread)
    local g = setmetatable({}, G)
    for k, v in pairs(M.defaults) do
        g[k] = o[k] or v
    end
    g.thread = thread
    g.cdf = zipf_cdf(g.n_content, g.zipf_s)
    g.ring_buf = {}
    g.ring_n = 0
    g.ring_pos = 0
    g.seq = 0
    g.ck = 0
    g.new_n, g.retry_n, g.progress_n, g.malformed_n = 0, 0, 0, 0
    randomseed(g.seed + thread)
    return g
end

local function body_of(g, ev, seq, dur)
    return '{"contentId":"' .. g.prefix .. ev.rank
        .. '","sessionId":"s' .. g.vprefix .. ev.viewer .. '-' .. ev.sess
        .. '","viewerId":"u' .. g.vprefix .. ev.viewer
        .. '","requestId":"r' .. g.rid .. g.prefix .. g.thread .. '-' .. seq
        .. '","durationMs":' .. dur .. '}'
end

local function fresh(g)
    local ev = {
        rank = zipf_draw(g.cdf, g.n_content),
        viewer = random(1, g.n_viewers),
        sess = random(1, 9),
        dur = random(0, 120000),
    }
    ev.body = body_of(g, ev, g.seq, ev.dur)
    return ev
end

-- the next event: kind ("new", "retry", "progress", "malformed"), body,
-- and a numeric key of its (content, viewer) for valid events (nil for
-- malformed ones)
function G:next()
    self.seq = self.seq + 1
    local u = random()
    local kind, body, key, ev
    if u < self.p_malformed then
        ev = fresh(self)
        body = ev.body:sub(1, random(1, #ev.body - 1))
        kind = "malformed"
        self.malformed_n = self.malformed_n + 1
    elseif u < self.p_malformed + self.p_repeat and self.ring_n > 0 then
        ev = self.ring_buf[random(1, self.ring_n)]
        if random() < 0.5 then
            body = ev.body
            kind = "retry"
            self.retry_n = self.retry_n + 1
        else
            ev.dur = ev.dur + random(1000, 30000)
            body = body_of(self, ev, self.seq, ev.dur)
            kind = "progress"
            self.progress_n = self.progress_n + 1
        end
        key = ev.rank * (self.n_viewers + 1) + ev.viewer
    else
        ev = fresh(self)
        body = ev.body
        kind = "new"
        self.new_n = self.new_n + 1
        key = ev.rank * (self.n_viewers + 1) + ev.viewer
        local pos = self.ring_pos % self.ring + 1
        self.ring_pos = pos
        self.ring_buf[pos] = ev
        if self.ring_n < self.ring then
            self.ring_n = self.ring_n + 1
        end
    end
    self.ck = (self.ck * 31 + #body + ev.rank) % 4294967296
    return kind, body, key
end

-- The truth: replays the first counts[i] events of each thread i and
-- answers the number of unique valid (content, viewer) pairs among them,
-- with the per-kind totals and each thread's checksum.
function M.replay(o, counts)
    local seen, unique = {}, 0
    local r = { threads = {}, new = 0, retry = 0, progress = 0, malformed = 0 }
    for t, n in ipairs(counts) do
        local g = M.new(o, t)
        for _ = 1, n do
            local _, _, key = g:next()
            if key and not seen[key] then
                seen[key] = true
                unique = unique + 1
            end
        end
        r.new = r.new + g.new_n
        r.retry = r.retry + g.retry_n
        r.progress = r.progress + g.progress_n
        r.malformed = r.malformed + g.malformed_n
        r.threads[t] = { n = n, ck = g.ck }
    end
    r.unique = unique
    return r
end

-- a minimal JSON encoder for done()'s report (numbers, strings, booleans,
-- arrays and string-keyed tables)
local function json(v)
    local t = type(v)
    if t == "number" then
        if v ~= v or v == math.huge or v == -math.huge then
            return "null"
        end
        if v == floor(v) and math.abs(v) < 1e15 then
            return string.format("%d", v)
        end
        return string.format("%.6g", v)
    elseif t == "string" then
        return '"' .. v:gsub('[%c"\\]', function(c)
            return string.format("\\u%04x", c:byte())
        end) .. '"'
    elseif t == "boolean" then
        return tostring(v)
    elseif t == "table" then
        local out = {}
        if #v > 0 then
            for i = 1, #v do
                out[i] = json(v[i])
            end
            return "[" .. table.concat(out, ",") .. "]"
        end
        for k, x in pairs(v) do
            out[#out + 1] = json(tostring(k)) .. ":" .. json(x)
        end
        return "{" .. table.concat(out, ",") .. "}"
    end
    return "null"
end

M.json = json

-- wrk's own figures, common to views.lua and reads.lua
function M.summary(summary, latency)
    local e = summary.errors
    return {
        requests = summary.requests,
        duration_us = summary.duration,
        bytes = summary.bytes,
        errors = {
            connect = e.connect, read = e.read, write = e.write,
            status = e.status, timeout = e.timeout,
        },
        latency_us = {
            p50 = latency:percentile(50),
            p90 = latency:percentile(90),
            p99 = latency:percentile(99),
            p999 = latency:percentile(99.9),
            mean = latency.mean,
            max = latency.max,
        },
    }
end

-- the directory of the calling script, for package.path
function M.dir()
    local src = debug.getinfo(2, "S").source
    return (src:match("^@(.*)/[^/]*$")) or "."
end

return M
