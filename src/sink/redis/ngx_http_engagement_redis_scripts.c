
/*
 * The Lua scripts the module runs in Redis, loaded once per connection
 * (SCRIPT LOAD) and called by SHA; indexed by NGX_HTTP_ENGAGEMENT_SCRIPT_*.
 * Each applies or reads one content's keys atomically.
 */


#include "sink/redis/ngx_http_engagement_redis.h"


/*
 * The flush script: applies one content's deltas at most once per batch
 * (stream, sequence): the flush marks keep per stream the last sequence
 * applied, and a stream's sequences only grow. KEYS: totals, flush marks,
 * minute, hour and day buckets (a batch holds the deltas of one minute),
 * the unique-viewer HyperLogLog. ARGV: stream, sequence, views, engaged,
 * replays, the three bucket TTLs, the number of reaction types and the
 * types, then viewer hashes for the HyperLogLog.
 * The answer: applied, views, engaged, replays, unique viewers, one count
 * per reaction type (so a flush refreshes the whole cached summary).
 * A bucket gets its TTL when a field of it is created (HINCRBY answers
 * exactly the delta): once per bucket, not at every flush, and again if
 * Redis lost the key. Counts only grow, so an existing field never
 * answers its delta.
 */
static const char  ngx_http_engagement_flush_lua[] =
    "local n = tonumber(ARGV[9])\n"
    "local last = redis.call('HGET', KEYS[2], ARGV[1])\n"
    "local applied = 0\n"
    "if (not last) or tonumber(last) < tonumber(ARGV[2]) then\n"
    "  local f = {'views', 'engaged', 'replays'}\n"
    "  for i = 1, 4 do\n"
    "    local k = KEYS[1]\n"
    "    if i > 1 then k = KEYS[i + 1] end\n"
    "    local fresh = false\n"
    "    for j = 1, 3 do\n"
    "      local d = ARGV[2 + j]\n"
    "      if d ~= '0' and redis.call('HINCRBY', k, f[j], d) == tonumber(d)\n"
    "      then fresh = true end\n"
    "    end\n"
    "    if i > 1 and fresh then redis.call('EXPIRE', k, ARGV[i + 4]) end\n"
    "  end\n"
    "  for i = 10 + n, #ARGV, 500 do\n"
    "    redis.call('PFADD', KEYS[6],"
    " unpack(ARGV, i, math.min(i + 499, #ARGV)))\n"
    "  end\n"
    "  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])\n"
    "  applied = 1\n"
    "end\n"
    "local q = {'views', 'engaged', 'replays'}\n"
    "for i = 1, n do q[3 + i] = 'r:' .. ARGV[9 + i] end\n"
    "local t = redis.call('HMGET', KEYS[1], unpack(q))\n"
    "local r = {applied, tonumber(t[1]) or 0, tonumber(t[2]) or 0,\n"
    "           tonumber(t[3]) or 0, redis.call('PFCOUNT', KEYS[6])}\n"
    "for i = 1, n do r[5 + i] = tonumber(t[3 + i]) or 0 end\n"
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
 * user -> reaction hash, the request id's key. ARGV: user, new state,
 * '1' if there is a request id, then the reaction types. The answer:
 * applied, duplicate request, old state, new state, counts per type.
 */
static const char  ngx_http_engagement_react_lua[] =
    "local old = redis.call('HGET', KEYS[2], ARGV[1]) or ''\n"
    "local applied, dup = 0, 0\n"
    "if ARGV[3] == '1' and\n"
    "   not redis.call('SET', KEYS[3], '1', 'NX', 'EX', 86400) then\n"
    "  dup = 1\n"
    "end\n"
    "if dup == 0 and old ~= ARGV[2] then\n"
    "  if old ~= '' then redis.call('HINCRBY', KEYS[1], 'r:' .. old, -1) end\n"
    "  if ARGV[2] ~= '' then\n"
    "    redis.call('HINCRBY', KEYS[1], 'r:' .. ARGV[2], 1)\n"
    "    redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])\n"
    "  else\n"
    "    redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "  end\n"
    "  applied = 1\n"
    "end\n"
    "local r = {applied, dup, old,"
    " redis.call('HGET', KEYS[2], ARGV[1]) or ''}\n"
    "for i = 4, #ARGV do\n"
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


const char  *ngx_http_engagement_redis_scripts[NGX_HTTP_ENGAGEMENT_SCRIPTS] = {
    ngx_http_engagement_flush_lua,
    ngx_http_engagement_read_lua,
    ngx_http_engagement_react_lua,
    ngx_http_engagement_state_lua
};
