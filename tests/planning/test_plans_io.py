"""plans.json round trip, including a configuration that inherits from another."""

from __future__ import annotations

import json

from autounet.planning.configurations import plan_configurations
from autounet.planning.plans import HardwareInfo, Plans, load_plans, save_plans
from tests.planning.fingerprints import mri_like


def make_plans() -> Plans:
    fp = mri_like(n_cases=40)
    return Plans(dataset_name="Dataset900_Handmade", hardware=HardwareInfo("cpu", "test CPU"), memory_budget_gb=8.0,
                 configurations=plan_configurations(fp, 3, 8.0), intensity_stats=fp.channels, raw_digest="abc")


def test_plans_round_trip(tmp_path):
    plans = make_plans()
    save_plans(plans, tmp_path)
    assert load_plans(tmp_path) == plans


def test_inheriting_configuration_is_resolved(tmp_path):
    path = save_plans(make_plans(), tmp_path)
    data = json.loads(path.read_text())
    data["configurations"]["3d_fullres_bs12"] = {"inherits_from": "3d_fullres", "batch_size": 12,
                                                 "network": {"deep_supervision": False}}
    path.write_text(json.dumps(data))
    plans = load_plans(tmp_path)
    child, parent = plans.configuration("3d_fullres_bs12"), plans.configuration("3d_fullres")
    assert child.batch_size == 12 and child.patch_size == parent.patch_size
    assert child.network.deep_supervision is False and child.network.strides == parent.network.strides
    assert child.inherits_from == "3d_fullres" and child.name == "3d_fullres_bs12"
    save_plans(plans, tmp_path)
    assert load_plans(tmp_path) == plans
