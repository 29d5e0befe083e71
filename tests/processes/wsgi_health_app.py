"""A Flask app with one health check that reads a flag file, for gunicorn with 2 workers.

The file is the dependency every worker sees alike: present means down.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Flask

from pd_integrations.flask import PagerDuty

# As an app would: the library logs through a NullHandler'd logger of its own.
logging.basicConfig(level=logging.WARNING)
app = Flask(__name__)
app.config["PAGERDUTY_HEALTH_FAILURE_THRESHOLD"] = 1
pagerduty = PagerDuty(app)


@pagerduty.health.check("payments")
def payments() -> bool:
    return not Path(os.environ["HEALTH_FLAG"]).exists()


@app.get("/ready")
def ready() -> str:
    return "ready"
