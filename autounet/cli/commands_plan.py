"""``autounet plan``: training configurations sized to the GPU."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from autounet.cli.common import DatasetArgument, RootOption, WorkersOption, dataset_location, out, warn
from autounet.planning.plans import ConfigurationPlan, Plans
from autounet.planning.presets import configuration_preset


def _axes(values) -> str:
    return "x".join(str(v) for v in values)


def _fmt_spacing(values) -> str:
    return " x ".join(f"{v:.3g}" for v in values)


def configuration_summary(plan: ConfigurationPlan, budget_gb: float) -> str:
    """One line: spacing, median shape, patch, batch, memory against the budget."""
    memory = f"memory {plan.estimated_memory_gb:.2f} of {budget_gb:g} GB (estimated)"
    if plan.measured_memory_gb is not None:
        memory += f", {plan.measured_memory_gb:.2f} GB measured"
    return (f"[bold]{plan.name}[/bold]: spacing {_fmt_spacing(plan.spacing)}, median shape "
            f"{_axes(plan.median_shape)}, patch {_axes(plan.patch_size)}, batch {plan.batch_size}, "
            f"{plan.network.num_stages} stages, {memory}")


def configuration_table(plan: ConfigurationPlan) -> Table:
    """One Rich table describing a configuration's U-Net, stage by stage."""
    net = plan.network
    table = Table()
    blocks = "residual blocks" if net.architecture == "residual_encoder" else "convs"
    for column in ("stage", "features", "kernel", "stride", blocks):
        table.add_column(column, justify="right")
    for stage in range(net.num_stages):
        table.add_row(str(stage), str(net.features_per_stage[stage]), _axes(net.kernel_sizes[stage]),
                      _axes(net.strides[stage]), str(net.n_conv_per_stage[stage]))
    norm = ", ".join(f"{s}{' (mask)' if m else ''}" for s, m in zip(plan.normalization, plan.use_mask_for_norm))
    cascade = f"; after {plan.previous_stage}" if plan.previous_stage else ""
    table.caption = f"normalisation: {norm}{cascade}"
    table.caption_justify = "left"
    return table


def print_plans(plans: Plans) -> None:
    if plans.preset != "default":
        out.print(f"preset {plans.preset}", highlight=False)
    for plan in plans.configurations.values():
        if configuration_preset(plan.name) != plans.preset:
            continue  # kept from an earlier planning of another preset (a note names them)
        out.print(configuration_summary(plan, plans.memory_budget_gb), highlight=False)
        out.print(configuration_table(plan))


PresetOption = Annotated[Optional[str], typer.Option(
    "--preset", help="Network preset: default (nnU-Net's plain U-Net, for the detected GPU), or the residual-encoder "
                     "U-Nets resenc-m, resenc-l, resenc-xl (planned for 11, 24, 40 GB; --gpu-memory replaces that "
                     "target, a smaller GPU caps it). A preset's configurations carry its name "
                     "(3d_fullres_resenc-m); other presets' plans stay in plans.json.", show_default=False)]


ConfigurationsOption = Annotated[Optional[list[str]], typer.Option(
    "--configurations", "-c", help="Configurations to plan (repeat: -c 2d -c 3d_fullres) "
                                   "[default: 2d, 3d_fullres and, when needed, 3d_lowres].", show_default=False)]


def plan(
    dataset: DatasetArgument,
    gpu_memory: Annotated[Optional[float], typer.Option(
        "--gpu-memory", help="Plan for a GPU with this many GB instead of the one detected.",
        show_default=False)] = None,
    device: Annotated[str, typer.Option(
        "--device", help="Hardware to plan for: auto, cuda, mps or cpu.")] = "auto",
    configurations: ConfigurationsOption = None,
    preset: PresetOption = None,
    verify: Annotated[bool, typer.Option(
        "--verify", help="On a CUDA GPU: run one real training step per configuration, record its measured peak "
                         "memory, and shrink the plan if it does not fit.")] = False,
    budget: Annotated[Optional[str], typer.Option(
        "--budget", help="Time budget for training and validating one fold (30m, 2h, 1h30m): time a few real "
                         "training iterations of 2d and 3d_fullres here and choose one. Schedule presets (quick, "
                         "standard, full) fix the schedule and measure nothing.", show_default=False)] = None,
    pretrained_plans: Annotated[Optional[Path], typer.Option(
        "--pretrained-plans", show_default=False, help="Also add a trained model's configuration (a fold or "
        "configuration folder, a model zip or an nnU-Net results folder) as CONFIG_from_DatasetNNN: its spacing, "
        "patch, network and batch, for fine-tuning it here with train --pretrained.")] = None,
    workers: WorkersOption = None,
    root: RootOption = None,
) -> None:
    """Plan spacing, patch, batch and U-Net per configuration for the GPU; write plans.json.

    Verifies and fingerprints the raw data first when that has not been done on
    its current files.

    Example: autounet plan Dataset004 --gpu-memory 11 --budget 30m
    Example: autounet plan Dataset004 --preset resenc-l
    Example: autounet plan Dataset005 --pretrained-plans results/Dataset004_Hippocampus/3d_fullres
    """
    from autounet.planning.planner import PlanningReport, plan_dataset
    from autounet.planning.plans import plans_path
    from autounet.planning.time_budget import time_budget_seconds
    from autounet.utils.logs import log_to

    location = dataset_location(dataset, root)
    with log_to(location.preprocessed / "plan.log"):
        seconds = time_budget_seconds(budget)
        start = time.perf_counter()
        report = PlanningReport()
        inherit = None
        if pretrained_plans is not None:
            from autounet.training.pretrained import pretrained_plan

            inherit = [pretrained_plan(pretrained_plans)]
        plans = plan_dataset(location, gpu_memory_gb=gpu_memory, device=device, configurations=configurations,
                             workers=workers, report=report, verify=verify, time_budget_seconds=seconds,
                             preset_name=preset, inherit=inherit)
        for note in report.notes:
            out.print(note)
        for message in report.warnings:
            warn(message)
        if report.fingerprinted:
            out.print(f"fingerprinted {location.raw} (its files changed or had no fingerprint yet)")
        print_plans(plans)
        if plans.time_budget is not None:
            out.print(plans.time_budget.describe(), highlight=False)
        out.print(f"wrote {plans_path(location.preprocessed)} in {time.perf_counter() - start:.1f} s")


def register(app: typer.Typer) -> None:
    app.command()(plan)
