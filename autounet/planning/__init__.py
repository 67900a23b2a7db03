"""Planning: fingerprint + hardware -> training configurations (Plans)."""
