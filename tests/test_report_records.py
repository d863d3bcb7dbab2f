"""What a report records of its attempt beyond the result: the token split, an unknown
cost and the tool calls, validated where they enter and signed only where given."""

import hashlib
from typing import Any

import pytest
from pydantic import ValidationError

from goalkeeper import signing
from goalkeeper.limits import MAX_TOOL_CALLS
from goalkeeper.models import AgentReport

DIGEST = hashlib.sha256(b'{"q":"weather"}').hexdigest()


def call(**fields: Any) -> dict[str, Any]:
    return {
        "tool": "search",
        "args_digest": DIGEST,
        "duration_ms": 120,
        "outcome": "success",
        "error": None,
    } | fields


def report(**fields: Any) -> AgentReport:
    base: dict[str, Any] = {
        "agent_id": "writer",
        "assignment_id": "a1",
        "outcome": "completed",
        "result": "done",
        "tokens_used": 30,
        "cost_usd": 0.002,
    }
    return AgentReport(**(base | fields))


def test_a_report_without_the_new_fields_signs_the_content_it_always_did() -> None:
    expected = (
        b'{"agent_id":"writer","assignment_id":"a1","cost_usd":0.002,"error":null,'
        b'"goal_id":"g","kind":"report","outcome":"completed","result_digest":"'
        + signing.digest("done").encode()
        + b'","task_id":"t","tokens_used":30}'
    )
    assert signing.report_content("g", "t", report()) == expected
    # Defaults given explicitly sign the same too.
    assert signing.report_content("g", "t", report(cost_known=True, tool_calls=[])) == expected


def test_tampering_with_the_tool_calls_or_the_split_breaks_the_signature() -> None:
    private, public = signing.new_keys()
    sent = report(input_tokens=20, output_tokens=10, tool_calls=[call()])
    signature = signing.sign(private, signing.report_content("g", "t", sent))
    assert signing.verify(public, signing.report_content("g", "t", sent), signature)
    for changed in (
        report(input_tokens=20, output_tokens=10, tool_calls=[call(outcome="failed")]),
        report(input_tokens=20, output_tokens=10, tool_calls=[]),
        report(input_tokens=20, output_tokens=10, tool_calls=[call(), call()]),
        report(input_tokens=10, output_tokens=20, tool_calls=[call()]),
        report(
            input_tokens=20, output_tokens=10, tool_calls=[call()], cost_known=False, cost_usd=0
        ),
    ):
        assert not signing.verify(public, signing.report_content("g", "t", changed), signature)


def test_a_split_with_no_total_is_counted_and_a_total_must_match_it() -> None:
    assert report(tokens_used=0, input_tokens=7, output_tokens=5).tokens_used == 12
    assert report(tokens_used=12, input_tokens=7, output_tokens=5).tokens_used == 12
    with pytest.raises(ValidationError, match="tokens_used 30 is not input_tokens"):
        report(input_tokens=7, output_tokens=5)
    with pytest.raises(ValidationError, match="input_tokens 31 is more than tokens_used 30"):
        report(input_tokens=31)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"input_tokens": -1}, "input_tokens"),
        ({"output_tokens": "5"}, "output_tokens"),
        ({"tool_calls": [call()] * (MAX_TOOL_CALLS + 1)}, "at most 100 items"),
        ({"tool_calls": [call(args_digest="ABC")]}, "args_digest"),
        ({"tool_calls": [call(args_digest=DIGEST.upper())]}, "args_digest"),
        ({"tool_calls": [call(tool="x" * 201)]}, "tool"),
        ({"tool_calls": [call(tool="")]}, "tool"),
        ({"tool_calls": [call(error="e" * 501)]}, "error"),
        ({"tool_calls": [call(outcome="maybe")]}, "outcome"),
        ({"tool_calls": [call(duration_ms=-3)]}, "duration_ms"),
        ({"tool_calls": [call(arguments={"q": "secret"})]}, "arguments"),
        ({"cost_known": False}, "cost_known false: expected 0"),
        ({"cost_known": "no"}, "cost_known"),
    ],
)
def test_a_malformed_record_is_refused_naming_it(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        report(**fields)


def test_the_largest_report_fits_in_a_temporal_payload() -> None:
    biggest = report(
        result="r" * (128 * 1024 - 2),
        error="e" * 4000,
        tool_calls=[call(tool="t" * 200, error="e" * 500, duration_ms=604_800_000)]
        * MAX_TOOL_CALLS,
        signature="s" * 200,
    )
    assert len(biggest.model_dump_json()) < 256 * 1024
