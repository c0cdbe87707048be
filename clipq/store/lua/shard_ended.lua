-- KEYS: the split job, the set of its shards that ended. ARGV: shard, ttl.
-- 1: this shard was the last to end (its worker answers the job); 0: others remain, or this
-- one had ended before (a duplicate delivery); -1: the job is not running (cancelled, gone).
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return -1 end
local added = redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local ended = redis.call('SCARD', KEYS[2])
redis.call('HSET', KEYS[1], 'progress_done', ended)
local shards = tonumber(redis.call('HGET', KEYS[1], 'shards') or '-1')
if added == 1 and ended == shards then return 1 end
return 0
