"""Webhook signatures and retry back-off: known values, worked out independently."""

from __future__ import annotations

import random

import pytest

from router.webhooks.signing import backoff_s, sign, verify

SECRET = "whsec_test"
BODY = b'{"id":"e1"}'
# printf '1700000000.{"id":"e1"}' | openssl dgst -sha256 -hmac whsec_test
MAC = "6a85cb117c993612a34c72b4cfb5a16baed25a80d26e298ce0e6671320fd07c8"
HEADER = f"t=1700000000,v1={MAC}"


def test_signature_is_hmac_sha256_over_timestamp_dot_body():
    assert sign(SECRET, 1_700_000_000, BODY) == HEADER


def test_a_valid_signature_verifies_within_the_tolerance():
    assert verify(SECRET, HEADER, BODY, now=1_700_000_000)
    assert verify(SECRET, HEADER, BODY, now=1_700_000_300)
    assert verify(SECRET, HEADER, BODY, now=1_699_999_700)


@pytest.mark.parametrize(
    ("secret", "header", "body", "now"),
    [
        ("whsec_other", HEADER, BODY, 1_700_000_000),  # wrong secret
        (SECRET, HEADER, b'{"id":"e2"}', 1_700_000_000),  # tampered body
        (SECRET, HEADER, BODY, 1_700_000_301),  # too old: a replay
        (SECRET, HEADER.replace("t=1700000000", "t=1700000001"), BODY, 1_700_000_000),
        (SECRET, f"v1={MAC}", BODY, 1_700_000_000),  # no timestamp
        (SECRET, "t=1700000000", BODY, 1_700_000_000),  # no MAC
        (SECRET, "garbage", BODY, 1_700_000_000),
        (SECRET, "", BODY, 1_700_000_000),
    ],
    ids=["secret", "body", "stale", "timestamp", "no-t", "no-v1", "garbage", "empty"],
)
def test_anything_else_does_not_verify(secret, header, body, now):
    assert not verify(secret, header, body, now=now)


def test_any_of_several_v1_entries_may_match():
    header = f"t=1700000000,v1={'0' * 64},v1={MAC}"
    assert verify(SECRET, header, BODY, now=1_700_000_000)


class _Extreme(random.Random):
    """uniform() at one end of its range."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 5.0, 10.0), (2, 10.0, 20.0), (3, 20.0, 40.0), (6, 160.0, 320.0), (9, 1280.0, 2560.0)],
)
def test_backoff_doubles_with_equal_jitter(attempt, low, high):
    # base 10 s: the schedule is 10, 20, 40, ... and the wait is drawn from its upper half.
    for rng, expected in ((_Extreme(False), low), (_Extreme(True), high)):
        assert backoff_s(attempt, base_s=10.0, max_s=3600.0, rng=rng) == expected


def test_backoff_is_capped_even_for_huge_attempt_numbers():
    for attempt in (10, 11, 100, 10_000):
        assert backoff_s(attempt, base_s=10.0, max_s=3600.0, rng=_Extreme(True)) == 3600.0
        assert backoff_s(attempt, base_s=10.0, max_s=3600.0, rng=_Extreme(False)) == 1800.0


def test_backoff_draws_stay_in_range():
    rng = random.Random(7)
    draws = [backoff_s(4, base_s=10.0, max_s=3600.0, rng=rng) for _ in range(1000)]
    assert min(draws) >= 40.0
    assert max(draws) <= 80.0
    assert len(set(draws)) > 900, "jittered, not one fixed wait"


def test_delivery_settings_come_from_the_environment(monkeypatch):
    from router.settings import WebhookSettings

    assert WebhookSettings.from_env() == WebhookSettings()
    monkeypatch.setenv("ROUTER_WEBHOOK_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("ROUTER_WEBHOOK_BACKOFF_S", "0.5")
    monkeypatch.setenv("ROUTER_WEBHOOK_TIMEOUT_S", "2")
    got = WebhookSettings.from_env()
    assert (got.max_attempts, got.backoff_s, got.timeout_s) == (3, 0.5, 2.0)
    monkeypatch.setenv("ROUTER_WEBHOOK_MAX_ATTEMPTS", "0")
    with pytest.raises(ValueError, match="ROUTER_WEBHOOK_MAX_ATTEMPTS"):
        WebhookSettings.from_env()
    monkeypatch.setenv("ROUTER_WEBHOOK_MAX_ATTEMPTS", "many")
    with pytest.raises(ValueError, match="whole number"):
        WebhookSettings.from_env()
