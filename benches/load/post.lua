-- POSTs the JSON body of the file named by $BODY to the URL given to wrk, on every request.
local file = assert(io.open(os.getenv("BODY"), "rb"))
local body = file:read("*a")
file:close()

wrk.method = "POST"
wrk.body = (body:gsub("%s+$", ""))
wrk.headers["Content-Type"] = "application/json"
