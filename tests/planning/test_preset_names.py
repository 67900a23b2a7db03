"""A preset's configurations carry its name: nnU-Net's names hold the plain U-Net only, presets sit side by side in
plans.json, and plans.json written the older way (a preset under nnU-Net's names) is refused in one sentence."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict

import pytest
from typer.testing import CliRunner

import autounet.planning.planner as planner
from autounet.cli.main import app
from autounet.errors import UserError
from autounet.paths import locate_dataset, resolve_root
from autounet.planning.configurations import plan_configurations
from autounet.planning.plans import HardwareInfo, Plans, load_dataset_plans, load_plans, save_plans
from autounet.planning.presets import NNUNET_CONFIGURATIONS, configuration_preset, preset_configuration_name
from tests.planning.fingerprints import mri_like
from tests.planning.test_fitted_names import _fake_time_planning


def test_a_presets_configurations_carry_its_name_beside_the_default_ones(nifti_dataset, data_root, monkeypatch):
    location = locate_dataset(str(nifti_dataset), resolve_root())
    default = planner.plan_dataset(location, device="cpu")
    assert default.default_configuration() == "3d_fullres"

    resenc = planner.plan_dataset(location, device="cpu", preset_name="resenc-m")
    plans = load_plans(location.preprocessed)
    assert set(plans.configurations) == set(default.configurations) | {"2d_resenc-m", "3d_fullres_resenc-m"}
    assert resenc.default_configuration() == plans.default_configuration() == "3d_fullres_resenc-m"
    for name in NNUNET_CONFIGURATIONS:  # nnU-Net's names keep the default plans, untouched by the preset
        if name in default.configurations:
            assert asdict(plans.configuration(name)) == asdict(default.configuration(name))
            assert plans.configuration(name).network.architecture == "plain"
    for name in ("2d", "3d_fullres"):
        ours = plans.configuration(f"{name}_resenc-m")
        assert ours.name == f"{name}_resenc-m" and ours.network.architecture == "residual_encoder"
        # the same preprocessed data: the spacing of 2d and 3d_fullres does not depend on the network
        assert ours.data_identifier == name and ours.spacing == default.configuration(name).spacing

    # planning the default again replaces the default's plans and keeps the preset's
    again = planner.plan_dataset(location, device="cpu")
    assert asdict(again.configuration("3d_fullres_resenc-m")) == asdict(plans.configuration("3d_fullres_resenc-m"))
    assert again.default_configuration() == "3d_fullres"

    # a time budget fits the preset's network under a name that says both
    monkeypatch.setattr(planner, "plan_time_budget", _fake_time_planning)
    timed = planner.plan_dataset(location, device="cpu", preset_name="resenc-m", time_budget_seconds=120)
    assert timed.time_budget.chosen == "2d_resenc-m_fitted_2m" == timed.default_configuration()
    assert [(t.configuration, t.selected) for t in timed.time_budget.timings] == [
        ("2d_resenc-m", False), ("2d_resenc-m_fitted_2m", True), ("3d_fullres_resenc-m", True)]
    assert {"2d", "3d_fullres"} <= set(timed.configurations)
    for name, plan in timed.configurations.items():
        assert (plan.network.architecture == "plain") == (configuration_preset(name) == "default"), name


def test_other_presets_are_not_kept_when_the_raw_data_changed(nifti_dataset, data_root):
    location = locate_dataset(str(nifti_dataset), resolve_root())
    planner.plan_dataset(location, device="cpu", preset_name="resenc-m", configurations=["3d_fullres"])
    stored = json.loads((location.preprocessed / "plans.json").read_text())
    stored["raw_digest"] = "made from other files"
    (location.preprocessed / "plans.json").write_text(json.dumps(stored))
    plans = planner.plan_dataset(location, device="cpu", configurations=["3d_fullres"])
    assert set(plans.configurations) == {"3d_fullres"}


def test_a_cascade_keeps_its_links_and_its_lowres_data_gets_its_own_folder():
    fullres = plan_configurations(mri_like(), num_classes=3, budget_gb=8.0, names=["3d_fullres"],
                                  preset_name="resenc-m")["3d_fullres"]
    lowres, cascade = copy.deepcopy(fullres), copy.deepcopy(fullres)
    lowres.name = lowres.data_identifier = "3d_lowres"
    lowres.next_stage = "3d_cascade_fullres"
    cascade.name, cascade.previous_stage = "3d_cascade_fullres", "3d_lowres"
    plans = Plans(dataset_name="Dataset900_Handmade", hardware=HardwareInfo(device="cpu"), memory_budget_gb=11.0,
                  configurations={p.name: p for p in (fullres, lowres, cascade)}, intensity_stats=[],
                  preset="resenc-m")
    planner.name_for_preset(plans, "resenc-m")
    assert list(plans.configurations) == ["3d_fullres_resenc-m", "3d_lowres_resenc-m",
                                          "3d_cascade_fullres_resenc-m"]
    low, high = plans.configuration("3d_lowres_resenc-m"), plans.configuration("3d_cascade_fullres_resenc-m")
    assert low.next_stage == high.name and high.previous_stage == low.name
    assert low.data_identifier == "3d_lowres_resenc-m"  # its spacing follows the preset's patch
    assert high.data_identifier == plans.configuration("3d_fullres_resenc-m").data_identifier == "3d_fullres"


def test_names_say_the_preset_and_nothing_else_changes():
    assert preset_configuration_name("3d_cascade_fullres", "resenc-xl") == "3d_cascade_fullres_resenc-xl"
    assert preset_configuration_name("2d_at_4x4", "resenc-m") == "2d_resenc-m_at_4x4"
    assert preset_configuration_name("3d_fullres_resenc-m", "resenc-m") == "3d_fullres_resenc-m"  # once only
    assert preset_configuration_name("mine", "resenc-m") == "mine"  # not one of nnU-Net's
    assert configuration_preset("3d_fullres_from_Dataset004_Hippocampus") == "default"
    assert configuration_preset("2d_resenc-xl_from_Dataset004_Hippocampus") == "resenc-xl"


def _legacy_plans(tmp_path):
    """plans.json as autounet wrote it before presets carried their name: resenc-m under '3d_fullres'."""
    resenc = plan_configurations(mri_like(), num_classes=3, budget_gb=8.0, names=["3d_fullres"],
                                 preset_name="resenc-m")["3d_fullres"]
    plans = Plans(dataset_name="Dataset100_Tiny", hardware=HardwareInfo(device="cpu"), memory_budget_gb=11.0,
                  configurations={"3d_fullres": resenc}, intensity_stats=mri_like().channels, preset="resenc-m")
    return save_plans(plans, tmp_path)


def test_older_plans_with_a_preset_under_nnunet_names_are_refused_for_training_but_load_for_prediction(tmp_path):
    path = _legacy_plans(tmp_path)
    # a trained fold's own copy of such plans still loads (the model predicts as before) ...
    assert load_plans(path).configuration("3d_fullres").network.architecture == "residual_encoder"
    # ... but a dataset's plans.json is not trained or preprocessed from
    with pytest.raises(UserError) as refused:
        load_dataset_plans(tmp_path)
    message = str(refused.value)
    assert "holds the resenc-m preset's networks under nnU-Net's names (3d_fullres)" in message
    assert "autounet plan Dataset100_Tiny --preset resenc-m" in message and "3d_fullres_resenc-m" in message


def test_the_cli_refuses_older_preset_plans_in_one_sentence(nifti_dataset, data_root):
    location = locate_dataset(str(nifti_dataset), resolve_root())
    planner.plan_dataset(location, device="cpu", configurations=["3d_fullres"])
    _legacy_plans(location.preprocessed)
    for command in (["preprocess", str(nifti_dataset), "-w", "1"], ["train", str(nifti_dataset), "--fold", "0"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code != 0 and "Traceback" not in result.output, result.output
        assert "--preset resenc-m" in result.output and "nnU-Net's names" in result.output
    # planning again, as the sentence says, makes them usable
    planner.plan_dataset(location, device="cpu", preset_name="resenc-m", configurations=["3d_fullres"])
    assert load_dataset_plans(location.preprocessed).default_configuration() == "3d_fullres_resenc-m"
