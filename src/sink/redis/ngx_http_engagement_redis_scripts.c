
/*
 * The Lua scripts the module runs in Redis, loaded once per connection
 * (SCRIPT LOAD) and called by SHA; indexed by NGX_HTTP_ENGAGEMENT_SCRIPT_*.
 * Each applies or reads its keys atomically: the flush script a round
 * of many contents, the others one content.
 */


#include "sink/redis/ngx_http_engagement_redis.h"


/*
 * Creator milestones, shared by the flush and reaction scripts: ms(k,
 * metric, total, old, a) is called where a content's count moved from
 * old to total; ARGV[a] is the number m of the metric's thresholds,
 * ARGV[a+1..a+m] the thresholds (increasing), then the PUBLISH channel,
 * the PUBLISHes allowed a minute, the edge's minute and unix time. The
 * thresholds above both old and the content's mark (field ms:<metric>,
 * the highest one notified) and at most total are crossed: the mark
 * moves to the highest, and one notification names it (and all crossed):
 * an entry of the stream eng:milestones (capped near 100,000 entries)
 * and, within the channel's rate a minute (counted in eng:ms:n:<channel>:
 * <minute>), a PUBLISH. Inside the script that
 * applies the count, so once across edges and resends. A stream or
 * counter key of another type loses the notification, never the count.
 * The rate argument is "<rate>" or "<rate> 1": with " 1" (an
 * engagement_milestone_webhook is configured) the notification also goes
 * to the webhook's outbox, once per id <contentId>:<metric>:<threshold>:
 * the JSON in the hash eng:{ms}:wh (field: the id), the id in the sorted
 * set eng:{ms}:due (score: when it is due, unix s). It names the
 * content's channel when the day's series knows one (the hash
 * <content>:d:<YYYYMMDD>:channel that series_flush.c writes, the channel
 * with the most rows). sink/writer/webhook.c delivers the outbox.
 * In cluster mode (msout set: the flush script's batch key names its
 * slot's tag, the reaction script gets KEYS[4]) the mark moves the same
 * way but the notification goes to the slot's pending hash msout,
 * eng:ms:out:{<tag>} (field: the id; value: what the writes need), and
 * nothing of another slot is written: milestone_fwd.c moves it on.
 */
#define NGX_HTTP_ENGAGEMENT_MILESTONE_LUA                                     \
    "local msout = nil\n"                                                     \
    "local function ms(k, metric, total, old, a)\n"                           \
    "  local m = tonumber(ARGV[a])\n"                                         \
    "  if m == 0 or total <= old then return end\n"                           \
    "  local f = 'ms:' .. metric\n"                                           \
    "  local mark = tonumber(redis.call('HGET', k, f)) or 0\n"                \
    "  local crossed, hit = {}, nil\n"                                        \
    "  for j = a + 1, a + m do\n"                                             \
    "    local t = tonumber(ARGV[j])\n"                                       \
    "    if t > old and t > mark and t <= total then\n"                       \
    "      crossed[#crossed + 1] = t; hit = t\n"                              \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  if not hit then return end\n"                                          \
    "  redis.call('HSET', k, f, hit)\n"                                       \
    "  local id = string.sub(k, 8, -2)\n"                                     \
    "  local msg = cjson.encode({contentId = id, metric = metric,"            \
    " threshold = hit, crossed = crossed, total = total,"                     \
    " at = tonumber(ARGV[a + m + 4])})\n"                                     \
    "  local rate, hook = string.match(ARGV[a + m + 2], '^(%d+) ?(%d*)$')\n"\
    "  local nid = id .. ':' .. metric .. ':' .. hit\n"                       \
    "  local body = nil\n"                                                    \
    "  if hook == '1' then\n"                                                 \
    "    local ch, best = nil, 0\n"                                           \
    "    local cs = redis.pcall('HGETALL', k .. ':d:' .."                     \
    " string.sub(ARGV[a + m + 3], 1, 8) .. ':channel')\n"                     \
    "    if type(cs) == 'table' and cs.err == nil then\n"                     \
    "      for j = 1, #cs, 2 do\n"                                            \
    "        local c = tonumber(cs[j + 1]) or 0\n"                            \
    "        if c > best then ch, best = cs[j], c end\n"                      \
    "      end\n"                                                             \
    "    end\n"                                                               \
    "    body = cjson.encode({id = nid, contentId = id,"                      \
    " metric = metric, threshold = hit, crossed = crossed, total = total,"    \
    " channelId = ch, time = tonumber(ARGV[a + m + 4])})\n"                   \
    "  end\n"                                                                 \
    "  if msout then\n"                                                       \
    "    redis.pcall('HSET', msout, nid, cjson.encode({id = id,"              \
    " metric = metric, threshold = hit, total = total, msg = msg,"           \
    " body = body or '', channel = ARGV[a + m + 1], rate = tonumber(rate),"   \
    " minute = ARGV[a + m + 3], time = tonumber(ARGV[a + m + 4])}))\n"        \
    "    return\n"                                                            \
    "  end\n"                                                                 \
    "  if body then\n"                                                        \
    "    if redis.pcall('HSETNX', 'eng:{ms}:wh', nid, body) == 1 then\n"      \
    "      redis.pcall('ZADD', 'eng:{ms}:due', ARGV[a + m + 4], nid)\n"       \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  local rk = 'eng:ms:n:' .. ARGV[a + m + 1] .. ':' .. ARGV[a + m + 3]\n"\
    "  local n = redis.pcall('INCR', rk)\n"                                   \
    "  local pub = 0\n"                                                       \
    "  if type(n) == 'number' then\n"                                         \
    "    if n == 1 then redis.pcall('EXPIRE', rk, 120) end\n"                 \
    "    if n <= tonumber(rate) then\n"                                       \
    "      redis.pcall('PUBLISH', ARGV[a + m + 1], msg); pub = 1\n"           \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  redis.pcall('XADD', 'eng:milestones', 'MAXLEN', '~', 100000, '*',"     \
    " 'contentId', id, 'metric', metric, 'threshold', hit, 'total', total,"   \
    " 'published', pub, 'json', msg)\n"                                       \
    "end\n"


/*
 * The flush script: applies a round of one zone, many contents, at most
 * once: the round's batch key (KEYS[1], eng:b:<stream>:<seq>) is set if
 * absent, with a TTL, and only then are the deltas applied. KEYS[2..]:
 * each content's totals hash, eng:{c:<id>} (its buckets and HyperLogLog
 * share its hash tag). ARGV: the batch TTL, the minute, hour and day
 * bucket TTLs, the number of reaction types and the types, the views'
 * milestone arguments (see NGX_HTTP_ENGAGEMENT_MILESTONE_LUA), then per
 * content: flags (1: read the totals whole, 2: bucket deltas follow,
 * 8: a batch of an earlier version follows), the three deltas, [its
 * field in the content's old flush marks (:fl) and its sequence: applied
 * already if the mark has reached it], [the minute YYYYMMDDHHMM and its
 * three deltas]. Viewer hashes are not the script's: they go as plain
 * PFADDs before it (adding a hash twice changes nothing).
 * The answer: applied, then per content its three totals (HINCRBY's
 * answers; -1 for a field not changed), and the reaction counts when it
 * was read whole. A resend that finds the batch key applies nothing and
 * reads the totals instead. A content whose totals Redis refuses (a key
 * of another type) is skipped whole, its first total then being the
 * error's text: the round goes on for the others, and that content is
 * sent again in a round of its own. The batch key keeps the refused
 * contents (their keys), so that a resend of the round answers
 * them as refused again, not as applied (a resend may list the round's
 * contents in another order). The hour and day buckets get the minute's
 * deltas when it is written; a bucket gets its TTL when a field of it is
 * created (HINCRBY answers exactly the delta): once per bucket.
 * Written for Redis's cost per content: no table or closure per content,
 * the answer filled in place, a field read only when it is answered
 * (bench/redis-replay counts Redis's instructions per part of a round).
 */
static const char  ngx_http_engagement_flush_lua[] =
    NGX_HTTP_ENGAGEMENT_MILESTONE_LUA
    "local nr = tonumber(ARGV[5])\n"
    "local tag = string.match(KEYS[1], '^eng:b:({[^}]*}):')\n"
    "if tag then msout = 'eng:ms:out:' .. tag end\n"
    "local fresh = redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1])\n"
    "local r, n, refused, was = {fresh and 1 or 0}, 1, nil, nil\n"
    "if not fresh then\n"
    "  was = {}\n"
    "  for x in string.gmatch(redis.call('GET', KEYS[1]) or '', '%S+') do\n"
    "    was[x] = true\n"
    "  end\n"
    "end\n"
    "local q\n"
    "local ma = 6 + nr\n"
    "local p = ma + 1 + (ARGV[ma] == '0' and 0 or tonumber(ARGV[ma]) + 4)\n"
    "for i = 2, #KEYS do\n"
    "  local k, fl = KEYS[i], ARGV[p]\n"
    "  local v, e, x = ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]\n"
    "  local apply, err = fresh, nil\n"
    "  local tv, te, tx = -1, -1, -1\n"
    "  p = p + 4\n"
    "  fl = tonumber(fl)\n"
    "  if fl >= 8 then\n"
    "    local last = redis.call('HGET', k .. ':fl', ARGV[p])\n"
    "    if last and tonumber(last) >= tonumber(ARGV[p + 1]) then apply ="
    " false end\n"
    "    p, fl = p + 2, fl - 8\n"
    "  end\n"
    "  if apply then\n"
    "    if v ~= '0' then\n"
    "      tv = redis.pcall('HINCRBY', k, 'views', v)\n"
    "      if type(tv) == 'table' then err = tv.err\n"
    "      else ms(k, 'views', tv, tv - tonumber(v), ma) end\n"
    "    end\n"
    "    if not err and e ~= '0' then\n"
    "      te = redis.pcall('HINCRBY', k, 'engaged', e)\n"
    "      if type(te) == 'table' then err = te.err end\n"
    "    end\n"
    "    if not err and x ~= '0' then\n"
    "      tx = redis.pcall('HINCRBY', k, 'replays', x)\n"
    "      if type(tx) == 'table' then err = tx.err end\n"
    "    end\n"
    "    if err then\n"
    "      refused = refused or {}\n"
    "      refused[#refused + 1] = k\n"
    "    end\n"
    "  end\n"
    "  if was and was[k] then err = 'refused when the round was applied' end\n"
    "  if fl % 4 >= 2 then\n"
    "    if apply and not err then\n"
    "      local m = ARGV[p]\n"
    "      local bv, be, bx = ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]\n"
    "      local b = k .. ':m:' .. m\n"
    "      for s = 1, 3 do\n"
    "        if s == 2 then b = k .. ':h:' .. string.sub(m, 1, 10)\n"
    "        elseif s == 3 then b = k .. ':d:' .. string.sub(m, 1, 8) end\n"
    "        local new = false\n"
    "        if bv ~= '0' and redis.pcall('HINCRBY', b, 'views', bv) =="
    " tonumber(bv) then new = true end\n"
    "        if be ~= '0' and redis.pcall('HINCRBY', b, 'engaged', be) =="
    " tonumber(be) then new = true end\n"
    "        if bx ~= '0' and redis.pcall('HINCRBY', b, 'replays', bx) =="
    " tonumber(bx) then new = true end\n"
    "        if new then redis.call('EXPIRE', b, ARGV[1 + s]) end\n"
    "      end\n"
    "    end\n"
    "    p = p + 4\n"
    "  end\n"
    "  if err then\n"
    "    r[n + 1], r[n + 2], r[n + 3] = err, -1, -1\n"
    "    n = n + 3\n"
    "    if fl % 2 == 1 then for j = 1, nr do n = n + 1; r[n] = 0 end end\n"
    "  elseif fl % 2 == 1 or not apply then\n"
    "    if not q then\n"
    "      q = {'views', 'engaged', 'replays'}\n"
    "      for j = 1, nr do q[3 + j] = 'r:' .. ARGV[5 + j] end\n"
    "    end\n"
    "    local h = redis.pcall('HMGET', k, unpack(q, 1, fl % 2 == 1 and 3 +"
    " nr or 3))\n"
    "    if h.err == nil then\n"
    "      for j = 1, #h do n = n + 1; r[n] = tonumber(h[j]) or 0 end\n"
    "    else\n"
    "      r[n + 1], r[n + 2], r[n + 3] = tv, te, tx\n"
    "      n = n + 3\n"
    "      if fl % 2 == 1 then for j = 1, nr do n = n + 1; r[n] = 0 end end\n"
    "    end\n"
    "  else\n"
    "    r[n + 1], r[n + 2], r[n + 3] = tv, te, tx\n"
    "    n = n + 3\n"
    "  end\n"
    "end\n"
    "if refused then\n"
    "  redis.call('SET', KEYS[1], table.concat(refused, ' '), 'KEEPTTL')\n"
    "end\n"
    "return r\n";

/*
 * The read script: totals, unique viewers and reaction counts of one
 * content, in the flush script's answer layout. KEYS: totals, HyperLogLog.
 * ARGV: the reaction types.
 */
static const char  ngx_http_engagement_read_lua[] =
    "local q = {'views', 'engaged', 'replays'}\n"
    "for i = 1, #ARGV do q[3 + i] = 'r:' .. ARGV[i] end\n"
    "local t = redis.call('HMGET', KEYS[1], unpack(q))\n"
    "local r = {0, tonumber(t[1]) or 0, tonumber(t[2]) or 0,\n"
    "           tonumber(t[3]) or 0, redis.call('PFCOUNT', KEYS[2])}\n"
    "for i = 1, #ARGV do r[5 + i] = tonumber(t[3 + i]) or 0 end\n"
    "return r\n";

/*
 * The reaction script: one user's reaction to one content moves from its
 * old state to the new one ('' is none) and the counts follow, atomically;
 * a request id seen in the last day changes nothing. KEYS: totals, the
 * user -> reaction hash, the request id's key [, in cluster mode with
 * milestones the slot's pending milestones, eng:ms:out:{<tag>}]. ARGV: user, new state,
 * '1' if there is a request id, the likes' milestone arguments (see
 * NGX_HTTP_ENGAGEMENT_MILESTONE_LUA: a like that moves the count of
 * "like" may cross one), then the reaction types. The answer:
 * applied, duplicate request, old state, new state, counts per type.
 */
static const char  ngx_http_engagement_react_lua[] =
    NGX_HTTP_ENGAGEMENT_MILESTONE_LUA
    "local ty = 5 + (ARGV[4] == '0' and 0 or tonumber(ARGV[4]) + 4)\n"
    "msout = KEYS[4]\n"
    "local old = redis.call('HGET', KEYS[2], ARGV[1]) or ''\n"
    "local applied, dup = 0, 0\n"
    "if ARGV[3] == '1' and\n"
    "   not redis.call('SET', KEYS[3], '1', 'NX', 'EX', 86400) then\n"
    "  dup = 1\n"
    "end\n"
    "if dup == 0 and old ~= ARGV[2] then\n"
    "  if old ~= '' then redis.call('HINCRBY', KEYS[1], 'r:' .. old, -1) end\n"
    "  if ARGV[2] ~= '' then\n"
    "    local c = redis.call('HINCRBY', KEYS[1], 'r:' .. ARGV[2], 1)\n"
    "    if ARGV[2] == 'like' then ms(KEYS[1], 'likes', c, c - 1, 4) end\n"
    "    redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])\n"
    "  else\n"
    "    redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "  end\n"
    "  applied = 1\n"
    "end\n"
    "local r = {applied, dup, old,"
    " redis.call('HGET', KEYS[2], ARGV[1]) or ''}\n"
    "for i = ty, #ARGV do\n"
    "  r[#r + 1] ="
    " tonumber(redis.call('HGET', KEYS[1], 'r:' .. ARGV[i])) or 0\n"
    "end\n"
    "return r\n";

/* a user's state: the same answer as the reaction script, changing nothing */
static const char  ngx_http_engagement_state_lua[] =
    "local s = redis.call('HGET', KEYS[2], ARGV[1]) or ''\n"
    "local r = {0, 0, s, s}\n"
    "for i = 2, #ARGV do\n"
    "  r[#r + 1] ="
    " tonumber(redis.call('HGET', KEYS[1], 'r:' .. ARGV[i])) or 0\n"
    "end\n"
    "return r\n";


/*
 * The live script: one edge's live viewers of one content, shared. KEYS:
 * the content's live hash, eng:{c:<id>}:live, a field per edge holding
 * "<count>:<ms>" (Redis's own clock, so edges' clocks do not matter).
 * ARGV: the edge, its count ("0": take it back, "-": only read), how long
 * (ms) a count stays current, the key's TTL (ms), the edge's minute
 * (UTC, YYYYMMDDHHMM) and the minute, hour and day buckets' TTLs (s). The
 * answer: the sum of the other edges' current counts; a count not renewed
 * in time (its edge stopped or lost Redis) is removed. KEYS[2], the
 * content's totals key, names its buckets: the live count of all edges
 * (the others' and this one's) raises the field "peak" of the minute's,
 * hour's and day's bucket when higher; a bucket this makes gets its TTL.
 */
static const char  ngx_http_engagement_live_lua[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "if ARGV[2] == '0' then\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "elseif ARGV[2] ~= '-' then\n"
    "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. now)\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
    "end\n"
    "local h = redis.call('HGETALL', KEYS[1])\n"
    "local sum, fresh = 0, tonumber(ARGV[3])\n"
    "for i = 1, #h, 2 do\n"
    "  if h[i] ~= ARGV[1] then\n"
    "    local c, at = string.match(h[i + 1], '^(%d+):(%d+)$')\n"
    "    if c and now - tonumber(at) <= fresh then\n"
    "      sum = sum + tonumber(c)\n"
    "    else\n"
    "      redis.call('HDEL', KEYS[1], h[i])\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local all = sum + (tonumber(ARGV[2]) or 0)\n"
    "if all > 0 and KEYS[2] then\n"
    "  local m = ARGV[5]\n"
    "  local b = {KEYS[2] .. ':m:' .. m, KEYS[2] .. ':h:' .. string.sub(m, 1, 10),\n"
    "             KEYS[2] .. ':d:' .. string.sub(m, 1, 8)}\n"
    "  for s = 1, 3 do\n"
    "    local cur = redis.pcall('HGET', b[s], 'peak')\n"
    "    if type(cur) ~= 'table' and all > (tonumber(cur) or 0) then\n"
    "      redis.call('HSET', b[s], 'peak', all)\n"
    "      if redis.call('TTL', b[s]) < 0 then\n"
    "        redis.call('EXPIRE', b[s], ARGV[5 + s])\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return sum\n";


/*
 * The resume script: one user's position on one content. KEYS: the
 * user's positions hash eng:{u:<id>}:resume (content -> "<positionMs>:
 * <durationMs>:<unix ms>", the duration empty when unknown), the user's
 * history eng:{u:<id>}:history (content scored by unix ms) and the
 * user's deletion mark eng:{u:<id>}:cleared (the unix ms of the last
 * DELETE). ARGV: the content, the position, the duration ('' unknown),
 * the edge's unix ms of the heartbeat, the history's length, the keys'
 * TTL (ms). The latest wins: a position stamped before the one Redis
 * has, or before the user's deletion, is not applied (a resend, another
 * edge's late send, a send that crossed a DELETE). The history keeps the
 * newest contents; a content that falls out loses its position too.
 * The answer: 1 applied, 0 not (older).
 */
static const char  ngx_http_engagement_resume_lua[] =
    "local t = tonumber(ARGV[4])\n"
    "local c = redis.call('GET', KEYS[3])\n"
    "if c and tonumber(c) and t <= tonumber(c) then return 0 end\n"
    "local dur = ARGV[3]\n"
    "local old = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if old then\n"
    "  local od, ot = string.match(old, '^%d*:(%d*):(%d+)$')\n"
    "  if ot and tonumber(ot) > t then return 0 end\n"
    "  if dur == '' and od then dur = od end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1],\n"
    "  ARGV[2] .. ':' .. dur .. ':' .. ARGV[4])\n"
    "redis.call('ZADD', KEYS[2], t, ARGV[1])\n"
    "local n = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])\n"
    "if n > 0 then\n"
    "  local gone = redis.call('ZRANGE', KEYS[2], 0, n - 1)\n"
    "  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - 1)\n"
    "  redis.call('HDEL', KEYS[1], unpack(gone))\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[6])\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[6])\n"
    "return 1\n";


/*
 * The history script: a user's most recent contents. KEYS: the
 * positions hash and the history (as the resume script's). ARGV: how
 * many. The answer: content, position value ('' if none) for each, most
 * recent first.
 */
static const char  ngx_http_engagement_history_lua[] =
    "local ids = redis.call('ZREVRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1)\n"
    "local r = {}\n"
    "if #ids == 0 then return r end\n"
    "local v = redis.call('HMGET', KEYS[1], unpack(ids))\n"
    "for i = 1, #ids do\n"
    "  r[#r + 1] = ids[i]\n"
    "  r[#r + 1] = v[i] or ''\n"
    "end\n"
    "return r\n";


/*
 * The forget script: a user's history deleted. KEYS: the positions
 * hash, the history, the deletion mark. ARGV: the edge's unix ms now,
 * the mark's TTL (ms): positions stamped before it that are still on
 * their way (another worker's or edge's send) are refused by the resume
 * script. The answer: the keys deleted.
 */
static const char  ngx_http_engagement_forget_lua[] =
    "local n = redis.call('DEL', KEYS[1], KEYS[2])\n"
    "local c = redis.call('GET', KEYS[3])\n"
    "if not (c and tonumber(c) and tonumber(c) > tonumber(ARGV[1])) then\n"
    "  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])\n"
    "end\n"
    "return n\n";


/*
 * The series script: a round of the series zone (sink/redis/series_flush.c),
 * applied at most once: the round's batch key (KEYS[1],
 * eng:sb:<stream>:<round>) is set if absent, with a TTL, and only then
 * are the fields added. KEYS[2..]: a scope's key per group (eng:{c:<id>},
 * eng:{ch:<id>}, eng:{cat:<name>}, eng:{all}). ARGV: the batch, minute,
 * hour and day TTLs, then per group its minute YYYYMMDDHHMM, the suffix
 * of its hash after the bucket's key ("" for the bucket's own hash, or
 * ":<dim>:<metric>", e.g. ":country:views", for a breakdown's), the
 * number of its fields and each field with its delta, added to the
 * minute, hour and day hashes (<scope>:m:<minute><suffix>; the hour and
 * day times are the minute's prefixes). A hash gets its TTL when a field
 * of it is created (HINCRBY answers exactly the delta). A hash Redis
 * refuses (a key of another type) is skipped, so the others are applied
 * and the round stays applied once.
 * The answer: applied (0: the round was applied before), fields refused.
 */
static const char  ngx_http_engagement_series_lua[] =
    "if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then\n"
    "  return {0, 0}\n"
    "end\n"
    "local bad, p = 0, 5\n"
    "for i = 2, #KEYS do\n"
    "  local k, m, x = KEYS[i], ARGV[p], ARGV[p + 1]\n"
    "  local n = tonumber(ARGV[p + 2])\n"
    "  local b = {k .. ':m:' .. m .. x,\n"
    "             k .. ':h:' .. string.sub(m, 1, 10) .. x,\n"
    "             k .. ':d:' .. string.sub(m, 1, 8) .. x}\n"
    "  local new = {false, false, false}\n"
    "  p = p + 3\n"
    "  for j = 1, n do\n"
    "    local f, d = ARGV[p], ARGV[p + 1]\n"
    "    local dn = tonumber(d)\n"
    "    p = p + 2\n"
    "    for s = 1, 3 do\n"
    "      local v = redis.pcall('HINCRBY', b[s], f, d)\n"
    "      if type(v) == 'table' then bad = bad + 1\n"
    "      elseif v == dn then new[s] = true end\n"
    "    end\n"
    "  end\n"
    "  for s = 1, 3 do\n"
    "    if new[s] then redis.call('EXPIRE', b[s], ARGV[1 + s]) end\n"
    "  end\n"
    "end\n"
    "return {1, bad}\n";


/*
 * The trend script: one closed bucket of one edge's sketch, one scope
 * (everything, or a category), merged at most once: KEYS[1] the batch
 * key (eng:{tr}:b:<edge>:<zone>:<bucket>, set if absent, with a TTL),
 * KEYS[2] and KEYS[3] the minute and hour sorted sets of the scope
 * (the same hash tag). ARGV: the batch, minute and hour TTLs, then
 * member, count pairs. Keys of another type are refused before anything
 * is written. 1: applied, 0: applied before.
 */
static const char  ngx_http_engagement_trend_lua[] =
    "for i = 2, 3 do\n"
    "  local t = redis.call('TYPE', KEYS[i]).ok\n"
    "  if t ~= 'none' and t ~= 'zset' then\n"
    "    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' is a ' .. t)\n"
    "  end\n"
    "end\n"
    "if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then\n"
    "  return 0\n"
    "end\n"
    "for i = 4, #ARGV, 2 do\n"
    "  redis.call('ZINCRBY', KEYS[2], ARGV[i + 1], ARGV[i])\n"
    "  redis.call('ZINCRBY', KEYS[3], ARGV[i + 1], ARGV[i])\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[2])\n"
    "redis.call('EXPIRE', KEYS[3], ARGV[3])\n"
    "return 1\n";


/*
 * The trending read: the window's sorted sets (KEYS[2..], one hash tag)
 * summed with their decay weights (ARGV[2..]) into KEYS[1], a scratch key
 * of the same tag deleted before the script ends, and the top ARGV[1]
 * with their scores. ZUNIONSTORE (Redis 2.0), not ZUNION (6.2).
 */
static const char  ngx_http_engagement_trend_top_lua[] =
    "local a = {'ZUNIONSTORE', KEYS[1], #KEYS - 1}\n"
    "for i = 2, #KEYS do a[#a + 1] = KEYS[i] end\n"
    "a[#a + 1] = 'WEIGHTS'\n"
    "for i = 2, #ARGV do a[#a + 1] = ARGV[i] end\n"
    "redis.call(unpack(a))\n"
    "local r = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1,"
    " 'WITHSCORES')\n"
    "redis.call('DEL', KEYS[1])\n"
    "return r\n";


/*
 * One content's exact counts in a window: per bucket hash (KEYS, the
 * content's minute or hour buckets, oldest first) its views and likes;
 * a key of another type counts 0.
 */
static const char  ngx_http_engagement_trend_counts_lua[] =
    "local r = {}\n"
    "for i = 1, #KEYS do\n"
    "  local v = redis.pcall('HMGET', KEYS[i], 'views', 'likes')\n"
    "  if v.err then v = {} end\n"
    "  r[#r + 1] = tonumber(v[1]) or 0\n"
    "  r[#r + 1] = tonumber(v[2]) or 0\n"
    "end\n"
    "return r\n";


/*
 * A day's HyperLogLog of viewers (KEYS[1], eng:{c:<id>}:uv:d:<YYYYMMDD>):
 * ARGV[1] its TTL, given when this makes it; ARGV[2..] the hashes.
 */
static const char  ngx_http_engagement_uv_day_lua[] =
    "local new = redis.call('EXISTS', KEYS[1]) == 0\n"
    "redis.call('PFADD', KEYS[1], unpack(ARGV, 2))\n"
    "if new then redis.call('EXPIRE', KEYS[1], ARGV[1]) end\n"
    "return 0\n";


/*
 * Milestones in cluster mode, the second step (milestone_fwd.c): one
 * pending notification (ARGV[3], the JSON the milestone script recorded
 * in its slot's eng:ms:out:{<tag>}; ARGV[4] its id) moved to the stream
 * (ARGV[1] 's'; KEYS: the guard {eng:milestones}:s:<id>, eng:milestones:
 * one slot) or the webhook's outbox ('h'; KEYS: the guard eng:{ms}:s:<id>,
 * eng:{ms}:wh, eng:{ms}:due), once: the guard is set (TTL ARGV[2]) or
 * nothing is done. The stream's entry and the PUBLISH, within the
 * channel's rate a minute ({eng:milestones}:n:<channel>:<minute>), are
 * those of NGX_HTTP_ENGAGEMENT_MILESTONE_LUA. Answers 1 (moved) or 0.
 */
static const char  ngx_http_engagement_ms_fwd_lua[] =
    "local n = cjson.decode(ARGV[3])\n"
    "if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then\n"
    "  return 0\n"
    "end\n"
    "if ARGV[1] == 'h' then\n"
    "  if n.body ~= '' and"
    " redis.pcall('HSETNX', KEYS[2], ARGV[4], n.body) == 1 then\n"
    "    redis.pcall('ZADD', KEYS[3], n.time, ARGV[4])\n"
    "  end\n"
    "  return 1\n"
    "end\n"
    "local rk = '{eng:milestones}:n:' .. n.channel .. ':' .. n.minute\n"
    "local c = redis.pcall('INCR', rk)\n"
    "local pub = 0\n"
    "if type(c) == 'number' then\n"
    "  if c == 1 then redis.pcall('EXPIRE', rk, 120) end\n"
    "  if c <= n.rate then\n"
    "    redis.pcall('PUBLISH', n.channel, n.msg); pub = 1\n"
    "  end\n"
    "end\n"
    "redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*',"
    " 'contentId', n.id, 'metric', n.metric, 'threshold', n.threshold,"
    " 'total', n.total, 'published', pub, 'json', n.msg)\n"
    "return 1\n";


/*
 * Global dedupe (policy/global.c): a round of views waiting on one edge.
 * KEYS[1] the round's answers (a hash by view id, kept ARGV[1] s: a
 * round sent again is answered as before), then each view's dedupe keys
 * (its current salt's, and its previous salt's in the window after a
 * rotation). ARGV after the TTL, per view: its id, the marks it would
 * count (view 1, engaged 2, replay 4), the window in s, its key count.
 * The answer: one digit per view, the marks fresh across all edges; they
 * are set on the current key, for the window from the first.
 */
static const char  ngx_http_engagement_global_lua[] =
    "local rk, out, k, a, any = KEYS[1], {}, 2, 2, false\n"
    "while a <= #ARGV do\n"
    "  local id, kinds = ARGV[a], tonumber(ARGV[a + 1])\n"
    "  local win, nk = ARGV[a + 2], tonumber(ARGV[a + 3])\n"
    "  a = a + 4\n"
    "  local d = redis.call('HGET', rk, id)\n"
    "  if not d then\n"
    "    local had, cur = 0, redis.call('GET', KEYS[k])\n"
    "    if cur then had = tonumber(cur) or 0 end\n"
    "    for i = 1, nk - 1 do\n"
    "      local v = redis.call('GET', KEYS[k + i])\n"
    "      if v then had = bit.bor(had, tonumber(v) or 0) end\n"
    "    end\n"
    "    local fresh = bit.band(kinds, bit.bnot(had))\n"
    "    if fresh ~= 0 then\n"
    "      if cur then\n"
    "        redis.call('SET', KEYS[k], bit.bor(tonumber(cur) or 0, kinds),"
    " 'KEEPTTL')\n"
    "      else\n"
    "        redis.call('SET', KEYS[k], kinds, 'EX', win)\n"
    "      end\n"
    "    end\n"
    "    d = tostring(fresh)\n"
    "    redis.call('HSET', rk, id, d)\n"
    "    any = true\n"
    "  end\n"
    "  out[#out + 1] = d\n"
    "  k = k + nk\n"
    "end\n"
    "if any then redis.call('EXPIRE', rk, ARGV[1]) end\n"
    "return table.concat(out)\n";


const char  *ngx_http_engagement_redis_scripts[NGX_HTTP_ENGAGEMENT_SCRIPTS] = {
    ngx_http_engagement_flush_lua,
    ngx_http_engagement_read_lua,
    ngx_http_engagement_react_lua,
    ngx_http_engagement_state_lua,
    ngx_http_engagement_live_lua,
    ngx_http_engagement_resume_lua,
    ngx_http_engagement_history_lua,
    ngx_http_engagement_forget_lua,
    ngx_http_engagement_series_lua,
    ngx_http_engagement_trend_lua,
    ngx_http_engagement_trend_top_lua,
    ngx_http_engagement_trend_counts_lua,
    ngx_http_engagement_uv_day_lua,
    ngx_http_engagement_ms_fwd_lua,
    ngx_http_engagement_global_lua
};
