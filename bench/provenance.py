"""Which code a benchmark run measured: a hash of the files it depends on, and the git state."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable
from pathlib import Path


def fingerprint(root: Path, paths: Iterable[Path]) -> str:
    """A hash of `paths` (names relative to `root`, and contents), to notice them changing
    during a run."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def git_state(root: Path, *folders: str) -> str:
    """The short commit, flagged when `folders` hold uncommitted changes ("unknown" off git)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", *folders],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    where = " or ".join(f"{folder}/" for folder in folders)
    return f"{head}{f' + uncommitted changes in {where}' if dirty else ''}"
