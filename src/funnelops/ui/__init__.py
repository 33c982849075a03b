"""`funnelops ui`: the web dashboard. A small ASGI app (Starlette) over the same core the CLI uses.

Layering: `cli` starts the server; `ui` reads and acts only through `lifecycle`, `runs`, `plan` and
the backend contract (never a concrete backend, never `cli`), so every page and every `/api/`
document shows what the CLI's `--json` shows, and the Force button runs `pipeline workflow`'s code.
"""
