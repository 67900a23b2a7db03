"""The preprocessing settings a configuration's folder was made with, so edited plans never mix with old cases."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from autounet.fingerprint.model import ChannelStats
from autounet.planning.plans import ConfigurationPlan, Plans, ResamplingPlan
from autounet.preprocessing.store import CaseStore
from autounet.utils.atomic import write_json
from autounet.utils.serde import load_dataclass, to_json_value

SETTINGS_FILE = "preprocessing_settings.json"
"""Beside the cases; it has no ``.npy`` partner, so :class:`CaseStore` never takes it for a case."""


@dataclass
class PreprocessingSettings:
    """Everything in the plans that changes a preprocessed case."""

    spacing: list[float]
    is_2d: bool
    normalization: list[str]
    use_mask_for_norm: list[bool]
    resampling: ResamplingPlan
    intensity_stats: list[ChannelStats]

    @classmethod
    def of(cls, plans: Plans, config: ConfigurationPlan) -> "PreprocessingSettings":
        stats = [s for s, scheme in zip(plans.intensity_stats, config.normalization) if scheme == "ct"]
        return cls([float(s) for s in config.spacing], config.is_2d, list(config.normalization),
                   list(config.use_mask_for_norm), config.resampling, stats)


def settings_path(folder: Path) -> Path:
    return Path(folder) / SETTINGS_FILE


def read_settings(folder: Path) -> PreprocessingSettings | None:
    """The settings recorded in ``folder``; None when there are none (or they cannot be read)."""
    path = settings_path(folder)
    try:
        return load_dataclass(PreprocessingSettings, json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None


def prepare_folder(store: CaseStore, plans: Plans, config: ConfigurationPlan, overwrite: bool) -> str | None:
    """Get ``store``'s folder ready for this run; return a note for the user when old cases were invalidated.

    Leftover temporary files of a killed run are removed. With ``overwrite``, or when the folder was
    made with different settings, every case is marked incomplete (its properties file removed
    first, so an interrupted run never leaves stale cases that look current) before the current
    settings are recorded.
    """
    store.remove_stale_temporaries()
    wanted = PreprocessingSettings.of(plans, config)
    recorded = read_settings(store.folder)
    existing = store.case_ids()
    note = None
    if existing and (overwrite or to_json_value(recorded) != to_json_value(wanted)):
        if not overwrite:
            note = (f"{store.folder}: the plans changed since these {len(existing)} cases were made; "
                    f"preprocessing them again.")
        for case_id in existing:
            store.remove(case_id)
    write_json(settings_path(store.folder), to_json_value(wanted))
    return note
