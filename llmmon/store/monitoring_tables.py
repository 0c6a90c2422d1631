"""Warehouse tables of the drift and anomaly day sections, on their own MetaData.

Kept import-light (SQLAlchemy only) so the integration module can register them at import.
- ``drift_features``: one row per (day, feature): every drift measure and the verdict.
- ``anomalies``: one row per (evaluated day, anomaly key): what the detectors found.
Both are replaced per day on rerun.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

drift_features = Table(
    "drift_features", metadata,
    Column("window_start", DateTime(timezone=True), primary_key=True),
    Column("grain", String(8), primary_key=True),
    Column("feature", String(96), primary_key=True),
    Column("feature_group", String(16)),  # input | output
    Column("kind", String(16)),  # numeric | categorical
    Column("js", Float), Column("psi", Float), Column("kl", Float), Column("hellinger", Float),
    Column("ks", Float), Column("wasserstein_norm", Float), Column("chi2_p", Float),
    Column("n_ref", Integer), Column("n_cur", Integer),
    Column("drifted", Integer, nullable=False),
    Column("reason", Text),
    Column("reference", Text),  # JSON description of the reference
)

anomalies = Table(
    "anomalies", metadata,
    Column("day", DateTime(timezone=True), primary_key=True),  # the evaluated day
    Column("key", String(400), primary_key=True),
    Column("kind", String(48), nullable=False),
    Column("detector", String(48), nullable=False),
    Column("metric", String(96), nullable=False),
    Column("model", String(128), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("observed", Float), Column("expected", Float), Column("threshold", Float),
    Column("score", Float),
    Column("severity", String(4)),
    Column("status", String(24), nullable=False),
    Column("detail", Text),  # JSON
)
