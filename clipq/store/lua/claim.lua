-- KEYS: queued, running. ARGV: now iso, now epoch, lease, max attempts, image budget, most
-- jobs, scan depth, job key prefix, kinds (comma-framed: ',classify,scenes,'), model.
-- Cross-job batching: take queued jobs of those kinds for that model, oldest first, whose images fit in
-- what is left of the budget, under ``lease`` with START's effects (status, lease, heartbeat,
-- attempts, ZREM queued, ZADD running). Returns id, images, id, images… of the jobs taken.
-- Jobs out of attempts are left for their own delivery's START to fail. The job hashes are
-- reached from the ids in the queue, not declared in KEYS: fine on one Redis (or Sentinel),
-- not on Redis Cluster.
local budget = tonumber(ARGV[5])
local most = tonumber(ARGV[6])
local claimed = {}
if budget <= 0 or most <= 0 then return claimed end
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[7]) - 1)) do
  local key = ARGV[8] .. id
  local f = redis.call('HMGET', key, 'status', 'kind', 'progress_total', 'attempts', 'model')
  local total = tonumber(f[3]) or 0
  if f[1] == 'queued' and f[5] == ARGV[10] and string.find(ARGV[9], ',' .. (f[2] or '') .. ',', 1, true)
      and total > 0 and total <= budget and (tonumber(f[4]) or 0) < tonumber(ARGV[4]) then
    redis.call('HSET', key, 'status', 'running', 'started_at', ARGV[1], 'lease', ARGV[3],
      'heartbeat_at', ARGV[2], 'progress_done', 0)
    redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    claimed[#claimed + 1] = id
    claimed[#claimed + 1] = total
    budget = budget - total
    if budget <= 0 or #claimed >= 2 * most then break end
  end
end
return claimed
