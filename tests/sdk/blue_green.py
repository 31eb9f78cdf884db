"""A blue-green reindex through Miroir on the official Meilisearch Python SDK, unchanged:
the application searches `products` all along; the operator fills `products_v2`, flips the
alias (the one step that is not Meilisearch's API), flips back, and swaps indexes with the
SDK's own `swap_indexes`. Fails with an AssertionError at the first unexpected answer.

Usage: python3 blue_green.py URL MASTER_KEY
"""
import json
import sys
import urllib.request

import meilisearch

url, key = sys.argv[1], sys.argv[2]
client = meilisearch.Client(url, key)


def admin(method, path, body=None):
    req = urllib.request.Request(
        url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read() or b"null")


def fill(index, version, count):
    docs = [{"id": i, "v": version, "title": f"shoe {version} {i}"} for i in range(count)]
    task = client.index(index).add_documents(docs, primary_key="id")
    done = client.wait_for_task(task.task_uid, timeout_in_ms=60000, interval_in_ms=50)
    assert done.status == "succeeded", done


def versions(index):
    hits = client.index(index).search("shoe", {"limit": 1000})["hits"]
    assert hits, f"no hits in {index}"
    return sorted({h["v"] for h in hits})


fill("products_v1", "v1", 50)
admin("POST", "/_miroir/aliases", {"name": "products", "targets": ["products_v1"]})
assert versions("products") == ["v1"]

# Reindex into v2 while the application keeps reading v1, then flip.
fill("products_v2", "v2", 80)
assert versions("products") == ["v1"]
admin("PATCH", "/_miroir/aliases/products", {"targets": ["products_v2"]})
assert versions("products") == ["v2"]
assert client.index("products").get_stats().number_of_documents == 80

# The application writes through the alias: the task names the real index.
task = client.index("products").add_documents([{"id": 1000, "v": "v2", "title": "shoe new"}])
done = client.wait_for_task(task.task_uid, timeout_in_ms=60000, interval_in_ms=50)
assert done.status == "succeeded" and done.index_uid == "products_v2", done
assert client.index("products").get_document(1000).v == "v2"

# Rollback is a flip back; the history keeps both flips.
admin("PATCH", "/_miroir/aliases/products", {"targets": ["products_v1"]})
assert versions("products") == ["v1"]
history = admin("GET", "/_miroir/aliases/products")["history"]
assert [h["to"] for h in history] == [["products_v1"], ["products_v2"]], history

# The other way: swap the indexes themselves with the SDK.
task = client.swap_indexes([{"indexes": ["products_v1", "products_v2"]}])
done = client.wait_for_task(task.task_uid, timeout_in_ms=60000, interval_in_ms=50)
assert done.status == "succeeded", done
assert versions("products_v1") == ["v2"] and versions("products") == ["v2"]
print("blue-green ok")
