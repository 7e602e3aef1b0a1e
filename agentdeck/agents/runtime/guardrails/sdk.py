"""The guardrail config as the OpenAI Agents SDK's ``InputGuardrail``/``OutputGuardrail``
objects, and the ``guardrail.tripped`` payload read back from the SDK's tripwire exceptions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrail,
    OutputGuardrail,
    RunContextWrapper,
)
from agents.exceptions import (
    InputGuardrailTripwireTriggered,
    OutputGuardrailTripwireTriggered,
    ToolInputGuardrailTripwireTriggered,
    ToolOutputGuardrailTripwireTriggered,
)

from agentdeck.agents.runtime.guardrails.checks import (
    Check,
    LazyClient,
    make_check,
    truncate_detail,
)
from agentdeck.agents.runtime.guardrails.config import SIDES, normalise
from agentdeck.agents.runtime.guardrails.text import latest_user_text


def _output(entry: dict[str, Any], detail: str | None) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(
        output_info={"guardrail": entry["name"], "type": entry["type"], "detail": detail},
        tripwire_triggered=detail is not None,
    )


def _input_guardrail(entry: dict[str, Any], check: Check) -> InputGuardrail[Any]:
    async def guardrail_function(
        context: RunContextWrapper[Any], agent: Agent[Any], input: str | list[Any]
    ) -> GuardrailFunctionOutput:
        return _output(entry, await check(latest_user_text(input)))

    # Blocking: the guardrail finishes before the model is called, so tripping input is never
    # sent to the provider (nor paid for).
    return InputGuardrail(
        guardrail_function=guardrail_function, name=entry["name"], run_in_parallel=False
    )


def _output_guardrail(entry: dict[str, Any], check: Check) -> OutputGuardrail[Any]:
    async def guardrail_function(
        context: RunContextWrapper[Any], agent: Agent[Any], output: Any
    ) -> GuardrailFunctionOutput:
        return _output(entry, await check(output))

    return OutputGuardrail(guardrail_function=guardrail_function, name=entry["name"])


def build_guardrails(
    config: dict[str, Any] | None,
    *,
    moderation_client_factory: Callable[[], Any] | None = None,
) -> tuple[list[InputGuardrail[Any]], list[OutputGuardrail[Any]]]:
    """SDK guardrails for a (saved) guardrail config. ``moderation_client_factory()`` returns an
    ``openai.AsyncOpenAI``-like client; it is called on the first moderation check only.
    Redact-mode ``pii`` entries produce no guardrail: ``redact_input``/``redact_output`` apply
    them."""
    normalised = normalise(config, provider_kind=None)
    client = LazyClient(moderation_client_factory)
    input_guardrails: list[InputGuardrail[Any]] = []
    output_guardrails: list[OutputGuardrail[Any]] = []
    for side in SIDES:
        for entry in normalised[side]:
            if entry["type"] == "pii" and entry["action"] == "redact":
                continue
            check = make_check(entry, side, client)
            if side == "input":
                input_guardrails.append(_input_guardrail(entry, check))
            else:
                output_guardrails.append(_output_guardrail(entry, check))
    return input_guardrails, output_guardrails


def tripped_guardrail_info(exc: BaseException) -> dict[str, Any]:
    """``{"guardrail", "kind", "detail"}`` for a guardrail tripwire exception (the payload of the
    ``guardrail.tripped`` event). ``kind`` is ``input`` or ``output`` (``tool_input`` /
    ``tool_output`` for the SDK's tool guardrails)."""
    if isinstance(exc, InputGuardrailTripwireTriggered):
        kind = "input"
        guardrail: Any = exc.guardrail_result.guardrail
        info = exc.guardrail_result.output.output_info
    elif isinstance(exc, OutputGuardrailTripwireTriggered):
        kind = "output"
        guardrail = exc.guardrail_result.guardrail
        info = exc.guardrail_result.output.output_info
    elif isinstance(exc, ToolInputGuardrailTripwireTriggered):
        kind = "tool_input"
        guardrail = exc.guardrail
        info = exc.output.output_info
    elif isinstance(exc, ToolOutputGuardrailTripwireTriggered):
        kind = "tool_output"
        guardrail = exc.guardrail
        info = exc.output.output_info
    else:
        raise TypeError(f"not a guardrail tripwire exception: {type(exc).__name__}")
    name = guardrail.get_name()
    detail: Any = None
    if isinstance(info, dict):
        name = info.get("guardrail") or name
        detail = info.get("detail")
    elif info is not None:
        detail = truncate_detail(str(info))
    return {"guardrail": name, "kind": kind, "detail": detail}
