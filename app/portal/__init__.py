"""The developer portal: server-rendered pages on the API function (docs/portal.md)."""
