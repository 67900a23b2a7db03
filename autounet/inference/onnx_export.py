"""A trained configuration as ONNX graphs (one per fold) and a JSON manifest of everything around them.

The graphs map a batch of preprocessed tiles ``(B, C, *spatial)`` to logits ``(B, K, *spatial)``. Their spatial
size is free (any multiple of the network's total downsampling per axis), so a runtime may feed the patch or any
tile the sliding window chooses. The manifest (:class:`OnnxManifest`) states what ``autounet predict`` does around
the network: channel order and normalisation with statistics, target spacing and resampling, cropping, tiling
with Gaussian weights, mirroring, fold averaging, output activation, label values and postprocessing;
``autounet.inference.onnx_reference`` runs a case from the manifest alone (numpy, scipy and onnxruntime).

onnx is needed only here, and imported only when a model is exported.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from autounet.errors import UserError
from autounet.fingerprint.model import ChannelStats
from autounet.inference.model_folder import TrainedConfiguration, load_network
from autounet.inference.postprocessing import PostprocessingChoice
from autounet.inference.predictor import fold_average, pads_to_patch, restored_as, tile_importance
from autounet.inference.probabilities import output_label_values
from autounet.inference.sliding_window import GAUSSIAN_SIGMA_SCALE
from autounet.planning.plans import ResamplingPlan
from autounet.utils.atomic import write_bytes, write_json
from autounet.utils.serde import load_dataclass, to_json_value

MANIFEST_FILE = "autounet_onnx.json"
MANIFEST_VERSION = 1
OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


@dataclass
class ChannelManifest:
    """One input channel: its name in dataset.json, its file suffix and its normalisation.

    ``normalization`` is one of ``ct`` (clip to the statistics' 0.5/99.5 percentiles, subtract ``mean``, divide by
    ``std``), ``zscore`` (the image's own mean and standard deviation, over its nonzero mask when ``use_mask``;
    voxels outside the mask keep their value), ``rescale_to_0_1`` (the image's own min to 0 and max to 1),
    ``rgb_to_0_1`` (divide by 255, clip to [0, 1]) or ``none``. Divisors are at least 1e-8.
    """

    index: int
    name: str
    file_suffix: str
    normalization: str
    use_mask: bool
    statistics: ChannelStats | None = None


@dataclass
class TilingManifest:
    """How the preprocessed image is cut into tiles and the tiles' logits are merged.

    Per axis the tile is the patch where the image is at least the patch, and where it is smaller too with
    ``pad_to_patch`` (the default: training pads small cases to the patch, and nnU-Net predicts so); without it,
    the image's size rounded up to a multiple of ``divisor`` (at most the patch); the
    image is zero-padded (centred: the smaller half before) to at least the tile. Tile starts:
    ``n = ceil((size - tile) / max(tile * step, 1)) + 1`` starts spread evenly from 0 to ``size - tile`` and
    rounded half to even (one start at 0 when the size equals the tile). Each tile's logits are weighted by a
    Gaussian (``importance`` ``centred``: per axis
    ``exp(-0.5 ((i - (tile - 1) / 2) / (tile * gaussian_sigma_scale))^2)``; ``nnunet``: the same around voxel
    ``tile // 2`` and 0 beyond ``int(4 sigma + 0.5)`` voxels from it; the product over axes scaled to a maximum of
    1, zeros raised to the smallest positive weight), summed, and divided by the summed weights; then the padding
    is cropped away. With ``mirror`` (test-time augmentation) each tile's logits are the mean over the tile flipped
    along every combination in ``mirror_axes`` (spatial axes, 0 = first), each result flipped back.
    """

    patch_size: list[int]
    divisor: list[int]
    step: float
    gaussian_sigma_scale: float
    mirror: bool
    mirror_axes: list[list[int]]
    pad_to_patch: bool = True
    importance: str = "centred"


@dataclass
class OnnxManifest:
    """Everything needed to reproduce ``autounet predict`` around the exported graphs; see the module docstring.

    Arrays are ``(C, Z, Y, X)``: the image as its reader gives it (z the slowest axis of a NIfTI read with
    SimpleITK), spacing in the same order. ``transpose`` is the axis order the network sees (autounet trains
    on the images' own order, so it is the identity). ``is_2d``: the network sees each z slice ``(B, C, Y, X)``
    and the z spacing stays the case's own (``target_spacing[0]`` is then null). Preprocessing: crop to the
    bounding box of voxels nonzero in any channel, normalise each channel, resample to ``target_spacing``
    (new size ``max(1, round(size * spacing / target))`` per axis) with spline order ``resampling.order_data``
    (``order_data_z`` alone along an axis more than ``anisotropy_threshold`` times coarser than the finest,
    judged on the source spacing first, then the target). Outputs: ``activation`` softmax (over channels) or
    sigmoid (per region) of each fold's logits, averaged over the folds (``fold_average`` ``probabilities``; with
    ``logits``, the folds' logits are averaged first, as nnU-Net does), resampled back to the cropped size with
    ``order_seg`` (``order_seg_z`` on the coarse axis) and placed in the full image (outside the crop:
    background probability 1); with ``restored_as`` ``logits`` (only with ``fold_average`` ``logits``, as for
    models installed from nnU-Net) the averaged logits are resampled instead and activated after resampling. Labels: the value of the most probable channel (``label_values``), or for
    regions each region above 0.5 written with its value, later ones over earlier ones. Then ``postprocessing``.
    """

    dataset: str
    configuration: str
    checkpoint: str
    folds: list[str]
    graphs: list[str]
    channels: list[ChannelManifest]
    file_ending: str
    transpose: list[int]
    is_2d: bool
    target_spacing: list[float | None]
    crop_to_nonzero: bool
    resampling: ResamplingPlan
    tiling: TilingManifest
    num_outputs: int
    activation: str
    label_values: list[int]
    labels: dict[str, int | list[int]]
    postprocessing: PostprocessingChoice
    fold_average: str = "probabilities"
    restored_as: str = "probabilities"
    dynamic_spatial_axes: bool = True
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME
    opset: int = OPSET
    compute_dtype: str = "float32"
    version: int = MANIFEST_VERSION
    notes: list[str] = field(default_factory=list)


def mirror_axes_for(dims: int) -> list[list[int]]:
    """Every combination of ``dims`` spatial axes, the empty one (no flip) first, as the predictor mirrors."""
    from itertools import combinations

    return [list(c) for n in range(dims + 1) for c in combinations(range(dims), n)]


def build_manifest(trained: TrainedConfiguration, graphs: list[str], checkpoint: str, step: float, tta: bool,
                   postprocessing: PostprocessingChoice | None) -> OnnxManifest:
    """The manifest of a trained configuration exported as ``graphs`` (one file name per fold)."""
    plan, spec, plans = trained.plan, trained.spec, trained.plans
    suffix = spec.file_ending
    channels = [ChannelManifest(c, spec.channel_names[c], f"_{c:04d}{suffix}", plan.normalization[c],
                                bool(plan.use_mask_for_norm[c]) if c < len(plan.use_mask_for_norm) else False,
                                plans.intensity_stats[c] if c < len(plans.intensity_stats) else None)
                for c in range(len(plan.normalization))]
    dims = len(plan.patch_size)
    spacing: list[float | None] = [float(s) for s in plan.spacing]
    if plan.is_2d:
        spacing[0] = None
    tiling = TilingManifest(list(plan.patch_size), list(plan.network.total_downsampling()), step,
                            GAUSSIAN_SIGMA_SCALE, tta, mirror_axes_for(dims), pads_to_patch(plans),
                            tile_importance(plans))
    return OnnxManifest(
        dataset=plans.dataset_name, configuration=plan.name, checkpoint=checkpoint,
        folds=[f.fold for f in trained.folds], graphs=graphs, channels=channels, file_ending=suffix,
        transpose=[0, 1, 2], is_2d=plan.is_2d, target_spacing=spacing, crop_to_nonzero=True,
        resampling=plan.resampling, tiling=tiling, num_outputs=plan.network.num_classes,
        activation="sigmoid" if spec.has_regions else "softmax", label_values=output_label_values(spec),
        labels=dict(spec.labels), postprocessing=postprocessing or PostprocessingChoice(),
        fold_average=fold_average(plans), restored_as=restored_as(plans))


def export_graph(network, in_channels: int, patch_size: list[int]) -> bytes:
    """The ONNX bytes of ``network`` (eval mode, CPU) with free batch and spatial sizes."""
    import torch

    spatial = ["z", "y", "x"][-len(patch_size):]
    axes = {0: "batch", **{2 + i: name for i, name in enumerate(spatial)}}
    example = torch.zeros(1, in_channels, *patch_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript-based exporter warns that it is deprecated and that instance norm is exported in
        # inference mode, which is what is wanted; the newer exporter needs the extra onnxscript package.
        warnings.simplefilter("ignore")
        torch.onnx.export(network, (example,), buffer, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          opset_version=OPSET, dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes}, dynamo=False)
    return buffer.getvalue()


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError as error:
        raise UserError("exporting to ONNX needs the onnx package (autounet's onnx extra): "
                        "pip install onnx onnxruntime.") from error


def export_onnx(trained: TrainedConfiguration, target: Path, checkpoint: str = "final", step: float = 0.5,
                tta: bool = True, postprocessing: PostprocessingChoice | None = None) -> OnnxManifest:
    """Write ``target/fold_<K>.onnx`` for every fold of ``trained`` and ``target/autounet_onnx.json``.

    Example:
        >>> trained = load_trained_configuration(Path("results/Dataset004_Hippocampus/3d_fullres"))  # doctest: +SKIP
        >>> export_onnx(trained, Path("hippocampus_onnx")).graphs                                     # doctest: +SKIP
        ['fold_0.onnx', 'fold_1.onnx', 'fold_2.onnx', 'fold_3.onnx', 'fold_4.onnx']
    """
    _require_onnx()
    import onnx

    plan = trained.plan
    if plan.previous_stage:
        raise UserError(f"{trained.folds[0].folder}: cascade stage '{plan.name}' cannot be exported to ONNX on its "
                        f"own (it needs the prediction of '{plan.previous_stage}'); export another configuration.")
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise UserError(f"{target}: exists and is not a folder; ONNX export writes a folder.")
    graphs = []
    for fold in trained.folds:
        network = load_network(fold, plan, "cpu")
        data = export_graph(network, plan.network.in_channels, list(plan.patch_size))
        onnx.checker.check_model(onnx.load_from_string(data))
        name = f"fold_{fold.fold}.onnx"
        write_bytes(target / name, data)
        graphs.append(name)
    manifest = build_manifest(trained, graphs, checkpoint, step, tta, postprocessing)
    write_json(target / MANIFEST_FILE, to_json_value(manifest))
    return manifest


def load_onnx_manifest(folder: Path) -> OnnxManifest:
    """The manifest of an exported ONNX folder; a clear error when there is none."""
    path = Path(folder) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        manifest = load_dataclass(OnnxManifest, data)
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise UserError(f"{path}: not an autounet ONNX manifest ({error}).") from error
    if manifest.version > MANIFEST_VERSION:
        raise UserError(f"{path}: manifest version {manifest.version}; this autounet reads up to {MANIFEST_VERSION}.")
    return manifest
