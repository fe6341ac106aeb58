"""The fast ingest path accepts exactly the requests the checking path accepts, with the same
items, and leaves everything else to the checking path."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.errors import ClientError
from router.items.ingest import IngestItem, _parse_checked, _parse_valid, parse_items_body
from router.projects.label_schema import LabelSchema

SCHEMA = LabelSchema(kind="categorical", labels=("cat", "dog", "bird"))
LIMITS = {"max_payload_bytes": 400, "max_items": 8}


def _committee(probs: list[list[float]]) -> list[dict[str, Any]]:
    return [{"model": f"m{i}", "model_version": "v1", "probs": p} for i, p in enumerate(probs)]


_VALID_PROBS = [[0.2, 0.3, 0.5], [1, 0, 0], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3], [0, 0.5, 0.5]]
_ODD_PROBS = [
    [0.2, 0.3],  # wrong length
    [0.5, 0.5, 0.1],  # sums to 1.1
    [-0.1, 0.6, 0.5],  # negative
    [1e400, 0, 0],  # infinite once decoded
    [True, 0, 0],  # a boolean
    ["0.5", 0.5, 0],  # a string
    [0.5, 0.5, 1e-7],  # sum within the tolerance
    [0.5, 0.5, 1.0000001e-6],  # sum just past the tolerance
    None,
    {},
]
_ODD_STRINGS = ["  ", "", "x" * 201, 7, None]
_ODD_ITEMS = [1, "item", None, []]


def _rare(draw: st.DrawFn, odd: list[Any], normal: Any) -> Any:
    """Mostly `normal`; one time in eight one of the `odd` values (or the key left out)."""
    if draw(st.integers(0, 7)) == 0:
        return draw(st.sampled_from([*odd, _MISSING]))
    return normal


_MISSING = object()


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not _MISSING:
        target[key] = value


@st.composite
def _prediction(draw: st.DrawFn) -> Any:
    pred: dict[str, Any] = {}
    # Three names for up to three members: a model named twice is common.
    _put(pred, "model", _rare(draw, _ODD_STRINGS, draw(st.sampled_from(["m0", "m1", "m2"]))))
    _put(pred, "model_version", _rare(draw, [*_ODD_STRINGS, "é" * 3, "x" * 200], "v1"))
    _put(pred, "probs", _rare(draw, _ODD_PROBS, draw(st.sampled_from(_VALID_PROBS))))
    _put(pred, "extra", _rare(draw, [1], _MISSING))
    return pred


@st.composite
def _item(draw: st.DrawFn) -> Any:
    shape = _rare(draw, _ODD_ITEMS, "object")
    if shape != "object":
        return None if shape is _MISSING else shape
    item: dict[str, Any] = {}
    _put(item, "external_id", _rare(draw, _ODD_STRINGS, draw(st.text(min_size=1, max_size=8))))
    _put(item, "payload", _rare(draw, [None, [], "text", {"x": "y" * 500}], {"text": "hi"}))
    n = draw(st.integers(0, 3))
    committee = [draw(_prediction()) for _ in range(n)]
    _put(item, "predictions", _rare(draw, [None, {}, "x", [1]], committee))
    provenance = {"source": "s", "trace_id": draw(st.text(max_size=3)), "k": [1]}
    _put(item, "provenance", _rare(draw, [None, {"source": 3}, "p"], provenance))
    _put(item, "is_gold", _rare(draw, [True], _MISSING))
    return item


def _bodies(items: list[Any]) -> list[tuple[bytes, bool]]:
    ndjson = b"\n".join(msgspec.json.encode(it) for it in items) + b"\n"
    return [(msgspec.json.encode({"items": items}), False), (ndjson, True)]


def _checked(body: bytes, ndjson: bool) -> list[IngestItem] | ClientError:
    try:
        return _parse_checked(body, ndjson=ndjson, schema=SCHEMA, **LIMITS)
    except ClientError as exc:
        return exc


@settings(max_examples=600, deadline=None)
@given(st.lists(_item(), min_size=0, max_size=4))
def test_the_fast_path_agrees_with_the_checking_path(items: list[Any]) -> None:
    for body, ndjson in _bodies(items):
        fast = _parse_valid(body, ndjson=ndjson, schema=SCHEMA, **LIMITS)
        checked = _checked(body, ndjson)
        if fast is not None:
            assert fast == checked
        elif isinstance(checked, list):
            # Only a sum within a hair of the tolerance is left to the exact check.
            assert any(p.probs == [0.5, 0.5, 1e-7] for item in checked for p in item.predictions), (
                checked
            )


@settings(max_examples=150, deadline=None)
@given(st.lists(_item(), min_size=0, max_size=4))
def test_parse_items_body_is_the_checking_path_whenever_that_fails(items: list[Any]) -> None:
    for body, ndjson in _bodies(items):
        checked = _checked(body, ndjson)
        if isinstance(checked, ClientError):
            with pytest.raises(type(checked)) as caught:
                parse_items_body(body, ndjson=ndjson, schema=SCHEMA, **LIMITS)
            assert str(caught.value) == str(checked)
            assert caught.value.extra == checked.extra


def test_a_valid_batch_takes_the_fast_path_with_its_payload_encoded_once() -> None:
    items = [
        {
            "external_id": f"e{i}",
            "payload": {"text": f"t{i}", "n": i},
            "predictions": _committee([[0.2, 0.3, 0.5], [1, 0, 0]]),
            "provenance": {"source": "unit", "trace_id": f"tr{i}"},
        }
        for i in range(5)
    ]
    for body, ndjson in _bodies(items):
        fast = _parse_valid(body, ndjson=ndjson, schema=SCHEMA, **LIMITS)
        assert fast is not None
        assert [it.external_id for it in fast] == [f"e{i}" for i in range(5)]
        assert fast[3].payload_json == b'{"text":"t3","n":3}'
        assert fast[0].predictions[1].probs == [1.0, 0.0, 0.0]
        assert all(isinstance(v, float) for v in fast[0].predictions[1].probs)
        assert fast == _checked(body, ndjson)


def test_too_many_items_is_left_to_the_checking_path() -> None:
    items = [{"external_id": f"e{i}", "payload": {}} for i in range(LIMITS["max_items"] + 1)]
    for body, ndjson in _bodies(items):
        assert _parse_valid(body, ndjson=ndjson, schema=SCHEMA, **LIMITS) is None


def _base() -> list[dict[str, Any]]:
    return [
        {
            "external_id": f"e{i}",
            "payload": {"text": f"t{i}"},
            "predictions": _committee([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]),
            "provenance": {"source": "s", "trace_id": f"t{i}"},
        }
        for i in range(3)
    ]


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def corrupt(items: list[dict[str, Any]]) -> None:
        target: Any = items
        for key in path[:-1]:
            target = target[key]
        if value is _MISSING:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return corrupt


_ONE_FAULT = {
    "external_id blank": _set((1, "external_id"), "   "),
    "external_id too long": _set((1, "external_id"), "x" * 201),
    "external_id a number": _set((1, "external_id"), 5),
    "external_id missing": _set((1, "external_id"), _MISSING),
    "payload a list": _set((1, "payload"), [1]),
    "payload too large": _set((1, "payload"), {"x": "y" * 500}),
    "unknown item field": _set((1, "status"), "done"),
    "predictions an object": _set((1, "predictions"), {}),
    "committee too large": _set((1, "predictions"), _committee([[0.2, 0.3, 0.5]] * 65)),
    "model named twice": _set((1, "predictions", 1, "model"), "m0"),
    "model blank": _set((1, "predictions", 1, "model"), " "),
    "model_version blank": _set((1, "predictions", 1, "model_version"), ""),
    "model_version too long": _set((1, "predictions", 1, "model_version"), "v" * 201),
    "unknown prediction field": _set((1, "predictions", 1, "weight"), 1),
    "probs missing": _set((1, "predictions", 1, "probs"), _MISSING),
    "probs short": _set((1, "predictions", 1, "probs"), [0.5, 0.5]),
    "probs long": _set((1, "predictions", 1, "probs"), [0.5, 0.5, 0, 0]),
    "probs negative": _set((1, "predictions", 1, "probs"), [-0.1, 0.6, 0.5]),
    "probs infinite": _set((1, "predictions", 1, "probs"), [1e400, 0, 0]),
    "probs boolean": _set((1, "predictions", 1, "probs"), [True, False, False]),
    "probs sum over": _set((1, "predictions", 1, "probs"), [0.5, 0.5, 1.0000001e-6]),
    "provenance a string": _set((1, "provenance"), "p"),
    "provenance.source a number": _set((1, "provenance", "source"), 3),
    "provenance.trace_id a list": _set((1, "provenance", "trace_id"), ["t"]),
    "provenance.assistant_model a number": _set((1, "provenance", "assistant_model"), 1),
}


@pytest.mark.parametrize("fault", sorted(_ONE_FAULT))
def test_one_fault_anywhere_sends_the_request_to_the_checking_path(fault: str) -> None:
    items = _base()
    for body, ndjson in _bodies(items):
        assert _parse_valid(body, ndjson=ndjson, schema=SCHEMA, **LIMITS) is not None
    _ONE_FAULT[fault](items)
    for body, ndjson in _bodies(items):
        assert _parse_valid(body, ndjson=ndjson, schema=SCHEMA, **LIMITS) is None
        with pytest.raises(ClientError):
            _parse_checked(body, ndjson=ndjson, schema=SCHEMA, **LIMITS)
