//! Where the Redis backend keeps what ([`Keys`]) and the Lua scripts that change several
//! keys in one atomic step.

use redis::Script;

/// The keys, with the prefix.
pub(super) struct Keys {
    pub(super) prefix: String,
    pub(super) next_uid: String,
    pub(super) tasks: String,
    pub(super) facets: String,
    pub(super) changes: String,
    pub(super) change_seq: String,
    pub(super) next_hint: String,
    pub(super) hints: String,
    pub(super) hint_counts: String,
    pub(super) hint_queue: String,
    pub(super) next_intent: String,
    pub(super) intents: String,
    pub(super) intent_times: String,
    pub(super) move_log: String,
    pub(super) facet_values: String,
    pub(super) key_tombstones: String,
    pub(super) webhooks: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        let k = |name: &str| format!("{prefix}{name}");
        Keys {
            prefix: prefix.to_string(),
            next_uid: k("next_uid"),
            tasks: k("tasks"),
            facets: k("task_facets"),
            changes: k("task_changes"),
            change_seq: k("task_change_seq"),
            next_hint: k("next_hint"),
            hints: k("hints"),
            hint_counts: k("hint_counts"),
            hint_queue: k("hint_queue:"),
            next_intent: k("next_intent"),
            intents: k("intents"),
            intent_times: k("intent_times"),
            move_log: k("move_log:"),
            facet_values: k("facet_values"),
            key_tombstones: k("key_tombstones"),
            webhooks: k("webhooks"),
        }
    }

    pub(super) fn hint_queue(&self, node: &str) -> String {
        format!("{}{node}", self.hint_queue)
    }

    pub(super) fn move_log(&self, move_id: u64) -> String {
        format!("{}{move_id}", self.move_log)
    }
}

/// Stores tasks: `ARGV = stream length, then (uid, task, facets)*`; with `only_if_stored`
/// (`ARGV[2] == "1"`), a task no longer stored is skipped. How many tasks it finished.
pub(super) const PUT_TASKS: &str = r#"
local maxlen = ARGV[1]
local only_if_stored = ARGV[2] == '1'
local finished = 0
for i = 3, #ARGV, 3 do
  local uid, task, facets = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if not only_if_stored or redis.call('HEXISTS', KEYS[1], uid) == 1 then
    local old = redis.call('HGET', KEYS[2], uid) or ''
    redis.call('HSET', KEYS[1], uid, task)
    redis.call('HSET', KEYS[2], uid, facets)
    local seq = redis.call('INCR', KEYS[4])
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'u', uid, 'o', old, 'n', facets, 's', seq)
    -- The status is the facets' first byte: 0 enqueued, 1 processing, 2+ finished.
    local was = 0
    if old ~= '' then was = string.byte(old, 1) end
    if was < 2 and string.byte(facets, 1) >= 2 then finished = finished + 1 end
  end
end
return finished
"#;

/// Deletes tasks: `ARGV = stream length, uid*`.
pub(super) const DELETE_TASKS: &str = r#"
for i = 2, #ARGV do
  local uid = ARGV[i]
  local old = redis.call('HGET', KEYS[2], uid)
  redis.call('HDEL', KEYS[1], uid)
  if old then
    redis.call('HDEL', KEYS[2], uid)
    local seq = redis.call('INCR', KEYS[4])
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'u', uid, 'o', old, 'n', '', 's', seq)
  end
end
return 1
"#;

/// Reserves uids: `ARGV = count, floor`; the first uid.
pub(super) const RESERVE_UIDS: &str = r#"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[2])
if current < floor then redis.call('SET', KEYS[1], floor) end
return redis.call('INCRBY', KEYS[1], ARGV[1]) - tonumber(ARGV[1])
"#;

/// Settles a write: `KEYS = intents, tasks, facets, changes, change_seq, next_hint, hints,
/// hint_counts, intent times`; `ARGV = intent, stream length, uid or '', task, facets, queue
/// prefix, (node, hint)*`.
pub(super) const SETTLE: &str = r#"
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[9], ARGV[1])
if ARGV[3] ~= '' then
  local uid = ARGV[3]
  local old = redis.call('HGET', KEYS[3], uid) or ''
  redis.call('HSET', KEYS[2], uid, ARGV[4])
  redis.call('HSET', KEYS[3], uid, ARGV[5])
  local seq = redis.call('INCR', KEYS[5])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*', 'u', uid, 'o', old, 'n', ARGV[5], 's', seq)
end
for i = 7, #ARGV, 2 do
  local node, hint = ARGV[i], ARGV[i + 1]
  local n = redis.call('INCR', KEYS[6])
  local key = node .. '\0' .. string.format('%020d', n)
  redis.call('HSET', KEYS[7], key, hint)
  redis.call('ZADD', ARGV[6] .. node, n, key)
  redis.call('HINCRBY', KEYS[8], node, 1)
end
return 1
"#;

/// Forgets a hint and stores the task waiting for it: `KEYS = hints, hint_counts, queue,
/// tasks, facets, changes, change_seq`; `ARGV = hint key, node, stream length, uid or '',
/// task, facets`.
pub(super) const HINT_DONE: &str = r#"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZREM', KEYS[3], ARGV[1])
  if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
end
if ARGV[4] ~= '' then
  local uid = ARGV[4]
  local old = redis.call('HGET', KEYS[5], uid) or ''
  redis.call('HSET', KEYS[4], uid, ARGV[5])
  redis.call('HSET', KEYS[5], uid, ARGV[6])
  local seq = redis.call('INCR', KEYS[7])
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[3], '*', 'u', uid, 'o', old, 'n', ARGV[6], 's', seq)
end
return 1
"#;

/// Records a write: `KEYS = next_intent, intents, intent times`; `ARGV = intent, move log
/// prefix, now (ms), (move id, part key, request)*`; the intent id.
pub(super) const INTENT_BEGIN: &str = r#"
local id = redis.call('INCR', KEYS[1]) - 1
redis.call('HSET', KEYS[2], id, ARGV[1])
redis.call('HSET', KEYS[3], id, ARGV[3])
for i = 4, #ARGV, 3 do
  redis.call('ZADD', ARGV[2] .. ARGV[i], 0, struct.pack('>I8', id) .. ARGV[i + 1] .. ARGV[i + 2])
end
return id
"#;

/// Takes or renews a lease: `ARGV = holder, ttl ms`; 1 if `holder` has it.
pub(super) const LEASE: &str = r#"
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] or not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#;

pub(super) struct Scripts {
    pub(super) lease: Script,
    pub(super) put: Script,
    pub(super) delete: Script,
    pub(super) reserve: Script,
    pub(super) settle: Script,
    pub(super) hint_done: Script,
    pub(super) intent_begin: Script,
}
