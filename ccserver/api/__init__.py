"""The REST API v1 under `/api/v1`: agents, queues, live calls (and their transfer),
outage notices, who am I, and its own OpenAPI 3.1 document.

`make_app` (in `app.py`) builds the aiohttp application; everything it knows about the
running contact center comes through one `ApiBackend` (`backend.py`), which the controller
implements, so the HTTP layer (tokens, roles, validation, errors, audit, rate limits) is
tested on its own. One route table (`routes.py`) drives both the router and the OpenAPI
document, so the two cannot drift. How to call it: `docs/api.md`.
"""
