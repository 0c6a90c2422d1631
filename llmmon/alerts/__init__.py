"""llmmon.alerts: rules, storm control, channels and delivery state.

The pipeline calls ``notify_window(metrics, anomalies, window_start, window_end, cfg=, now=,
engine=, store=, context=)`` once per window. Airflow helpers live in
``llmmon.alerts.airflow_callbacks`` and import Airflow lazily.
"""

from llmmon.alerts.config import AlertsConfig, RuleConfig, default_rules, load_alerts_config
from llmmon.alerts.model import Alert, fingerprint
from llmmon.alerts.notify import NotifyResult, notify, notify_window
from llmmon.alerts.rules import Evaluation, evaluate, evaluate_detailed, wilson_bounds
from llmmon.alerts.state import AlertStore, create_tables, metadata

__all__ = ["Alert", "AlertStore", "AlertsConfig", "Evaluation", "NotifyResult", "RuleConfig",
           "create_tables", "default_rules", "evaluate", "evaluate_detailed", "fingerprint",
           "load_alerts_config", "metadata", "notify", "notify_window", "wilson_bounds"]
