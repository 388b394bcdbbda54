"""The DeadLetters port's contract, on InMemoryDeadLetters and on SqsDeadLetters (moto): a
malformed record is kept whole with its reason, as JSON (what JSON cannot hold, as its str)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.contract.conftest import DeadLettersUnderTest


def test_a_dead_letter_keeps_the_reason_and_the_whole_record(dead_letters: DeadLettersUnderTest) -> None:
    # GIVEN a malformed stream record, with DynamoDB-typed values inside
    body: dict[str, Any] = {
        "reason": "version: not a number",
        "doc_id": "d1",
        "record": {
            "eventName": "MODIFY",
            "dynamodb": {"NewImage": {"version": {"S": "x"}}},
            "size": Decimal("12"),
        },
    }
    # WHEN it is dead-lettered
    dead_letters.dead_letters.send(body)
    # THEN it reads back whole; the Decimal as its string
    [got] = dead_letters.received()
    assert got == {**body, "record": {**body["record"], "size": "12"}}


def test_each_dead_letter_is_kept(dead_letters: DeadLettersUnderTest) -> None:
    for n in range(3):
        dead_letters.dead_letters.send({"reason": f"r{n}", "doc_id": None, "record": {}})
    assert sorted(b["reason"] for b in dead_letters.received()) == ["r0", "r1", "r2"]
