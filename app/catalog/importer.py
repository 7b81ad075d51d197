"""The founder's catalog import: `python -m app.catalog.importer PATH [--batch-size N] [--dry-run]`.

Reads JSON Lines (`.jsonl`, `.jsonl.gz`) or CSV (`.csv`, `.csv.gz`; a header row; `attributes` is a
JSON object string). Every row is validated with `ProductIn`; an invalid row is reported with its
line number and skipped. Valid rows are upserted by SKU (re-running a file is idempotent) in
batches, each committed in its own transaction. The file is read twice: first to check that it
parses (so a malformed file writes nothing) and to count rows for the progress bar.

Exit codes: 0 every row imported, 1 some rows rejected (the rest imported), 2 nothing could be
imported (unreadable or malformed file, bad settings, database error).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import json
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from tqdm import tqdm

from app.catalog import repository
from app.catalog.sample import SAMPLE_CATALOG
from app.catalog.schemas import ProductIn
from app.core.db import Database
from app.core.schemas import TEXT_INPUT

DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 10_000
SHOWN_REJECTIONS = 20
EXIT_OK, EXIT_REJECTED, EXIT_FAILED = 0, 1, 2
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
CSV_SUFFIXES = (".csv", ".csv.gz")
COLUMNS = tuple(ProductIn.model_fields)
REQUIRED_COLUMNS = tuple(name for name, f in ProductIn.model_fields.items() if f.is_required())
BLANK_MEANS_DEFAULT = {"currency", "attributes", "stock"}  # an empty CSV cell = not given
ROW_DB_ERRORS = (sa.exc.IntegrityError, sa.exc.DataError)  # the row's fault, not the database's

Row = tuple[int, dict[str, Any]]
Batch = list[tuple[int, ProductIn]]
Parser = Callable[[TextIO], Iterator[Row]]


class ImportFileError(Exception):
    """The file cannot be read as JSON Lines or CSV (the message names the line)."""


@dataclass
class ImportReport:
    """What an import did: rows read, products created and updated, rows rejected."""

    created: int = 0
    updated: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    rows: int = 0

    @property
    def imported(self) -> int:
        """Products written (a SKU repeated within one batch counts once)."""
        return self.created + self.updated


# --- reading -----------------------------------------------------------------------------------


def read_rows(path: Path) -> Iterator[Row]:
    """(line number, raw row) for each record of a JSON Lines or CSV file, optionally gzipped."""
    name = path.name.lower()
    parse: Parser
    if name.endswith(JSONL_SUFFIXES):
        parse = _jsonl_rows
    elif name.endswith(CSV_SUFFIXES):
        parse = _csv_rows
    else:
        raise ImportFileError(f"{path}: unsupported file type; use .jsonl, .jsonl.gz or .csv")
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file")
    return _read(path, parse)


def _read(path: Path, parse: Parser) -> Iterator[Row]:
    """Open `path` (gunzipping `.gz`) and turn low-level read errors into `ImportFileError`."""
    try:
        with _open_text(path) as stream:
            yield from parse(stream)
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ImportFileError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _open_text(path: Path) -> TextIO:
    """A text stream over the file; `utf-8-sig` drops a spreadsheet's byte-order mark."""
    newline = "" if path.name.lower().endswith(CSV_SUFFIXES) else None
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline=newline)
    return path.open(encoding="utf-8-sig", newline=newline)


def _jsonl_rows(stream: TextIO) -> Iterator[Row]:
    """One JSON object per non-blank line."""
    for line_no, line in enumerate(stream, start=1):
        if line.strip():
            yield line_no, _json_object(line, line_no)


def _json_object(text: str, line_no: int) -> dict[str, Any]:
    """The line as a JSON object, or `ImportFileError` naming the line."""
    try:
        value = _loads(text)
    except (ValueError, RecursionError) as exc:
        raise ImportFileError(f"line {line_no}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ImportFileError(f"line {line_no}: expected a JSON object, got {_json_type(value)}")
    return value


def _loads(text: str) -> Any:
    """`json.loads` that refuses NaN and Infinity (not JSON; PostgreSQL rejects them)."""
    return json.loads(text, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    """`parse_constant` hook: NaN, Infinity and -Infinity are errors."""
    raise ValueError(f"{name} is not a valid JSON value")


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type."""
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _csv_rows(stream: TextIO) -> Iterator[Row]:
    """Records after the header row, keyed by (lower-cased) column name."""
    reader = csv.reader(stream, strict=True)
    try:
        header = _csv_header(next(reader, None))
        start = reader.line_num + 1
        for cells in reader:
            line_no, start = start, reader.line_num + 1  # a quoted cell may span lines
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                raise ImportFileError(
                    f"line {line_no}: {len(cells)} fields, but the header has {len(header)}"
                )
            yield line_no, _csv_record(header, cells)
    except csv.Error as exc:
        raise ImportFileError(f"line {reader.line_num}: not valid CSV ({exc})") from None


def _csv_header(cells: list[str] | None) -> list[str]:
    """The validated column names of the header row."""
    if not cells:
        raise ImportFileError("line 1: expected a header row (sku,name,category,price_cents,…)")
    names = [cell.strip().lower() for cell in cells]
    unknown = [n for n in names if n not in COLUMNS]
    missing = [n for n in REQUIRED_COLUMNS if n not in names]
    if unknown or missing or len(set(names)) != len(names):
        problems = [f"unknown column(s) {', '.join(map(repr, unknown))}" if unknown else ""]
        problems.append(f"missing column(s) {', '.join(missing)}" if missing else "")
        problems.append("a repeated column" if len(set(names)) != len(names) else "")
        detail = "; ".join(p for p in problems if p)
        raise ImportFileError(f"line 1: bad header: {detail} (columns: {', '.join(COLUMNS)})")
    return names


def _csv_record(header: list[str], cells: list[str]) -> dict[str, Any]:
    """One CSV record as a row dict (blank optional cells are left out so defaults apply)."""
    return {
        name: value
        for name, value in zip(header, cells, strict=True)
        if value.strip() or name not in BLANK_MEANS_DEFAULT
    }


# --- validating --------------------------------------------------------------------------------


def validate_row(row: dict[str, Any]) -> ProductIn | str:
    """The row as a `ProductIn`, or a one-line description of what is wrong with it."""
    attributes = row.get("attributes")
    if isinstance(attributes, str):  # a CSV cell
        try:
            row = {**row, "attributes": _loads(attributes)}
        except (ValueError, RecursionError) as exc:
            return f"attributes: not valid JSON ({exc})"
    try:
        return ProductIn.model_validate(row, context=TEXT_INPUT)  # cells spell numbers
    except ValidationError as exc:
        return "; ".join(_describe(error) for error in exc.errors(include_url=False))


def _describe(error: ErrorDetails) -> str:
    """`field: problem (got value)` for one pydantic error."""
    where = ".".join(str(part) for part in error["loc"]) or "row"
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if error["type"] not in {"missing", "extra_forbidden"} and not isinstance(value, dict | list):
        shown = repr(value)
        message += f" (got {shown[:40] + '…' if len(shown) > 40 else shown})"
    return f"{where}: {message}"


def check_rows(rows: Iterable[Row], *, progress: bool = False) -> ImportReport:
    """Validate without writing (the dry run): `rows` and `rejected` are filled in."""
    report = ImportReport()
    for line_no, row in tqdm(rows, unit="row", disable=not progress, desc="checking"):
        report.rows += 1
        result = validate_row(row)
        if isinstance(result, str):
            report.rejected.append((line_no, result))
    return report


# --- writing -----------------------------------------------------------------------------------


async def import_rows(
    database: Database,
    rows: Iterable[Row],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    total: int | None = None,
) -> ImportReport:
    """Validate and upsert `rows` in batches, one transaction per batch; bad rows are skipped."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = ImportReport()
    total = len(rows) if total is None and isinstance(rows, Sized) else total
    with tqdm(total=total, unit="row", disable=not progress, desc="importing") as bar:
        batch: Batch = []
        for line_no, row in rows:
            report.rows += 1
            result = validate_row(row)
            if isinstance(result, str):
                report.rejected.append((line_no, result))
            else:
                batch.append((line_no, result))
            if len(batch) >= batch_size:
                await _write(database, batch, report)
                _advance(bar, report)
                batch = []
        if batch:
            await _write(database, batch, report)
        _advance(bar, report)
    report.rejected.sort()
    return report


def _advance(bar: tqdm[Any], report: ImportReport) -> None:
    """Move the bar to the rows handled so far and show the running counts."""
    bar.update(report.rows - bar.n)
    counts = {"created": report.created, "updated": report.updated}
    bar.set_postfix(counts | {"rejected": len(report.rejected)})


async def _write(database: Database, batch: Batch, report: ImportReport) -> None:
    """Upsert one batch in its own transaction; if the database refuses it, retry row by row."""
    try:
        created, updated = await _upsert(database, [product for _, product in batch])
    except ROW_DB_ERRORS as exc:
        if len(batch) > 1:
            for item in batch:
                await _write(database, [item], report)
        else:
            report.rejected.append((batch[0][0], f"database refused the row: {_first_line(exc)}"))
        return
    report.created += created
    report.updated += updated


async def _upsert(database: Database, products: list[ProductIn]) -> tuple[int, int]:
    """One unit of work: upsert the products and commit (their versions change with it:
    app/catalog/versions.py)."""
    async with database.unit() as session:
        return await repository.upsert(session, products)


def _first_line(exc: BaseException) -> str:
    """The driver's message, without SQLAlchemy's statement and parameters dump."""
    origin = getattr(exc, "orig", None) or exc
    return (str(origin).strip().splitlines() or [type(origin).__name__])[0]


async def load_sample_if_empty(database: Database) -> int:
    """Import the packaged sample catalog if there are no products yet; returns how many."""
    async with database.unit(read_only=True) as session:
        if await repository.count(session):
            return 0
    report = await import_rows(database, read_rows(SAMPLE_CATALOG), progress=False)
    return report.imported


# --- command line ------------------------------------------------------------------------------


def _batch_size(text: str) -> int:
    """argparse type: an integer between 1 and MAX_BATCH_SIZE."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_BATCH_SIZE}")
    return value


def _parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m app.catalog.importer",
        description="Import products (upsert by SKU) from a JSON Lines or CSV file.",
        epilog="exit codes: 0 all rows imported, 1 some rows rejected, 2 import failed",
    )
    parser.add_argument("path", type=Path, help=".jsonl, .jsonl.gz, .csv or .csv.gz")
    parser.add_argument(
        "--batch-size",
        type=_batch_size,
        default=DEFAULT_BATCH_SIZE,
        help=f"rows per transaction (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument("--dry-run", action="store_true", help="validate only; write nothing")
    return parser


async def _import_file(path: Path, batch_size: int, total: int) -> ImportReport:
    """Import into the configured database (settings read here, not at import time)."""
    from app.catalog.versions import ProductVersions
    from app.core.config import get_settings
    from app.redis.adapters import build_redis
    from app.redis.keys import RedisKeys

    settings = get_settings()
    database = Database(settings)
    redis = build_redis(settings)
    # the API's instances keep products they read: each batch announces what it changed
    database.hooks.append(ProductVersions(redis, RedisKeys(settings.REDIS_KEY_PREFIX)))
    try:
        return await import_rows(database, read_rows(path), batch_size=batch_size, total=total)
    finally:
        await redis.close()
        await database.dispose()


def _summary(report: ImportReport, *, dry_run: bool) -> str:
    """The closing report: counts, then the first rejected rows."""
    if dry_run:
        valid = report.rows - len(report.rejected)
        lines = [f"dry run: {valid:,} of {report.rows:,} rows valid, nothing written"]
    else:
        lines = [f"created {report.created:,}, updated {report.updated:,}"]
    if report.rejected:
        lines.append(f"rejected {len(report.rejected):,} row(s):")
        lines += [
            f"  line {line}: {problem}" for line, problem in report.rejected[:SHOWN_REJECTIONS]
        ]
        if len(report.rejected) > SHOWN_REJECTIONS:
            lines.append(f"  … and {len(report.rejected) - SHOWN_REJECTIONS:,} more")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> ImportReport:
    """Validate only (dry run), or check the whole file parses and then import it."""
    if args.dry_run:
        return check_rows(read_rows(args.path), progress=True)
    total = sum(1 for _ in read_rows(args.path))  # a malformed file fails here, before any write
    return asyncio.run(_import_file(args.path, args.batch_size, total))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the import command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        report = _run(args)
    except ImportFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ValidationError as exc:  # settings from the environment; never echo their values
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid settings: {problems}", file=sys.stderr)
        return EXIT_FAILED
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        print(f"error: database: {_first_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: batches committed so far are kept", file=sys.stderr)
        return 130
    print(_summary(report, dry_run=args.dry_run))
    return EXIT_REJECTED if report.rejected else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
