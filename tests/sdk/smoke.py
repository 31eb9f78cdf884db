"""A user's script on the official Meilisearch Python SDK, unchanged whatever the server:
writes with wait_for_task, settings, search, multi-search (plain and federated), facet
search, document reads (insertion order without sort) and stats; the default keys and a tenant token signed with one;
webhooks; batches; fields; similar documents; template rendering; task deletion. Prints one JSON line per step, without per-run fields,
so two servers' outputs can be compared line by line.

Usage: python3 smoke.py URL KEY DOCUMENTS_JSON
"""
import json
import sys

import meilisearch

url, key, data = sys.argv[1], sys.argv[2], sys.argv[3]
client = meilisearch.Client(url, key)

PER_RUN = {"enqueuedAt", "startedAt", "finishedAt", "duration", "processingTimeMs", "requestUid", "batchUid", "createdAt", "updatedAt", "uuid", "uid", "key", "performanceDetails"}


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

# Browsing without sort, as an SDK's tests do: documents in insertion order, a replaced one in
# its place, pages cut from the same list.
ordered = client.index("sdk_order")
wait(ordered.add_documents([{"id": i, "v": 1} for i in (17, 3, 42, 8, 25, 1, 33, 12, 5, 40, 28)]))
wait(ordered.add_documents([{"id": 8, "v": 2}, {"id": 2, "v": 2}, {"id": 50, "v": 2}]))
wait(ordered.update_documents([{"id": i, "w": 3} for i in (9, 42, 7)]))
show("documents.insertion_order", [d.id for d in ordered.get_documents({"limit": 100, "fields": ["id"]}).results])
show("documents.first", [vars(d) for d in ordered.get_documents({"limit": 3}).results])
show("documents.page", [d.id for d in ordered.get_documents({"offset": 5, "limit": 4, "fields": ["id"]}).results])
wait(ordered.delete())

# The default keys, as a front end reads them: one of each, valid on the whole fleet.
keys = client.get_keys({"limit": 100}).results
show("keys.defaults", sorted(k.name for k in keys if (k.name or "").startswith("Default ")))
search_key = next(k for k in keys if k.name == "Default Search API Key")
admin_key = next(k for k in keys if k.name == "Default Admin API Key")
wait(meilisearch.Client(url, admin_key.key).index("sdk_people").update_documents([{"id": 3, "name": "By the admin key"}]))
as_search = meilisearch.Client(url, search_key.key).index("sdk_people")
show("search.default_key", as_search.search("", {"sort": ["id:asc"], "limit": 4, "attributesToRetrieve": ["id", "name"]}))
token = client.generate_tenant_token(search_key.uid, {"sdk_people": {"filter": "gender = male"}}, api_key=search_key.key)
as_tenant = meilisearch.Client(url, token).index("sdk_people")
show("search.tenant", as_tenant.search("", {"sort": ["id:asc"], "limit": 50, "attributesToRetrieve": ["id", "gender"]}))

# Webhooks: one of each, changed and deleted by its uuid.
hook = client.create_webhook({"url": "https://example.test/hook", "headers": {"Authorization": "Bearer 0123456789abcdefghijklmnopqrstuvwxyz", "X-A": "b"}})
show("webhook", hook)
show("webhook.updated", client.update_webhook(str(hook.uuid), {"headers": {"X-A": None, "X-B": "c"}}))
show("webhooks", [vars(w) for w in client.get_webhooks().results])
client.delete_webhook(str(hook.uuid))
show("webhooks.after_delete", len(client.get_webhooks().results))

# Batches, fields, template rendering.
batches = client.get_batches({"limit": 1})
# A node's own figures (progressTrace ...) are not compared: see the README.
stats = batches.results[0].stats
show("batches", {"stats": {k: stats[k] for k in ("totalNbTasks", "status", "types", "indexUids")}, "details": batches.results[0].details})
show("fields", client.index("sdk_people").get_fields(limit=5, filter={"filterable": True}))
client.update_experimental_features({"renderRoute": True})
show("render", client.render_template(
    {"kind": "inlineDocumentTemplate", "inline": "{{ doc.name }} is {{ doc.age }}"},
    {"kind": "indexDocument", "indexUid": "sdk_people", "id": "5"},
))

# Similar documents over user-provided vectors (no two alike: tied hits may come in another
# order).
vectors = client.index("sdk_vectors")
wait(vectors.update_settings({"embedders": {"manual": {"source": "userProvided", "dimensions": 3}}}))
wait(vectors.add_documents([{"id": i, "_vectors": {"manual": [(i % 7 + 1) / 7, (i % 11 + 1) / 11, (i % 13 + 1) / 13]}} for i in range(60)]))
show("similar", vectors.get_similar_documents({"id": 7, "embedder": "manual", "limit": 5, "showRankingScore": True}))
wait(vectors.delete())

# A task deleted is gone once the deletion succeeded.
task = index.update_documents([{"id": 4, "name": "To be forgotten"}])
wait(task)
wait(client.delete_tasks({"uids": [str(task.task_uid)]}))
try:
    client.get_task(task.task_uid)
    show("task.deleted", "still there")
except meilisearch.errors.MeilisearchApiError as e:
    show("task.deleted", e.code)
wait(client.index("sdk_people").delete())
