"""The engine never puts bound parameters (emails, key hashes) into exception text or logs."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.core.db import Database
from tests.conftest import make_settings

PRIVATE_EMAIL = "private-person-7f3a@example.com"


async def test_database_errors_do_not_carry_bound_parameters(clean_database: None) -> None:
    database = Database(make_settings("embedded", "t:db:"))
    insert = sa.text(
        "INSERT INTO accounts (id, email, plan_code, role, subscription_status, policy_version,"
        " created_at) VALUES (:id, :email, :plan, 'user', 'none', 1, now())"
    )
    params = {"id": "acct_hidden_params", "email": PRIVATE_EMAIL, "plan": "no-such-plan"}
    try:
        async with database.sessionmaker() as session:
            try:
                await session.execute(insert, params)
            except IntegrityError as exc:  # the plan does not exist (foreign key)
                error = exc
            else:  # pragma: no cover - the statement must fail
                raise AssertionError("the insert should have violated the foreign key")
    finally:
        await database.dispose()
    assert "accounts_plan_code_fkey" in str(error)  # the server's message is kept
    assert PRIVATE_EMAIL not in str(error)
    assert "hide_parameters=True" in str(error)
