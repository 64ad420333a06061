"""The protocol's Lua scripts, run by SHA (EVALSHA) with the caller's ACL: each touches the keys
of one agent (one slot)."""

from __future__ import annotations

import time

#: Move due retries from b's delayed set into its requeue stream, atomically.
#: KEYS: delayed, requeue. ARGV: now, limit, requeue cap.
PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, raw in ipairs(due) do
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'e', raw)
    redis.call('ZREM', KEYS[1], raw)
end
return #due
"""

#: Acknowledge handled entries (of several inboxes, one XACK each), remember de-duplicated ids,
#: and write one ``delivered`` event. KEYS: events, n streams, done keys. ARGV: n, group, time,
#: batch JSON, events cap, de-dupe TTL, then for each stream the count of its ids and the ids.
ACK = """
local n = tonumber(ARGV[1])
local at = 7
for i = 1, n do
    local count = tonumber(ARGV[at])
    redis.call('XACK', KEYS[1 + i], ARGV[2], unpack(ARGV, at + 1, at + count))
    at = at + 1 + count
end
for i = 2 + n, #KEYS do
    redis.call('SET', KEYS[i], '1', 'EX', ARGV[6])
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', 'status', 'delivered', 'at', ARGV[3],
    'batch', ARGV[4])
return n
"""

#: A failed attempt: queue the next one, acknowledge this one, write a ``failed`` event.
#: KEYS: delayed, stream, events. ARGV: group, entry id, next attempt's JSON, when due, time,
#: batch JSON, error, events cap.
FAIL = """
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 'status', 'failed', 'at', ARGV[5],
    'batch', ARGV[6], 'error', ARGV[7])
return 1
"""

#: Dead-letter an entry: the dead letter, its acknowledgement and a ``dead`` event.
#: KEYS: dead, stream, events. ARGV: group, entry id, time, batch JSON, reason, events cap,
#: dead-letters cap, then the dead letter's field/value pairs.
DEAD = """
local letter = {}
for i = 8, #ARGV do letter[#letter + 1] = ARGV[i] end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[7], '*', unpack(letter))
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'status', 'dead', 'at', ARGV[3],
    'batch', ARGV[4], 'error', ARGV[5])
return 1
"""

#: Delete a consumer only when it has nothing pending: DELCONSUMER would drop its pending entries.
#: KEYS: stream. ARGV: group, consumer.
DELETE_IDLE_CONSUMER = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #pending == 0 then
    return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""

#: Replay one dead letter: only the caller whose XDEL removed it delivers it, so two replays of
#: one dead letter at once deliver it once. KEYS: dead, requeue, site events. ARGV: dead letter
#: id, the envelope's JSON, time, batch JSON, requeue cap. Returns 1 if delivered, else 0.
REPLAY_DEAD_LETTER = """
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'e', ARGV[2])
redis.call('XADD', KEYS[3], '*', 'status', 'replayed', 'at', ARGV[3], 'batch', ARGV[4])
return 1
"""

#: Put envelopes (a replay of history) into b's requeue stream with one ``replayed`` event.
#: KEYS: requeue, site events. ARGV: time, batch JSON, requeue cap, then the envelopes' JSON.
REQUEUE = """
for i = 4, #ARGV do
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[i])
end
redis.call('XADD', KEYS[2], '*', 'status', 'replayed', 'at', ARGV[1], 'batch', ARGV[2])
return #ARGV - 3
"""

#: Trim a stream by age (ARGV[2]: a minimum id, or '') and length (ARGV[1], or ''), never past
#: the first entry some consumer group still needs (its oldest pending entry, or the first it
#: has not been given: Redis 7.0 has no group-aware trim), nor past ARGV[3] when given (a
#: reader without a group, such as the recorder, keeps its place so). No entry crosses the
#: network. Returns {entries removed, that first needed id or '' when nothing bounds it}.
TRIM_STREAM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
-- Ids are compared as decimal strings (length, then text): a sequence number may exceed what a
-- Lua number holds exactly, and one chosen by a hostile sender must not break the trim.
local function parse(id)
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    return {ms, seq}
end
local function lt(a, b)
    if #a ~= #b then return #a < #b end
    return a < b
end
local function before(a, b) return lt(a[1], b[1]) or (a[1] == b[1] and lt(a[2], b[2])) end
local function text(id) return id[1] .. '-' .. id[2] end
local safe = nil
if ARGV[3] ~= nil and ARGV[3] ~= '' then safe = parse(ARGV[3]) end
for _, raw in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local group = {}
    for i = 1, #raw, 2 do group[raw[i]] = raw[i + 1] end
    -- The first entry the group has not been given (none: it needs nothing new).
    local after = '(' .. group['last-delivered-id']
    local first_new = redis.call('XRANGE', KEYS[1], after, '+', 'COUNT', 1)
    if #first_new > 0 then
        local id = parse(first_new[1][1])
        if safe == nil or before(id, safe) then safe = id end
    end
    if group['pending'] > 0 then
        local oldest = parse(redis.call('XPENDING', KEYS[1], group['name'])[2])
        if safe == nil or before(oldest, safe) then safe = oldest end
    end
end
local removed = 0
if ARGV[2] ~= '' then
    local bound = parse(ARGV[2])
    if safe ~= nil and before(safe, bound) then bound = safe end
    removed = removed + redis.call('XTRIM', KEYS[1], 'MINID', text(bound))
end
if ARGV[1] ~= '' then
    local maxlen = tonumber(ARGV[1])
    -- MAXLEN keeps the newest entries: safe when all that is needed is among them.
    if safe == nil
        or #redis.call('XRANGE', KEYS[1], text(safe), '+', 'COUNT', maxlen + 1) <= maxlen then
        removed = removed + redis.call('XTRIM', KEYS[1], 'MAXLEN', maxlen)
    else
        removed = removed + redis.call('XTRIM', KEYS[1], 'MINID', text(safe))
    end
end
if safe == nil then return {removed, ''} end
return {removed, text(safe)}
"""


#: The scripts agents run, by SHA (EVALSHA): the site loads them on every node (an agent may not).
AGENT_SCRIPTS = (PROMOTE, ACK, FAIL, DEAD, DELETE_IDLE_CONSUMER, TRIM_STREAM)


def trim_arguments(
    maxlen: int | None, max_age: float | None, keep_from: str | None = None
) -> list[str]:
    """``TRIM_STREAM``'s ARGV for a length and an age (seconds), either may be None, and the
    first entry a reader without a group still needs."""
    return [
        "" if maxlen is None else str(maxlen),
        "" if max_age is None else f"{int((time.time() - max_age) * 1000)}-0",
        keep_from or "",
    ]
