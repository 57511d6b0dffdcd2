"""The HTTP API: OpenAI-compatible routes, the admin API (`admin/`), probes and `/metrics`, as
the route table, middleware and error handlers that `opsgate.app.create_app` serves."""
