"""A Starlette app whose requests queue PagerDuty alerts (settings from the environment).

Run by the shutdown tests under ``uvicorn`` (``python -m tests.processes.asgi_app PORT``,
which calls ``uvicorn.run``) and under gunicorn's ``UvicornWorker``.
"""

from __future__ import annotations

import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from pd_integrations import AlertManager

manager = AlertManager.from_env(rate_limit=None)


async def ready(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ready")


async def raise_alert(request: Request) -> PlainTextResponse:
    number = request.path_params["number"]
    manager.error(f"problem {number}", alert_type="problem", identifier=number)
    return PlainTextResponse("queued")


app = Starlette(routes=[Route("/ready", ready), Route("/alert/{number}", raise_alert)])


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
