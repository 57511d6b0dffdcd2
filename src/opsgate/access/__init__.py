"""Access control: keys, users, teams, roles, policies, rate limits and budgets."""

from opsgate.access.principal import (
    ANONYMOUS,
    MASTER,
    BudgetPeriod,
    BudgetPolicy,
    Limits,
    Principal,
    Role,
    Scope,
)

__all__ = [
    "ANONYMOUS",
    "MASTER",
    "BudgetPeriod",
    "BudgetPolicy",
    "Limits",
    "Principal",
    "Role",
    "Scope",
]
