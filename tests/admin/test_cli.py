"""`python -m app.admin`: the founder's commands change what the gate does on the key's very next
request (the policy version is published, as by the admin HTTP API), and fail in one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from httpx import AsyncClient

from app.admin.cli import run
from app.core.config import Settings
from tests.conftest import ADMIN_KEY, ROOT
from tests.support.factories import key_headers, make_account


async def email_of(client: AsyncClient, key: str) -> str:
    return str((await client.get("/v1/account", headers=key_headers(key))).json()["email"])


async def bulk_status(client: AsyncClient, key: str) -> int:
    response = await client.post(
        "/v1/products/bulk", json={"skus": ["A"]}, headers=key_headers(key)
    )
    return response.status_code


def assert_one_line_error(err: str, *needles: str) -> None:
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert all(needle in errors[0] for needle in needles), err
    assert "Traceback" not in err


async def test_set_plan_by_email_reaches_a_warm_key_on_its_next_request(
    client: AsyncClient, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    account_id, key = await make_account(client)
    email = await email_of(client, key)
    assert await bulk_status(client, key) == 403  # free: no bulk; the key's context is now cached

    assert await run(["set-plan", email.upper(), "pro"], settings) == 0

    assert await bulk_status(client, key) == 200  # the cached free context was dropped at once
    account = (await client.get("/v1/account", headers=key_headers(key))).json()
    assert account["id"] == account_id and account["plan"]["code"] == "pro"
    out, err = capsys.readouterr()
    assert f"{account_id} <{email}>: plan free -> pro" in out
    for secret in (key, ADMIN_KEY):  # no key is ever printed
        assert secret not in out + err


async def test_suspend_and_unsuspend_by_id_apply_on_the_next_request(
    client: AsyncClient, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    account_id, key = await make_account(client)
    _, bystander = await make_account(client)
    assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200

    assert await run(["suspend", account_id], settings) == 0
    refused = await client.get("/v1/products", headers=key_headers(key))
    assert refused.status_code == 403 and refused.json()["error"] == "key_suspended"
    assert (await client.get("/v1/products", headers=key_headers(bystander))).status_code == 200

    assert await run(["unsuspend", account_id], settings) == 0
    assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200
    out, _ = capsys.readouterr()
    assert "(active -> suspended)" in out and "(suspended -> active)" in out


async def test_an_unknown_account_fails_in_one_line(
    client: AsyncClient, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    await make_account(client)
    for argv in (
        ["set-plan", "nobody@example.com", "pro"],
        ["suspend", "nobody@example.com"],
        ["unsuspend", "acct_nope"],
    ):
        assert await run(argv, settings) == 1
        out, err = capsys.readouterr()
        assert out == ""
        assert_one_line_error(err, "no account", argv[1])


async def test_an_unknown_plan_fails_in_one_line_and_changes_nothing(
    client: AsyncClient, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    account_id, key = await make_account(client)

    assert await run(["set-plan", account_id, "gold"], settings) == 1

    _, err = capsys.readouterr()
    assert_one_line_error(err, "unknown plan 'gold'", "pro")  # names the plans there are
    account = (await client.get("/v1/account", headers=key_headers(key))).json()
    assert account["plan"]["code"] == "free"


async def test_top_ranks_accounts_by_this_months_calls(
    client: AsyncClient, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    heavy_id, heavy = await make_account(client)
    light_id, light = await make_account(client)
    idle_id, _ = await make_account(client)
    for key, calls in ((heavy, 3), (light, 1)):
        for _ in range(calls):
            assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200

    assert await run(["top", "--limit", "5"], settings) == 0

    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].endswith("(live): 2 account(s)"), out
    rows = [line.split() for line in lines[2:]]
    assert [(r[0], r[2]) for r in rows] == [("3", heavy_id), ("1", light_id)], out
    assert idle_id not in out


async def test_accounts_lists_by_email_substring(
    client: AsyncClient, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    wanted_id, key = await make_account(client)
    other_id, _ = await make_account(client)
    local_part = (await email_of(client, key)).split("@")[0]

    assert await run(["accounts", "--email", local_part.upper()], settings) == 0

    out, _ = capsys.readouterr()
    assert f"{wanted_id}  {local_part}@example.com  free  active" in out
    assert other_id not in out and "1 account(s)" in out


async def test_usage_errors_exit_2(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["promote", "x"], ["set-plan", "only-one"], ["top", "--limit", "0"]):
        assert await run(argv, settings) == 2, argv
        assert "usage: python -m app.admin" in capsys.readouterr().err


def test_module_help_runs_as_a_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.admin", "--help"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for command in ("set-plan", "suspend", "unsuspend", "top", "accounts"):
        assert command in result.stdout
