"""Imagery intake: new scenes from a STAC catalogue and a watch folder, recorded, paired, detected.

Entry point for ``ioc run``'s imagery job::

    from gis.intake import IntakeSettings, poll
    results = poll(engine, IntakeSettings(), land=LandSettings(), state_dir=state_dir)

See docs/imagery-intake.md.
"""

from gis.intake.service import IntakeResult, poll, poll_stac, poll_watch, run_detections
from gis.intake.settings import IntakeSettings

__all__ = ["IntakeResult", "IntakeSettings", "poll", "poll_stac", "poll_watch", "run_detections"]
