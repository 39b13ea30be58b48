-- System "lua-naive": the per-request Redis design of OpenResty tutorials.
-- Debian packages lua-resty-redis as lua-nginx-redis, module "nginx.redis".
local cjson = require "cjson"
local redis = require "nginx.redis"

local _M = {}
local conf = { redis_host = "127.0.0.1", redis_port = 6379 }

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

-- POST /view {"contentId":..,"viewerId":..}: 202 counted, 200 duplicate
function _M.view()
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    local ok, ev = pcall(cjson.decode, body or "")
    if not ok or type(ev) ~= "table" or type(ev.contentId) ~= "string"
       or type(ev.viewerId) ~= "string"
    then
        return reply(400, { error = "invalid_body" })
    end

    local red, err = connect()
    if not red then
        ngx.log(ngx.ERR, "redis connect: ", err)
        return reply(503, { error = "unavailable" })
    end

    local res
    res, err = red:set("user_view:" .. ev.viewerId .. ":" .. ev.contentId, 1,
                       "NX", "EX", 1800)
    if not res then
        ngx.log(ngx.ERR, "redis SET: ", err)
        red:close()
        return reply(503, { error = "unavailable" })
    end

    if res == ngx.null then
        red:set_keepalive(10000, 100)
        return reply(200, { counted = false, reason = "duplicate",
                            contentId = ev.contentId })
    end

    local views
    views, err = red:incr("view:" .. ev.contentId)
    if not views then
        ngx.log(ngx.ERR, "redis INCR: ", err)
        red:close()
        return reply(503, { error = "unavailable" })
    end
    red:set_keepalive(10000, 100)
    return reply(202, { counted = true, contentId = ev.contentId, views = views })
end

-- GET /summary/<contentId>
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

return _M
