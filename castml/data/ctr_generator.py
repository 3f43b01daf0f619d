"""Seeded click-through data with known effects (the `ctr` project's generator).

Impressions of 24 items at 3 positions over 14 days; a stream is one (item_id, position)
slot, as in the Open Bandit data. Each impression is clicked with probability
sigmoid(logit), where logit is the sum of these effects (log-odds units):

| effect | size | who can see it |
|---|---|---|
| intercept | `BASE_LOGIT` = -3.4 | - |
| position bias | 0 / -0.6 / -1.1 at position 1 / 2 / 3 | any model (current row) |
| time of day | +0.5 cos(2 pi (hour - 21) / 24): evening peak | any model (current row) |
| user group x item category | `AFFINITY` table, -0.6 .. +0.9 | any model (an interaction) |
| item | N(0, 0.2) per item, fixed by the seed | any model (current row) |
| fatigue | -0.45 per earlier impression of the slot in the last 20 min (at most 4) | sequence |
| click burst | +1.5 when one of the slot's 3 previous impressions was clicked | sequence |
| device, noise_1..3 | none: pure noise | - |

The sequence effects need the stream's recent rows (their times and clicks), which the
current row does not carry; that is what the `lstm_seq` family adds over LightGBM and
logistic regression on the current row. The overall click rate lands near 2 %.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pandas as pd

from castml.errors import SpecError

ITEMS = 24
POSITIONS = 3
DAYS = 14
START = np.datetime64("2026-01-05T00:00:00", "s")
CATEGORIES = ("shoes", "tops", "bags", "hats", "denim", "watches")
GROUPS = ("g1", "g2", "g3", "g4")
DEVICES = ("mobile", "desktop", "tablet")
BASE_LOGIT = -3.4
POSITION_EFFECT = (0.0, -0.6, -1.1)
HOUR_AMPLITUDE = 0.5
PEAK_HOUR = 21
# AFFINITY[group][category]: log-odds of a user group for an item category
AFFINITY = np.array(
    [
        [0.9, 0.0, -0.3, 0.2, -0.6, 0.0],
        [-0.4, 0.8, 0.3, -0.6, 0.0, 0.1],
        [0.0, -0.5, 0.9, 0.0, 0.4, -0.6],
        [-0.6, 0.2, -0.4, 0.7, 0.0, 0.8],
    ]
)
ITEM_SD = 0.2
FATIGUE_PER_IMPRESSION = -0.45
FATIGUE_WINDOW_S = 20 * 60
FATIGUE_CAP = 4
BURST = 1.5
BURST_LOOKBACK = 3


def generate(n: int = 60_000, seed: int = 0) -> pd.DataFrame:
    """`n` impressions in time order with the `click` label (see the module's table)."""
    if n < 1:
        raise SpecError("the ctr generator needs n >= 1 rows")
    rng = np.random.default_rng(seed)
    # Arrival times: more traffic in the evening (the same cosine as the click effect).
    hours = np.arange(DAYS * 24)
    weight = 1.0 + 0.6 * np.cos(2 * np.pi * ((hours % 24) - PEAK_HOUR) / 24)
    slot = rng.choice(hours, size=n, p=weight / weight.sum())
    seconds = np.sort(slot * 3600 + rng.uniform(0, 3600, size=n))
    hour = ((seconds // 3600) % 24).astype(np.int64)

    popularity = 1.0 / np.arange(1, ITEMS + 1) ** 0.8
    item = rng.permutation(ITEMS)[rng.choice(ITEMS, size=n, p=popularity / popularity.sum())]
    item_category = rng.integers(0, len(CATEGORIES), size=ITEMS)
    item_effect = rng.normal(0, ITEM_SD, size=ITEMS)
    position = rng.integers(0, POSITIONS, size=n)
    group = rng.choice(len(GROUPS), size=n, p=[0.4, 0.3, 0.2, 0.1])
    device = rng.choice(len(DEVICES), size=n, p=[0.6, 0.3, 0.1])
    category = item_category[item]

    static = (
        BASE_LOGIT
        + np.asarray(POSITION_EFFECT)[position]
        + HOUR_AMPLITUDE * np.cos(2 * np.pi * (hour - PEAK_HOUR) / 24)
        + AFFINITY[group, category]
        + item_effect[item]
    )
    click, _, _ = _simulate(static, item * POSITIONS + position, seconds, rng)
    return pd.DataFrame(
        {
            "timestamp": (START + np.round(seconds).astype("timedelta64[s]")).astype(
                "datetime64[ns]"
            ),
            "item_id": np.char.add("item_", np.char.zfill(item.astype(str), 2)),
            "item_category": np.asarray(CATEGORIES)[category],
            "position": position + 1,
            "user_group": np.asarray(GROUPS)[group],
            "device": np.asarray(DEVICES)[device],
            "hour": hour,
            "noise_1": rng.normal(0, 1, size=n),
            "noise_2": rng.uniform(0, 1, size=n),
            "noise_3": rng.normal(5, 2, size=n),
            "click": click,
        }
    )


def _simulate(
    static: np.ndarray, stream: np.ndarray, seconds: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clicks in time order: each depends on its slot's recent impressions and clicks.

    A loop over rows, because each click changes the next rows' probabilities (the
    generator runs once per data set, never on a serving path).
    """
    n = len(static)
    draws = rng.uniform(size=n)
    click = np.zeros(n, dtype=np.int64)
    fatigue = np.zeros(n)
    burst = np.zeros(n)
    recent_times: dict[int, deque[float]] = {}
    recent_clicks: dict[int, deque[int]] = {}
    for row in range(n):
        key = int(stream[row])
        times = recent_times.setdefault(key, deque(maxlen=FATIGUE_CAP))
        clicks = recent_clicks.setdefault(key, deque(maxlen=BURST_LOOKBACK))
        now = float(seconds[row])
        seen = sum(1 for t in times if now - t <= FATIGUE_WINDOW_S)
        fatigue[row] = FATIGUE_PER_IMPRESSION * seen
        burst[row] = BURST if any(clicks) else 0.0
        logit = static[row] + fatigue[row] + burst[row]
        click[row] = int(draws[row] < 1.0 / (1.0 + np.exp(-logit)))
        times.append(now)
        clicks.append(click[row])
    return click, fatigue, burst
