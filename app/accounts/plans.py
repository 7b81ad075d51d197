"""Plans: the public list, and the founder's edits (effective on the next request everywhere)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository as repo
from app.accounts.schemas import PlanPublic, PlanUpdate
from app.accounts.versions import PolicyVersions
from app.core.errors import AppError, Conflict, NotFound
from app.core.features import MAX_COST
from app.models import Plan, utcnow


class PlanConflict(Conflict):
    code = "plan_conflict"
    default_message = "Another request changed this plan at the same moment; retry."


class PlanNotFound(NotFound):
    code = "plan_not_found"
    default_message = "No plan with this code."


def plan_public(plan: Plan) -> PlanPublic:
    return PlanPublic.model_validate(plan, from_attributes=True)


async def list_plans(session: AsyncSession) -> Sequence[Plan]:
    return await repo.list_plans(session, public_only=True)


class PlanUnusable(AppError):
    status_code = 422
    code = "plan_unusable"
    default_message = "The plan's limits are below the cost of one call of its own features."


class PlanFieldsMissing(AppError):
    """A new plan needs the fields an existing one may omit: the validation error's shape."""

    status_code = 422
    code = "validation_error"


NEW_PLAN_FIELDS = ("included_calls", "name", "requests_per_minute")


def _check_usable(plan: Plan) -> None:
    """Refuse a plan that could never serve one call of a feature it sells."""
    ceiling = plan.requests_per_minute
    if plan.hard_limit:
        ceiling = min(ceiling, plan.included_calls)
    unusable = sorted(f for f in plan.features if MAX_COST.get(f, 1) > ceiling)
    if unusable:
        costs = ", ".join(f"{f} costs up to {MAX_COST[f]}" for f in unusable)
        raise PlanUnusable(
            f"One call of {costs} units, more than this plan allows "
            f"({plan.requests_per_minute} per minute"
            + (f", {plan.included_calls} per month" if plan.hard_limit else "")
            + "): raise the limits or drop the feature.",
            features=unusable,
            requests_per_minute=plan.requests_per_minute,
        )


async def upsert_plan(
    session: AsyncSession, versions: PolicyVersions, *, code: str, update: PlanUpdate
) -> Plan:
    """Create or change a plan; every account on it sees the change on its next request."""
    changes = update.model_dump(exclude_unset=True)
    plan = await repo.get_plan(session, code, for_update=True)
    if plan is None:
        missing = [name for name in NEW_PLAN_FIELDS if name not in changes]
        if missing:
            raise PlanFieldsMissing(
                f"Invalid request: check {', '.join(missing)}.",
                fields=[{"field": name, "issue": "Required to create a plan"} for name in missing],
            )
        plan = Plan(code=code, **changes)
        plan.version = 1
    else:
        for field, value in changes.items():
            setattr(plan, field, value)
        plan.version += 1
    _check_usable(plan)
    plan.updated_at = utcnow()
    try:
        await repo.add(session, plan)
    except IntegrityError as exc:  # another request created the same plan a moment ago
        raise PlanConflict() from exc
    versions.plan_after_commit(session, code, plan.version)
    return plan
