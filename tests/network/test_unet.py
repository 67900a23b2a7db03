"""The U-Net builder: 2D and 3D, deep-supervision outputs in training, one output in evaluation."""

from __future__ import annotations

import torch

from autounet.network import NetworkConfig, build_network


def test_3d_deep_supervision_outputs_highest_resolution_first():
    config = NetworkConfig(3, 2, 3, [8, 16, 32], [[1, 3, 3], [3, 3, 3], [3, 3, 3]],
                           [[1, 1, 1], [1, 2, 2], [2, 2, 2]])
    net = build_network(config).train()
    outputs = net(torch.zeros(2, 2, 8, 16, 16))
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 8, 16, 16), (2, 3, 8, 8, 8)]
    assert [list(s) for s in config.output_scales()] == [[1.0, 1.0, 1.0], [1.0, 0.5, 0.5]]
    net.eval()
    assert net(torch.zeros(1, 2, 8, 16, 16)).shape == (1, 3, 8, 16, 16)


def test_2d_network_and_uninitialised_build_have_the_same_parameters():
    config = NetworkConfig(2, 1, 2, [8, 16, 32], [[3, 3]] * 3, [[1, 1], [2, 2], [2, 2]])
    torch.manual_seed(0)
    initialised = build_network(config)
    with torch.device("meta"):
        shapes_only = build_network(config, initialize=False)
    assert [p.shape for p in initialised.parameters()] == [p.shape for p in shapes_only.parameters()]
    assert initialised.eval()(torch.zeros(1, 1, 16, 16)).shape == (1, 2, 16, 16)
