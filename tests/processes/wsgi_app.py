"""A Flask app whose requests queue PagerDuty alerts, for gunicorn's sync worker."""

from __future__ import annotations

from flask import Flask

from pd_integrations import AlertManager

manager = AlertManager.from_env(rate_limit=None)
app = Flask(__name__)


@app.get("/ready")
def ready() -> str:
    return "ready"


@app.get("/alert/<number>")
def raise_alert(number: str) -> str:
    manager.error(f"problem {number}", alert_type="problem", identifier=number)
    return "queued"
