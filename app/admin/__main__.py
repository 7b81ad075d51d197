"""`python -m app.admin`: the founder's command line (app/admin/cli.py, docs/admin.md)."""

from app.admin.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
