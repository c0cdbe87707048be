-- KEYS: job, running. ARGV: lease, now epoch, done (or '' for a heartbeat only).
-- Returns the status, or 'lost' when another worker now holds the job.
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then return status end
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 'lost' end
redis.call('HSET', KEYS[1], 'heartbeat_at', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'progress_done', ARGV[3]) end
redis.call('ZADD', KEYS[2], ARGV[2], redis.call('HGET', KEYS[1], 'id'))
return status
