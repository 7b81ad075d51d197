"""Quota notices: an email (or a log line) at 80 %, 100 % and, on soft-gated plans, 120 % of an
account's quota, once per account, period and threshold (driven by the `notify-usage` cron)."""
