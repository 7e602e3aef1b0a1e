"""The targets, the price and usage of every settlement, the sides and configurations, the
baseline's two statements.
"""

from __future__ import annotations

RATIO_TARGET = 0.40
CREDIT = 1_000_000
MODEL = "mock-echo"
# 10 credits per million input tokens, 5 cached, 30 output (ModelPrice, per million tokens).
PRICE = {
    "input_per_million": 10 * CREDIT,
    "cached_input_per_million": 5 * CREDIT,
    "output_per_million": 30 * CREDIT,
}
# What every benchmark run used: 1,000 uncached + 200 cached input, 300 output tokens.
USAGE = {MODEL: {"input_tokens": 1200, "cached_input_tokens": 200, "output_tokens": 300}}
CONFIGS = ("spread", "contended")
SIDES = ("baseline", "agentdeck")
BREAKDOWN = ("no_publish", "own_statements", "service_sql")
HOLDING = ("agentdeck", *BREAKDOWN)  # the sides that hold for an AgentRun per settlement

HOLD_SQL = "UPDATE user_credits SET reserved = reserved + %s WHERE user_id = %s AND balance - reserved >= %s"
CAPTURE_SQL = (
    "UPDATE user_credits SET balance = balance - %s, reserved = reserved - %s"
    " WHERE user_id = %s AND reserved >= %s"
)
