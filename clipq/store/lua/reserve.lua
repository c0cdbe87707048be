-- KEYS: queued, the tenant's unfinished jobs. ARGV: limit, job id, now epoch, tenant limit,
-- epoch before which a tenant's entry is stale (its record expired unfinished).
-- 1 reserved a place in the queue, 0 the queue is full, -1 the tenant's share is.
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
return 1
