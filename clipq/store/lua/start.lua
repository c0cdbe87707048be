-- KEYS: job, queued, running, events. ARGV: now iso, now epoch, lease, stale seconds,
-- max attempts, problem JSON for a job out of attempts.
-- 1 run it; 0 final already (e.g. cancelled); -1 gone; -2 out of attempts (now failed);
-- -3 another worker holds a fresh lease (this delivery is a duplicate).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status == 'running' then
  local beat = tonumber(redis.call('HGET', KEYS[1], 'heartbeat_at') or '0')
  if tonumber(ARGV[2]) - beat < tonumber(ARGV[4]) then return -3 end
elseif status ~= 'queued' then
  return 0
end
if tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') >= tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'status', 'failed', 'finished_at', ARGV[1], 'error', ARGV[6])
  redis.call('ZREM', KEYS[2], redis.call('HGET', KEYS[1], 'id'))
  redis.call('ZREM', KEYS[3], redis.call('HGET', KEYS[1], 'id'))
  settle(KEYS[1])
  redis.call('PUBLISH', KEYS[4], 'failed')
  return -2
end
local id = redis.call('HGET', KEYS[1], 'id')
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1], 'lease', ARGV[3],
  'heartbeat_at', ARGV[2], 'progress_done', 0)
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('ZREM', KEYS[2], id)
redis.call('ZADD', KEYS[3], ARGV[2], id)
return 1
