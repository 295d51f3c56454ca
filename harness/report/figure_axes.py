"""Axis settings every chart shares."""

from __future__ import annotations

# Plotly labels a log axis's minor ticks with bare digits ("2", "5" meaning 2,000, 5,000 ms);
# a 1-2-5 series spelled out reads at a glance. Ticks outside the drawn range are not shown.
LOG_TICKS_MS = [mantissa * 10 ** exponent for exponent in range(7) for mantissa in (1, 2, 5)]
LOG_AXIS = {"type": "log", "tickvals": LOG_TICKS_MS,
            "ticktext": [f"{tick:,}" for tick in LOG_TICKS_MS]}
