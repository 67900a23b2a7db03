"""Measuring this machine: the wall time of a real training step, the faster CPU thread setting, the batch that
buys the most updates, and what the final validation will cost.

Planning (``plan --budget``) and training (``train --budget``) both use it; it imports neither, only the network
(the U-Net, its loss and its step), so what planning times is the step that trains.
"""
