-- KEYS: job, running, events. ARGV: lease, status, finished iso, field, document, ttl.
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'finished_at', ARGV[3], ARGV[4], ARGV[5])
if ARGV[2] == 'succeeded' then
  redis.call('HSET', KEYS[1], 'progress_done', redis.call('HGET', KEYS[1], 'progress_total'))
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZREM', KEYS[2], redis.call('HGET', KEYS[1], 'id'))
settle(KEYS[1])
redis.call('PUBLISH', KEYS[3], ARGV[2])
return 1
