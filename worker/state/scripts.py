"""The Lua scripts of the status store, written from :mod:`worker.state.keys`.

The keys come in KEYS; the tables that tell the states apart are generated from
:class:`~worker.state.keys.State`, so no script repeats a key fragment or a rank.
"""

from __future__ import annotations

from string import Template

from worker.state.groups import (
    EXAMPLES,
    FIELDS,
    HEEROS_MARK,
    MAX_GROUPS,
    NUMBER_MARK,
    OTHER,
    SEPARATOR,
)
from worker.state.keys import BY_EXPORT_SEPARATOR, FINAL_RANK, ITEM_SEPARATOR, PROBLEM_STATES, State


def _lua(text: str) -> str:
    """A Lua string literal of ``text``."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _lua_byte(char: str) -> str:
    """A Lua string literal of one ASCII character, as a decimal escape."""
    return f"'\\{ord(char):03d}'"


# An item entering a problem state joins the group of its message, leaving one it
# leaves it; see `worker.state.groups`, whose `message_template` is the twin of
# `template` here. A group that empties loses its fields but keeps its number.
_GROUPS = Template("""
local function replace_token(text, token, mark)
  if token == '' then return text end
  local parts, from, at = {}, 1, 1
  while true do
    local s, e = string.find(text, token, at, true)
    if not s then break end
    local before, after = string.sub(text, s - 1, s - 1), string.sub(text, e + 1, e + 1)
    if string.find(before, '^[%w_]') or string.find(after, '^[%w_]') then
      at = s + 1
    else
      parts[#parts + 1] = string.sub(text, from, s - 1)
      parts[#parts + 1] = mark
      from, at = e + 1, e + 1
    end
  end
  parts[#parts + 1] = string.sub(text, from)
  return table.concat(parts)
end
local function template(message, number, heeros_id)
  return replace_token(replace_token(message, heeros_id, $heeros_mark), number, $number_mark)
end
local function leave_group(groups, item_key, item)
  local group = redis.call('HGET', item_key, 'group')
  if not group then return end
  redis.call('HDEL', item_key, 'group')
  if redis.call('HINCRBY', groups, group .. ':n', -1) <= 0 then
    redis.call('HDEL', groups, $fields)
    return
  end
  local kept = {}
  local examples = redis.call('HGET', groups, group .. ':examples') or ''
  for example in string.gmatch(examples, '[^' .. $separator .. ']+') do
    if example ~= item then kept[#kept + 1] = example end
  end
  redis.call('HSET', groups, group .. ':examples', table.concat(kept, $separator))
end
local function join_group(groupids, groups, item_key, item, state, kind, given, now)
  local message = given['message'] or redis.call('HGET', item_key, 'message') or ''
  local heeros_id = given['heeros_id'] or redis.call('HGET', item_key, 'heeros_id') or ''
  local number = string.match(item, '^(.*)' .. $item_separator) or ''
  local text = template(message, number, heeros_id)
  local name = state .. $separator .. kind .. $separator .. text
  local group = redis.call('HGET', groupids, name)
  if not group then
    local known = redis.call('HLEN', groupids)
    if known < $max_groups then
      group = tostring(known + 1)
      redis.call('HSET', groupids, name, group)
    else
      group = $other
    end
  end
  if redis.call('HINCRBY', groups, group .. ':n', 1) == 1 then
    redis.call('HSET', groups, group .. ':state', state, group .. ':kind', kind,
      group .. ':message', text, group .. ':first', now, group .. ':examples', '')
  end
  local examples = redis.call('HGET', groups, group .. ':examples') or ''
  local _, shown = string.gsub(examples, '[^' .. $separator .. ']+', '')
  if shown < $examples then
    if examples ~= '' then examples = examples .. $separator end
    redis.call('HSET', groups, group .. ':examples', examples .. item)
  end
  redis.call('HSET', groups, group .. ':last', now)
  redis.call('HSET', item_key, 'group', group)
end
""").substitute(
    heeros_mark=_lua(HEEROS_MARK),
    number_mark=_lua(NUMBER_MARK),
    separator=_lua_byte(SEPARATOR),
    item_separator=_lua(ITEM_SEPARATOR),
    max_groups=MAX_GROUPS,
    other=_lua(OTHER),
    examples=EXAMPLES,
    fields=", ".join(f"group .. {_lua(':' + name)}" for name in FIELDS),
)

# The keys come in KEYS (the state sets in the order of `State`); the tables that
# tell the states apart are written here from `State`, so the script repeats nothing.
TRANSITION = _GROUPS + Template("""
local item_key, inflight, polls, kinds, byexport = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local groupids, groups = KEYS[6], KEYS[7]
local new, item, force, kind, export = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local member, now, poll = ARGV[6], ARGV[7], ARGV[8]
local rank = {$ranks}
local set_of = {$sets}
local problem = {$problems}
local old = redis.call('HGET', item_key, 'state')
if force ~= '0' and force ~= '1' and old ~= force then
  -- a forced move from one state only (a re-queue): another one moved it first
  return {0, old or ''}
end
if poll == 'drop' then redis.call('ZREM', polls, member) end
if old and force == '0' then
  if rank[old] == $final or rank[new] < rank[old] then
    return {0, old}
  end
end
if poll ~= '' and poll ~= 'drop' then redis.call('ZADD', polls, poll, member) end
if old ~= new then
  -- one move; an item missing from the set of its old state is added all the same
  if not old or redis.call('SMOVE', set_of[old], set_of[new], item) == 0 then
    redis.call('SADD', set_of[new], item)
  end
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
local fields, given = {'state', new}, {}
for i = 9, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  given[ARGV[i]] = ARGV[i + 1]
end
if old and problem[old] then leave_group(groups, item_key, item) end
if problem[new] then
  join_group(groupids, groups, item_key, item, new, new == $failed and kind or '', given, now)
end
redis.call('HSET', item_key, unpack(fields))
if rank[new] == $final then
  redis.call('ZREM', inflight, member)
else
  redis.call('ZADD', inflight, now, member)
end
return {1, old or ''}
""").substitute(
    ranks=", ".join(f"[{_lua(state.value)}]={state.rank}" for state in State),
    sets=", ".join(f"[{_lua(state.value)}]=KEYS[{8 + n}]" for n, state in enumerate(State)),
    problems=", ".join(f"[{_lua(state.value)}]=true" for state in PROBLEM_STATES),
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


# A reader of a running run appends a sample when the last is `every` seconds old, or,
# once the run has ended, when the last does not show its end yet; never a first
# sample for a run already ended (a run from before samples were kept stays without).
PROGRESS = """
local key, now, done, ended = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local every, keep = tonumber(ARGV[4]), tonumber(ARGV[5])
local last = redis.call('LINDEX', key, -1)
local due = false
if not last then
  due = ended ~= '1'
else
  local at, count = string.match(last, '^(%S+) (%S+)$')
  if ended == '1' then
    due = count ~= done
  else
    due = at == nil or tonumber(now) - tonumber(at) >= every
  end
end
if due then
  redis.call('RPUSH', key, now .. ' ' .. done)
  redis.call('LTRIM', key, -keep, -1)
end
return redis.call('LRANGE', key, 0, -1)
"""


# A period's claim, kept or undone by the close that made it only (compare, then act).
IF_HELD_PERSIST = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PERSIST', KEYS[1]) end
return 0
"""
IF_HELD_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


__all__ = ["CLAIM_POLLS", "IF_HELD_DELETE", "IF_HELD_PERSIST", "PROGRESS", "TRANSITION"]
