"""Assignment state in Redis: tier queues, free label slots, leases, seen sets and gold pools.

Every change that must be atomic is one Lua script, so that under any number of simultaneous
claims no item holds more live leases than labels it still needs and no annotator receives the
same item twice. The database stays the source of truth; the reconciler recreates all of
this from it (`replace_state`).

Per project (keys share the hash tag ``{pid}``, so a project lives on one cluster slot):

- ``q:<tier>``   sorted set, item -> priority: items that have free slots.
- ``free:<b>``   hashes, item -> labels still wanted that nobody holds a lease for.
- ``leased:<b>`` hashes, item -> live leases.

``<b>`` is the item id's first two characters (4,096 buckets for the ids `new_id` makes): one
big hash per project is a hashtable at about 75 bytes per field, while a bucket stays a compact
listpack (hash-max-listpack-entries, 512 by default: up to about 2M items per project) at about
20. With the sorted set that makes about 170 bytes per queued item instead of about 270.
- ``leases``     sorted set, assignment -> lease expiry (ms since the epoch).
- ``lease``      hash, assignment -> "item|annotator|tier|priority".
- ``seen:<annotator>`` set of items ever assigned to that annotator (gold included).
- ``gold``       set of the project's gold items.
- ``closed``     set of settled items: never opened again (a late repair must not revive one).
"""

from __future__ import annotations

import string
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis import Redis
from redis.commands.core import Script

from router.ratelimit.limiter import RATE_COUNT_LUA, RateTicket

__all__ = ["AssignmentStore", "Claim", "LeaseOutcome", "ReapedLease"]

# The hash bucket of an item's free and leased counts (see the module docstring).
_BUCKETS = """
local function fk(p, item) return p .. 'free:' .. string.sub(item, 1, 2) end
local function lk(p, item) return p .. 'leased:' .. string.sub(item, 1, 2) end
"""

# Returns expired leases to their items (bounded), shared by the claim and reap scripts.
_REAP = (
    _BUCKETS
    + """
local function reap(p, now, limit)
  local out = {}
  local due = redis.call('ZRANGEBYSCORE', p .. 'leases', '-inf', now, 'LIMIT', 0, limit)
  for _, aid in ipairs(due) do
    local info = redis.call('HGET', p .. 'lease', aid)
    redis.call('ZREM', p .. 'leases', aid)
    redis.call('HDEL', p .. 'lease', aid)
    if info then
      local item, ann, tier, prio = string.match(info, '([^|]*)|([^|]*)|([^|]*)|([^|]*)')
      if redis.call('HEXISTS', lk(p, item), item) == 1 then
        redis.call('HINCRBY', lk(p, item), item, -1)
      end
      if redis.call('HEXISTS', fk(p, item), item) == 1 then
        redis.call('HINCRBY', fk(p, item), item, 1)
        redis.call('ZADD', p .. 'q:' .. tier, prio, item)
      end
      table.insert(out, aid)
      table.insert(out, item)
    end
  end
  return out
end
"""
)

# A request over its key's rate limit (`RateTicket`, optional ARGV after the script's own) does
# nothing but count: {false, 'rate_limited', ms until the window ends, {}, '0'} for a claim.
_RATE_LIMITED = """
local function over_rate(at)
  if ARGV[at] == nil or ARGV[at] == '' then return false end
  local n, ttl = rate_count(ARGV[at], ARGV[at + 2])
  if n > tonumber(ARGV[at + 1]) then return ttl end
  return false
end
"""

# KEYS: none (all keys derive from the project prefix ARGV[1]; one hash slot per project; the
#       rate counter, counted first, is the key's own).
# ARGV: prefix, now_ms, lease_ms, assignment_id, annotator_id, want_gold (0/1),
#       gold_only (0/1), gold_pick (float in [0,1)), tiers (comma list, in order of preference),
#       then optionally the rate counter key, limit and window ms
_CLAIM = (
    RATE_COUNT_LUA
    + _RATE_LIMITED
    + _REAP
    + """
local limited = over_rate(10)
if limited then
  return {false, 'rate_limited', tostring(limited), {}, '0'}
end
local p, now, lease_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local aid, ann = ARGV[4], ARGV[5]
local want_gold, gold_only, pick = ARGV[6] == '1', ARGV[7] == '1', tonumber(ARGV[8])
local reaped = reap(p, now, 50)
local seen = p .. 'seen:' .. ann

-- The fifth element says whether the claim wanted gold and found none left unseen.
local exhausted = '0'
local function lease(item, tier, prio)
  redis.call('ZADD', p .. 'leases', now + lease_ms, aid)
  redis.call('HSET', p .. 'lease', aid, item .. '|' .. ann .. '|' .. tier .. '|' .. prio)
  redis.call('SADD', seen, item)
  return {item, tier, tostring(prio), reaped, exhausted}
end

-- Gold and routed claims do the same work (the unseen-gold lookup and the queue scan both
-- run, whichever is served), so that how long a claim takes does not tell gold from routed.
local gold_item = false
local unseen = redis.call('SDIFF', p .. 'gold', seen)
local gold_left = #unseen
table.sort(unseen)
if want_gold or gold_only then
  if gold_left > 0 then
    gold_item = unseen[math.floor(pick * gold_left) + 1]
  else
    exhausted = '1'
  end
end

local function best_routed()
  for tier in string.gmatch(ARGV[9], '[^,]+') do
    local q = p .. 'q:' .. tier
    local start = 0
    while true do
      local batch = redis.call('ZREVRANGE', q, start, start + 99, 'WITHSCORES')
      if #batch == 0 then break end
      for i = 1, #batch, 2 do
        local item = batch[i]
        if redis.call('SISMEMBER', seen, item) == 0 then
          if tonumber(redis.call('HGET', fk(p, item), item) or '0') > 0 then
            return item, tier, batch[i + 1]
          end
        end
      end
      start = start + 100
    end
  end
  return false, '', '0'
end

local item, tier, prio = false, '', '0'
if not gold_only then
  item, tier, prio = best_routed()
end
if gold_item then
  if item then
    -- The routed claim's writes, changing nothing (a gold lease takes no slot; a found item
    -- was opened, so both its counts exist): serving gold must not be quicker than serving
    -- the routed item found beside it.
    if redis.call('HINCRBY', fk(p, item), item, 0) - 1 <= 0 then
      redis.call('ZADD', p .. 'q:' .. tier, 'XX', prio, item)
    end
    redis.call('HINCRBY', lk(p, item), item, 0)
  end
  return lease(gold_item, 'gold', '0')
end
if gold_only then
  return {false, 'gold_exhausted', '0', reaped, exhausted}
end
if item then
  if redis.call('HINCRBY', fk(p, item), item, -1) <= 0 then
    redis.call('ZREM', p .. 'q:' .. tier, item)
  end
  redis.call('HINCRBY', lk(p, item), item, 1)
  return lease(item, tier, prio)
end
return {false, '', '0', reaped, exhausted}
"""
)

# ARGV: prefix, assignment_id, item_id, tier (the assignment's: crowd, expert or gold), then
#       optionally the rate counter key, limit and window ms
# Returns {code, 0}, code 1: the lease was live (or expired but not yet reaped): the label counts.
#         2: the lease had been returned but its slot is still free: retaken, the label counts.
#            A gold lease holds no slot, so nobody can have taken it: always retaken.
#         0: the slot went to someone else, the item moved to another tier or closed: the label
#            does not count. (The item is on its tier's queue exactly while it has free slots
#            there, so a lapsed crowd lease cannot take the slot of an item gone to an expert.)
#         {-1, ms until the window ends}: over the rate limit, nothing done.
_CONSUME = (
    RATE_COUNT_LUA
    + _RATE_LIMITED
    + _BUCKETS
    + """
local limited = over_rate(5)
if limited then return {-1, limited} end
local function consume()
  local p, aid, item, tier = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
  if redis.call('ZSCORE', p .. 'leases', aid) then
    redis.call('ZREM', p .. 'leases', aid)
    local info = redis.call('HGET', p .. 'lease', aid)
    redis.call('HDEL', p .. 'lease', aid)
    -- Gold and routed labels make the same calls (their timing must not tell them apart): a
    -- gold lease holds no slot, so where a routed one decrements its item's count, it reads.
    local counted = redis.call('HEXISTS', lk(p, item), item) == 1
    if info and counted and not string.find(info, '|gold|', 1, true) then
      redis.call('HINCRBY', lk(p, item), item, -1)
    else
      redis.call('HGET', lk(p, item), item)
    end
    return 1
  end
  if tier == 'gold' then return 2 end
  local q = p .. 'q:' .. tier
  if not redis.call('ZSCORE', q, item) then return 0 end
  local free = tonumber(redis.call('HGET', fk(p, item), item) or '0')
  if free > 0 then
    if redis.call('HINCRBY', fk(p, item), item, -1) <= 0 then
      redis.call('ZREM', q, item)
    end
    return 2
  end
  return 0
end
return {consume(), 0}
"""
)

# ARGV: prefix, assignment_id. Returns 1 if a live lease was given back.
_RELEASE = (
    _BUCKETS
    + """
local p, aid = ARGV[1], ARGV[2]
local info = redis.call('HGET', p .. 'lease', aid)
if not redis.call('ZSCORE', p .. 'leases', aid) or not info then return 0 end
redis.call('ZREM', p .. 'leases', aid)
redis.call('HDEL', p .. 'lease', aid)
local item, ann, tier, prio = string.match(info, '([^|]*)|([^|]*)|([^|]*)|([^|]*)')
if tier ~= 'gold' then
  if redis.call('HEXISTS', lk(p, item), item) == 1 then
    redis.call('HINCRBY', lk(p, item), item, -1)
  end
  if redis.call('HEXISTS', fk(p, item), item) == 1 then
    redis.call('HINCRBY', fk(p, item), item, 1)
    redis.call('ZADD', p .. 'q:' .. tier, prio, item)
  end
end
return 1
"""
)

# ARGV: prefix, now_ms, limit
_REAP_SCRIPT = _REAP + "\nreturn reap(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))\n"

# Opens (or re-targets) an item: `wanted` labels still missing from its tier, minus live leases.
# ARGV: prefix, item, tier, priority, wanted
_OPEN = (
    _BUCKETS
    + """
local p, item, tier, prio, wanted = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if redis.call('SISMEMBER', p .. 'closed', item) == 1 then return -1 end
local leased = tonumber(redis.call('HGET', lk(p, item), item) or '0')
local free = wanted - leased
if free < 0 then free = 0 end
redis.call('HSET', fk(p, item), item, free)
if redis.call('HEXISTS', lk(p, item), item) == 0 then
  redis.call('HSET', lk(p, item), item, 0)
end
for _, t in ipairs({'crowd', 'expert'}) do
  if t ~= tier then redis.call('ZREM', p .. 'q:' .. t, item) end
end
if free > 0 then
  redis.call('ZADD', p .. 'q:' .. tier, prio, item)
else
  redis.call('ZREM', p .. 'q:' .. tier, item)
end
return free
"""
)

# `_OPEN` for many items in one call. ARGV: prefix, then item, tier, priority, wanted per item.
# One call per chunk instead of one per item: the in-process fakeredis spends most of a call
# setting up its Lua runtime, and a real Redis saves the per-call overhead.
_OPEN_MANY = (
    _BUCKETS
    + """
local p = ARGV[1]
-- As _OPEN for each (item, tier, priority, wanted), with the set and queue calls made once
-- for the whole chunk: about two calls per item instead of six or seven. An item named twice
-- takes its last entry, as if the entries ran in order.
local last = {}
local items = {}
for j = 2, #ARGV, 4 do
  if last[ARGV[j]] == nil then items[#items + 1] = ARGV[j] end
  last[ARGV[j]] = j
end
if #items == 0 then return 1 end
-- A settled item is never opened again (as in _OPEN).
local closed = {}
local flags = redis.call('SMISMEMBER', p .. 'closed', unpack(items))
for i, item in ipairs(items) do closed[item] = flags[i] == 1 end
local adds, rems = {}, {}
for j = 2, #ARGV, 4 do
  local item, tier, prio, wanted = ARGV[j], ARGV[j + 1], ARGV[j + 2], tonumber(ARGV[j + 3])
  if last[item] == j and not closed[item] then
    local leased = 0
    if redis.call('HSETNX', lk(p, item), item, 0) == 0 then
      leased = tonumber(redis.call('HGET', lk(p, item), item) or '0')
    end
    local free = wanted - leased
    if free < 0 then free = 0 end
    redis.call('HSET', fk(p, item), item, free)
    local tiers = {'crowd', 'expert'}
    if tier ~= 'crowd' and tier ~= 'expert' then tiers[3] = tier end
    for _, t in ipairs(tiers) do
      if t == tier and free > 0 then
        adds[t] = adds[t] or {}
        table.insert(adds[t], prio)
        table.insert(adds[t], item)
      else
        rems[t] = rems[t] or {}
        table.insert(rems[t], item)
      end
    end
  end
end
for t, out in pairs(rems) do
  if #out > 0 then redis.call('ZREM', p .. 'q:' .. t, unpack(out)) end
end
for t, a in pairs(adds) do
  redis.call('ZADD', p .. 'q:' .. t, unpack(a))
end
return 1
"""
)
_OPEN_CHUNK = 500

# ARGV: prefix, item, tier, priority. A counted label was not stored after all: free its slot.
_RETURN = (
    _BUCKETS
    + """
local p, item, tier, prio = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('HEXISTS', fk(p, item), item) == 1 then
  redis.call('HINCRBY', fk(p, item), item, 1)
  redis.call('ZADD', p .. 'q:' .. tier, prio, item)
  return 1
end
return 0
"""
)

# ARGV: prefix, item. The item is settled: no more claims.
_CLOSE = (
    _BUCKETS
    + """
local p, item = ARGV[1], ARGV[2]
redis.call('SADD', p .. 'closed', item)
redis.call('ZREM', p .. 'q:crowd', item)
redis.call('ZREM', p .. 'q:expert', item)
redis.call('HDEL', fk(p, item), item)
redis.call('HDEL', lk(p, item), item)
return 1
"""
)

# `_CLOSE` for many items in one call. ARGV: prefix, then the items.
_CLOSE_MANY = (
    _BUCKETS
    + """
local p = ARGV[1]
if #ARGV < 2 then return 0 end
local items = {unpack(ARGV, 2)}
redis.call('SADD', p .. 'closed', unpack(items))
redis.call('ZREM', p .. 'q:crowd', unpack(items))
redis.call('ZREM', p .. 'q:expert', unpack(items))
for _, item in ipairs(items) do
  redis.call('HDEL', fk(p, item), item)
  redis.call('HDEL', lk(p, item), item)
end
return #items
"""
)
_CLOSE_CHUNK = 500

# ARGV: prefix, then items. Each item's live leases (0 where none): one command, where a
# pipeline of HGETs costs the client a command to pack and a reply to parse per item.
_LEASED = (
    _BUCKETS
    + """
local p = ARGV[1]
local out = {}
for j = 2, #ARGV do
  out[j - 1] = tonumber(redis.call('HGET', lk(p, ARGV[j]), ARGV[j]) or '0')
end
return out
"""
)


@dataclass(frozen=True, slots=True)
class ReapedLease:
    assignment_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class Claim:
    """What the claim script handed out (item None when nothing was available)."""

    item_id: str | None
    tier: str
    """The queue it came from: crowd, expert or gold."""
    priority: float
    gold_exhausted: bool
    """The claim wanted gold and the annotator had seen all of it (routed work may follow)."""
    reaped: list[ReapedLease]
    retry_after_ms: int | None = None
    """Set when the request was over its rate limit: nothing was claimed."""


@dataclass(frozen=True, slots=True)
class LeaseOutcome:
    counted: bool
    retaken: bool
    """The lease had lapsed and been returned, but its slot was still free."""
    retry_after_ms: int | None = None
    """Set when the request was over its rate limit: the lease was left as it was."""


_ID_CHARS = string.ascii_letters + string.digits + "-_"
"""The characters of the ids `new_id` makes: the first two name an item's slot bucket."""


def _bucket(key_prefix: str, item_id: str) -> str:
    """The free/leased hash holding `item_id` (the scripts' fk/lk)."""
    return key_prefix + item_id[:2]


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _reaped(flat: Sequence[bytes | str]) -> list[ReapedLease]:
    return [ReapedLease(_s(flat[i]), _s(flat[i + 1])) for i in range(0, len(flat), 2)]


class AssignmentStore:
    """The Redis side of claims, leases and labels for every project."""

    __slots__ = (
        "_claim",
        "_close",
        "_close_many",
        "_consume",
        "_leased",
        "_open",
        "_open_many",
        "_reap",
        "_release",
        "_return",
        "redis",
    )

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._claim = redis.register_script(_CLAIM)
        self._consume = redis.register_script(_CONSUME)
        self._release = redis.register_script(_RELEASE)
        self._reap = redis.register_script(_REAP_SCRIPT)
        self._open = redis.register_script(_OPEN)
        self._open_many = redis.register_script(_OPEN_MANY)
        self._close = redis.register_script(_CLOSE)
        self._close_many = redis.register_script(_CLOSE_MANY)
        self._leased = redis.register_script(_LEASED)
        self._return = redis.register_script(_RETURN)

    @staticmethod
    def prefix(project_id: str) -> str:
        return f"lr:{{{project_id}}}:"

    def claim(
        self,
        project_id: str,
        *,
        assignment_id: str,
        annotator_id: str,
        tiers: Sequence[str],
        now_ms: int,
        lease_ms: int,
        want_gold: bool,
        gold_only: bool,
        gold_pick: float,
        rate: RateTicket | None = None,
    ) -> Claim:
        """Lease the best item for the annotator. With `rate`, the request is counted first
        and, over its limit, nothing else is done (`Claim.retry_after_ms`)."""
        raw = self._claim(
            args=[
                self.prefix(project_id),
                now_ms,
                lease_ms,
                assignment_id,
                annotator_id,
                int(want_gold),
                int(gold_only),
                repr(gold_pick),
                ",".join(tiers),
                *(rate.args() if rate is not None else ()),
            ]
        )
        item, tier, prio, reaped, exhausted = raw
        if not item and _s(tier) == "rate_limited":
            return Claim(None, "", 0.0, False, [], retry_after_ms=int(_s(prio)))
        gold_exhausted = _s(exhausted) == "1"
        if not item:
            return Claim(None, "", 0.0, gold_exhausted, _reaped(reaped))
        return Claim(_s(item), _s(tier), float(_s(prio)), gold_exhausted, _reaped(reaped))

    def consume(
        self,
        project_id: str,
        assignment_id: str,
        item_id: str,
        tier: str,
        rate: RateTicket | None = None,
    ) -> LeaseOutcome:
        """Take the assignment's slot for its label; `tier` is the assignment's tier. With
        `rate`, the request is counted first and, over its limit, nothing else is done."""
        args: list[str | int] = [self.prefix(project_id), assignment_id, item_id, tier]
        code, ttl_ms = self._consume(args=[*args, *(rate.args() if rate is not None else ())])
        if int(code) < 0:
            return LeaseOutcome(counted=False, retaken=False, retry_after_ms=int(ttl_ms))
        return LeaseOutcome(counted=int(code) > 0, retaken=int(code) == 2)

    def release(self, project_id: str, assignment_id: str) -> bool:
        return bool(self._release(args=[self.prefix(project_id), assignment_id]))

    def reap(self, project_id: str, now_ms: int, limit: int = 1000) -> list[ReapedLease]:
        return _reaped(self._reap(args=[self.prefix(project_id), now_ms, limit]))

    def open_item(
        self, project_id: str, item_id: str, *, tier: str, priority: float, wanted: int
    ) -> int:
        """Make `wanted` more labels claimable (minus live leases); returns the free slots
        (-1 for a settled item, which is never opened again)."""
        args: list[str | int] = [
            self.prefix(project_id),
            item_id,
            tier,
            repr(float(priority)),
            wanted,
        ]
        return int(self._open(args=args))

    def return_slot(self, project_id: str, item_id: str, *, tier: str, priority: float) -> None:
        self._return(args=[self.prefix(project_id), item_id, tier, repr(float(priority))])

    def close_item(self, project_id: str, item_id: str) -> None:
        self._close(args=[self.prefix(project_id), item_id])

    def close_items(self, project_id: str, item_ids: Iterable[str]) -> None:
        """`close_item` for many items at once, in one round trip (none without items)."""
        ids = list(item_ids)
        p = self.prefix(project_id)
        self._run_chunks(
            self._close_many,
            [[p, *ids[i : i + _CLOSE_CHUNK]] for i in range(0, len(ids), _CLOSE_CHUNK)],
        )

    def _run_chunks(self, script: Script, chunks: list[list[str | int]]) -> None:
        """Run `script` once per argument list: one call runs alone (one round trip), more
        run in one pipeline (which checks that its scripts are loaded first: a second round
        trip)."""
        if len(chunks) == 1:
            script(args=chunks[0])
        elif chunks:
            pipe = self.redis.pipeline(transaction=False)
            for args in chunks:
                script(args=args, client=pipe)
            pipe.execute()

    def add_gold(self, project_id: str, item_ids: Iterable[str]) -> None:
        ids = list(item_ids)
        if ids:
            self.redis.sadd(self.prefix(project_id) + "gold", *ids)

    def remove_gold(self, project_id: str, item_ids: Iterable[str]) -> None:
        ids = list(item_ids)
        if ids:
            self.redis.srem(self.prefix(project_id) + "gold", *ids)

    def mark_seen(self, project_id: str, annotator_id: str, item_ids: Iterable[str]) -> None:
        ids = list(item_ids)
        if ids:
            self.redis.sadd(self.prefix(project_id) + f"seen:{annotator_id}", *ids)

    def replace_state(
        self,
        project_id: str,
        *,
        gold: Sequence[str],
        leases: Sequence[tuple[str, str, str, str, float, int]],
        items: Sequence[tuple[str, str, float, int, int]],
        closed: Sequence[str],
    ) -> None:
        """Replace the project's queues, slots, leases and gold pool in one MULTI.

        `leases` are (assignment, item, annotator, tier, priority, expiry ms); `items` are the
        open items as (item, tier, priority, labels still wanted, live leases); `closed` the
        settled ones. Seen sets are
        only added to (`mark_seen`): an annotator never gets again what they once had.
        """
        p = self.prefix(project_id)
        pipe = self.redis.pipeline(transaction=True)
        # Every slot bucket goes, whichever items it held: those the scan finds and every
        # bucket an item id can name (ids are URL-safe base64), so the MULTI leaves none behind.
        buckets = {
            _s(key)
            for pattern in (p + "free:*", p + "leased:*")
            for key in self.redis.scan_iter(match=pattern, count=1000)
        }
        buckets.update(
            p + kind + a + b for kind in ("free:", "leased:") for a in _ID_CHARS for b in _ID_CHARS
        )
        pipe.delete(*(p + k for k in ("q:crowd", "q:expert", "leases", "lease")))
        pipe.delete(*sorted(buckets))
        pipe.delete(p + "gold", p + "closed")
        if gold:
            pipe.sadd(p + "gold", *gold)
        for start in range(0, len(closed), 10_000):
            pipe.sadd(p + "closed", *closed[start : start + 10_000])
        if leases:
            pipe.zadd(p + "leases", {aid: expires for aid, _, _, _, _, expires in leases})
            pipe.hset(
                p + "lease",
                mapping={
                    aid: f"{item}|{ann}|{tier}|{prio!r}" for aid, item, ann, tier, prio, _ in leases
                },
            )
        queues: dict[str, dict[str, float]] = {"crowd": {}, "expert": {}}
        free: dict[str, int] = {}
        leased: dict[str, int] = {}
        for item_id, tier, priority, wanted, live in items:
            free[item_id] = max(0, wanted - live)
            leased[item_id] = live
            if free[item_id] > 0:
                queues.setdefault(tier, {})[item_id] = float(priority)
        by_bucket: dict[str, dict[str, int]] = defaultdict(dict)
        for item_id, n in free.items():
            by_bucket[_bucket(p + "free:", item_id)][item_id] = n
            by_bucket[_bucket(p + "leased:", item_id)][item_id] = leased[item_id]
        for key, mapping in by_bucket.items():
            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
        for tier, members in queues.items():
            if members:
                pipe.zadd(p + "q:" + tier, members)
        pipe.execute()

    def live_leases(self, project_id: str, item_ids: Sequence[str]) -> list[int]:
        if not item_ids:
            return []
        return [int(v) for v in self._leased(args=[self.prefix(project_id), *item_ids])]

    def slots(self, project_id: str, item_id: str) -> tuple[int | None, int | None]:
        """(free, leased) counts of an item as Redis holds them; None where absent."""
        p = self.prefix(project_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(_bucket(p + "free:", item_id), item_id)
        pipe.hget(_bucket(p + "leased:", item_id), item_id)
        free, leased = pipe.execute()
        return (
            int(free) if free is not None else None,
            int(leased) if leased is not None else None,
        )

    def open_items(self, project_id: str, entries: Iterable[tuple[str, str, float, int]]) -> None:
        """`open_item` for many (item, tier, priority, wanted) at once, in one round trip."""
        p = self.prefix(project_id)
        chunks: list[list[str | int]] = []
        args: list[str | int] = [p]
        for item_id, tier, priority, wanted in entries:
            args += [item_id, tier, repr(float(priority)), wanted]
            if len(args) > 4 * _OPEN_CHUNK:
                chunks.append(args)
                args = [p]
        if len(args) > 1:
            chunks.append(args)
        self._run_chunks(self._open_many, chunks)

    def queue_key(self, project_id: str, tier: str) -> str:
        return self.prefix(project_id) + "q:" + tier

    def depth(self, project_id: str, tier: str) -> int:
        """Items with free slots on one tier's queue."""
        return int(self.redis.zcard(self.queue_key(project_id, tier)))

    def top(self, project_id: str, tier: str, n: int = 10) -> list[tuple[str, float]]:
        """The queue's n highest-priority items, with their priorities."""
        raw: list[tuple[bytes, float]] = self.redis.zrevrange(  # type: ignore[assignment]
            self.queue_key(project_id, tier), 0, n - 1, withscores=True
        )
        return [(member.decode(), float(score)) for member, score in raw]

    def depths(self, project_id: str) -> dict[str, int]:
        """Items with free slots, per tier queue."""
        pipe = self.redis.pipeline(transaction=False)
        for tier in ("crowd", "expert"):
            pipe.zcard(self.queue_key(project_id, tier))
        crowd, expert = pipe.execute()
        return {"crowd": int(crowd), "expert": int(expert)}

    def lease_expiry_ms(self, project_id: str, assignment_id: str) -> int | None:
        score = self.redis.zscore(self.prefix(project_id) + "leases", assignment_id)
        return int(score) if score is not None else None
