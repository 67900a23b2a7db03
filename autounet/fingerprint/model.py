"""The Fingerprint dataclasses and their JSON file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autounet.errors import MissingArtifactError
from autounet.fingerprint.detail import COARSENING_FACTORS
from autounet.utils.atomic import write_json
from autounet.utils.serde import load_dataclass, to_json_value

FINGERPRINT_SCHEMA = 1
FINGERPRINT_FILE = "fingerprint.json"


@dataclass
class CaseFingerprint:
    """One case's size and where its nonzero content lies. Shapes and spacing are (z, y, x)."""

    case_id: str
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    crop_bbox: list[list[int]]
    """Per axis ``[start, stop)`` of the bounding box of voxels that are nonzero in any channel."""
    shape_after_crop: tuple[int, int, int]
    coarsened_label_dice: list[float] = field(default_factory=list)
    """Mean foreground Dice of the label map after a round trip through an in-plane grid 2x and 4x coarser than
    the case's own (:data:`~autounet.fingerprint.detail.COARSENING_FACTORS`); empty in fingerprints made before it
    was measured."""

    @property
    def relative_size_after_crop(self) -> float:
        return float(np.prod(self.shape_after_crop) / np.prod(self.shape))


@dataclass
class ChannelStats:
    """Intensity statistics of one channel over the foreground (label > 0) voxels of all cases."""

    mean: float
    std: float
    median: float
    min: float
    max: float
    percentile_00_5: float
    percentile_99_5: float


@dataclass
class Fingerprint:
    """What planning needs to know about a dataset."""

    dataset_name: str
    is_2d: bool
    channel_names: dict[int, str]
    label_values: list[int]
    cases: list[CaseFingerprint]
    channels: list[ChannelStats]
    raw_digest: str = ""
    """A digest of the raw files' names, sizes and modification times, to tell when they changed."""
    schema_version: int = FINGERPRINT_SCHEMA
    extra: dict = field(default_factory=dict)

    @property
    def spacings(self) -> np.ndarray:
        """Every case's spacing, shape ``(cases, 3)``."""
        return np.array([c.spacing for c in self.cases], dtype=float)

    @property
    def shapes_after_crop(self) -> np.ndarray:
        """Every case's shape after cropping, shape ``(cases, 3)``."""
        return np.array([c.shape_after_crop for c in self.cases], dtype=float)

    @property
    def median_spacing(self) -> np.ndarray:
        return np.median(self.spacings, axis=0)

    @property
    def median_relative_size_after_crop(self) -> float:
        return float(np.median([c.relative_size_after_crop for c in self.cases]))

    def label_dice_when_coarsened(self, factor: int) -> float | None:
        """The median over cases of the label Dice kept on an in-plane grid ``factor`` times coarser; None when
        it was not measured for that factor."""
        if factor not in COARSENING_FACTORS or any(not c.coarsened_label_dice for c in self.cases):
            return None
        index = COARSENING_FACTORS.index(factor)
        return float(np.median([c.coarsened_label_dice[index] for c in self.cases]))

    def to_json(self) -> dict:
        return to_json_value(self)

    @classmethod
    def from_json(cls, data: dict) -> "Fingerprint":
        return load_dataclass(cls, data)


def save_fingerprint(fingerprint: Fingerprint, folder: Path) -> Path:
    """Write ``fingerprint.json`` into ``folder`` atomically; return its path."""
    path = Path(folder) / FINGERPRINT_FILE
    write_json(path, fingerprint.to_json())
    return path


def load_fingerprint(folder: Path) -> Fingerprint:
    """Read ``fingerprint.json`` from ``folder``."""
    path = Path(folder) / FINGERPRINT_FILE
    if not path.is_file():
        raise MissingArtifactError(f"{path}: not found; run `autounet fingerprint` first.")
    return Fingerprint.from_json(json.loads(path.read_text()))
