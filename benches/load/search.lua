-- POST searches, rotating through queries so no single cached answer is measured.
local queries = {
  "", "wireless", "organic cotton", "steel", "blue", "premium kit", "ultra light",
  "garden", "coffee", "smart", "vintage leather", "pro", "mini", "outdoor", "classic red",
}
local i = 0

-- wrk.format replaces wrk.headers (Host, and -H options) when given headers: extend them.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  i = i + 1
  local q = queries[(i % #queries) + 1]
  local body = '{"q":"' .. q .. '","limit":20,"facets":["brand","category"]}'
  return wrk.format(nil, nil, nil, body)
end
