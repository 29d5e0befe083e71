"""A FastAPI app with ``PagerDutyMiddleware``, every setting from the environment.

Run under ``uvicorn tests.processes.asgi_middleware_app:app`` in its default lifespan
mode by the configuration-error tests.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from pd_integrations.starlette import PagerDutyMiddleware

logging.basicConfig(format="%(levelname)s:%(name)s:%(message)s")
app = FastAPI()
app.add_middleware(PagerDutyMiddleware)


@app.get("/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}
