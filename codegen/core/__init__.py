"""What every backend shares: the host schedule (schedule.py) and the lowering of pointwise ops (pointwise.py)."""
