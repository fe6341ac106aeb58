"""committee_arrays: an item's stored committee JSON as the array scoring reads."""

from __future__ import annotations

import json

import numpy as np

from router.routing.service import committee_arrays


def _member(model: str, version: str, probs: list[float]) -> dict[str, object]:
    return {"model": model, "model_version": version, "probs": probs}


def test_members_are_ordered_by_model_and_version_whatever_the_order_sent() -> None:
    sent = [
        _member("zeta", "1", [0.1, 0.9]),
        _member("alpha", "2", [0.3, 0.7]),
        _member("alpha", "1", [0.6, 0.4]),
    ]
    forward, backward = committee_arrays([json.dumps(sent), json.dumps(sent[::-1])])
    expected = np.array([[0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
    assert forward is not None
    assert backward is not None
    np.testing.assert_array_equal(forward, expected)
    np.testing.assert_array_equal(backward, expected)


def test_items_without_predictions_have_none_and_keep_their_place() -> None:
    one = json.dumps([_member("m", "1", [1.0, 0.0])])
    arrays = committee_arrays([None, one, "[]", "null"])
    assert [a is None for a in arrays] == [True, False, True, True]
    assert arrays[1] is not None
    np.testing.assert_array_equal(arrays[1], [[1.0, 0.0]])
    assert committee_arrays([]) == []
