"""The suite keeps to the services it is told to use: `TEST_REDIS_URL`, `TEST_PG_ADMIN_URL` and
`TEST_PG_DATABASE` (README, "Tests"). A literal address of this machine's services anywhere but
tests/support/settings.py would send some test to them whatever the overrides say."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SERVICE_ADDRESS = re.compile(r"(127\.0\.0\.1|localhost):(6379|5432)\b")
WHERE_THE_DEFAULTS_LIVE = {TESTS / "support" / "settings.py"}


def literal_addresses(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if path in WHERE_THE_DEFAULTS_LIVE:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if SERVICE_ADDRESS.search(line) and "isolation: not connected" not in line:
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_no_test_names_a_service_address_of_its_own() -> None:
    assert not literal_addresses(TESTS), "use tests.support.settings.TEST_REDIS_URL / ..."


def test_the_check_finds_a_literal_address(tmp_path: Path) -> None:
    line = 'URL = "redis://127.0.0.1:6379/0"'  # isolation: not connected
    (tmp_path / "test_x.py").write_text(line + "\n")
    assert literal_addresses(tmp_path) == [f"test_x.py:1: {line}"]
