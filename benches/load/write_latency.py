"""A write as an SDK sees it: POST 2 documents, then GET /tasks/{uid} every 10 ms until it
succeeds. Prints the p50 and p90 over ROUNDS writes, and the first write into a new index.

    python3 write_latency.py http://127.0.0.1:7700 KEY [ROUNDS]

With several URLs (comma-separated), the ceiling of any gateway over those nodes: each
document goes straight to its own node, at once, and the write is done when every node's
task has succeeded.
"""
import json
import statistics
import sys
import threading
import time
import urllib.request

bases, key = sys.argv[1].split(","), sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)


def write_one(base, index, docs):
    uid = call(base, "POST", f"/indexes/{index}/documents", docs)["taskUid"]
    while True:
        status = call(base, "GET", f"/tasks/{uid}")["status"]
        if status == "succeeded":
            return
        if status in ("failed", "canceled"):
            sys.exit(f"task {uid} on {base} {status}")
        time.sleep(0.01)


def write(index, i):
    docs = [{"id": i, "title": "a"}, {"id": i + 100000, "title": "b"}]
    start = time.monotonic()
    if len(bases) == 1:
        write_one(bases[0], index, docs)
    else:
        parts = [(bases[k % len(bases)], [d]) for k, d in enumerate(docs)]
        threads = [threading.Thread(target=write_one, args=(b, index, p)) for b, p in parts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return time.monotonic() - start


first = write(f"latency_{int(time.time() * 1000)}", 0)
times = sorted(write("latency", i) for i in range(rounds))
print(f"p50 {statistics.median(times):.3f} s  p90 {times[int(len(times) * 0.9)]:.3f} s"
      f"  first write into a new index {first:.3f} s")
