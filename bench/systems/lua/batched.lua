-- System "lua-batched": the smarter Lua design. Each event is checked and
-- marked in the `dedupe` shared dict (add with a 30 min TTL) and counted in
-- the `counts` shared dict; worker 0 runs a timer every `interval` seconds
-- that takes every non-zero delta (incr by -v: a concurrent +1 is never
-- lost) and sends them to Redis as pipelined INCRBY view:<content> v, in
-- batches of 1000. A failed batch puts its deltas and the later ones back
-- for the next flush (at least once: a batch that failed after Redis had
-- applied part of it would count that part twice). A worker that stops
-- runs the timer once more (premature) and flushes what is left.
local cjson = require "cjson"
local redis = require "nginx.redis"

local _M = {}
local conf = { redis_host = "127.0.0.1", redis_port = 6379, interval = 1,
               batch = 1000 }

local dedupe = ngx.shared.dedupe
local counts = ngx.shared.counts

function _M.init(c)
    for k, v in pairs(c) do
        conf[k] = v
    end
end

local function reply(status, t)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.print(cjson.encode(t))
    return ngx.exit(status)
end

local function connect()
    local red = redis:new()
    red:set_timeout(1000)   -- lua-resty-redis 0.27: no set_timeouts
    local ok, err = red:connect(conf.redis_host, conf.redis_port)
    if not ok then
        return nil, err
    end
    return red
end

function _M.view()
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    local ok, ev = pcall(cjson.decode, body or "")
    if not ok or type(ev) ~= "table" or type(ev.contentId) ~= "string"
       or type(ev.viewerId) ~= "string"
    then
        return reply(400, { error = "invalid_body" })
    end

    local added, err = dedupe:add(ev.viewerId .. ":" .. ev.contentId, true, 1800)
    if not added then
        if err == "exists" then
            return reply(200, { counted = false, reason = "duplicate",
                                contentId = ev.contentId })
        end
        ngx.log(ngx.ERR, "dedupe dict: ", err)
        return reply(503, { error = "unavailable" })
    end

    local _, ierr = counts:incr(ev.contentId, 1, 0)
    if ierr then
        ngx.log(ngx.ERR, "counts dict: ", ierr)
        dedupe:delete(ev.viewerId .. ":" .. ev.contentId)
        return reply(503, { error = "unavailable" })
    end
    return reply(202, { counted = true, contentId = ev.contentId })
end

-- GET /summary/<contentId>: the total in Redis (flushed counts)
function _M.summary()
    local id = ngx.var.uri:match("^/summary/([%w._:-]+)$")
    if not id then
        return reply(400, { error = "invalid_id" })
    end
    local red, err = connect()
    if not red then
        ngx.log(ngx.ERR, "redis connect: ", err)
        return reply(503, { error = "unavailable" })
    end
    local views
    views, err = red:get("view:" .. id)
    if not views then
        red:close()
        return reply(503, { error = "unavailable" })
    end
    red:set_keepalive(10000, 100)
    return reply(200, { contentId = id, views = tonumber(views) or 0 })
end

local function flush(premature)
    local keys = counts:get_keys(0)
    local taken, n = {}, 0
    for _, k in ipairs(keys) do
        local v = counts:get(k)
        if v and v > 0 then
            counts:incr(k, -v)
            n = n + 1
            taken[n] = { k, v }
        end
    end
    if n == 0 then
        return
    end

    local red, err = connect()
    local sent = 0
    if red then
        for i = 1, n, conf.batch do
            red:init_pipeline()
            local last = math.min(i + conf.batch - 1, n)
            for j = i, last do
                red:incrby("view:" .. taken[j][1], taken[j][2])
            end
            local res
            res, err = red:commit_pipeline()
            if not res then
                break
            end
            sent = last
        end
        if sent == n then
            red:set_keepalive(10000, 100)
        else
            red:close()
        end
    end
    if sent < n then
        ngx.log(ngx.ERR, "flush to redis: ", err, "; ", n - sent,
                " deltas kept for the next flush")
        for j = sent + 1, n do
            counts:incr(taken[j][1], taken[j][2], 0)
        end
    end
end

function _M.init_worker()
    if ngx.worker.id() == 0 then
        local ok, err = ngx.timer.every(conf.interval, flush)
        if not ok then
            ngx.log(ngx.ERR, "flush timer: ", err)
        end
    end
end

return _M
