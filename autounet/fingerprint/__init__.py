"""Dataset fingerprint: per-case shapes, spacings, crop boxes, and foreground intensity statistics."""

from autounet.fingerprint.model import CaseFingerprint, ChannelStats, Fingerprint, load_fingerprint, save_fingerprint

__all__ = ["CaseFingerprint", "ChannelStats", "Fingerprint", "load_fingerprint", "save_fingerprint"]
