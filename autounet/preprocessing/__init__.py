"""Preprocessing: crop, resample, normalise and cache every case (shared with inference)."""
