"""Agent guardrails: config validation, and each kind tripping (or not) in a real SDK run."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import agents
import pytest
from agents import (
    Agent,
    InputGuardrailTripwireTriggered,
    OutputGuardrailTripwireTriggered,
    Runner,
    RunResult,
)
from agents.testing import ScriptedModel, assistant_message
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from agentdeck.agents.runtime.guardrails import (
    MODERATION_CATEGORIES,
    MODERATION_MODEL,
    build_guardrails,
    latest_user_text,
    output_redaction_enabled,
    redact_input,
    redact_output,
    tripped_guardrail_info,
    validate_guardrails,
)
from agentdeck.core.exceptions import ApplicationError

agents.set_tracing_disabled(True)

REPLY = "Happy to help."


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def make_agent(
    config: dict[str, Any],
    *,
    reply: str = REPLY,
    provider_kind: str = "mock",
    client_factory: Callable[[], Any] | None = None,
    output_type: Any = None,
) -> tuple[Agent[Any], ScriptedModel]:
    saved = validate_guardrails(config, provider_kind=provider_kind)
    input_guardrails, output_guardrails = build_guardrails(
        saved, moderation_client_factory=client_factory
    )
    model = ScriptedModel([[assistant_message(reply)]])
    agent: Agent[Any] = Agent(
        name="guarded",
        model=model,
        input_guardrails=input_guardrails,
        output_guardrails=output_guardrails,
        output_type=output_type,
    )
    return agent, model


def run(agent: Agent[Any], user_input: str | list[Any] = "hello") -> RunResult:
    return asyncio.run(Runner.run(agent, user_input))


def input_config(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"input": list(entries), "output": []}


def output_config(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"input": [], "output": list(entries)}


def assert_input_trips(agent: Agent[Any], model: ScriptedModel, user_input: Any) -> dict[str, Any]:
    with pytest.raises(InputGuardrailTripwireTriggered) as exc_info:
        run(agent, user_input)
    # Input guardrails block: the model was never asked.
    assert model.calls == ()
    info = tripped_guardrail_info(exc_info.value)
    assert info["kind"] == "input"
    assert isinstance(info["detail"], str)
    assert info["detail"]
    return info


def assert_output_trips(agent: Agent[Any], user_input: Any = "hello") -> dict[str, Any]:
    with pytest.raises(OutputGuardrailTripwireTriggered) as exc_info:
        run(agent, user_input)
    info = tripped_guardrail_info(exc_info.value)
    assert info["kind"] == "output"
    assert isinstance(info["detail"], str)
    assert info["detail"]
    return info


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def test_validate_normalises_a_full_config() -> None:
    config = {
        "input": [
            {"type": "blocklist", "words": ["  Project Falcon ", "acme"]},
            {"type": "regex", "name": "no-sql", "patterns": [r"\bDROP\s+TABLE\b"], "flags": "si"},
            {"type": "max_length", "max_chars": 2000},
            {"type": "pii", "detect": ["phone", "email", "phone"], "action": "redact"},
            {"type": "pii", "name": "cards", "detect": ["card"]},
            {"type": "moderation", "categories": ["self_harm", "harassment/threatening"]},
        ],
        "output": [
            {"type": "json_schema", "schema": {"type": "object", "required": ["answer"]}},
            {"type": "pii"},
        ],
    }
    original = copy.deepcopy(config)

    saved = validate_guardrails(config, provider_kind="openai")

    assert config == original  # not modified in place
    assert saved == {
        "input": [
            {
                "type": "blocklist",
                "name": "blocklist",
                "words": ["Project Falcon", "acme"],
                "case_sensitive": False,
            },
            {"type": "regex", "name": "no-sql", "patterns": [r"\bDROP\s+TABLE\b"], "flags": "is"},
            {"type": "max_length", "name": "max_length", "max_chars": 2000},
            {"type": "pii", "name": "pii", "detect": ["email", "phone"], "action": "redact"},
            {"type": "pii", "name": "cards", "detect": ["card"], "action": "block"},
            {
                "type": "moderation",
                "name": "moderation",
                "categories": ["self-harm", "harassment/threatening"],
            },
        ],
        "output": [
            {
                "type": "json_schema",
                "name": "json_schema",
                "schema": {"type": "object", "required": ["answer"]},
            },
            {"type": "pii", "name": "pii", "detect": ["email", "phone", "card"], "action": "block"},
        ],
    }
    # Saving it again is a no-op.
    assert validate_guardrails(saved, provider_kind="openai") == saved


@pytest.mark.parametrize("config", [None, {}, {"input": []}, {"output": None}])
def test_validate_accepts_empty_configs(config: Any) -> None:
    assert validate_guardrails(config, provider_kind="mock") == {"input": [], "output": []}


def _blocklist(**extra: Any) -> dict[str, Any]:
    return {"type": "blocklist", "words": ["x"], **extra}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (["blocklist"], "guardrails must be an object"),
        ({"inputs": []}, "guardrails: unknown key 'inputs'"),
        ({"input": {"type": "blocklist"}}, "guardrails.input must be a list"),
        ({"input": ["blocklist"]}, 'input[0]: each guardrail must be an object with a "type"'),
        ({"input": [{"words": ["x"]}]}, 'input[0]: missing "type"'),
        ({"input": [_blocklist(), {"type": "foo"}]}, "input[1]: unknown type 'foo'"),
        ({"output": [{"type": 3}]}, "output[0]: unknown type 3"),
        ({"input": [_blocklist(mode="strict")]}, "input[0]: unknown field 'mode'"),
        ({"input": [_blocklist(name="")]}, 'input[0]: "name" must be a non-empty string'),
        ({"input": [_blocklist(name="n" * 65)]}, "at most 64 characters"),
        ({"input": [_blocklist(), _blocklist()]}, "input[1]: duplicate name 'blocklist'"),
        ({"input": [_blocklist()] * 21}, "at most 20 guardrails"),
        # blocklist
        ({"input": [{"type": "blocklist"}]}, "input[0]: missing field 'words'"),
        ({"input": [{"type": "blocklist", "words": []}]}, "'words' must be a non-empty list"),
        ({"input": [{"type": "blocklist", "words": "x"}]}, "'words' must be a non-empty list"),
        ({"input": [{"type": "blocklist", "words": ["x", " "]}]}, "'words[1]' must be"),
        ({"input": [_blocklist(case_sensitive="yes")]}, "'case_sensitive' must be true or false"),
        # regex
        ({"input": [{"type": "regex"}]}, "input[0]: missing field 'patterns'"),
        ({"input": [{"type": "regex", "patterns": ["([a-z"]}]}, "not a valid regular expression"),
        ({"input": [{"type": "regex", "patterns": ["ok", ""]}]}, "'patterns[1]' must be"),
        ({"input": [{"type": "regex", "patterns": ["a" * 501]}]}, "longer than 500 characters"),
        ({"input": [{"type": "regex", "patterns": ["x"] * 51}]}, "at most 50 entries"),
        ({"input": [{"type": "regex", "patterns": ["(a+)+$"]}]}, "exponential time"),
        ({"input": [{"type": "regex", "patterns": [r"(\w+\s?)*x"]}]}, "exponential time"),
        ({"input": [{"type": "regex", "patterns": ["x"], "flags": "g"}]}, "'flags' must be"),
        # max_length
        ({"input": [{"type": "max_length"}]}, "input[0]: missing field 'max_chars'"),
        ({"input": [{"type": "max_length", "max_chars": 0}]}, "'max_chars' must be an integer"),
        ({"input": [{"type": "max_length", "max_chars": "9"}]}, "'max_chars' must be an integer"),
        ({"input": [{"type": "max_length", "max_chars": True}]}, "'max_chars' must be an integer"),
        # pii
        ({"input": [{"type": "pii", "detect": ["ssn"]}]}, "'detect' has unknown kind 'ssn'"),
        ({"input": [{"type": "pii", "detect": []}]}, "'detect' must be a non-empty list"),
        ({"input": [{"type": "pii", "action": "mask"}]}, "'action' must be one of block, redact"),
        # json_schema
        (
            {"input": [{"type": "json_schema", "schema": {"type": "object"}}]},
            "input[0]: type 'json_schema' checks the final output; it is allowed on the output side only",
        ),
        ({"output": [{"type": "json_schema"}]}, "output[0]: missing field 'schema'"),
        ({"output": [{"type": "json_schema", "schema": "{}"}]}, "'schema' must be a JSON Schema"),
        (
            {"output": [{"type": "json_schema", "schema": {"type": "nope"}}]},
            "'schema' is not valid JSON Schema at type",
        ),
        (
            {
                "output": [
                    {"type": "json_schema", "schema": {"properties": {"a": {"minLength": -1}}}}
                ]
            },
            "'schema' is not valid JSON Schema at properties/a/minLength",
        ),
        (
            {"output": [{"type": "json_schema", "schema": {"$schema": 7}}]},
            "'schema' is not valid JSON Schema at $schema",
        ),
        # moderation
        ({"input": [{"type": "moderation", "categories": ["rudeness"]}]}, "unknown category"),
        ({"input": [{"type": "moderation", "categories": "hate"}]}, "'categories' must be a list"),
    ],
)
def test_validate_rejects(config: Any, message: str) -> None:
    with pytest.raises(ApplicationError) as exc_info:
        validate_guardrails(config, provider_kind="openai")
    assert exc_info.value.code == "invalid_guardrails"
    assert exc_info.value.status == 400
    assert message in exc_info.value.detail


@pytest.mark.parametrize("provider_kind", ["mock", "openai_compatible", "litellm"])
def test_moderation_needs_an_openai_provider(provider_kind: str) -> None:
    config = {"output": [{"type": "pii"}, {"type": "moderation"}]}
    with pytest.raises(ApplicationError) as exc_info:
        validate_guardrails(config, provider_kind=provider_kind)
    assert exc_info.value.code == "invalid_guardrails"
    assert exc_info.value.detail.startswith("output[1]: type 'moderation'")
    assert "kind 'openai'" in exc_info.value.detail
    assert f"kind '{provider_kind}'" in exc_info.value.detail

    assert validate_guardrails(config, provider_kind="openai")["output"][1] == {
        "type": "moderation",
        "name": "moderation",
        "categories": [],
    }


def test_build_refuses_an_invalid_config() -> None:
    with pytest.raises(ApplicationError):
        build_guardrails({"input": [{"type": "foo"}]})


def test_build_accepts_an_empty_config() -> None:
    assert build_guardrails({}) == ([], [])


# ---------------------------------------------------------------------------------------------
# Text-based kinds, through a real run
# ---------------------------------------------------------------------------------------------


def test_blocklist_trips_on_input_without_echoing_the_word() -> None:
    agent, model = make_agent(
        input_config(
            {"type": "blocklist", "name": "no-codenames", "words": ["acme", "Project Falcon"]}
        )
    )
    info = assert_input_trips(agent, model, "What is the status of project\n  FALCON?")
    assert info["guardrail"] == "no-codenames"
    assert "#2" in info["detail"]
    assert "falcon" not in info["detail"].lower()


@pytest.mark.parametrize("text", ["Acme!", "ask ACME about it", "(acme)"])
def test_blocklist_matches_whole_words_in_any_case(text: str) -> None:
    agent, model = make_agent(input_config({"type": "blocklist", "words": ["acme"]}))
    assert assert_input_trips(agent, model, text)["guardrail"] == "blocklist"


@pytest.mark.parametrize("text", ["acmes are fine", "my-acmeish plan", "nothing here"])
def test_blocklist_passes_other_words(text: str) -> None:
    agent, _ = make_agent(input_config({"type": "blocklist", "words": ["acme"]}))
    assert run(agent, text).final_output == REPLY


def test_blocklist_case_sensitive() -> None:
    config = input_config({"type": "blocklist", "words": ["ACME"], "case_sensitive": True})
    agent, _ = make_agent(config)
    assert run(agent, "acme is lower case").final_output == REPLY
    agent, model = make_agent(config)
    assert_input_trips(agent, model, "ACME is upper case")


def test_blocklist_on_output() -> None:
    config = output_config({"type": "blocklist", "name": "no-leaks", "words": ["internal"]})
    agent, _ = make_agent(config, reply="This is an INTERNAL document.")
    assert assert_output_trips(agent)["guardrail"] == "no-leaks"
    agent, _ = make_agent(config, reply="This is an international document.")
    assert run(agent).final_output == "This is an international document."


def test_regex_trips_and_passes() -> None:
    config = input_config(
        {
            "type": "regex",
            "name": "no-sql",
            "patterns": ["^nothing$", r"drop\s+table"],
            "flags": "i",
        }
    )
    agent, model = make_agent(config)
    info = assert_input_trips(agent, model, "please DROP   TABLE users;")
    assert info["guardrail"] == "no-sql"
    assert "pattern #2" in info["detail"]
    assert "TABLE" not in info["detail"]

    agent, _ = make_agent(config)
    assert run(agent, "please drop the tables").final_output == REPLY


def test_regex_flags_matter() -> None:
    config = input_config({"type": "regex", "patterns": [r"secret"]})
    agent, _ = make_agent(config)
    assert run(agent, "SECRET").final_output == REPLY


def test_regex_refuses_to_scan_oversized_text() -> None:
    agent, model = make_agent(input_config({"type": "regex", "patterns": ["never-there"]}))
    info = assert_input_trips(agent, model, "a" * 50_001)
    assert "50001 characters" in info["detail"]

    agent, _ = make_agent(input_config({"type": "regex", "patterns": ["never-there"]}))
    assert run(agent, "a" * 50_000).final_output == REPLY


def test_regex_on_output() -> None:
    config = output_config({"type": "regex", "patterns": [r"\b\d{3}-\d{2}-\d{4}\b"]})
    agent, _ = make_agent(config, reply="Your SSN is 123-45-6789.")
    assert assert_output_trips(agent)["guardrail"] == "regex"


def test_max_length_input() -> None:
    config = input_config({"type": "max_length", "name": "short", "max_chars": 10})
    agent, model = make_agent(config)
    info = assert_input_trips(agent, model, "x" * 11)
    assert info == {
        "guardrail": "short",
        "kind": "input",
        "detail": "input is 11 characters; the limit is 10",
    }
    agent, _ = make_agent(config)
    assert run(agent, "x" * 10).final_output == REPLY


def test_max_length_output() -> None:
    config = output_config({"type": "max_length", "max_chars": 5})
    agent, _ = make_agent(config, reply="far too long")
    assert assert_output_trips(agent)["detail"] == "output is 12 characters; the limit is 5"


def test_input_guardrails_check_only_the_newest_user_turn() -> None:
    history_with_email = [
        {"role": "user", "content": "Mail me at jane.doe@example.com"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Noted.", "annotations": []}],
        },
    ]
    config = input_config({"type": "pii", "detect": ["email"]})

    agent, _ = make_agent(config)
    clean = [*history_with_email, {"role": "user", "content": "Thanks!"}]
    assert run(agent, clean).final_output == REPLY

    agent, model = make_agent(config)
    tripping = [
        *history_with_email,
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Also copy"},
                {"type": "input_text", "text": "bob@example.org please"},
            ],
        },
    ]
    info = assert_input_trips(agent, model, tripping)
    assert info["detail"] == "found email b***@example.org"


def test_latest_user_text() -> None:
    assert latest_user_text("hi") == "hi"
    assert latest_user_text([]) == ""
    items: list[Any] = [
        {"role": "user", "content": "old"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "one"},
        {"role": "system", "content": "be nice"},
        {
            "role": "user",
            "content": [{"type": "input_text", "text": "two"}, {"type": "input_image"}],
        },
    ]
    assert latest_user_text(items) == "one\ntwo"
    assert latest_user_text([*items, {"type": "function_call_output", "output": "x"}]) == ""


# ---------------------------------------------------------------------------------------------
# PII
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("write to jane.doe+news@mail.example.co.uk today", "found email j***@mail.example.co.uk"),
        ("call +1 415-555-0132", "found phone ending 32"),
        ("call (415) 555 0132 after 5", "found phone ending 32"),
        ("London office: +44 20 7946 0958.", "found phone ending 58"),
        ("card 4111 1111 1111 1111 exp 12/29", "found card ending 1111"),
        ("card 4111-1111-1111-1111", "found card ending 1111"),
    ],
)
def test_pii_block_trips(text: str, detail: str) -> None:
    agent, model = make_agent(input_config({"type": "pii", "name": "no-pii"}))
    info = assert_input_trips(agent, model, text)
    assert info == {"guardrail": "no-pii", "kind": "input", "detail": detail}


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails the Luhn check",
        "the meeting is on 2026-11-24",
        "my order number is 12345",
        "ship it 24.11.2026 to 10.0.0.12",
        "it costs 1 000 000 or 3.14159265",
        "reference 4155550132",
    ],
)
def test_pii_block_passes_non_pii(text: str) -> None:
    agent, _ = make_agent(input_config({"type": "pii"}))
    assert run(agent, text).final_output == REPLY


def test_pii_detect_limits_the_kinds() -> None:
    config = input_config({"type": "pii", "detect": ["card"]})
    agent, _ = make_agent(config)
    assert run(agent, "mail jane@example.com or call +1 415-555-0132").final_output == REPLY
    agent, model = make_agent(config)
    assert_input_trips(agent, model, "4111111111111111")


def test_pii_block_on_output() -> None:
    agent, _ = make_agent(
        output_config({"type": "pii", "detect": ["email"]}), reply="Contact ops@example.com."
    )
    info = assert_output_trips(agent)
    assert info["guardrail"] == "pii"
    assert info["detail"] == "found email o***@example.com"


def test_pii_detail_counts_many_matches() -> None:
    agent, model = make_agent(input_config({"type": "pii", "detect": ["email"]}))
    text = " ".join(f"user{i}@example.com" for i in range(5))
    info = assert_input_trips(agent, model, text)
    assert info["detail"].endswith("and 2 more")


def test_redact_mode_builds_no_guardrail_and_never_trips() -> None:
    config = {
        "input": [{"type": "pii", "action": "redact"}],
        "output": [{"type": "pii", "action": "redact"}],
    }
    assert build_guardrails(validate_guardrails(config, provider_kind="mock")) == ([], [])
    agent, _ = make_agent(config, reply="Call +1 415-555-0132")
    result = run(agent, "my card is 4111 1111 1111 1111")
    assert result.final_output == "Call +1 415-555-0132"  # redact_output is the executor's job


def test_redact_input_string() -> None:
    config = {"input": [{"type": "pii", "action": "redact"}]}
    text = (
        "I'm jane@example.com, +1 415-555-0132 or (415) 555 0132; card 4111 1111 1111 1111, "
        "not 4111 1111 1111 1112; order 12345 on 2026-11-24."
    )
    assert redact_input(config, text) == (
        "I'm [redacted email], [redacted phone] or [redacted phone]; card [redacted card], "
        "not 4111 1111 1111 1112; order 12345 on 2026-11-24."
    )


def test_redact_input_only_redacts_the_configured_kinds() -> None:
    config = {
        "input": [
            {"type": "pii", "name": "mask-mail", "action": "redact", "detect": ["email"]},
            {"type": "pii", "name": "block-cards", "detect": ["card"]},  # block: not redaction
        ],
        "output": [{"type": "pii", "action": "redact", "detect": ["phone"]}],
    }
    assert (
        redact_input(config, "a@b.io, +44 20 7946 0958, 4111111111111111")
        == "[redacted email], +44 20 7946 0958, 4111111111111111"
    )


def test_redact_input_items_returns_copies() -> None:
    config = {"input": [{"type": "pii", "action": "redact", "detect": ["email", "phone"]}]}
    items: list[Any] = [
        {"role": "system", "content": "Support line +1 415-555-0100"},
        {"role": "user", "content": "I am jane@example.com"},
        {"role": "assistant", "content": "Hello jane@example.com"},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "call +44 20 7946 0958"},
                {"type": "input_image", "image_url": "https://example.com/a.png"},
            ],
        },
    ]
    original = copy.deepcopy(items)

    redacted = redact_input(config, items)

    assert items == original  # untouched
    assert isinstance(redacted, list)
    assert redacted is not items
    assert all(new is not old for new, old in zip(redacted, items, strict=True))
    assert redacted[3]["content"] is not items[3]["content"]
    assert redacted == [
        {"role": "system", "content": "Support line +1 415-555-0100"},
        {"role": "user", "content": "I am [redacted email]"},
        {"role": "assistant", "content": "Hello jane@example.com"},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "call [redacted phone]"},
                {"type": "input_image", "image_url": "https://example.com/a.png"},
            ],
        },
    ]


def test_redact_input_without_redaction_config() -> None:
    items = [{"role": "user", "content": "jane@example.com"}]
    result = redact_input({}, items)
    assert result == items
    assert result is not items
    assert redact_input({"input": [{"type": "pii"}]}, "jane@example.com") == "jane@example.com"


def test_redacted_input_passes_a_block_guardrail_in_a_run() -> None:
    config = {
        "input": [
            {"type": "pii", "name": "mask", "action": "redact", "detect": ["email"]},
            {"type": "pii", "name": "block", "detect": ["email"]},
        ]
    }
    agent, model = make_agent(config)
    user_input = redact_input(config, [{"role": "user", "content": "I'm jane@example.com"}])
    assert run(agent, user_input).final_output == REPLY
    assert model.first_call is not None
    assert "jane@example.com" not in str(model.first_call.input)
    assert "[redacted email]" in str(model.first_call.input)


def test_redact_output() -> None:
    config = {"output": [{"type": "pii", "action": "redact", "detect": ["card", "phone"]}]}
    assert output_redaction_enabled(config) is True
    assert (
        redact_output(config, "Card 4111 1111 1111 1111, phone (415) 555 0132, mail a@b.io")
        == "Card [redacted card], phone [redacted phone], mail a@b.io"
    )
    for no_redaction in [
        {},
        {"output": [{"type": "pii"}]},
        {"input": [{"type": "pii", "action": "redact"}]},
    ]:
        assert output_redaction_enabled(no_redaction) is False
        assert redact_output(no_redaction, "a@b.io") == "a@b.io"


# ---------------------------------------------------------------------------------------------
# json_schema
# ---------------------------------------------------------------------------------------------

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "score": {"type": "integer"}},
    "required": ["answer"],
}


def test_json_schema_passes_valid_json_text() -> None:
    config = output_config({"type": "json_schema", "schema": ANSWER_SCHEMA})
    agent, _ = make_agent(config, reply='{"answer": "yes", "score": 3}')
    assert run(agent).final_output == '{"answer": "yes", "score": 3}'


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        ('{"score": 3}', "output does not match the schema at (root): 'answer' is a required"),
        ('{"answer": "y", "score": "x"}', "output does not match the schema at score:"),
        ("Sure! Here you go.", "output is not valid JSON"),
    ],
)
def test_json_schema_trips(reply: str, detail: str) -> None:
    config = output_config({"type": "json_schema", "name": "shape", "schema": ANSWER_SCHEMA})
    agent, _ = make_agent(config, reply=reply)
    info = assert_output_trips(agent)
    assert info["guardrail"] == "shape"
    assert info["detail"].startswith(detail)


def test_json_schema_that_cannot_be_applied_trips() -> None:
    config = output_config({"type": "json_schema", "schema": {"$ref": "#/$defs/missing"}})
    agent, _ = make_agent(config, reply="{}")
    assert assert_output_trips(agent)["detail"].startswith("the schema could not be applied")


class Answer(TypedDict):
    answer: str
    score: int


def test_json_schema_checks_structured_output() -> None:
    schema = {
        **ANSWER_SCHEMA,
        "properties": {**ANSWER_SCHEMA["properties"], "score": {"maximum": 5}},
    }
    config = output_config({"type": "json_schema", "schema": schema})
    agent, _ = make_agent(config, reply='{"answer": "yes", "score": 3}', output_type=Answer)
    assert run(agent).final_output == {"answer": "yes", "score": 3}

    agent, _ = make_agent(config, reply='{"answer": "yes", "score": 9}', output_type=Answer)
    assert "at score: 9 is greater than the maximum of 5" in assert_output_trips(agent)["detail"]


# ---------------------------------------------------------------------------------------------
# moderation
# ---------------------------------------------------------------------------------------------


class FakeCategories:
    """Shaped like ``openai.types.moderation.Categories``: attributes plus ``model_dump``."""

    def __init__(self, *flagged: str) -> None:
        for category in MODERATION_CATEGORIES:
            setattr(self, _attribute(category), category in flagged)

    def model_dump(self, *, by_alias: bool = False) -> dict[str, bool]:
        return {
            (category if by_alias else _attribute(category)): getattr(self, _attribute(category))
            for category in MODERATION_CATEGORIES
        }


def _attribute(category: str) -> str:
    return category.replace("/", "_").replace("-", "_")


class FakeModerations:
    def __init__(self, flagged: bool, categories: Any) -> None:
        self.flagged = flagged
        self.categories = categories
        self.calls: list[dict[str, Any]] = []

    async def create(self, *, model: str, input: str) -> Any:
        self.calls.append({"model": model, "input": input})
        result = SimpleNamespace(flagged=self.flagged, categories=self.categories)
        return SimpleNamespace(id="modr-1", model=model, results=[result])


class FakeOpenAI:
    def __init__(self, *flagged: str, categories: Any = None) -> None:
        self.moderations = FakeModerations(
            bool(flagged), categories if categories is not None else FakeCategories(*flagged)
        )


class Factory:
    def __init__(self, client: FakeOpenAI) -> None:
        self.client = client
        self.calls = 0

    def __call__(self) -> FakeOpenAI:
        self.calls += 1
        return self.client


def test_moderation_trips_on_flagged_input() -> None:
    factory = Factory(FakeOpenAI("harassment", "violence"))
    agent, model = make_agent(
        input_config({"type": "moderation", "name": "mod"}),
        provider_kind="openai",
        client_factory=factory,
    )
    assert factory.calls == 0  # lazily: nothing is built until a check runs

    info = assert_input_trips(agent, model, "something nasty")

    assert info == {
        "guardrail": "mod",
        "kind": "input",
        "detail": "flagged for harassment, violence",
    }
    assert factory.calls == 1
    assert factory.client.moderations.calls == [
        {"model": MODERATION_MODEL, "input": "something nasty"}
    ]


def test_moderation_passes_unflagged_input() -> None:
    client = FakeOpenAI()
    agent, _ = make_agent(
        input_config({"type": "moderation"}), provider_kind="openai", client_factory=lambda: client
    )
    assert run(agent, "a kind question").final_output == REPLY
    assert client.moderations.calls == [{"model": MODERATION_MODEL, "input": "a kind question"}]


def test_moderation_categories_filter() -> None:
    config = input_config({"type": "moderation", "categories": ["self-harm", "hate"]})
    agent, _ = make_agent(
        config, provider_kind="openai", client_factory=lambda: FakeOpenAI("violence")
    )
    assert run(agent, "flagged, but not for a listed category").final_output == REPLY

    agent, model = make_agent(
        config, provider_kind="openai", client_factory=lambda: FakeOpenAI("violence", "self-harm")
    )
    assert assert_input_trips(agent, model, "x")["detail"] == "flagged for self-harm"


def test_moderation_reads_categories_by_attribute() -> None:
    # A categories object without model_dump: only its attributes.
    client = FakeOpenAI("self-harm/intent", categories=SimpleNamespace(self_harm_intent=True))
    agent, model = make_agent(
        input_config({"type": "moderation", "categories": ["self-harm/intent"]}),
        provider_kind="openai",
        client_factory=lambda: client,
    )
    assert assert_input_trips(agent, model, "x")["detail"] == "flagged for self-harm/intent"


def test_moderation_on_output() -> None:
    client = FakeOpenAI("hate")
    agent, _ = make_agent(
        output_config({"type": "moderation"}),
        reply="an awful answer",
        provider_kind="openai",
        client_factory=lambda: client,
    )
    info = assert_output_trips(agent)
    assert info == {"guardrail": "moderation", "kind": "output", "detail": "flagged for hate"}
    assert client.moderations.calls == [{"model": MODERATION_MODEL, "input": "an awful answer"}]


def test_moderation_without_a_client_factory_fails_when_used() -> None:
    agent, model = make_agent(input_config({"type": "moderation"}), provider_kind="openai")
    with pytest.raises(ApplicationError, match="moderation guardrail needs an OpenAI client"):
        run(agent, "hello")
    assert model.calls == ()


# ---------------------------------------------------------------------------------------------
# tripped_guardrail_info
# ---------------------------------------------------------------------------------------------


def test_tripped_guardrail_info_refuses_other_exceptions() -> None:
    with pytest.raises(TypeError):
        tripped_guardrail_info(ValueError("nope"))


def test_several_guardrails_report_the_one_that_tripped() -> None:
    config = {
        "input": [
            {"type": "max_length", "max_chars": 100},
            {"type": "blocklist", "name": "words", "words": ["forbidden"]},
        ],
        "output": [{"type": "pii", "name": "out-pii"}],
    }
    agent, model = make_agent(config)
    assert assert_input_trips(agent, model, "a forbidden word")["guardrail"] == "words"

    agent, _ = make_agent(config, reply="Card: 4111 1111 1111 1111")
    assert assert_output_trips(agent, "fine")["guardrail"] == "out-pii"
