"""A Flask app with the PagerDuty extension, every setting from the environment.

Served by the configuration-error tests under a real WSGI server.
"""

from __future__ import annotations

from flask import Flask

from pd_integrations.flask import PagerDuty

app = Flask(__name__)
PagerDuty(app)


@app.get("/ready")
def ready() -> dict[str, str]:
    return {"status": "ready"}
