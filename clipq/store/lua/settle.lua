-- Every script that ends a job also takes it off its tenant's unfinished jobs (the job's
-- hash names the owner; like claim.lua, this reaches a key not declared in KEYS).
-- TENANT_PREFIX is replaced when the scripts are loaded (clipq.store.jobs.TENANT_PREFIX).
local function settle(job)
  local owner = redis.call('HGET', job, 'owner') or ''
  if owner == '' then owner = '-' end
  redis.call('ZREM', 'TENANT_PREFIX' .. owner .. ':jobs', redis.call('HGET', job, 'id'))
end
