"""The Lua scripts of the status store, written from :mod:`worker.state.keys`.

The keys come in KEYS; the tables that tell the states apart are generated from
:class:`~worker.state.keys.State`, so no script repeats a key fragment or a rank.
"""

from __future__ import annotations

from string import Template

from worker.state.keys import BY_EXPORT_SEPARATOR, FINAL_RANK, State


def _lua(text: str) -> str:
    """A Lua string literal of ``text``."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# The keys come in KEYS (the state sets in the order of `State`); the tables that
# tell the states apart are written here from `State`, so the script repeats nothing.
TRANSITION = Template("""
local item_key, inflight, polls, kinds, byexport = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local new, item, force, kind, export = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local member, now, poll = ARGV[6], ARGV[7], ARGV[8]
local rank = {$ranks}
local set_of = {$sets}
if poll == 'drop' then redis.call('ZREM', polls, member) end
local old = redis.call('HGET', item_key, 'state')
if old and force ~= '1' then
  if rank[old] == $final or rank[new] < rank[old] then
    return {0, old}
  end
end
if poll ~= '' and poll ~= 'drop' then redis.call('ZADD', polls, poll, member) end
if old ~= new then
  if old then redis.call('SREM', set_of[old], item) end
  redis.call('SADD', set_of[new], item)
  if old then redis.call('HINCRBY', byexport, export .. $separator .. old, -1) end
  redis.call('HINCRBY', byexport, export .. $separator .. new, 1)
end
if old == $failed then
  local old_kind = redis.call('HGET', item_key, 'kind')
  if old_kind then redis.call('HINCRBY', kinds, old_kind, -1) end
  redis.call('HDEL', item_key, 'kind')
end
if new == $failed then
  redis.call('HINCRBY', kinds, kind, 1)
  redis.call('HSET', item_key, 'kind', kind)
end
if new == $sending then redis.call('HINCRBY', item_key, 'attempts', 1) end
local fields = {'state', new}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', item_key, unpack(fields))
if rank[new] == $final then
  redis.call('ZREM', inflight, member)
else
  redis.call('ZADD', inflight, now, member)
end
return {1, old or ''}
""").substitute(
    ranks=", ".join(f"[{_lua(state.value)}]={state.rank}" for state in State),
    sets=", ".join(f"[{_lua(state.value)}]=KEYS[{6 + n}]" for n, state in enumerate(State)),
    final=FINAL_RANK,
    separator=_lua(BY_EXPORT_SEPARATOR),
    failed=_lua(State.FAILED.value),
    sending=_lua(State.SENDING.value),
)

CLAIM_POLLS = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[3], member)
end
return due
"""


__all__ = ["CLAIM_POLLS", "TRANSITION"]
