"""The bus's Lua scripts: each step that must not interleave with another runs as one.

Redis runs a script to its end before anything else, so "give the event the next seq,
append it to the log, trim the log, tell the node that holds the socket" can never race with
a resume on another node: a resume either sees the event in the log or is registered when
the event is published, never neither. Keys are built from the prefix inside the scripts,
which a single Redis (with replicas or Sentinel) allows and Redis Cluster would not.

Key names follow `server.bus.redis.keys`. Values are plain strings: a node's channel
carries `e SESSION SEQ BODY` (an event), `t SESSION EPOCH` (another socket took the session
over), `c USER TURN` (cancel) and `a USER CALL DECISION` (approve).
"""

from __future__ import annotations

from redis.asyncio import Redis

# What one log entry costs beyond its body, as the in-process buffer counts it.
ENTRY_OVERHEAD = 100

_APPEND = """
local function session_key(P, sid) return P .. ':s:' .. sid end

-- Append `body` to session `sid`'s log as its next seq, unless this node's op `op` was
-- applied already (a batch resent after a lost reply); trim the log to its bounds.
local function append(P, sid, body, maxlen, maxbytes, node, op)
  local h = session_key(P, sid)
  local opf = 'op:' .. node
  if op <= tonumber(redis.call('HGET', h, opf) or '0') then return end
  redis.call('HSET', h, opf, op)
  local seq = redis.call('HINCRBY', h, 'seq', 1)
  local log = h .. ':log'
  redis.call('XADD', log, '0-' .. seq, 'b', body)
  local bytes = redis.call('HINCRBY', h, 'bytes', #body + OVERHEAD)
  local len = redis.call('XLEN', log)
  while len > 1 and (len > maxlen or bytes > maxbytes) do
    local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
    redis.call('XDEL', log, first[1])
    bytes = redis.call('HINCRBY', h, 'bytes', -(#first[2][2] + OVERHEAD))
    len = len - 1
  end
  local ttl = redis.call('PTTL', h)
  if ttl > 0 then redis.call('PEXPIRE', log, ttl) end
  local at = redis.call('HGET', h, 'node')
  if at then
    redis.call('PUBLISH', P .. ':n:' .. at, 'e ' .. sid .. ' ' .. seq .. ' ' .. body)
  end
end
""".replace("OVERHEAD", str(ENTRY_OVERHEAD))

# ARGV: prefix, user, conversation ('' = any), origin session ('' = none), body, maxlen,
# maxbytes, node, op. To every session of the user with that conversation open.
PUBLISH_TO_USER = _APPEND + """
local P, uid, conv, origin = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ukey = P .. ':u:' .. uid
local reached = 0
for _, sid in ipairs(redis.call('SMEMBERS', ukey)) do
  local h = session_key(P, sid)
  if redis.call('EXISTS', h) == 0 then
    redis.call('SREM', ukey, sid)
  elseif sid ~= origin and (conv == '' or redis.call('SISMEMBER', h .. ':open', conv) == 1) then
    append(P, sid, ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9]))
    reached = reached + 1
  end
end
return reached
"""

# ARGV: prefix, body, maxlen, maxbytes, node, op, session... To those sessions.
PUBLISH_TO_SESSIONS = _APPEND + """
local P = ARGV[1]
local reached = 0
for i = 7, #ARGV do
  if redis.call('EXISTS', session_key(P, ARGV[i])) == 1 then
    append(P, ARGV[i], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]))
    reached = reached + 1
  end
end
return reached
"""

_FORGET = """
local function forget(P, sid)
  local h = P .. ':s:' .. sid
  local f = redis.call('HMGET', h, 'user', 'node')
  redis.call('DEL', h, h .. ':log', h .. ':open')
  if f[1] then redis.call('SREM', P .. ':u:' .. f[1], sid) end
  if f[2] then redis.call('SREM', P .. ':n:' .. f[2] .. ':sessions', sid) end
end
"""

# ARGV: prefix, session, user, token hash, node, max per user. A new session, attached to
# `node`; past the limit the user's longest-detached sessions are forgotten first (never one
# with a socket). Returns how many were forgotten.
CREATE = _FORGET + """
local P, sid, uid, node, limit = ARGV[1], ARGV[2], ARGV[3], ARGV[5], tonumber(ARGV[6])
local ukey = P .. ':u:' .. uid
local mine = {}
for _, s in ipairs(redis.call('SMEMBERS', ukey)) do
  if redis.call('EXISTS', P .. ':s:' .. s) == 0 then
    redis.call('SREM', ukey, s)
  else
    table.insert(mine, s)
  end
end
local count, evicted = #mine, 0
while count >= math.max(limit, 1) do
  local victim, oldest = nil, nil
  for _, s in ipairs(mine) do
    local at = redis.call('HGET', P .. ':s:' .. s, 'detached_at')
    if at and (oldest == nil or tonumber(at) < oldest) then victim, oldest = s, tonumber(at) end
  end
  if not victim then break end
  forget(P, victim)
  count, evicted = count - 1, evicted + 1
end
redis.call('HSET', P .. ':s:' .. sid, 'user', uid, 'token', ARGV[4], 'seq', 0, 'bytes', 0,
  'node', node, 'epoch', 1)
redis.call('SADD', ukey, sid)
redis.call('SADD', P .. ':n:' .. node .. ':sessions', sid)
return evicted
"""

# ARGV: prefix, session, user, token hash, last_seq, node. Attach the session to `node` and
# return {seq, epoch, entries after last_seq}, or false when resume cannot be honoured
# (unknown, another user's, wrong token, or events after last_seq no longer kept). The node
# that had its socket is told (`t`), to close that socket with 1000.
RESUME = """
local P, sid, uid, node = ARGV[1], ARGV[2], ARGV[3], ARGV[6]
local h = P .. ':s:' .. sid
local f = redis.call('HMGET', h, 'user', 'token', 'seq', 'node', 'epoch')
if not f[1] or f[1] ~= uid or f[2] ~= ARGV[4] then return false end
local seq, last = tonumber(f[3]), tonumber(ARGV[5])
if last > seq or last < 0 then return false end
local log = h .. ':log'
local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
local oldest = seq + 1
if first then oldest = tonumber(string.match(first[1], '%-(%d+)$')) end
if last + 1 < oldest then return false end
local epoch = redis.call('HINCRBY', h, 'epoch', 1)
redis.call('HSET', h, 'node', node)
redis.call('HDEL', h, 'detached_at')
redis.call('PERSIST', h)
redis.call('PERSIST', log)
redis.call('PERSIST', h .. ':open')
if f[4] then
  redis.call('SREM', P .. ':n:' .. f[4] .. ':sessions', sid)
  if f[4] ~= node then
    redis.call('PUBLISH', P .. ':n:' .. f[4], 't ' .. sid .. ' ' .. f[5])
  end
end
redis.call('SADD', P .. ':n:' .. node .. ':sessions', sid)
return {seq, epoch, redis.call('XRANGE', log, '0-' .. (last + 1), '+')}
"""

# ARGV: prefix, session, node, epoch, ttl ms, now ms. The socket of that attachment closed:
# the session waits for a resume for the TTL. A later attachment (epoch) is left alone.
DETACH = """
local P, sid, node = ARGV[1], ARGV[2], ARGV[3]
local h = P .. ':s:' .. sid
local f = redis.call('HMGET', h, 'node', 'epoch')
if f[1] ~= node or f[2] ~= ARGV[4] then return 0 end
redis.call('HDEL', h, 'node')
redis.call('HSET', h, 'detached_at', ARGV[6])
for _, key in ipairs({h, h .. ':log', h .. ':open'}) do redis.call('PEXPIRE', key, ARGV[5]) end
redis.call('SREM', P .. ':n:' .. node .. ':sessions', sid)
return 1
"""

# ARGV: prefix, session.
DROP = _FORGET + """
forget(ARGV[1], ARGV[2])
return 1
"""

# ARGV: prefix, session, conversation, '1' to open or '0' to close. The set lives as long
# as the session.
OPEN = """
local h = ARGV[1] .. ':s:' .. ARGV[2]
if redis.call('EXISTS', h) == 0 then return 0 end
local key = h .. ':open'
if ARGV[4] == '1' then redis.call('SADD', key, ARGV[3]) else redis.call('SREM', key, ARGV[3]) end
local ttl = redis.call('PTTL', h)
if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
return 1
"""

# ARGV: prefix, hash ('turns' or 'calls'), id, user, message. Send `message` to the node
# holding that turn or call, if it is the user's and the node's lease is live; 1 if sent.
ROUTE = """
local P = ARGV[1]
local value = redis.call('HGET', P .. ':' .. ARGV[2], ARGV[3])
if not value then return 0 end
local node, owner = string.match(value, '^([^\\t]+)\\t([^\\t]+)')
if owner ~= ARGV[4] or redis.call('EXISTS', P .. ':lease:' .. node) == 0 then return 0 end
redis.call('PUBLISH', P .. ':n:' .. node, ARGV[5])
return 1
"""

# ARGV: prefix, node, now ms, session ttl ms, '1' to leave (even with a live lease). Take
# over a node whose lease ran out: return its turns (`id\\tvalue` pairs) for the caller to
# continue or end, and detach its sessions so they expire after the TTL. Whoever runs this
# first gets the turns; anyone after gets none. A node leaving keeps its turns registered
# (they were handed over by its drain): it gives up its lease, and the first node to see
# that takes them as from a dead node.
RELEASE_NODE = """
local P, node = ARGV[1], ARGV[2]
local leaving = ARGV[5] == '1'
if not leaving and redis.call('EXISTS', P .. ':lease:' .. node) == 1 then return false end
local turns = {}
local tset = P .. ':n:' .. node .. ':turns'
if not leaving then
  for _, t in ipairs(redis.call('SMEMBERS', tset)) do
    local value = redis.call('HGET', P .. ':turns', t)
    if value then
      table.insert(turns, t .. '\\t' .. value)
      redis.call('HDEL', P .. ':turns', t)
    end
  end
  redis.call('DEL', tset)
end
for _, c in ipairs(redis.call('SMEMBERS', P .. ':n:' .. node .. ':calls')) do
  redis.call('HDEL', P .. ':calls', c)
end
local sset = P .. ':n:' .. node .. ':sessions'
for _, sid in ipairs(redis.call('SMEMBERS', sset)) do
  local h = P .. ':s:' .. sid
  if redis.call('HGET', h, 'node') == node then
    redis.call('HDEL', h, 'node')
    redis.call('HSET', h, 'detached_at', ARGV[3])
    for _, key in ipairs({h, h .. ':log', h .. ':open'}) do redis.call('PEXPIRE', key, ARGV[4]) end
  end
end
redis.call('DEL', sset, P .. ':n:' .. node .. ':calls', P .. ':lease:' .. node)
if redis.call('EXISTS', tset) == 0 then redis.call('SREM', P .. ':nodes', node) end
return turns
"""


class Scripts:
    """Every script, registered with one client (sent by hash, loaded when missing)."""

    def __init__(self, client: Redis) -> None:
        self.publish_to_user = client.register_script(PUBLISH_TO_USER)
        self.publish_to_sessions = client.register_script(PUBLISH_TO_SESSIONS)
        self.create = client.register_script(CREATE)
        self.resume = client.register_script(RESUME)
        self.detach = client.register_script(DETACH)
        self.drop = client.register_script(DROP)
        self.open = client.register_script(OPEN)
        self.route = client.register_script(ROUTE)
        self.release_node = client.register_script(RELEASE_NODE)
