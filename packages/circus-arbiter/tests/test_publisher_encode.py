"""The publisher's event encoder writes json.dumps's text, whatever the payload."""

from __future__ import annotations

import json
import math
import random
from typing import Any

from circus.arbiter._publisher import encode


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, default=str).encode()


def test_process_event_payloads_are_json_dumps_text() -> None:
    rnd = random.Random(19)
    values: list[Any] = [0, -15, 2**70, None, 1e-300, 1e300, 0.1, -0.0, 1733400000.123456]
    for _ in range(2000):
        payload = {
            key: rnd.choice(values + [rnd.uniform(-1e12, 1e12), rnd.randrange(-(2**40), 2**40)])
            for key in rnd.sample(
                ["process_pid", "time", "exit_code", "process_id"], k=rnd.randint(0, 4)
            )
        }
        assert encode(payload) == _dumps(payload), payload
        assert json.loads(encode(payload)) == payload


def test_anything_else_goes_through_json_dumps() -> None:
    odd: list[dict[str, Any]] = [
        {"process_pid": True},  # a bool is not an int here: json writes true
        {"time": math.nan},
        {"time": math.inf},
        {"time": -math.inf},
        {"process_pid": 1, "reason": 'quote " and \\ backslash'},
        {'a"b': 1},
        {"process_pid": 3, "time": 1.0, "extra": [1, 2]},
        {"process_pid": object()},  # default=str
        {"exit_code": 1.5, "process_pid": "12"},
    ]
    for payload in odd:
        assert encode(payload) == _dumps(payload), payload
