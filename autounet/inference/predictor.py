"""The Python API for segmenting images with trained models.

Example:
    >>> predictor = Predictor.from_model_folder(Path("results/Dataset004_Hippocampus/3d_fullres"))  # doctest: +SKIP
    >>> image, geometry = read_image(["hippocampus_001_0000.nii.gz"])                                # doctest: +SKIP
    >>> prediction = predictor.predict(image, geometry)                                             # doctest: +SKIP
    >>> prediction.labels.shape == image.shape[1:]                                                  # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from autounet.dataset.spec import DatasetSpec
from autounet.errors import UserError
from autounet.inference.model_folder import (TrainedConfiguration, is_fold_folder, load_network,
                                             load_trained_configuration, trained_configurations)
from autounet.inference.memory import MemoryPolicy, memory_of, tile_working_bytes
from autounet.inference.probabilities import to_labels, to_probabilities_
from autounet.inference.restore import restore_all_probabilities, restore_labels_of, was_resampled
from autounet.inference.sliding_window import WindowSettings, predict_logits, to_memory_format
from autounet.io.geometry import Geometry
from autounet.preprocessing.store import CaseProperties
from autounet.utils.progress import console
from autounet.utils.stage_times import StageTimes

LabelTransform = Callable[[np.ndarray], np.ndarray]


@dataclass
class Prediction:
    """A segmentation in the input's original geometry: labels ``(Z, Y, X)`` and, when asked for,
    probabilities ``(K, Z, Y, X)`` (one channel per output of the network, background first)."""

    labels: np.ndarray
    probabilities: np.ndarray | None = None


def resolve_device(device: str = "auto", threads: int | None = None) -> torch.device:
    """The torch device for ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:1`` or ``mps``.

    On the CPU, torch uses ``threads`` threads when given, else its default (one per physical core); fewer
    threads help on machines shared with other jobs.
    """
    from autounet.hardware import detect_accelerator

    if device.startswith("cuda:"):
        detect_accelerator("cuda")
        chosen = torch.device(device)
    else:
        chosen = torch.device(detect_accelerator(device).kind)
    if chosen.type == "cpu" and threads:
        torch.set_num_threads(threads)
    return chosen


PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The type the network computes in: ``auto`` is float16 on CUDA, bfloat16 on CPUs with native bfloat16
    arithmetic (several times faster there), float32 otherwise."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, not '{precision}'.")
    if precision != "auto":
        return getattr(torch, precision)
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return torch.float32


CPU_VOXELS_PER_PASS = 2 ** 17
"""On the CPU, network inputs share a forward pass up to about this many voxels: a 3D patch of
Hippocampus (40x56x40, 89,600 voxels) goes alone, since larger batches of it did not run faster
(bench/predict.py), while small 2D tiles, whose passes are mostly per-call overhead, go many at a time
(bench/sliding_window_batch.py)."""
MAX_INPUTS_PER_PASS = 64


def tiles_per_pass(device: torch.device, settings_patch: Sequence[int], features: Sequence[int]) -> int:
    """How many network inputs (tiles times mirrorings) go through one forward pass on ``device``.

    On a GPU, as many as a third of its free memory holds (estimated from the feature maps of one input, at
    most 16); on the CPU, as many as make :data:`CPU_VOXELS_PER_PASS` (at least one, at most
    :data:`MAX_INPUTS_PER_PASS`).

    Example:
        >>> cpu = torch.device("cpu")
        >>> tiles_per_pass(cpu, (40, 56, 40), [32, 64]), tiles_per_pass(cpu, (64, 64), [16, 32])
        (1, 32)
    """
    voxels = float(np.prod(settings_patch))
    if device.type != "cuda":
        return int(max(1, min(MAX_INPUTS_PER_PASS, CPU_VOXELS_PER_PASS // voxels)))
    per_input = 4 * 8 * sum(f * voxels / 2 ** (len(settings_patch) * s) for s, f in enumerate(features))
    free, _ = torch.cuda.mem_get_info(device)
    return int(max(1, min(16, free / 3 // per_input)))


CHANNELS_LAST_BELOW_FEATURES = 16
"""On the CPU, 3D networks whose first stage has fewer feature maps than this run in channels-last memory order:
bench/channels_last.py measured 2.0x (4 features), 1.2x (8) and 0.9x (16, 32: slower) per forward pass with bfloat16
autocast, 1.4x / 1.1x / 0.9x in float32, and 2D networks gaining at 4 features only by about the noise (chosen on
that script's random-weight networks, one of which has the shape of bench/big_volume.py's)."""


def uses_channels_last(device: torch.device, patch: Sequence[int], features: Sequence[int]) -> bool:
    """Whether a network runs on ``device`` with channels-last inputs and weights (see
    :data:`CHANNELS_LAST_BELOW_FEATURES`; never on a GPU, where it was not measured).

    Example:
        >>> cpu = torch.device("cpu")
        >>> uses_channels_last(cpu, (80, 160, 160), [4, 8]), uses_channels_last(cpu, (40, 56, 40), [32, 64])
        (True, False)
    """
    return device.type == "cpu" and len(patch) == 3 and features[0] < CHANNELS_LAST_BELOW_FEATURES


def _inference_option(plans, key: str, default):
    """``plans.extra["inference"][key]``, or ``default`` when the plans do not set it."""
    return (plans.extra.get("inference") or {}).get(key, default)


def pads_to_patch(plans) -> bool:
    """Whether images smaller than the patch are zero-padded to the whole patch (the default, as training pads
    them and as nnU-Net predicts); ``extra.inference.pad_to_patch: false`` in the plans tiles them with the image
    rounded up to the downsampling instead (held-out Dice lower: bench/tile_padding.py, docs/predict.md)."""
    return bool(_inference_option(plans, "pad_to_patch", True))


def tile_importance(plans) -> str:
    """The tile weights: ``centred`` (autounet) or ``nnunet`` (models installed from nnU-Net:
    ``extra.inference.importance``)."""
    return str(_inference_option(plans, "importance", "centred"))


def fold_average(plans) -> str:
    """What the folds' outputs are averaged as: ``probabilities`` (autounet) or ``logits`` (as nnU-Net does, for
    models installed from it: ``extra.inference.fold_average``)."""
    return str(_inference_option(plans, "fold_average", "probabilities"))


def restored_as(plans) -> str:
    """What the per-class outputs are resampled to the original grid as: ``probabilities`` (autounet) or
    ``logits`` (as nnU-Net does, for models installed from it: ``extra.inference.restored_as``; their folds are
    then averaged as logits too). The two differ where the grids differ, in the voxels between classes."""
    return str(_inference_option(plans, "restored_as", "probabilities"))


class ConfigurationModel:
    """One trained configuration on a device: its fold networks, how it tiles, and its cascade's first stage."""

    def __init__(self, trained: TrainedConfiguration, device: torch.device, mirror: bool, step: float,
                 previous: "ConfigurationModel | None" = None, compute_dtype: torch.dtype = torch.float32,
                 memory: MemoryPolicy | None = None):
        plan = trained.plan
        self.trained = trained
        self.device = device
        self.previous = previous
        self.memory = memory or MemoryPolicy()
        self.times = StageTimes()
        patch, features = tuple(plan.patch_size), plan.network.features_per_stage
        self.settings = WindowSettings(patch, tuple(plan.network.total_downsampling()), step, mirror,
                                       tiles_per_pass(device, patch, features), compute_dtype,
                                       pads_to_patch(trained.plans), tile_importance(trained.plans),
                                       uses_channels_last(device, patch, features),
                                       # fewer maps to flip and add when the head has fewer inputs than outputs
                                       head_after_mirroring=features[0] < plan.network.num_classes)
        self.networks = [to_memory_format(load_network(fold, plan, device), self.settings) for fold in trained.folds]

    @property
    def name(self) -> str:
        return self.trained.name

    def _preprocess(self, image: np.ndarray, geometry: Geometry, case_id: str):
        from autounet.preprocessing.pipeline import one_hot_labels, preprocess_case

        plans, plan = self.trained.plans, self.trained.plan
        if self.previous is None:
            data, _, properties = preprocess_case(image, geometry, None, plans, plan, case_id)
            return data, properties
        first_stage = self.previous.predict_labels(image, geometry, case_id)
        data, seg, properties = preprocess_case(image, geometry, first_stage, plans, plan, case_id)
        foreground = self.previous.trained.spec.predicted_foreground_values
        expected = data.shape[0] + len(foreground)
        if plan.network.in_channels != expected:
            raise UserError(f"{self.trained.folds[0].folder / 'plans.json'}: cascade '{plan.name}' has a network with "
                            f"{plan.network.in_channels} input channels, but needs {expected} (the image's "
                            f"{data.shape[0]} plus one per foreground label of '{plan.previous_stage}').")
        return np.concatenate([data, one_hot_labels(seg[0], foreground)]), properties

    def probabilities_of_preprocessed(self, data: np.ndarray, scratch: Path | None = None,
                                      keep_logits: bool = False) -> torch.Tensor:
        """Fold-averaged probabilities ``(K, z, y, x)`` of an already preprocessed image ``(C, z, y, x)``; with
        ``scratch`` they are memory-mapped files in that folder (see :mod:`autounet.inference.memory`). With
        ``keep_logits`` (for models whose folds are averaged as logits) the averaged logits instead."""
        outputs = self.trained.plan.network.num_classes
        regions = self.trained.spec.has_regions
        of_logits = fold_average(self.trained.plans) == "logits"
        if keep_logits and not of_logits:
            raise ValueError("logits are kept only for models whose folds are averaged as logits")
        total = None
        for network in self.networks:
            part = predict_logits(network, data, outputs, self.settings, self.device, scratch)
            if not of_logits:
                to_probabilities_(part, regions)
            total = part if total is None else total.add_(part)
            del part
        total.div_(len(self.networks))
        return to_probabilities_(total, regions) if of_logits and not keep_logits else total

    def restores_logits(self, properties: CaseProperties) -> bool:
        """Whether this case's outputs are resampled as logits (see :func:`restored_as`): only where resampling
        happens, since without it restoring either gives the same labels."""
        plans = self.trained.plans
        return restored_as(plans) == "logits" and fold_average(plans) == "logits" and was_resampled(properties)

    @contextlib.contextmanager
    def output_space(self, data: np.ndarray, properties: CaseProperties) -> Iterator[Path | None]:
        """None when this case's per-class outputs fit the memory limit, else a scratch folder for them (removed
        afterwards); says which it chose when it is the folder."""
        plan, settings = self.trained.plan, self.settings
        mirrorings = 2 ** len(settings.patch_size) if settings.mirror else 1
        tile = tile_working_bytes(plan.network.num_classes, settings.patch_size, plan.network.features_per_stage,
                                  settings.tiles_per_pass, mirrorings)
        memory = memory_of(properties.original_shape, properties.shape_after_crop, data, plan.network.num_classes,
                           len(self.networks), tile)
        del data  # held by this generator's frame otherwise, for as long as the folder is in use
        if not self.memory.needs_disk(memory):
            yield None
            return
        with self.memory.scratch() as folder:
            console.print(f"{properties.case_id}: its {memory.outputs} per-class outputs need "
                          f"{memory.per_class_bytes() / 2**30:.1f} GiB, more than the memory limit "
                          f"({self.memory.limit() / 2**30:.1f} GiB) leaves; keeping them on disk in {folder} "
                          f"(removed afterwards).", highlight=False, soft_wrap=True)
            yield folder

    def restore(self, outputs: torch.Tensor, properties: CaseProperties, with_probabilities: bool,
                logits: bool = False) -> Prediction:
        """Preprocessed-grid probabilities (or with ``logits``, logits) brought back to the original image: labels,
        and probabilities if asked.

        Without probabilities no full-size array per class is kept (see :func:`restore_labels_of`).
        """
        plan, spec = self.trained.plan, self.trained.spec
        if not with_probabilities:
            return Prediction(restore_labels_of(outputs, properties, plan, spec, logits))
        restored = restore_all_probabilities(outputs, properties, plan, spec, logits)
        return Prediction(to_labels(restored, spec), restored)

    def predict_case(self, image: np.ndarray, geometry: Geometry, case_id: str, with_probabilities: bool) -> Prediction:
        """Preprocess, predict and restore one image; per-class outputs go to disk when memory asks for it."""
        def prepare() -> tuple[np.ndarray, CaseProperties]:
            with self.times.measure("preprocess"):
                return self._preprocess(image, geometry, case_id)
        return self._predict(prepare, with_probabilities)

    def predict_preprocessed(self, data: np.ndarray, properties: CaseProperties,
                             with_probabilities: bool) -> Prediction:
        """Predict and restore one already preprocessed image ``(C, z, y, x)`` with its properties."""
        return self._predict(lambda: (data, properties), with_probabilities)

    def _predict(self, prepare: Callable[[], tuple[np.ndarray, CaseProperties]],
                 with_probabilities: bool) -> Prediction:
        # ``prepare`` rather than the array, so that nothing but this frame holds a freshly preprocessed image
        # and it is freed before restoring.
        data, properties = prepare()
        logits = self.restores_logits(properties)
        with self.output_space(data, properties) as scratch:
            with self.times.measure("sliding window"):
                outputs = self.probabilities_of_preprocessed(data, scratch, keep_logits=logits)
            del data
            with self.times.measure("restore"):
                return self.restore(outputs, properties, with_probabilities, logits)

    def share_times(self, times: StageTimes) -> None:
        """Count this configuration's stages (and its cascade's first stage's) in ``times``."""
        self.times = times
        if self.previous is not None:
            self.previous.share_times(times)

    def predict_probabilities(self, image: np.ndarray, geometry: Geometry, case_id: str) -> np.ndarray:
        """Probabilities ``(K, Z, Y, X)`` in the image's original geometry."""
        return self.predict_case(image, geometry, case_id, True).probabilities

    def predict_labels(self, image: np.ndarray, geometry: Geometry, case_id: str) -> np.ndarray:
        """Labels ``(Z, Y, X)`` in the original geometry (without keeping K full-size probability arrays)."""
        return self.predict_case(image, geometry, case_id, False).labels


class Predictor:
    """Segments images with one trained configuration, or an ensemble of several, averaging their folds.

    ``postprocess`` (optional) maps the final label map to the written one, e.g. keeping the largest
    component as chosen by ``autounet find-best``.
    """

    def __init__(self, models: list[ConfigurationModel], postprocess: LabelTransform | None = None):
        if not models:
            raise UserError("no trained configuration was given to predict with.")
        self.models = models
        self.postprocess = postprocess
        self.times = StageTimes()
        """Seconds per stage over every case predicted so far (preprocess, sliding window, restore, ...)."""
        for model in models:
            model.share_times(self.times)

    @classmethod
    def from_trained(cls, trained: Sequence[TrainedConfiguration], device: str = "auto", tta: bool = True,
                     step: float = 0.5, checkpoint: str = "final",
                     postprocess: LabelTransform | None = None, threads: int | None = None,
                     precision: str = "auto", previous_folds: list[int | str] | None = None,
                     memory: MemoryPolicy | None = None) -> "Predictor":
        """A predictor for already located trained configurations (their cascades' first stages are loaded
        from the sibling configuration folders: all their folds, or ``previous_folds``).
        ``precision``: see :func:`resolve_precision`; ``memory``: the limit under which per-class outputs stay
        in RAM (:class:`~autounet.inference.memory.MemoryPolicy`)."""
        memory = memory or MemoryPolicy()
        if not 0 < step <= 1:
            raise UserError(f"--step must be in (0, 1], got {step}.")
        torch_device = resolve_device(device, threads)
        dtype = resolve_precision(precision, torch_device)
        models = []
        for configuration in trained:
            previous = None
            if configuration.plan.previous_stage:
                sibling = configuration.folds[0].folder.parent.parent / configuration.plan.previous_stage
                first = load_trained_configuration(sibling, previous_folds, checkpoint)
                previous = ConfigurationModel(first, torch_device, tta, step, None, dtype, memory)
            models.append(ConfigurationModel(configuration, torch_device, tta, step, previous, dtype, memory))
        return cls(models, postprocess)

    @classmethod
    def from_model_folder(cls, model_dir: Path, folds: list[int | str] | None = None, checkpoint: str = "final",
                          device: str = "auto", tta: bool = True, step: float = 0.5,
                          configurations: list[str] | None = None,
                          postprocess: LabelTransform | None = None, precision: str = "auto",
                          previous_folds: list[int | str] | None = None,
                          memory: MemoryPolicy | None = None) -> "Predictor":
        """A predictor from a fold folder, a configuration folder (all its folds, or ``folds``), or a dataset's
        results folder together with ``configurations`` (several make an ensemble). A cascade's first stage
        uses all its folds, or ``previous_folds``.

        Example:
            >>> p = Predictor.from_model_folder(Path("results/Dataset004_Hippocampus/3d_fullres"), folds=[0, 1],
            ...                                 tta=False)  # doctest: +SKIP
        """
        model_dir = Path(model_dir)
        if configurations:
            folders = [model_dir / name for name in configurations]
        elif is_fold_folder(model_dir) or not trained_configurations(model_dir):
            folders = [model_dir]
        else:
            names = ", ".join(trained_configurations(model_dir))
            raise UserError(f"{model_dir}: holds several configurations ({names});"
                            f" choose with -c.")
        trained = [load_trained_configuration(folder, folds, checkpoint) for folder in folders]
        return cls.from_trained(trained, device, tta, step, checkpoint, postprocess, precision=precision,
                                previous_folds=previous_folds, memory=memory)

    @property
    def spec(self) -> DatasetSpec:
        """dataset.json of the (first) configuration: channels, labels, file ending."""
        return self.models[0].trained.spec

    def check_channels(self, found: int, source: str) -> None:
        """A clear error when an image has another channel count than the models were trained with."""
        expected = self.spec.num_channels
        if found != expected:
            names = ", ".join(self.spec.channel_names.values())
            raise UserError(f"{source}: has {found} channel(s), but the model was trained with {expected} "
                            f"({names}).")

    def predict(self, image: np.ndarray, geometry: Geometry, probabilities: bool = False,
                case_id: str = "case") -> Prediction:
        """Segment ``image`` (float32 ``(C, Z, Y, X)``) with ``geometry``; labels (and probabilities) come back
        in the image's own grid."""
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 4:
            raise UserError(f"{case_id}: image must be (channels, z, y, x), got shape {image.shape}.")
        self.check_channels(image.shape[0], case_id)
        restored = None
        if len(self.models) == 1 and not probabilities:
            labels = self.models[0].predict_labels(image, geometry, case_id)
        else:
            for model in self.models:
                current = model.predict_probabilities(image, geometry, case_id)
                restored = current if restored is None else np.add(restored, current, out=restored)
            with self.times.measure("restore"):
                restored /= len(self.models)
                labels = to_labels(restored, self.spec)
        if self.postprocess is not None:
            with self.times.measure("postprocess"):
                labels = self.postprocess(labels)
        return Prediction(labels, restored.astype(np.float32, copy=False) if restored is not None else None)

    def predict_preprocessed(self, data: np.ndarray, properties: CaseProperties,
                             probabilities: bool = False) -> Prediction:
        """Segment a case that is already preprocessed for this predictor's single configuration (e.g. a
        training case from the preprocessed store, with its stored properties); results in the original grid.

        Example:
            >>> case = CaseStore(folder).load("hippocampus_001")                          # doctest: +SKIP
            >>> predictor.predict_preprocessed(case.data, case.properties).labels.shape  # doctest: +SKIP
            (35, 51, 35)
        """
        if len(self.models) != 1 or self.models[0].previous is not None:
            raise UserError("predict_preprocessed needs a single, non-cascade configuration; use predict() with "
                            "the raw image instead.")
        self.check_channels(data.shape[0], properties.case_id)
        prediction = self.models[0].predict_preprocessed(data, properties, probabilities)
        if self.postprocess is not None:
            with self.times.measure("postprocess"):
                prediction.labels = self.postprocess(prediction.labels)
        return prediction
