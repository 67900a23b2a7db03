"""The report's sections, each built from :class:`~autounet.report.collect.ReportData` into an HTML fragment.

A piece that is not there yet (no fingerprint, no trained fold, no find-best) becomes one plain sentence.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from autounet.dataset.cases import group_channel_files
from autounet.errors import UserError
from autounet.report import figures
from autounet.report.collect import CaseRow, FoldRecord, ReportData
from autounet.report.html import image, key_values, note, paragraph, side_by_side, subsection, table
from autounet.report.overlays import channel_files, display_image, pick_cases, render


def _shape(values) -> str:
    return " × ".join(f"{v:g}" for v in values)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"
    return f"{secs} s"


def _mean_std(values: list[float]) -> tuple[float, float]:
    finite = np.array([v for v in values if not math.isnan(v)], float)
    return (float(finite.mean()), float(finite.std())) if finite.size else (math.nan, math.nan)


def _volume_unit(data: ReportData) -> str:
    is_2d = data.fingerprint.is_2d if data.fingerprint is not None else False
    return "mm²" if is_2d else "mm³"


# ----------------------------------------------------------------------------------------------------- dataset

def dataset_section(data: ReportData) -> str:
    parts = []
    fingerprint, spec = data.fingerprint, data.spec
    if fingerprint is None:
        parts.append(note(f"No fingerprint yet ({data.location.preprocessed / 'fingerprint.json'} is not there); "
                          f"`autounet fingerprint {data.location.name}` measures the dataset."))
    else:
        channels = ", ".join(f"{k}: {v}" for k, v in fingerprint.channel_names.items())
        labels = ", ".join(f"{name} = {value}" for name, value in spec.labels.items()) if spec else \
            ", ".join(map(str, fingerprint.label_values))
        axes = slice(1, 3) if fingerprint.is_2d else slice(0, 3)
        spacings, shapes = fingerprint.spacings, fingerprint.shapes_after_crop
        overview = key_values([
            ("cases", len(fingerprint.cases)),
            ("images", "2D" if fingerprint.is_2d else "3D"),
            ("channels", channels),
            ("labels", labels),
            ("median spacing (mm)", _shape(np.round(np.median(spacings, 0)[axes], 3))),
            ("spacing range (mm)", f"{_shape(np.round(spacings.min(0)[axes], 3))} to "
                                   f"{_shape(np.round(spacings.max(0)[axes], 3))}"),
            ("median size after crop (voxels)", _shape(np.median(shapes, 0)[axes])),
            ("size range after crop", f"{_shape(shapes.min(0)[axes])} to {_shape(shapes.max(0)[axes])}"),
            ("median share of the image kept by cropping", f"{fingerprint.median_relative_size_after_crop:.0%}"),
        ])
        intensities = table(["channel", "name", "mean", "std", "median", "0.5th percentile", "99.5th percentile"],
                            [[index, fingerprint.channel_names.get(index, str(index)), s.mean, s.std, s.median,
                              s.percentile_00_5, s.percentile_99_5] for index, s in enumerate(fingerprint.channels)],
                            digits=2, caption="foreground intensities")
        parts.append(side_by_side(overview, intensities))
        names = ["z", "y", "x"][axes]
        parts.append(image(figures.distributions(spacings[:, axes], shapes[:, axes], names),
                           "spacing and size distributions"))
    parts.append(_label_volumes(data))
    parts.append(_verification(data))
    if data.problems:
        parts.append(subsection("files that could not be read", "<ul>" + "".join(
            f"<li>{paragraph(p)}</li>" for p in data.problems) + "</ul>"))
    return "\n".join(parts)


VERIFY_LINES_SHOWN = 30


def _verification(data: ReportData) -> str:
    """What `verify` found when the fingerprint was made: every error and warning, or that there were none."""
    found = data.verification
    if found is None:
        return subsection("problems verify found", note(
            "No record of the verification (fingerprints made before verify.json was kept); `autounet verify "
            f"{data.location.name}` lists every problem."))
    lines = [f"error: {e}" for e in found.errors] + [f"warning: {w}" for w in found.warnings]
    if not lines:
        return subsection("problems verify found", paragraph(f"None: {found.num_cases} training cases checked."))
    hidden = len(lines) - VERIFY_LINES_SHOWN
    more = f"<li>{paragraph(f'... and {hidden} more (`autounet verify` lists them all).')}</li>" if hidden > 0 else ""
    return subsection("problems verify found", "<ul>" + "".join(
        f"<li>{paragraph(line)}</li>" for line in lines[:VERIFY_LINES_SHOWN]) + more + "</ul>")


def _label_volumes(data: ReportData) -> str:
    rows: dict[str, CaseRow] = {}
    for configuration in data.folds:
        for row in data.cases(configuration):
            rows.setdefault(row.case, row)
    if not rows:
        return note("Label volumes are measured on the cross-validation references; no fold has been validated "
                    "yet.")
    names = list(next(iter(rows.values())).reference_volume)
    volumes = {name: [r.reference_volume.get(name, math.nan) for r in rows.values()] for name in names}
    unit = _volume_unit(data)
    body = table(["class", f"median ({unit})", f"min ({unit})", f"max ({unit})", "cases without it"],
                 [[name, float(np.median(v)), float(np.min(v)), float(np.max(v)), sum(1 for x in v if x == 0)]
                  for name, v in volumes.items()], digits=1,
                 caption=f"reference label volumes ({len(rows)} validated cases)")
    return side_by_side(body, image(figures.label_volumes(volumes, unit), "label volumes"))


# ------------------------------------------------------------------------------------------------------- plans

def _parameters(network) -> int | None:
    """The U-Net's parameter count, from building it (None when torch cannot build it)."""
    try:
        from autounet.network import build_network

        return int(sum(p.numel() for p in build_network(network, initialize=False).parameters()))
    except (RuntimeError, ValueError, TypeError, ImportError):
        return None


def plans_section(data: ReportData) -> str:
    plans = data.plans
    if plans is None:
        return note(f"No plans yet ({data.location.preprocessed / 'plans.json'} is not there); "
                    f"`autounet plan {data.location.name}` makes them.")
    hardware = plans.hardware
    memory = f", {hardware.total_memory_gb:.1f} GB" if hardware.total_memory_gb else ""
    parts = [paragraph(f"Planned for {hardware.device}{' ' + hardware.name if hardware.name else ''}{memory}, "
                       f"with a memory budget of {plans.memory_budget_gb:.1f} GB per configuration.")]
    configurations = []
    for name, plan in plans.configurations.items():
        network = plan.network
        rows = [
            ("patch (voxels)", _shape(plan.patch_size)),
            ("spacing (mm)", _shape(np.round(plan.spacing, 4))),
            ("median image size at that spacing", _shape(plan.median_shape)),
            ("batch", plan.batch_size),
            ("network", f"{network.conv_dim}D U-Net, {network.num_stages} stages"),
            ("features per stage", ", ".join(map(str, network.features_per_stage))),
            ("downsampling strides", "; ".join(_shape(s) for s in network.strides[1:]) or "none"),
            ("parameters", _parameters(network)),
            ("estimated memory (GB)", plan.estimated_memory_gb),
            ("normalisation", ", ".join(plan.normalization)),
        ]
        if plan.measured_memory_gb is not None:
            rows.append(("measured memory (GB)", plan.measured_memory_gb))
        if plan.previous_stage:
            rows.append(("cascade: after", plan.previous_stage))
        configurations.append(subsection(name, key_values(rows, digits=2)))
    parts.append(side_by_side(*configurations))
    budget = plans.time_budget
    if budget is not None:
        timings = table(["configuration", "patch", "spacing", "features", "batch", "s / iteration", "iterations",
                         "trains with it", "predicted, not timed"],
                        [[t.configuration, _shape(t.patch_size) if t.patch_size else "",
                          _shape(t.spacing) if t.spacing else "",
                          t.features_per_stage[0] if t.features_per_stage else "", t.batch_size,
                          t.seconds_per_iteration, t.iterations, t.selected, t.estimated] for t in budget.timings],
                        caption="networks timed on this machine")
        parts.append(subsection("time budget", key_values([
            ("budget per fold", _duration(budget.budget_seconds)),
            ("timed on", budget.device),
            ("chosen configuration", budget.chosen),
            ("rule", budget.rule)]) + timings))
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------- training

def _config_value(value) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _fold_block(fold: FoldRecord, data: ReportData) -> str:
    config = fold.config
    title = f"{fold.configuration}, fold {fold.fold}"
    if fold.log is None:
        return subsection(title, note(f"{fold.folder}: no epoch finished yet (no log.csv)."))
    planned = config.get("epochs")
    per_epoch = config.get("iterations_per_epoch")
    device = config.get("device", "?")
    if device == "auto" and data.plans is not None:
        device = f"auto (plans made for {data.plans.hardware.device})"
    ema = [v for v in fold.log.get("ema_pseudo_dice", []) if not math.isnan(v)]
    rows = [
        ("status", "finished" if fold.finished else "not finished (no model_final.safetensors)"),
        ("budget", config.get("budget")),
        ("epochs", f"{fold.epochs_done} of {planned}" if planned else fold.epochs_done),
        ("training iterations (epochs × per epoch)", fold.epochs_done * per_epoch if per_epoch else None),
        ("wall time (epochs)", _duration(fold.wall_seconds)),
        ("device", device),
        ("batch", config.get("batch_size") or (data.plans.configurations[fold.configuration].batch_size
                                                if data.plans and fold.configuration in data.plans.configurations
                                                else None)),
        ("optimiser, learning rate", f"{config.get('optimizer', '?')}, {config.get('learning_rate', '?')}"),
        ("best pseudo-Dice (moving average)", max(ema) if ema else None),
        ("validation foreground Dice", fold.summary.foreground_mean.dice if fold.summary else None),
    ]
    class_names = [key[len("dice_"):] for key in fold.log if key.startswith("dice_")]
    curves = image(figures.training_curves(fold.log, class_names, title), f"training curves of {title}")
    settings = table(["setting", "value"], [[k, _config_value(v)] for k, v in config.items()])
    details = f"<details><summary>training config ({len(config)} settings)</summary>{settings}</details>"
    return subsection(title, side_by_side(key_values(rows) + details, curves))


def _folds_table(folds: list[FoldRecord]) -> str:
    """One line per fold of a configuration, to compare them at a glance."""
    rows = []
    for fold in folds:
        ema = [v for v in (fold.log or {}).get("ema_pseudo_dice", []) if not math.isnan(v)]
        rows.append([fold.fold, "finished" if fold.finished else "not finished", fold.epochs_done,
                     _duration(fold.wall_seconds) if fold.log else "",
                     max(ema) if ema else None, fold.summary.foreground_mean.dice if fold.summary else None,
                     len(fold.summary.cases) if fold.summary else None])
    return table(["fold", "status", "epochs", "wall time", "best pseudo-Dice", "validation Dice",
                  "validation cases"], rows)


def training_section(data: ReportData) -> str:
    if not data.folds:
        return note(f"No fold has been trained yet ({data.location.results} holds no fold folder); "
                    f"`autounet train {data.location.name} --fold 0` trains one.")
    parts = []
    for configuration, folds in data.folds.items():
        parts.append(subsection(configuration, _folds_table(folds)))
        parts.extend(_fold_block(fold, data) for fold in folds)
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------- cross-validation

def _class_table(rows: list[CaseRow], surface: bool) -> str:
    names = list(rows[0].dice)
    headers = ["class", "Dice mean", "Dice std"] + (["HD95 mean (mm)", "NSD mean"] if surface else []) + \
        ["cases", "absent in both"]
    body, means = [], []
    for name in names:
        mean, std = _mean_std([r.dice[name] for r in rows])
        means.append(mean)
        extra = [_mean_std([r.hd95[name] for r in rows])[0], _mean_std([r.nsd[name] for r in rows])[0]] \
            if surface else []
        body.append([name, mean, std, *extra, len(rows), sum(1 for r in rows if math.isnan(r.dice[name]))])
    foreground = _mean_std(means)[0]
    body.append(["foreground (mean of classes)", foreground, None] + ([None, None] if surface else []) +
                [len(rows), None])
    return table(headers, body)


def _case_table(rows: list[CaseRow]) -> str:
    names = list(rows[0].dice)
    ordered = sorted(rows, key=lambda r: (math.inf if math.isnan(r.mean_dice) else r.mean_dice, r.case))
    body = [[r.case, r.fold, r.mean_dice, *[r.dice[n] for n in names]] for r in ordered]
    return ('<div class="scroll">' + table(["case", "fold", "mean Dice", *[f"Dice {n}" for n in names]], body,
                                           sortable=True) + "</div>")


def _choice_block(data: ReportData) -> str:
    choice = data.choice
    if choice is None:
        return note(f"find-best has not run yet (no {data.location.results / 'inference.json'}); "
                    f"`autounet find-best {data.location.name}` chooses the model and postprocessing.")
    names = list(choice.class_dice_postprocessed)
    candidates = table(["candidate", "foreground Dice", *names, "note"],
                       [[("* " if c.configurations == choice.configurations else "") + c.label, c.foreground_dice,
                         *[c.class_dice.get(n, math.nan) for n in names], c.note] for c in choice.candidates],
                       digits=4, caption=f"candidates on {choice.num_cases} cross-validation cases")
    trials = table(["postprocessing step", "Dice before", "Dice after", "applied"],
                   [[t.step, t.dice_before, t.dice_after, t.applied] for t in choice.postprocessing_trials],
                   digits=4, caption="largest-component postprocessing tried")
    chosen = paragraph(
        f"find-best chose {' + '.join(choice.configurations)} (folds {', '.join(map(str, choice.folds))}): "
        f"foreground Dice {choice.foreground_dice:.4f}; postprocessing: {choice.postprocessing.describe()} "
        f"-> {choice.foreground_dice_postprocessed:.4f}.")
    return subsection("find-best", chosen + candidates + trials)


def cross_validation_section(data: ReportData) -> str:
    parts, dice = [], {}
    for configuration, folds in data.folds.items():
        rows = data.cases(configuration)
        waiting = [f.fold for f in folds if f.summary is None]
        pending = paragraph(f"Folds without validation results yet: {', '.join(waiting)}.") if waiting else ""
        if not rows:
            parts.append(subsection(configuration, note(f"{configuration}: no fold has validation results yet "
                                                        "(training ends by predicting its validation cases).")))
            continue
        done = [f.fold for f in folds if f.summary is not None]
        dice[configuration] = {name: [r.dice[name] for r in rows] for name in rows[0].dice}
        parts.append(subsection(
            configuration,
            paragraph(f"{len(rows)} validation cases from fold(s) {', '.join(done)}.") + pending +
            _class_table(rows, data.surface) +
            "<h4>per case, worst first (click a column to sort)</h4>" + _case_table(rows)))
    if not parts:
        return note("No fold has been trained yet, so there is nothing cross-validated.") + _choice_block(data)
    if dice:
        parts.insert(0, image(figures.dice_boxplot(dice), "Dice per case"))
    parts.append(_choice_block(data))
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------------ overlays

def _windows(data: ReportData, configuration: str, picture: np.ndarray) -> list[tuple[float, float]]:
    """Per channel, the intensities shown from black to white.

    CT channels (normalised with the dataset's statistics) use the fingerprint's 0.5th and 99.5th percentiles of
    foreground intensities; other channels are normalised per case (their scale differs from scan to scan: the
    worst Hippocampus case is nearly black in the dataset's window), so they use the case's own percentiles.
    """
    plan = data.plans.configurations.get(configuration) if data.plans else None
    windows = []
    for index, channel in enumerate(picture):
        scheme = plan.normalization[index] if plan and index < len(plan.normalization) else ""
        if scheme == "ct" and data.fingerprint is not None and index < len(data.fingerprint.channels):
            stats = data.fingerprint.channels[index]
            windows.append((stats.percentile_00_5, stats.percentile_99_5))
        else:
            # A million voxels estimate the percentiles well; a large CT volume holds a hundred times more.
            sample = channel.ravel()[::max(1, channel.size // 1_000_000)]
            low, high = np.percentile(sample, [0.5, 99.5])
            windows.append((float(low), float(high)))
    return windows


def _overlay(data: ReportData, configuration: str, row: CaseRow, role: str, classes: dict[str, list[int]],
             image_files: dict[str, list[Path]]) -> str:
    from autounet.io import read_image, read_label

    spec = data.spec
    title = f"{role}: {row.case} (fold {row.fold}, mean Dice {row.mean_dice:.3f})"
    files = image_files.get(row.case) or channel_files(data.raw, row.case, spec.num_channels, spec.file_ending)
    reference_file = row.reference_file if row.reference_file.is_file() else \
        data.raw / "labelsTr" / f"{row.case}{spec.file_ending}"
    try:
        picture, geometry = read_image(files)
        reference, _ = read_label(reference_file)
        prediction, _ = read_label(row.prediction_file)
    except (UserError, OSError, RuntimeError) as error:
        return note(f"{title}: cannot be shown ({error}).")
    if reference.shape != prediction.shape or reference.shape != picture.shape[1:]:
        return note(f"{title}: the image {picture.shape[1:]}, reference {reference.shape} and prediction "
                    f"{prediction.shape} differ in shape.")
    rgb = picture.shape[0] == 3 and geometry.is_2d
    shown = display_image(picture, _windows(data, configuration, picture), rgb)
    return image(render(shown, reference, prediction, geometry.spacing, classes, title), title)


def overlays_section(data: ReportData) -> str:
    parts = []
    if data.spec is None:
        return note("dataset.json was not found, so the validation images cannot be read.")
    if data.raw is None and data.folds:
        return note(f"The raw dataset is not on this machine ({data.location.raw / 'imagesTr'} is not there), so "
                    f"the validation cases cannot be shown; give its path: `autounet report PATH/TO/"
                    f"{data.location.name}`.")
    # One listing of imagesTr (a 2D RGB image is one file holding three channels, so names alone do not tell).
    listing = group_channel_files(data.raw / "imagesTr", data.spec.file_ending) if data.raw else {}
    image_files = {case: [files[c] for c in sorted(files)] for case, files in listing.items()}
    for configuration in data.folds:
        rows = data.cases(configuration)
        picks = pick_cases(rows)
        if not picks:
            parts.append(subsection(configuration, note(f"{configuration}: no validated case to show yet.")))
            continue
        summary = next(f.summary for f in data.folds[configuration] if f.summary is not None)
        blocks = [_overlay(data, configuration, pick.row, pick.role, summary.classes, image_files) for pick in picks]
        parts.append(subsection(configuration, paragraph(
            "Solid lines: reference; dashed: prediction; one colour per class. The slice with the most reference "
            "foreground" + (" along each axis" if not (data.fingerprint and data.fingerprint.is_2d) else "") +
            "; grey images windowed to the 0.5th to 99.5th intensity percentile (of the dataset's foreground for CT, "
            "of the case otherwise), colour images shown as they are.") + "".join(blocks)))
    if not parts:
        return note("No fold has validation predictions yet, so there are no cases to show.")
    return "\n".join(parts)
