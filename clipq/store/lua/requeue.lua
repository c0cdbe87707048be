-- KEYS: job, queued, running, events. ARGV: now epoch, stale seconds, max attempts,
-- finished iso, problem JSON. 1 re-queued, 0 not stale or not running, -2 out of attempts.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
if status ~= 'running' then return 0 end
local beat = tonumber(redis.call('HGET', KEYS[1], 'heartbeat_at') or '0')
if tonumber(ARGV[1]) - beat < tonumber(ARGV[2]) then return 0 end
local id = redis.call('HGET', KEYS[1], 'id')
redis.call('ZREM', KEYS[3], id)
if tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'status', 'failed', 'finished_at', ARGV[4], 'error', ARGV[5])
  settle(KEYS[1])
  redis.call('PUBLISH', KEYS[4], 'failed')
  return -2
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'lease', '')
redis.call('ZADD', KEYS[2], ARGV[1], id)
return 1
