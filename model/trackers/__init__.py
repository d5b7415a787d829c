"""The trackers: the interface (base.py), the registry (registry.py), one module per tracker.

copy (copy.py) is the challenge's no-tracking baseline; optical-flow and template are the
non-learned peers a clinic would use; xmem (xmem.py) is the product, the cine-MRI pipeline
around the XMem network, with its settings in groups (xmem_settings.py).
"""

from model.trackers.base import SequenceInfo, Tracker
from model.trackers.registry import available_trackers, build_tracker, tracker_class

__all__ = [
    "SequenceInfo",
    "Tracker",
    "available_trackers",
    "build_tracker",
    "tracker_class",
]
