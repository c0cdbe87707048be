-- KEYS: job, running. ARGV: lease, the shards' lease, n, ttl, job key prefix, then n shard job
-- records (JSON objects), each created unless it exists (a split again after its worker died).
-- 1 handed to its shards (out of the reaper's sight: they hold leases of their own); 0 the
-- job is no longer this lease's (cancelled meanwhile): no shard is created.
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[3])
for i = 1, n do
  local record = cjson.decode(ARGV[5 + i])
  local key = ARGV[5] .. record['id']
  if redis.call('EXISTS', key) == 0 then
    local pairs_ = {}
    for field, value in pairs(record) do
      pairs_[#pairs_ + 1] = field
      pairs_[#pairs_ + 1] = tostring(value)
    end
    redis.call('HSET', key, unpack(pairs_))
    redis.call('EXPIRE', key, ARGV[4])
  end
end
redis.call('HSET', KEYS[1], 'lease', ARGV[2], 'shards', n, 'progress_total', n)
redis.call('ZREM', KEYS[2], redis.call('HGET', KEYS[1], 'id'))
return 1
