"""Reservations of money in Redis: what every gateway process holds for its calls in flight and
for the charges billing has not recorded yet, beside mirrors of the balances and budgets.

Amounts are whole nano-dollars (1e-9 USD, the ledger's unit). Per account, under one hash tag
(so a script's keys share a Redis Cluster slot):

- `tb:m:{a<id>}`          hash: `held` (the sum of the holds), `hk:<key id>` (per key)
- `tb:m:{a<id>}:holds`    hash: hold id (the usage event's id) -> "<nanos>:<key id>"
- `tb:m:{a<id>}:exp`      sorted set: hold id -> when it is swept (ms, Redis's clock)
- `tb:m:{a<id>}:bal`      hash: `amt` (the balance), `lim` (credit limit), `ver` (its version)
- `tb:m:{a<id>}:sp:<key id>:<window>`  hash: `amt` (the key's spend in a budget window), `ver`

A hold is first a call's worst case (RESERVE), then its actual charge (SETTLE, which the
gateway runs just before it appends the usage event to the stream), and goes when billing has
recorded that charge in the database and mirrored the new balance (CLEAR, after the commit).
So at every moment `available = balance + credit - held` counts each charge exactly once,
or twice for an instant (after the commit, before the clear): never zero times. Mirrors take a
value only when its version is newer than theirs (Balance.version orders them), expire when
idle, and are filled again from the database on the next call. A hold whose process died is
swept when its deadline passes; live calls push theirs on (RENEW).

Lua numbers are doubles: amounts compare exactly up to 2**53 nano-dollars ($9,007,199) per
account, and larger balances are mirrored as that much (a conservative cap). Amounts written
into Redis are passed as strings and added with HINCRBY (64-bit integers), never formatted by
Lua.
"""

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

from redis import Redis

logger = logging.getLogger(__name__)

NANOS = Decimal(1_000_000_000)
MIRROR_LIMIT = 2**53
MIRROR_TTL_SECONDS = 300


def to_nanos(amount: Decimal) -> int:
    """Whole nano-dollars, rounded up (a reservation must cover its amount)."""
    return int((amount * NANOS).to_integral_value(rounding=ROUND_CEILING))


def from_nanos(nanos: int) -> Decimal:
    return Decimal(nanos) / NANOS


def mirrored(nanos: int) -> int:
    return max(-MIRROR_LIMIT, min(MIRROR_LIMIT, nanos))


@dataclass(frozen=True, slots=True)
class AccountKeys:
    main: str
    holds: str
    expiry: str
    balance: str

    def spend(self, key_id: int, window: str) -> str:
        return f"{self.main}:sp:{key_id}:{window}"

    @property
    def all(self) -> list[str]:
        return [self.main, self.holds, self.expiry, self.balance]


def account_keys(account_id: int) -> AccountKeys:
    main = f"tb:m:{{a{account_id}}}"
    return AccountKeys(main, f"{main}:holds", f"{main}:exp", f"{main}:bal")


# Shared by the scripts: drop one hold (its amount off the sums). KEYS[1] main, [2] holds,
# [3] expiry.
_DROP = """
local function drop(id)
  local v = redis.call('HGET', KEYS[2], id)
  if v == 'L' then
    local n = redis.call('HGET', KEYS[1], 'ls:' .. id)
    if n and tonumber(n) > 0 then redis.call('HINCRBY', KEYS[1], 'held', '-' .. n) end
    redis.call('HDEL', KEYS[1], 'ls:' .. id)
    redis.call('HDEL', KEYS[2], id)
  elseif v then
    local sep = string.find(v, ':', 1, true)
    local n, k = string.sub(v, 1, sep - 1), string.sub(v, sep + 1)
    if n ~= '0' then
      redis.call('HINCRBY', KEYS[1], 'held', '-' .. n)
      redis.call('HINCRBY', KEYS[1], 'hk:' .. k, '-' .. n)
    end
    redis.call('HDEL', KEYS[2], id)
  end
  redis.call('ZREM', KEYS[3], id)
  return v
end
local function mirror(key, amt, ver, lim)
  if amt == '' then return end
  local cur = tonumber(redis.call('HGET', key, 'ver') or '-1')
  if tonumber(ver) > cur then
    redis.call('HSET', key, 'amt', amt, 'ver', ver)
    if lim ~= '' then redis.call('HSET', key, 'lim', lim) end
  end
  redis.call('EXPIRE', key, tonumber(ARGV[#ARGV]))
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
"""

# KEYS: main, holds, expiry, balance mirror, spend mirror.
# ARGV: hold id, worst (nanos), key id, budget (nanos; '' when none), hold ms, postpaid ('1'
# or '0'), then seeds ('' when none): balance, its credit limit, its version, spend, its
# version; last, the mirrors' TTL seconds.
# Returns {1, available after, budget left after} when held; {0, available, budget left} when
# short (budget left -1 when none); {-1} when the balance mirror is missing, {-2} the spend's.
RESERVE = (
    _DROP
    + """
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 64)) do
  drop(id)
end
mirror(KEYS[4], ARGV[7], ARGV[9], ARGV[8])
mirror(KEYS[5], ARGV[10], ARGV[11], '')
local bal = redis.call('HMGET', KEYS[4], 'amt', 'lim')
if not bal[1] then return {-1} end
local worst = tonumber(ARGV[2])
local available = tonumber(bal[1]) - tonumber(redis.call('HGET', KEYS[1], 'held') or '0')
if ARGV[6] == '1' then available = available + tonumber(bal[2] or '0') end
local left = -1
if ARGV[4] ~= '' then
  local spent = redis.call('HGET', KEYS[5], 'amt')
  if not spent then return {-2} end
  local held = tonumber(redis.call('HGET', KEYS[1], 'hk:' .. ARGV[3]) or '0')
  left = math.max(0, tonumber(ARGV[4]) - tonumber(spent) - held)
  if worst > left then return {0, math.max(0, available), left} end
end
if worst > available then return {0, math.max(0, available), left} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ':' .. ARGV[3])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), ARGV[1])
redis.call('HINCRBY', KEYS[1], 'held', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'hk:' .. ARGV[3], ARGV[2])
if left >= 0 then left = left - worst end
return {1, available - worst, left}
"""
)

# KEYS: main, holds, expiry. ARGV: hold id, actual charge (nanos), ms it may wait for billing.
# A hold already swept stays gone (returns 0).
SETTLE = (
    _DROP
    + """
local v = drop(ARGV[1])
if not v then return 0 end
if ARGV[2] == '0' then return 1 end
local k = string.sub(v, string.find(v, ':', 1, true) + 1)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ':' .. k)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HINCRBY', KEYS[1], 'held', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'hk:' .. k, ARGV[2])
return 1
"""
)

# A lease: one gateway process's hold for many calls of one account (proxy/gateway/leases.py),
# marked 'L' in the holds hash, its amount in the main hash's `ls:<lease id>` (and in `held`).
# KEYS: main, holds, expiry, balance mirror. ARGV: lease id, need, want (nanos), hold ms,
# postpaid, then seeds ('' when none): balance, credit limit, version; last the mirrors' TTL.
# The lease grows by `want` while that is at most an eighth of what is available (so no
# process takes most of a balance), else by `need` while that fits. Returns {2 or 1 (grew by
# want or need), available after, the lease's amount after}, {0, available} when even `need`
# does not fit, {-1} when the balance mirror is missing.
LEASE = (
    _DROP
    + """
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 64)) do
  drop(id)
end
mirror(KEYS[4], ARGV[6], ARGV[8], ARGV[7])
local bal = redis.call('HMGET', KEYS[4], 'amt', 'lim')
if not bal[1] then return {-1} end
local available = tonumber(bal[1]) - tonumber(redis.call('HGET', KEYS[1], 'held') or '0')
if ARGV[5] == '1' then available = available + tonumber(bal[2] or '0') end
local grow, code
if tonumber(ARGV[3]) * 8 <= available then grow, code = ARGV[3], 2
elseif tonumber(ARGV[2]) <= available then grow, code = ARGV[2], 1
else return {0, math.max(0, available)} end
redis.call('HSET', KEYS[2], ARGV[1], 'L')
local amount = redis.call('HINCRBY', KEYS[1], 'ls:' .. ARGV[1], grow)
redis.call('HINCRBY', KEYS[1], 'held', grow)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
return {code, available - tonumber(grow), amount}
"""
)

# KEYS: main, holds, expiry. ARGV: lease id, ms the charges may wait for billing, then
# (usage event id, charge in nanos > 0) pairs. Moves each charge out of the lease into a hold
# of its own (key 'L'), which billing's CLEAR drops once it has recorded the charge; the sum
# held is unchanged. A charge moved before (a shipment retried) is not moved again. Returns 0
# when the lease is gone (swept).
LEASE_SETTLE = (
    _DROP
    + """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= 'L' then return 0 end
for i = 3, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1] .. ':L') == 1 then
    redis.call('HINCRBY', KEYS[1], 'ls:' .. ARGV[1], '-' .. ARGV[i + 1])
    redis.call('HINCRBY', KEYS[1], 'hk:L', ARGV[i + 1])
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[i])
  end
end
return 1
"""
)

# KEYS: main, holds, expiry. ARGV: lease id, nanos to give back (> 0). A lease given back
# whole goes. Returns the lease's amount after (-1: it is gone).
LEASE_RETURN = (
    _DROP
    + """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= 'L' then return -1 end
local amount = tonumber(redis.call('HGET', KEYS[1], 'ls:' .. ARGV[1]) or '0')
if tonumber(ARGV[2]) >= amount then
  drop(ARGV[1])
  return -1
end
redis.call('HINCRBY', KEYS[1], 'held', '-' .. ARGV[2])
return redis.call('HINCRBY', KEYS[1], 'ls:' .. ARGV[1], '-' .. ARGV[2])
"""
)

# KEYS: main, holds, expiry. ARGV: ms to the new deadline, then hold ids. Only live holds.
RENEW = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[3], 'XX', now + tonumber(ARGV[1]), ARGV[i])
end
return 1
"""

# KEYS: main, holds, expiry, balance mirror. ARGV: balance, credit limit, version ('' for
# none), then the ids of charges now recorded, last the mirrors' TTL seconds.
CLEAR = (
    _DROP
    + """
for i = 4, #ARGV - 1 do drop(ARGV[i]) end
mirror(KEYS[4], ARGV[1], ARGV[3], ARGV[2])
return 1
"""
)

# KEYS: a mirror. ARGV: amount, version, TTL seconds.
MIRROR = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'ver') or '-1')
if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[1], 'amt', ARGV[1], 'ver', ARGV[2]) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


@dataclass(frozen=True, slots=True)
class BalanceState:
    """An account's balance as one transaction left it; `version` orders such states."""

    amount: Decimal
    credit_limit: Decimal
    version: int


@dataclass(frozen=True, slots=True)
class RecordedBatch:
    """What recording a batch changed, for the gateways' mirrors of balances and budgets."""

    recorded: int  # events new to the database
    # Every event of the batch that is now in the database (new or seen before), by account.
    event_ids: dict[int, list[str]]
    balances: dict[int, BalanceState]  # accounts whose balance moved
    spends: dict[tuple[int, str], Decimal]  # (key id, window name) -> spend, for keys charged
    accounts_of_keys: dict[int, int]  # key id -> account id, for the keys in `spends`


def recorded_calls(
    *,
    event_ids: Mapping[int, Iterable[str]],
    balances: Mapping[int, BalanceState],
    spends: Mapping[tuple[int, int, str], tuple[Decimal, int]],
) -> list[tuple[str, list[str], list[Any]]]:
    """(script, keys, args) runs that bring Redis up to committed charges: clear their holds,
    mirror the new balances and (account, key, window) -> (spend, version)."""
    calls: list[tuple[str, list[str], list[Any]]] = []
    for account_id in sorted(set(event_ids) | set(balances)):
        keys = account_keys(account_id)
        state = balances.get(account_id)
        head = ["", "", ""] if state is None else _balance_args(state)
        ids = list(event_ids.get(account_id, ()))
        calls.append((CLEAR, keys.all, [*head, *ids, MIRROR_TTL_SECONDS]))
    for (account_id, key_id, window), (amount, version) in spends.items():
        key = account_keys(account_id).spend(key_id, window)
        calls.append((MIRROR, [key], [mirrored(to_nanos(amount)), version, MIRROR_TTL_SECONDS]))
    return calls


def spends_by_account(batch: RecordedBatch) -> dict[tuple[int, int, str], tuple[Decimal, int]]:
    """A batch's spends as `recorded_calls` takes them, each with its account's new version."""
    return {
        (batch.accounts_of_keys[key_id], key_id, window): (
            amount,
            batch.balances[batch.accounts_of_keys[key_id]].version,
        )
        for (key_id, window), amount in batch.spends.items()
    }


def push_recorded(
    client: Redis,
    *,
    event_ids: Mapping[int, Iterable[str]],
    balances: Mapping[int, BalanceState],
    spends: Mapping[tuple[int, int, str], tuple[Decimal, int]],
) -> None:
    """After billing committed a batch: `recorded_calls`, in one pipeline."""
    scripts: dict[str, Any] = {CLEAR: client.register_script(CLEAR)}
    scripts[MIRROR] = client.register_script(MIRROR)
    with client.pipeline(transaction=False) as pipe:
        calls = recorded_calls(event_ids=event_ids, balances=balances, spends=spends)
        for script, keys, args in calls:
            scripts[script](keys=keys, args=args, client=pipe)
        pipe.execute()


def push_balance(client: Redis, account_id: int, state: BalanceState) -> None:
    """A balance changed outside the usage stream (a top-up, an adjustment)."""
    clear: Any = client.register_script(CLEAR)
    keys = account_keys(account_id)
    clear(keys=keys.all, args=[*_balance_args(state), MIRROR_TTL_SECONDS])


def _balance_args(state: BalanceState) -> list[Any]:
    # A balance is mirrored rounded down and a credit limit too: never more than there is.
    amount = mirrored(int((state.amount * NANOS).to_integral_value(rounding="ROUND_FLOOR")))
    limit = mirrored(int((state.credit_limit * NANOS).to_integral_value(rounding="ROUND_FLOOR")))
    return [amount, limit, state.version]
