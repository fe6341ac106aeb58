"""Ingesting items: JSON and NDJSON, idempotency, all-or-nothing validation, size limits."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import auth
from tests.integration.helpers import (
    by_external_id,
    confident_item,
    count_rows,
    hard_item,
    ingest,
    item,
    list_all,
    ordinary_item,
    problems_by_index,
)

GOOD = [0.2, 0.5, 0.3]


def _post(client, project, content: bytes | str, content_type: str, key: str | None = None):
    return client.post(
        f"/v1/projects/{project['id']}/items",
        content=content,
        headers={**auth(key or project["producer_key"]), "Content-Type": content_type},
    )


def _ndjson(items) -> str:
    return "".join(json.dumps(i) + "\n" for i in items)


def test_json_batch_is_accepted(client, project, runtime):
    items = [confident_item("a"), hard_item("b"), item("c")]
    body = ingest(client, project, items)
    assert body["accepted"] == 3
    assert body["duplicates"] == 0
    assert [i["external_id"] for i in body["items"]] == ["a", "b", "c"]
    assert len({i["id"] for i in body["items"]}) == 3
    assert count_rows(runtime, project["id"]) == (3, 6)  # 3 + 3 + 0 predictions


def test_ops_may_ingest_too(client, project):
    body = ingest(client, project, [item("a")], key=project["ops_key"])
    assert body["accepted"] == 1


def test_ndjson_batch_is_accepted(client, project, runtime):
    items = [confident_item("a"), hard_item("b"), item("c", provenance={"source": "s"})]
    resp = _post(client, project, _ndjson(items), "application/x-ndjson")
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert (body["accepted"], body["duplicates"]) == (3, 0)
    assert [i["external_id"] for i in body["items"]] == ["a", "b", "c"]
    assert count_rows(runtime, project["id"]) == (3, 6)


def test_ndjson_tolerates_blank_lines_crlf_and_a_charset(client, project):
    content = "\r\n" + json.dumps(item("a")) + "\r\n\r\n" + json.dumps(item("b"))
    resp = _post(client, project, content, "application/x-ndjson; charset=utf-8")
    assert resp.status_code == 202, resp.text
    assert resp.json()["accepted"] == 2


def test_json_with_charset_parameter_is_accepted(client, project):
    body = json.dumps({"items": [item("a")]})
    resp = _post(client, project, body, "application/json; charset=utf-8")
    assert resp.status_code == 202, resp.text


def test_stored_item_keeps_payload_predictions_and_provenance(client, project):
    sent = item(
        "a",
        GOOD,
        payload={"text": "hello", "nested": {"k": [1, 2]}},
        provenance={"source": "crawl-7", "license": "cc-by", "trace_id": "t-1", "extra": 1},
    )
    iid = ingest(client, project, [sent])["items"][0]["id"]
    view = client.get(
        f"/v1/projects/{project['id']}/items/{iid}", headers=auth(project["producer_key"])
    ).json()
    assert view["payload"] == sent["payload"]
    assert view["provenance"] == sent["provenance"]
    assert view["predictions"] == [{"model": "m0", "model_version": "1", "probs": GOOD}]


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
def test_awkward_text_survives_the_batch_document(client, project, content_type):
    """Ids and payloads travel to the database inside one JSON document: quotes, backslashes,
    escapes, non-ASCII text and exact floats come back as sent."""
    awkward = ['q"uote', "back\\slash", "tab\there", "é-ü-漢字-🙂", "a/b", "123", "null"]
    sent = [
        item(
            ext,
            [1 / 3, 1 / 3, 1 / 3],
            payload={"text": ext, "n": 1e-7, "big": 2.5e300, "u": "\u0001", "k": {ext: [ext]}},
            provenance={"source": ext, "trace_id": None},
        )
        for ext in awkward
    ]
    body = json.dumps({"items": sent}) if content_type == "application/json" else _ndjson(sent)
    resp = _post(client, project, body, content_type)
    assert resp.status_code == 202, resp.text
    ids = {row["external_id"]: row["id"] for row in resp.json()["items"]}
    assert sorted(ids) == sorted(awkward)
    for one in sent:
        view = client.get(
            f"/v1/projects/{project['id']}/items/{ids[one['external_id']]}",
            headers=auth(project["producer_key"]),
        ).json()
        assert view["external_id"] == one["external_id"]
        assert view["payload"] == one["payload"]
        assert view["provenance"] == one["provenance"]
        assert view["predictions"][0]["probs"] == [1 / 3, 1 / 3, 1 / 3]


def test_repeats_within_and_across_requests_are_duplicates(client, project, runtime):
    first = ingest(client, project, [item("a", GOOD), item("b"), item("a", [1.0, 0.0, 0.0])])
    assert (first["accepted"], first["duplicates"]) == (2, 1)
    ids = by_external_id(first)
    # Every entry is answered, in order; the repeat carries the stored id.
    assert [i["external_id"] for i in first["items"]] == ["a", "b", "a"]
    assert first["items"][0]["id"] == first["items"][2]["id"]

    second = ingest(client, project, [item("b"), item("c"), item("a")])
    assert (second["accepted"], second["duplicates"]) == (1, 2)
    assert by_external_id(second)["a"] == ids["a"]
    assert by_external_id(second)["b"] == ids["b"]

    # NDJSON repeats count the same way.
    third = _post(
        client, project, _ndjson([item("c"), item("d"), item("d")]), "application/x-ndjson"
    ).json()
    assert (third["accepted"], third["duplicates"]) == (1, 2)

    listed = list_all(client, project)
    assert sorted(i["external_id"] for i in listed) == ["a", "b", "c", "d"]
    assert count_rows(runtime, project["id"]) == (4, 1)
    # The first version of a repeated item is the one kept.
    view = client.get(
        f"/v1/projects/{project['id']}/items/{ids['a']}", headers=auth(project["producer_key"])
    ).json()
    assert view["predictions"][0]["probs"] == GOOD


def test_a_batch_of_only_duplicates_is_still_202(client, project, jobs):
    ingest(client, project, [item("a")])
    again = ingest(client, project, [item("a")])
    assert (again["accepted"], again["duplicates"]) == (0, 1)


def test_one_bad_item_rejects_the_whole_batch(client, project, runtime):
    items = [
        confident_item("ok-1"),
        item("bad-probs", [0.5, 0.5]),
        ordinary_item("ok-2"),
        {"external_id": "", "payload": {}},
        hard_item("ok-3"),
        {"external_id": "no-payload"},
    ]
    body = ingest(client, project, items, expect=422)
    assert body["status_code"] == 422
    assert "3 of 6" in body["detail"]
    assert "nothing was stored" in body["detail"]
    grouped = problems_by_index(body)
    assert set(grouped) == {1, 3, 5}
    assert [p["field"] for p in grouped[1]] == ["predictions[0].probs"]
    assert "has 2 entries" in grouped[1][0]["message"]
    assert [p["field"] for p in grouped[3]] == ["external_id"]
    assert [p["field"] for p in grouped[5]] == ["payload"]
    assert count_rows(runtime, project["id"]) == (0, 0)
    assert list_all(client, project) == []


def test_every_problem_of_an_item_is_listed(client, project):
    bad = {
        "external_id": 5,
        "payload": "text",
        "predictions": [{"model": "", "model_version": "1", "probs": GOOD, "temp": 1}],
        "provenance": {"source": 3},
    }
    body = ingest(client, project, [bad], expect=422)
    fields = {p["field"] for p in body["extra"]}
    assert fields == {
        "external_id",
        "payload",
        "predictions[0].model",
        "predictions[0].temp",
        "provenance.source",
    }
    for p in body["extra"]:
        assert p["index"] == 0


def test_malformed_json_is_400(client, project, runtime):
    resp = _post(client, project, '{"items": [', "application/json")
    assert resp.status_code == 400, resp.text
    assert "not valid JSON" in resp.json()["detail"]
    assert count_rows(runtime, project["id"]) == (0, 0)


@pytest.mark.parametrize(
    "body",
    [{"things": []}, {"items": {"a": 1}}, [1, 2], {"items": [], "extra": 1}, {"items": []}],
)
def test_wrong_top_level_shape_is_422(client, project, body):
    resp = _post(client, project, json.dumps(body), "application/json")
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"]


def test_malformed_ndjson_line_is_422_naming_the_line(client, project, runtime):
    content = json.dumps(item("a")) + "\n" + '{"external_id": "b", "payload": {' + "\n"
    content += json.dumps(item("c")) + "\n" + "not json\n"
    resp = _post(client, project, content, "application/x-ndjson")
    assert resp.status_code == 422, resp.text
    problems = resp.json()["extra"]
    assert [p["index"] for p in problems] == [1, 3]
    assert "line 2" in problems[0]["message"]
    assert "line 4" in problems[1]["message"]
    assert count_rows(runtime, project["id"]) == (0, 0)


def test_ndjson_line_that_is_not_an_object_is_422(client, project):
    resp = _post(client, project, json.dumps(item("a")) + "\n[1, 2]\n", "application/x-ndjson")
    assert resp.status_code == 422
    (problem,) = resp.json()["extra"]
    assert problem["index"] == 1
    assert "object" in problem["message"]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"external_id": 12, "payload": {}}, "external_id"),
        ({"external_id": None, "payload": {}}, "external_id"),
        ({"external_id": "x" * 201, "payload": {}}, "external_id"),
        ({"external_id": "a", "payload": [1]}, "payload"),
        ({"external_id": "a", "payload": "text"}, "payload"),
        ({"external_id": "a", "payload": {}, "predictions": {"m": 1}}, "predictions"),
        ({"external_id": "a", "payload": {}, "predictions": ["p"]}, "predictions[0]"),
        ({"external_id": "a", "payload": {}, "provenance": "web"}, "provenance"),
        ({"external_id": "a", "payload": {}, "provenance": {"trace_id": 1}}, "provenance.trace_id"),
        (
            {
                "external_id": "a",
                "payload": {},
                "predictions": [{"model": "m", "model_version": 1, "probs": GOOD}],
            },
            "predictions[0].model_version",
        ),
        (
            {
                "external_id": "a",
                "payload": {},
                "predictions": [{"model": "m", "model_version": "1", "probs": ["0.2", 0.5, 0.3]}],
            },
            "predictions[0].probs",
        ),
        (
            {
                "external_id": "a",
                "payload": {},
                "predictions": [{"model": "m", "model_version": "1", "probs": [True, 0, 0]}],
            },
            "predictions[0].probs",
        ),
        (
            {
                "external_id": "a",
                "payload": {},
                "predictions": [
                    {"model": "m", "model_version": "1", "probs": GOOD},
                    {"model": "m", "model_version": "1", "probs": GOOD},
                ],
            },
            "predictions[1].model",
        ),
        ("just a string", ""),
    ],
)
def test_wrong_types_are_422_naming_the_field(client, project, runtime, bad, field):
    body = ingest(client, project, [item("fine"), bad], expect=422)
    assert [(p["index"], p["field"]) for p in body["extra"]] == [(1, field)]
    assert count_rows(runtime, project["id"]) == (0, 0)


@pytest.mark.parametrize(
    ("probs", "words"),
    [
        ([0.5, 0.5], "has 2 entries"),
        ([0.25, 0.25, 0.25, 0.25], "has 4 entries"),
        ([1.2, -0.2, 0.0], ">= 0"),
        ([1e308, 1e308, 0.0], "sum"),
        ([1.7e308, -1.7e308, 1.0], ">= 0"),
        ([0.2, 0.5, 0.301], "sum to 1"),
        ([0.2, 0.5, 0.299], "sum to 1"),
        ([0.0, 0.0, 0.0], "sum to 1"),
        ([], "has 0 entries"),
    ],
)
def test_bad_probabilities_are_422(client, project, runtime, probs, words):
    body = ingest(client, project, [item("a", GOOD, probs)], expect=422)
    (problem,) = body["extra"]
    assert problem["field"] == "predictions[1].probs"
    assert words in problem["message"]
    assert count_rows(runtime, project["id"]) == (0, 0)


@pytest.mark.parametrize("number", ["1e400", "-1e400", "NaN", "Infinity"])
def test_non_finite_numbers_are_rejected(client, project, runtime, number):
    # JSON cannot express NaN or infinity; overflowing literals and the JavaScript spellings
    # are refused without storing anything.
    body = json.dumps({"items": [item("a", [0.5, 0.5, 0.0])]}).replace("0.0]", f"{number}]")
    assert number in body
    resp = _post(client, project, body, "application/json")
    assert resp.status_code in (400, 422), resp.text
    assert resp.json()["detail"]
    assert count_rows(runtime, project["id"]) == (0, 0)


@pytest.mark.parametrize("probs", [[0.2, 0.5, 0.3000001], [0.2, 0.5, 0.2999999], [1, 0, 0]])
def test_probabilities_within_tolerance_are_accepted(client, project, probs):
    body = ingest(client, project, [item("a", probs)])
    assert body["accepted"] == 1


@pytest.mark.parametrize("field", ["is_gold", "status", "tier", "id", "priority"])
def test_unknown_item_fields_are_422(client, project, runtime, field):
    body = ingest(client, project, [item("a", **{field: True})], expect=422)
    (problem,) = body["extra"]
    assert problem["field"] == field
    assert "unknown field" in problem["message"]
    assert count_rows(runtime, project["id"]) == (0, 0)


def test_unknown_project_is_404(client, admin, project):
    resp = client.post("/v1/projects/nope/items", json={"items": [item("a")]}, headers=admin)
    assert resp.status_code == 404
    resp = client.post(
        "/v1/projects/nope/items",
        json={"items": [item("a")]},
        headers=auth(project["producer_key"]),
    )
    assert resp.status_code == 404


def test_body_over_the_limit_is_413_naming_it(client, project, runtime):
    limit = runtime.settings.limits.max_body_bytes
    assert limit == 2 * 1024 * 1024
    # Many small items, each under the payload limit, together over the body limit.
    items = [item(f"i{n}", payload={"text": "x" * 10_000}) for n in range(220)]
    content = json.dumps({"items": items})
    assert len(content) > limit
    resp = _post(client, project, content, "application/json")
    assert resp.status_code == 413, resp.text[:300]
    body = resp.json()
    assert body["status_code"] == 413
    assert str(limit) in body["detail"]
    assert count_rows(runtime, project["id"]) == (0, 0)


def test_ndjson_body_over_the_limit_is_413(client, project, runtime):
    limit = runtime.settings.limits.max_body_bytes
    content = _ndjson(item(f"i{n}", payload={"text": "x" * 10_000}) for n in range(220))
    resp = _post(client, project, content, "application/x-ndjson")
    assert resp.status_code == 413
    assert str(limit) in resp.json()["detail"]
    assert count_rows(runtime, project["id"]) == (0, 0)


def test_too_many_items_in_one_request_is_413_naming_the_limit(client, project, runtime):
    limit = runtime.settings.limits.max_items_per_request
    assert limit == 20_000
    lines = "".join(f'{{"external_id":"i{n}","payload":{{}}}}\n' for n in range(limit + 1))
    resp = _post(client, project, lines, "application/x-ndjson")
    assert resp.status_code == 413, resp.text[:300]
    assert "20000" in resp.json()["detail"]
    assert count_rows(runtime, project["id"]) == (0, 0)


def test_payload_over_the_limit_is_413_and_nothing_is_stored(client, project, runtime):
    limit = runtime.settings.limits.max_payload_bytes
    assert limit == 16 * 1024
    items = [item("small"), item("big", payload={"text": "x" * limit}), item("small-2")]
    body = ingest(client, project, items, expect=413)
    assert str(limit) in body["detail"]
    assert "item 1" in body["detail"]
    assert count_rows(runtime, project["id"]) == (0, 0)


def test_payload_just_under_the_limit_is_accepted(client, project, runtime):
    limit = runtime.settings.limits.max_payload_bytes
    payload = {"t": "x" * (limit - len('{"t":""}'))}
    assert len(json.dumps(payload, separators=(",", ":"))) == limit
    assert ingest(client, project, [item("a", payload=payload)])["accepted"] == 1


@pytest.mark.parametrize(
    "content_type", ["text/plain", "text/csv", "application/xml", "multipart/form-data; boundary=x"]
)
def test_unsupported_content_type_is_415(client, project, runtime, content_type):
    resp = _post(client, project, json.dumps({"items": [item("a")]}), content_type)
    assert resp.status_code == 415, resp.text
    assert "application/x-ndjson" in resp.json()["detail"]
    assert count_rows(runtime, project["id"]) == (0, 0)


def test_ingest_is_audited(client, project, runtime):
    from tests.integration.helpers import audit_events

    body = ingest(client, project, [item("a"), item("a"), item("b")])
    (event,) = audit_events(runtime, project["id"], "items.ingested")
    assert event.object_id == body["batch_id"]
    assert event.actor_role == "producer"
    assert event.detail == {"accepted": 2, "duplicates": 1}


def test_concurrent_overlapping_ingests_store_each_item_once(client, project, runtime):
    # Producers retrying the same batch in another order, at the same time: no request fails
    # (e.g. on a database deadlock), every item is stored once and all agree on its id.
    def send(batch):
        return client.post(
            f"/v1/projects/{project['id']}/items",
            json={"items": batch},
            headers=auth(project["producer_key"]),
        )

    for attempt in range(2):
        forward = [item(f"r{attempt}-{n:04d}") for n in range(2000)]
        batches = [forward, forward[::-1], forward[1000:] + forward[:1000], forward[::-1]]
        with ThreadPoolExecutor(len(batches)) as pool:
            responses = list(pool.map(send, batches))
        assert [r.status_code for r in responses] == [202] * len(batches), [
            r.text[:200] for r in responses
        ]
        bodies = [r.json() for r in responses]
        assert sum(b["accepted"] for b in bodies) == len(forward)
        assert sum(b["duplicates"] for b in bodies) == len(forward) * (len(batches) - 1)
        ids = [by_external_id(b) for b in bodies]
        assert all(i == ids[0] for i in ids)
    assert count_rows(runtime, project["id"]) == (4000, 0)
