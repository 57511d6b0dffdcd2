"""Access control: keys, users, teams, roles, policies, rate limits and budgets."""

from opsgate.access.permissions import (
    PERMISSIONS,
    Permission,
    in_scope,
    require,
    scope_filter,
    scoped_filters,
)
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
    "PERMISSIONS",
    "BudgetPeriod",
    "BudgetPolicy",
    "Limits",
    "Permission",
    "Principal",
    "Role",
    "Scope",
    "in_scope",
    "require",
    "scope_filter",
    "scoped_filters",
]
