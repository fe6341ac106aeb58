"""Parsing and validating an ingest request: all items are checked before anything is stored.

Every problem of every item is collected, so a producer fixes a batch in one round trip.

Two paths give the same items: a fast one for the common case of a batch that is valid
throughout (typed decoding in C, checks over the whole batch at once), and a checking one that
walks every field of every item to list each problem. Any doubt on the fast path (a decoding
error, a failed check, a sum near the tolerance) sends the whole request to the checking path,
which alone decides what is wrong with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from router.errors import ClientError, InvalidInput, PayloadTooLarge
from router.projects.label_schema import LabelSchema

__all__ = [
    "IngestItem",
    "ItemPrediction",
    "committee_column",
    "parse_items_body",
    "validate_predictions",
]

_ITEM_FIELDS = frozenset({"external_id", "payload", "predictions", "provenance"})
_PREDICTION_FIELDS = frozenset({"model", "model_version", "probs"})
_PROVENANCE_STRINGS = ("source", "license", "trace_id", "assistant_model")
_MAX_ID_LEN = 200
_MAX_MODEL_LEN = 200
_SUM_TOLERANCE = 1e-6
_MAX_COMMITTEE = 64


class ItemPrediction(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One committee member's prediction, as sent (and as the fast path decodes it)."""

    model: str
    model_version: str
    probs: list[float]


def committee_column(predictions: list[ItemPrediction]) -> list[dict[str, Any]] | None:
    """What an item's `committee` column stores for these predictions (None for none): the
    Structs' own encoding, as ingest writes them."""
    if not predictions:
        return None
    built: list[dict[str, Any]] = msgspec.to_builtins(predictions)
    return built


@dataclass(frozen=True, slots=True)
class IngestItem:
    external_id: str
    payload: dict[str, Any]
    predictions: list[ItemPrediction]
    provenance: dict[str, Any] | None
    payload_json: bytes
    """The payload as compact JSON (what its size limit is measured on, and what is stored)."""


def parse_items_body(
    body: bytes,
    *,
    ndjson: bool,
    schema: LabelSchema,
    max_payload_bytes: int,
    max_items: int,
) -> list[IngestItem]:
    """Decode and validate a whole request; raise before anything could be stored.

    Raises:
        ClientError: The body is not JSON (or a JSON object with `items`) at all.
        InvalidInput: Any item breaks a rule; `extra` lists index, field and message of each.
        PayloadTooLarge: An item's payload is over the configured limit.
    """
    fast = _parse_valid(
        body,
        ndjson=ndjson,
        schema=schema,
        max_payload_bytes=max_payload_bytes,
        max_items=max_items,
    )
    if fast is not None:
        return fast
    return _parse_checked(
        body,
        ndjson=ndjson,
        schema=schema,
        max_payload_bytes=max_payload_bytes,
        max_items=max_items,
    )


def _parse_checked(
    body: bytes,
    *,
    ndjson: bool,
    schema: LabelSchema,
    max_payload_bytes: int,
    max_items: int,
) -> list[IngestItem]:
    """parse_items_body, walking every field of every item to list each problem."""
    problems: list[dict[str, Any]] = []
    raw_items = _decode_ndjson(body, problems) if ndjson else _decode_json(body)
    if len(raw_items) > max_items:
        msg = (
            f"a request may carry at most {max_items} items, this one has {len(raw_items)}; "
            "split it into several requests"
        )
        raise PayloadTooLarge(msg)
    items: list[IngestItem] = []
    for index, raw in enumerate(raw_items):
        if raw is _UNDECODABLE:
            continue
        item = _validate_item(index, raw, schema, max_payload_bytes, problems)
        if item is not None:
            items.append(item)
    if problems:
        n_bad = len({p["index"] for p in problems})
        msg = (
            f"{n_bad} of {len(raw_items)} items are invalid; nothing was stored. "
            "Fix the items listed in 'extra' and send the request again"
        )
        raise InvalidInput(msg, extra=problems)
    if not items:
        raise InvalidInput("the request has no items; send at least one", extra=[])
    return items


# --------------------------------------------------------------------------------------------
# The fast path: a request whose every item is valid
# --------------------------------------------------------------------------------------------


class _ItemIn(msgspec.Struct, forbid_unknown_fields=True):
    external_id: str
    payload: dict[str, Any]
    predictions: list[ItemPrediction] | None = None
    provenance: dict[str, Any] | None = None


class _BodyIn(msgspec.Struct, forbid_unknown_fields=True):
    items: list[_ItemIn]


_ITEM_DECODER = msgspec.json.Decoder(_ItemIn)
_BODY_DECODER = msgspec.json.Decoder(_BodyIn)
_ENCODER = msgspec.json.Encoder()
# Sums this close to the tolerance are left to the exact (fsum) check of the checking path.
_SUM_MARGIN = 1e-12


def _parse_valid(
    body: bytes,
    *,
    ndjson: bool,
    schema: LabelSchema,
    max_payload_bytes: int,
    max_items: int,
) -> list[IngestItem] | None:
    """The request's items if every one of them is valid, else None (the checking path then
    reports what is wrong); accepts exactly what the checking path accepts, or less."""
    try:
        if ndjson:
            raw = [_ITEM_DECODER.decode(line) for line in body.split(b"\n") if line.strip()]
        else:
            raw = _BODY_DECODER.decode(body).items
    except msgspec.DecodeError:  # also a ValidationError: a field of the wrong type, say
        return None
    if not raw or len(raw) > max_items:
        return None
    k = schema.k
    items: list[IngestItem] = []
    probs: list[list[float]] = []
    for it in raw:
        ext = it.external_id
        if len(ext) > _MAX_ID_LEN or not ext.strip():
            return None
        payload_json = _ENCODER.encode(it.payload)
        if len(payload_json) > max_payload_bytes:
            return None
        predictions = it.predictions or []
        if predictions:
            if len(predictions) > _MAX_COMMITTEE:
                return None
            for p in predictions:
                model, version = p.model, p.model_version
                if (
                    len(p.probs) != k
                    or len(model) > _MAX_MODEL_LEN
                    or len(version) > _MAX_MODEL_LEN
                    or not model.strip()
                    or not version.strip()
                ):
                    return None
                probs.append(p.probs)
            if len({(p.model, p.model_version) for p in predictions}) != len(predictions):
                return None  # a model twice
        provenance = it.provenance
        if provenance is not None:
            for key in _PROVENANCE_STRINGS:
                value = provenance.get(key)
                if value is not None and not isinstance(value, str):
                    return None
        items.append(IngestItem(ext, it.payload, predictions, provenance, payload_json))
    if probs:
        table = np.asarray(probs, dtype=np.float64)  # (predictions, k)
        with np.errstate(over="ignore", invalid="ignore"):
            off = np.abs(table.sum(axis=1) - 1.0)
        if not (np.isfinite(table).all() and (table >= 0).all()):
            return None
        if (off > _SUM_TOLERANCE - _SUM_MARGIN).any():
            return None
    return items


# --------------------------------------------------------------------------------------------
# The checking path: every problem of every item
# --------------------------------------------------------------------------------------------


_UNDECODABLE = object()


def _decode_json(body: bytes) -> list[Any]:
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        msg = (
            f'the body is not valid JSON ({exc}); send {{"items": [...]}} or NDJSON with '
            "Content-Type: application/x-ndjson"
        )
        raise ClientError(msg) from None
    if not isinstance(doc, dict) or "items" not in doc:
        raise InvalidInput(
            'the body must be a JSON object {"items": [ITEM, ...]}',
            extra=[{"index": None, "field": "items", "message": "missing"}],
        )
    extra_keys = sorted(set(doc) - {"items"})
    if extra_keys:
        raise InvalidInput(
            f"unknown top-level field(s): {', '.join(extra_keys)}",
            extra=[{"index": None, "field": k, "message": "unknown field"} for k in extra_keys],
        )
    items = doc["items"]
    if not isinstance(items, list):
        raise InvalidInput(
            "'items' must be a list of items",
            extra=[{"index": None, "field": "items", "message": "must be a list"}],
        )
    return items


def _decode_ndjson(body: bytes, problems: list[dict[str, Any]]) -> list[Any]:
    items: list[Any] = []
    decoder = msgspec.json.Decoder()
    for line_no, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            items.append(decoder.decode(line))
        except msgspec.DecodeError as exc:
            problems.append(
                {
                    "index": len(items),
                    "field": "",
                    "message": f"line {line_no} is not valid JSON: {exc}",
                }
            )
            items.append(_UNDECODABLE)
    return items


def _validate_item(
    index: int,
    raw: Any,
    schema: LabelSchema,
    max_payload_bytes: int,
    problems: list[dict[str, Any]],
) -> IngestItem | None:
    def bad(field: str, message: str) -> None:
        problems.append({"index": index, "field": field, "message": message})

    if not isinstance(raw, dict):
        bad("", f"an item must be a JSON object, got {_json_type(raw)}")
        return None
    n_before = len(problems)
    for name in sorted(set(raw) - _ITEM_FIELDS):
        bad(name, "unknown field; an item has external_id, payload, predictions, provenance")

    external_id = raw.get("external_id")
    if not isinstance(external_id, str) or not external_id.strip():
        bad("external_id", "required: a non-empty string")
    elif len(external_id) > _MAX_ID_LEN:
        bad("external_id", f"at most {_MAX_ID_LEN} characters")

    payload = raw.get("payload")
    payload_json = b""
    if not isinstance(payload, dict):
        bad("payload", f"required: a JSON object, got {_json_type(payload)}")
    else:
        payload_json = _ENCODER.encode(payload)
        size = len(payload_json)
        if size > max_payload_bytes:
            msg = (
                f"item {index}: payload is {size} bytes, over the limit of {max_payload_bytes} "
                "bytes (ROUTER_MAX_PAYLOAD_BYTES); nothing was stored"
            )
            raise PayloadTooLarge(msg, extra=[{"index": index, "field": "payload"}])

    predictions = validate_predictions(raw.get("predictions"), schema, bad)

    provenance = raw.get("provenance")
    if provenance is not None:
        if not isinstance(provenance, dict):
            bad("provenance", f"must be a JSON object, got {_json_type(provenance)}")
        else:
            for key in _PROVENANCE_STRINGS:
                value = provenance.get(key)
                if value is not None and not isinstance(value, str):
                    bad(f"provenance.{key}", f"must be a string, got {_json_type(value)}")

    if len(problems) > n_before:
        return None
    assert isinstance(external_id, str)
    assert isinstance(payload, dict)
    return IngestItem(
        external_id=external_id,
        payload=payload,
        predictions=predictions,
        provenance=provenance,
        payload_json=payload_json,
    )


def validate_predictions(raw: Any, schema: LabelSchema, bad: Any) -> list[ItemPrediction]:
    """A committee's predictions as sent (None: none); every problem goes to `bad(field, msg)`."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        bad("predictions", f"must be a list, got {_json_type(raw)}")
        return []
    if len(raw) > _MAX_COMMITTEE:
        bad("predictions", f"at most {_MAX_COMMITTEE} models per item")
        return []
    out: list[ItemPrediction] = []
    seen: set[tuple[str, str]] = set()
    for m, pred in enumerate(raw):
        where = f"predictions[{m}]"
        if not isinstance(pred, dict):
            bad(where, f"must be an object, got {_json_type(pred)}")
            continue
        for name in sorted(set(pred) - _PREDICTION_FIELDS):
            bad(f"{where}.{name}", "unknown field; a prediction has model, model_version, probs")
        model, version = pred.get("model"), pred.get("model_version")
        ok = True
        for field, value in (("model", model), ("model_version", version)):
            if not isinstance(value, str) or not value.strip():
                bad(f"{where}.{field}", "required: a non-empty string")
                ok = False
            elif len(value) > _MAX_MODEL_LEN:
                bad(f"{where}.{field}", f"at most {_MAX_MODEL_LEN} characters")
                ok = False
        if ok:
            assert isinstance(model, str)
            assert isinstance(version, str)
            if (model, version) in seen:
                bad(f"{where}.model", f"model {model!r} {version!r} appears twice")
                ok = False
            seen.add((model, version))
        probs = _validate_probs(pred.get("probs"), schema, f"{where}.probs", bad)
        if ok and probs is not None:
            out.append(ItemPrediction(model=str(model), model_version=str(version), probs=probs))
    return out


def _validate_probs(raw: Any, schema: LabelSchema, where: str, bad: Any) -> list[float] | None:
    noun = "class" if schema.kind == "categorical" else "level"
    if not isinstance(raw, list):
        bad(where, f"required: a list of {schema.k} probabilities, one per {noun}")
        return None
    if len(raw) != schema.k:
        bad(
            where, f"has {len(raw)} entries; the schema has {schema.k} ({', '.join(schema.labels)})"
        )
        return None
    values: list[float] = []
    for v in raw:
        if isinstance(v, bool) or not isinstance(v, int | float):
            bad(where, f"entries must be numbers, got {_json_type(v)}")
            return None
        f = float(v)
        if not math.isfinite(f) or f < 0:
            bad(where, f"entries must be finite and >= 0, got {v}")
            return None
        values.append(f)
    try:
        total = math.fsum(values)
    except OverflowError:  # finite entries whose sum is past the largest float
        total = math.inf
    if abs(total - 1.0) > _SUM_TOLERANCE:
        bad(where, f"must sum to 1 (within {_SUM_TOLERANCE:g}), sums to {total:.9g}")
        return None
    return values


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
