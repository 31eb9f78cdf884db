"""A write as an SDK sees it: POST 2 documents, then GET /tasks/{uid} every 10 ms until it
succeeds. Prints the p50 and p90 over ROUNDS writes, and the first write into a new index.

    python3 write_latency.py http://127.0.0.1:7700 KEY [ROUNDS]
"""
import json
import statistics
import sys
import time
import urllib.request

base, key = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)


def write(index, i):
    start = time.monotonic()
    uid = call("POST", f"/indexes/{index}/documents",
               [{"id": i, "title": "a"}, {"id": i + 100000, "title": "b"}])["taskUid"]
    while True:
        status = call("GET", f"/tasks/{uid}")["status"]
        if status == "succeeded":
            return time.monotonic() - start
        if status in ("failed", "canceled"):
            sys.exit(f"task {uid} {status}")
        time.sleep(0.01)


first = write(f"latency_{int(time.time() * 1000)}", 0)
times = sorted(write("latency", i) for i in range(rounds))
print(f"p50 {statistics.median(times):.3f} s  p90 {times[int(len(times) * 0.9)]:.3f} s"
      f"  first write into a new index {first:.3f} s")
