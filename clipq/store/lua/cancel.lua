-- KEYS: job, queued, running, events. ARGV: finished iso. 1 cancelled, 0 final, -1 unknown.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status ~= 'queued' and status ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[1])
local id = redis.call('HGET', KEYS[1], 'id')
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
settle(KEYS[1])
redis.call('PUBLISH', KEYS[4], 'cancelled')
return 1
