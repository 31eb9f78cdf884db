-- POST searches drawn from 10 000 distinct queries with Zipf-distributed popularity
-- (s = 1.1), as real search traffic repeats its top queries. FEDERATED=1 in the environment
-- sends each as Meilisearch's own federated search over the remotes n0, n1 and n2 instead.
-- SEED (1): the draws' seed.
local words = {}
for w in ("wireless organic cotton steel blue premium kit ultra light garden coffee smart " ..
          "vintage leather pro mini outdoor classic red portable compact durable natural " ..
          "ergonomic modern rustic electric bamboo ceramic glass carbon silk wool"):gmatch("%S+") do
  words[#words + 1] = w
end

local N, S = 10000, 1.1
local queries, cdf = {}, {}
local total = 0
for r = 1, N do
  local i = r - 1
  local a = words[i % #words + 1]
  local b = words[math.floor(i / #words) % #words + 1]
  local c = words[math.floor(i / (#words * #words)) % #words + 1]
  queries[r] = a .. " " .. b .. " " .. c
  total = total + 1 / r ^ S
  cdf[r] = total
end

local federated = os.getenv("FEDERATED") == "1"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local function pick()
  local x = math.random() * total
  local lo, hi = 1, N
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < x then lo = mid + 1 else hi = mid end
  end
  return queries[lo]
end

-- Every run draws the same sequence unless SEED says otherwise: the targets compared get
-- the same queries, and a second run with another SEED gets other draws of the same mix.
math.randomseed(tonumber(os.getenv("SEED") or "1"))

function setup(thread)
  thread:set("seed", math.random(1, 1e9))
end

function init()
  math.randomseed(seed or os.time())
end

request = function()
  local q = pick()
  local body
  if federated then
    local parts = {}
    for _, remote in ipairs({ "n0", "n1", "n2" }) do
      parts[#parts + 1] = '{"indexUid":"products","q":"' .. q ..
        '","federationOptions":{"remote":"' .. remote .. '"}}'
    end
    body = '{"federation":{"limit":20},"queries":[' .. table.concat(parts, ",") .. ']}'
  else
    body = '{"q":"' .. q .. '","limit":20}'
  end
  return wrk.format(nil, nil, nil, body)
end
