"""Configurations that take a trained model's plan (``autounet plan DATASET --pretrained-plans MODEL``), so that
its weights can be fine-tuned on this dataset although the dataset's own plan would differ.

The inherited configuration keeps everything the weights depend on: spacing, patch, network topology, batch,
resampling and each channel's normalisation scheme (the intensity statistics are this dataset's, as for every
configuration). Only the number of outputs follows this dataset's labels (the heads start afresh when it differs).
It gets its own name, ``<configuration>_from_<DatasetNNN>``, so that nnU-Net's names keep their meaning.
"""

from __future__ import annotations

import copy
import dataclasses

from autounet.errors import UserError
from autounet.fingerprint.model import Fingerprint
from autounet.planning.plans import ConfigurationPlan, Plans
from autounet.planning.spacing import median_shape_at


def inherited_name(configuration: str, source_dataset: str) -> str:
    """The name of ``configuration`` taken from a model of ``source_dataset``.

    Example:
        >>> inherited_name("3d_fullres", "Dataset004_Hippocampus"), inherited_name("2d", "Task")
        ('3d_fullres_from_Dataset004', '2d_from_Task')
    """
    return f"{configuration}_from_{source_dataset.split('_')[0]}"


def inherit_configuration(plans: Plans, source: ConfigurationPlan, source_dataset: str, fingerprint: Fingerprint,
                          num_classes: int, is_2d_data: bool) -> str:
    """Add ``source`` (a trained model's configuration, from ``source_dataset``) to ``plans`` as a configuration of
    this dataset; returns its name. Refused in one sentence where the model cannot see this dataset's images."""
    channels = len(plans.intensity_stats)
    expected = source.network.in_channels
    if source.previous_stage:
        raise UserError(f"{source.name} of {source_dataset} is a cascade stage; inherit its first stage's plan "
                        f"instead (a cascade's plan needs the first stage trained on this dataset).")
    if expected != channels:
        raise UserError(f"{source.name} of {source_dataset} takes {expected} input channel(s), but "
                        f"{plans.dataset_name} has {channels}; its plan and weights cannot be used here.")
    if not source.is_2d and is_2d_data:
        raise UserError(f"{source.name} of {source_dataset} is a 3D network and {plans.dataset_name} holds 2D "
                        f"images; inherit a 2d configuration instead.")
    name = inherited_name(source.name, source_dataset)
    plan = copy.deepcopy(source)
    plan.name, plan.data_identifier = name, name
    plan.network = dataclasses.replace(plan.network, num_classes=num_classes)
    plan.median_shape = [int(s) for s in median_shape_at(fingerprint, plan.spacing)]
    plan.next_stage = None
    plan.inherits_from = None
    plans.configurations[name] = plan
    plans.extra.setdefault("inherited", {})[name] = {"dataset": source_dataset, "configuration": source.name}
    return name
