"""What the insertion-order field costs a node: the same generated documents, all carrying the
shard tag as the gateway writes them, indexed by fresh Meilisearch nodes on loopback, half of
the runs with `_miroir_order` added too (plain, or sortable as the gateway keeps it); prints
indexing time and disk per variant.

Usage: python3 order_cost.py MEILISEARCH_BIN [COUNT] [ROUNDS]
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ORDER_DIGITS = "!%()*,./:;?[]{}"


def order_value(n):
    out = []
    for _ in range(16):
        out.append(ORDER_DIGITS[n % 15])
        n //= 15
    return "".join(reversed(out))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, method="GET", body=None):
    req = urllib.request.Request(url, method=method, data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.load(resp)


def seconds(duration):
    m = re.fullmatch(r"PT(?:(\d+)M)?([\d.]+)S", duration)
    return int(m.group(1) or 0) * 60 + float(m.group(2))


def index_once(binary, body, sortable):
    """Indexing time (s) and on-disk size (bytes) of one batch on a fresh node whose index has
    the tag filterable and `sortable` sortable."""
    root = tempfile.mkdtemp(prefix="order-cost-")
    port = free_port()
    node = subprocess.Popen(
        [binary, "--db-path", f"{root}/data.ms", "--http-addr", f"127.0.0.1:{port}",
         "--no-analytics", "--env", "development"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                call(f"{base}/health")
                break
            except OSError:
                time.sleep(0.05)
        settings = {"filterableAttributes": ["_miroir_shard"], "sortableAttributes": sortable}
        call(f"{base}/indexes", "POST", json.dumps({"uid": "products", "primaryKey": "id"}).encode())
        call(f"{base}/indexes/products/settings", "PATCH", json.dumps(settings).encode())
        task = call(f"{base}/indexes/products/documents?primaryKey=id", "POST", body)
        while True:
            t = call(f"{base}/tasks/{task['taskUid']}")
            if t["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.05)
        assert t["status"] == "succeeded", t
        size = sum(os.path.getsize(os.path.join(d, f))
                   for d, _, files in os.walk(f"{root}/data.ms/indexes") for f in files)
        return seconds(t["duration"]), size
    finally:
        node.kill()
        node.wait()
        shutil.rmtree(root, ignore_errors=True)


def main():
    binary = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 30000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    docs = json.loads(subprocess.run([sys.executable, f"{HERE}/documents.py", str(count)],
                                     check=True, capture_output=True).stdout)
    start = (int(time.time() * 1e6)) << 10
    tagged = [dict({"_miroir_shard": "!!!%"}, **d) for d in docs]
    ordered = [dict({"_miroir_shard": "!!!%", "_miroir_order": order_value(start + i)}, **d)
               for i, d in enumerate(docs)]
    variants = {"tag only": (json.dumps(tagged).encode(), []),
                "tag + order": (json.dumps(ordered).encode(), []),
                "tag + order, sortable": (json.dumps(ordered).encode(), ["_miroir_order"])}
    results = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (body, sortable) in variants.items():
            results[name].append(index_once(binary, body, sortable))
    print(f"{count} documents, {rounds} rounds, medians:")
    base_time = base_size = None
    for name, runs in results.items():
        t = sorted(r[0] for r in runs)[len(runs) // 2]
        size = sorted(r[1] for r in runs)[len(runs) // 2]
        base_time, base_size = base_time or t, base_size or size
        print(f"  {name:22} indexing {t:6.2f} s ({t / base_time:.2f}x)   "
              f"disk {size / 2**20:7.1f} MiB ({size / base_size:.3f}x)")


if __name__ == "__main__":
    main()
