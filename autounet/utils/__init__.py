"""Small helpers shared by every stage: atomic writes, JSON dataclasses, progress, process pools."""
