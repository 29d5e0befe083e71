"""PagerDuty alerting for Python web apps: one core, thin framework adapters.

The names here are the public API; everything else is reachable through its module.
"""

from __future__ import annotations

from pd_integrations.delivery.dispatcher import Dispatcher, DispatchStats
from pd_integrations.rest import AsyncRestClient, RestClient
from pd_integrations.webhooks.receiver import (
    Incident,
    WebhookError,
    WebhookEvent,
    WebhookReceiver,
    WebhookResult,
    sign_body,
    verify_signature,
)

from .alerts import Alert, AlertManager
from .client import (
    DEFAULT_BASE_URL,
    EU_BASE_URL,
    AsyncEventsClient,
    EventResponse,
    EventsClient,
    RetryPolicy,
)
from .errors import (
    ConfigurationError,
    DeliveryError,
    InvalidEventError,
    PagerDutyError,
    RateLimitedError,
    RestError,
    RestForbiddenError,
    RestInvalidRequestError,
    RestNotFoundError,
    RestRateLimitedError,
    RestServerError,
    RestUnauthorizedError,
    UnknownAlertError,
)
from .events import (
    AcknowledgeEvent,
    ChangeEvent,
    Event,
    Image,
    Link,
    ResolveEvent,
    Severity,
    TriggerEvent,
)
from .fingerprint import Fingerprint, Fingerprinter
from .health import CheckOptions, CheckResult, CheckStatus, HealthMonitor, HealthReport
from .monitor import RequestInfo, RequestMonitor
from .scrub import Scrubber

__all__ = [
    "DEFAULT_BASE_URL",
    "EU_BASE_URL",
    "AcknowledgeEvent",
    "Alert",
    "AlertManager",
    "AsyncEventsClient",
    "AsyncRestClient",
    "ChangeEvent",
    "CheckOptions",
    "CheckResult",
    "CheckStatus",
    "ConfigurationError",
    "DeliveryError",
    "DispatchStats",
    "Dispatcher",
    "Event",
    "EventResponse",
    "EventsClient",
    "Fingerprint",
    "Fingerprinter",
    "HealthMonitor",
    "HealthReport",
    "Image",
    "Incident",
    "InvalidEventError",
    "Link",
    "PagerDutyError",
    "RateLimitedError",
    "RequestInfo",
    "RequestMonitor",
    "ResolveEvent",
    "RestClient",
    "RestError",
    "RestForbiddenError",
    "RestInvalidRequestError",
    "RestNotFoundError",
    "RestRateLimitedError",
    "RestServerError",
    "RestUnauthorizedError",
    "RetryPolicy",
    "Scrubber",
    "Severity",
    "TriggerEvent",
    "UnknownAlertError",
    "WebhookError",
    "WebhookEvent",
    "WebhookReceiver",
    "WebhookResult",
    "sign_body",
    "verify_signature",
]
