"""``#{calc}`` arithmetic on doubles, as .NET does it."""

from __future__ import annotations

import math


def operate(left: float, operator: str, right: float) -> float | None:
    """``left operator right`` as .NET computes it on doubles (by zero is infinite or NaN);
    None where ``%`` has no answer: operands not whole numbers that fit a long, or by zero."""
    if operator == "+":
        return left + right
    if operator == "-":
        return left - right
    if operator == "*":
        return left * right
    if operator == "/":
        if right == 0:
            if left == 0 or math.isnan(left):
                return math.nan
            return math.copysign(math.inf, left) * math.copysign(1.0, right)
        return left / right
    # % is for whole numbers that fit a long; by zero it has no answer
    if not all(math.isfinite(v) and v == int(v) and -(2**63) <= v < 2**63 for v in (left, right)):
        return None
    whole_left, whole_right = int(left), int(right)
    if whole_right == 0:
        return None
    remainder = abs(whole_left) % abs(whole_right)
    return float(remainder if whole_left >= 0 else -remainder)
