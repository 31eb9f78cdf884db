"""A user's script on the official Meilisearch Python SDK, unchanged whatever the server:
writes with wait_for_task, settings, search, multi-search (plain and federated), facet
search, document reads and stats. Prints one JSON line per step, without per-run fields,
so two servers' outputs can be compared line by line.

Usage: python3 smoke.py URL KEY DOCUMENTS_JSON
"""
import json
import sys

import meilisearch

url, key, data = sys.argv[1], sys.argv[2], sys.argv[3]
client = meilisearch.Client(url, key)

PER_RUN = {"enqueuedAt", "startedAt", "finishedAt", "duration", "processingTimeMs", "requestUid", "batchUid", "createdAt", "updatedAt"}


def clean(value):
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items() if k not in PER_RUN}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def show(step, value):
    if hasattr(value, "__dict__") and not isinstance(value, dict):
        value = {k: v for k, v in vars(value).items() if not k.startswith("_")}
    print(json.dumps({"step": step, "value": clean(value)}, sort_keys=True, default=str))


def wait(task):
    done = client.wait_for_task(task.task_uid, timeout_in_ms=60000, interval_in_ms=50)
    show("task", {"status": done.status, "type": done.type, "details": done.details, "error": done.error})


with open(data) as f:
    documents = json.load(f)

wait(client.create_index("sdk_people", {"primaryKey": "id"}))
index = client.index("sdk_people")
wait(index.add_documents(documents))
wait(index.update_settings({"filterableAttributes": ["color", "gender", "age", "id"], "sortableAttributes": ["age", "id"]}))
wait(index.update_documents([{"id": 1, "name": "Renamed by the SDK"}]))
wait(index.delete_document(2))

show("settings.filterable", index.get_filterable_attributes())
show("stats", {"numberOfDocuments": index.get_stats().number_of_documents})
# Sorts end on the id, so no two hits tie (tied hits may come in another order).
show("search", index.search("green", {"sort": ["age:asc", "id:asc"], "filter": "gender = male", "limit": 5, "attributesToRetrieve": ["id", "name", "age"], "facets": ["color"]}))
show("search.page", index.search("", {"hitsPerPage": 3, "page": 2, "sort": ["age:desc", "id:asc"], "attributesToRetrieve": ["id", "age"]}))
show("multi", client.multi_search([
    {"indexUid": "sdk_people", "q": "lucas", "sort": ["id:asc"], "attributesToRetrieve": ["id", "name"]},
    {"indexUid": "sdk_people", "q": "", "filter": "age > 39", "sort": ["age:asc", "id:asc"], "limit": 3, "attributesToRetrieve": ["id", "age"]},
]))
show("multi.federated", client.multi_search(
    [{"indexUid": "sdk_people", "q": "", "filter": "id = 3"}, {"indexUid": "sdk_people", "q": "", "filter": "id = 4"}],
    federation={"limit": 5},
))
show("facet_search", index.facet_search("color", "b"))
show("document", index.get_document(1))
docs = index.get_documents({"limit": 1000, "fields": ["id", "age"]})
show("documents", sorted((d.id, d.age) for d in docs.results))
show("documents.total", docs.total)
wait(client.index("sdk_people").delete())
