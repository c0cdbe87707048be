-- KEYS: the split job, the set of its shards that ended. ARGV: shard, ttl.
-- 1: every shard has ended (the caller answers the job; a duplicate delivery of the last
-- shard, its first worker dead before it answered, is told so again: the answer is taken
-- once, finish.lua taking only a running job); 0: others remain; -1: the job is not running
-- (answered, cancelled, gone).
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return -1 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local ended = redis.call('SCARD', KEYS[2])
redis.call('HSET', KEYS[1], 'progress_done', ended)
local shards = tonumber(redis.call('HGET', KEYS[1], 'shards') or '-1')
if ended == shards then return 1 end
return 0
