"""The Open Bandit Dataset (ZOZOTOWN) as a CSV a user would upload.

The PyPI package `obp` 0.4.1 ships samples of it under
`obp/dataset/obd/{random,bts}/{all,men,women}/*.csv` (installed with --no-deps: the file
is read by its path, the package never imported). Each row is one impression: timestamp,
item_id, position, click, propensity_score, four hashed user features, and one
`user-item_affinity_<j>` column per item of the campaign. Those columns name a different
item in each campaign and are almost all zeros, so they are aligned to the impression:
`affinity_shown` (the affinity of the item actually shown), `affinity_sum` and
`affinity_max` over all items.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd

from castml.errors import SpecError

POLICIES = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
AFFINITY_PREFIX = "user-item_affinity_"


def obd_file(policy: str = "random", campaign: str = "all") -> Path:
    """The packaged sample for a behaviour policy and a campaign."""
    if policy not in POLICIES or campaign not in CAMPAIGNS:
        raise SpecError(f"Open Bandit has policies {POLICIES} and campaigns {CAMPAIGNS}")
    spec = find_spec("obp")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SpecError("the Open Bandit data needs the package obp==0.4.1 (--no-deps)")
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset" / "obd"
    path = path / policy / campaign / f"{campaign}.csv"
    if not path.is_file():
        raise SpecError(f"obp has no file {path}")
    return path


def aligned(raw: pd.DataFrame) -> pd.DataFrame:
    """The upload's columns: the impression, user features and the aligned affinities."""
    affinity_columns = sorted(
        (c for c in raw.columns if str(c).startswith(AFFINITY_PREFIX)),
        key=lambda c: int(str(c)[len(AFFINITY_PREFIX) :]),
    )
    affinity = raw[affinity_columns].to_numpy(np.float64)
    item = raw["item_id"].to_numpy(np.int64)
    inside = (item >= 0) & (item < affinity.shape[1])
    shown = np.where(inside, affinity[np.arange(len(raw)), np.clip(item, 0, None)], 0.0)
    users = [c for c in raw.columns if str(c).startswith("user_feature_")]
    out = pd.DataFrame(
        {
            "timestamp": raw["timestamp"].astype(str),
            "item_id": item,
            "position": raw["position"].to_numpy(np.int64),
            **{str(c): raw[c].astype(str) for c in users},
            "affinity_shown": shown,
            "affinity_sum": affinity.sum(axis=1),
            "affinity_max": affinity.max(axis=1),
            "propensity_score": raw["propensity_score"].to_numpy(np.float64),
            "click": raw["click"].to_numpy(np.int64),
        }
    )
    return out


def write_upload(path: Path, samples: tuple[tuple[str, str], ...] = (("random", "all"),)) -> Path:
    """Write the aligned CSV of the given (policy, campaign) samples; returns `path`.

    Several samples are stacked with `policy` and `campaign` columns (item ids name
    different items in each campaign, so a stream key needs the campaign); one sample
    as it is. `ALL_SAMPLES`: the six shipped files, 60,000 impressions.
    """
    parts = []
    for policy, campaign in samples:
        part = aligned(pd.read_csv(obd_file(policy, campaign), index_col=0))
        if len(samples) > 1:
            part.insert(1, "policy", policy)
            part.insert(2, "campaign", campaign)
        parts.append(part)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(parts, ignore_index=True).to_csv(path, index=False)
    return path


ALL_SAMPLES = tuple((policy, campaign) for policy in POLICIES for campaign in CAMPAIGNS)
