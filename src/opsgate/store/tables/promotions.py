"""Direct adapter promotions (issue 20, migration v0017): which adapter a model's deployments
serve, for every caller (`team_id` '') or for one team, over what the config file says.

- `tuning_promotions`: one row per (model, team): the adapter, when and by whom.
"""

from __future__ import annotations

from sqlalchemy import Column, Double, String, Table

from opsgate.store.tables.traces import metadata

tuning_promotions = Table(
    "tuning_promotions",
    metadata,
    Column("model", String, primary_key=True),
    Column("team_id", String, primary_key=True),  # '' : the deployments' `adapter`
    Column("adapter", String, nullable=False),
    Column("promoted_at", Double, nullable=False),
    Column("promoted_by", String, nullable=False),
)
