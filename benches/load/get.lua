-- A plain GET (the URL given to wrk).
wrk.method = "GET"
