-- Argo CD health check for summon.forklift.dev/SummonPlatform (see docs/gitops.md).
-- Metacontroller writes status.observedGeneration after each sync; until it has caught up with
-- metadata.generation, the status describes an older spec and says nothing about this one.
local hs = {}
if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Summon's first sync"
  return hs
end
local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
local observed = obj.status.observedGeneration or 0
if observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for Summon to sync generation " .. generation
  return hs
end
local message = obj.status.message or ""
local ready = nil
local paused = nil
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then
      ready = c
    elseif c.type == "Paused" and c.status == "True" then
      paused = c
    end
  end
end
if paused ~= nil then
  hs.status = "Suspended"
  hs.message = paused.message or message
  return hs
end
if obj.status.phase == "Error" then
  hs.status = "Degraded"
  hs.message = message
  return hs
end
if obj.status.phase == "Ready" and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message
  return hs
end
-- Initializing, Migrating, Deploying, or Ready without its condition yet.
hs.status = "Progressing"
hs.message = message
return hs
