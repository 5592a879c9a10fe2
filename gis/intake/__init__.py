"""Imagery intake: new scenes from a STAC catalogue and a watch folder, recorded, paired, detected.

Entry point for ``ioc run``'s imagery job::

    from gis.intake import IntakeSettings, poll
    report = poll(engine, state_dir=state_dir)   # settings from IOC_INTAKE_*/IOC_STAC_*/IOC_LAND_*
    counts = report.as_dict()                      # per source; report.errors: sources that failed

See docs/imagery-intake.md.
"""

from gis.intake.service import (
    IntakeResult,
    PollReport,
    poll,
    poll_stac,
    poll_watch,
    run_detections,
)
from gis.intake.settings import IntakeSettings

__all__ = [
    "IntakeResult",
    "IntakeSettings",
    "PollReport",
    "poll",
    "poll_stac",
    "poll_watch",
    "run_detections",
]
