"""llmmon.detect: anomaly detectors (SPC, trend, seasonal, baseline, patterns, health).

The pipeline calls :func:`run_detectors`; each detector is also usable on its own.
"""

from llmmon.detect.base import Anomaly
from llmmon.detect.config import DetectConfig
from llmmon.detect.runner import run_detectors

__all__ = ["Anomaly", "DetectConfig", "run_detectors"]
