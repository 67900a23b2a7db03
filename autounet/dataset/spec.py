"""dataset.json as a typed spec."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from autounet.errors import InvalidDatasetError
from autounet.io.registry import LOSSY_ENDINGS

REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending")


@dataclass
class DatasetSpec:
    """What dataset.json declares about a dataset (nnU-Net v2 format).

    ``labels`` maps a name to a label value, or to a list of values for a
    region (region-based training, with ``regions_class_order`` giving the
    value each region is written as).
    """

    name: str
    channel_names: dict[int, str]
    labels: dict[str, int | list[int]]
    num_training: int
    file_ending: str
    regions_class_order: list[int] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def has_regions(self) -> bool:
        return any(isinstance(v, list) for v in self.labels.values())

    @property
    def ignore_label(self) -> int | None:
        """The value of the label named ``ignore``, excluded from the loss, if any."""
        value = self.labels.get("ignore")
        return value if isinstance(value, int) else None

    @property
    def label_values(self) -> list[int]:
        """Every integer value a label file may hold, sorted (ignore label included)."""
        values: set[int] = set()
        for v in self.labels.values():
            values.update(v if isinstance(v, list) else [v])
        return sorted(values)

    @property
    def foreground_labels(self) -> list[int]:
        """Label values the network segments (not background, not ignore), sorted."""
        return [v for v in self.label_values if v != 0 and v != self.ignore_label]

    @property
    def num_outputs(self) -> int:
        """Output channels of the network: one per region, or one per class plus background."""
        if self.has_regions:
            return sum(1 for k, v in self.labels.items() if k not in ("background", "ignore"))
        return len(self.foreground_labels) + 1

    @property
    def predicted_foreground_values(self) -> list[int]:
        """The non-zero values a predicted label map can hold, in output order: the foreground labels, or
        each region's value from ``regions_class_order``. A cascade's second stage gets one input channel per
        value, in this order (the first stage's prediction, one-hot encoded)."""
        if not self.has_regions:
            return list(self.foreground_labels)
        return list(dict.fromkeys(v for v in self.regions_class_order or [] if v != 0))

    def label_name(self, value: int) -> str:
        """The name dataset.json gives label ``value``."""
        return next((k for k, v in self.labels.items() if v == value), str(value))


def _problems(data: dict) -> list[str]:
    problems = [f"missing key '{key}'" for key in REQUIRED_KEYS if key not in data]
    if problems:
        return problems
    if not isinstance(data["channel_names"], dict) or not data["channel_names"]:
        problems.append("'channel_names' must be a non-empty object like {\"0\": \"CT\"}")
    elif sorted(data["channel_names"]) != [str(i) for i in range(len(data["channel_names"]))]:
        problems.append("'channel_names' keys must be 0, 1, 2, ... in order")
    labels = data["labels"]
    if not isinstance(labels, dict) or "background" not in labels:
        problems.append("'labels' must be an object that includes \"background\"")
    else:
        for name, value in labels.items():
            ok = isinstance(value, int) or (isinstance(value, list) and value and all(isinstance(v, int) for v in value))
            if not ok or (isinstance(value, int) and value < 0):
                problems.append(f"label '{name}' must be a non-negative integer or a list of them, not {value!r}")
        if labels.get("background") not in (0, None):
            problems.append("label 'background' must be 0")
        plain = sorted(v for k, v in labels.items() if isinstance(v, int) and k != "ignore")
        if not any(isinstance(v, list) for v in labels.values()) and plain != list(range(len(plain))):
            problems.append(f"labels must be consecutive integers from 0, found {plain}")
    if not isinstance(data["numTraining"], int) or data["numTraining"] < 0:
        problems.append("'numTraining' must be a non-negative integer")
    if not isinstance(data["file_ending"], str) or not data["file_ending"].startswith("."):
        problems.append("'file_ending' must be a string like \".nii.gz\"")
    elif data["file_ending"].lower() in LOSSY_ENDINGS:
        problems.append(f"'file_ending' {data['file_ending']!r} would make the label maps JPEG files, whose lossy "
                        f"compression changes label values; store images and labels as \".png\"")
    if any(isinstance(v, list) for v in labels.values()) if isinstance(labels, dict) else False:
        if "regions_class_order" not in data:
            problems.append("region labels (lists) need 'regions_class_order'")
        else:
            problems += _region_order_problems(labels, data["regions_class_order"])
    return problems


def _region_order_problems(labels: dict, order) -> list[str]:
    """``regions_class_order`` must give each region (every label but background and ignore, in the order of
    ``labels``) the value its voxels are written as, and that value must belong to the region: a restored
    segmentation then holds the region again when it is read back."""
    regions = {name: value if isinstance(value, list) else [value] for name, value in labels.items()
               if name not in ("background", "ignore")}
    if not all(isinstance(v, int) and not isinstance(v, bool) for values in regions.values() for v in values):
        return []  # the label problems are reported already
    names = ", ".join(regions)
    if not isinstance(order, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in order):
        return [f"'regions_class_order' must be a list of integers, one per region ({names}), not {order!r}"]
    if len(order) != len(regions):
        return [f"'regions_class_order' {order} has {len(order)} value(s) but labels declare {len(regions)} "
                f"region(s) ({names}); give one value per region, in that order"]
    return [f"'regions_class_order' gives region '{name}' {values} the value {value}, which is not one of its "
            f"label values" for (name, values), value in zip(regions.items(), order) if value not in values]


def load_spec(folder: Path) -> DatasetSpec:
    """Read and check ``folder/dataset.json``; raise :class:`InvalidDatasetError` naming every problem."""
    path = Path(folder) / "dataset.json"
    if not path.is_file():
        raise InvalidDatasetError(f"{path}: not found; a dataset folder needs a dataset.json.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidDatasetError(f"{path}: is not valid JSON ({error}).") from error
    if not isinstance(data, dict):
        raise InvalidDatasetError(f"{path}: must hold a JSON object.")
    problems = _problems(data)
    if problems:
        raise InvalidDatasetError(f"{path}: " + "; ".join(problems) + ".")
    known = set(REQUIRED_KEYS) | {"regions_class_order"}
    return DatasetSpec(
        name=Path(folder).name,
        channel_names={int(k): str(v) for k, v in data["channel_names"].items()},
        labels=dict(data["labels"]),
        num_training=data["numTraining"],
        file_ending=data["file_ending"],
        regions_class_order=data.get("regions_class_order"),
        extra={k: v for k, v in data.items() if k not in known},
    )
