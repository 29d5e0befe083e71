"""The authenticated user's id, read from whatever the framework calls the user.

Only an identifier is sent: the first of ``pk``, ``id``, ``identity`` (Starlette),
``get_id()`` (Flask-Login) and ``username`` that is set; an anonymous user
(``is_authenticated`` false) has none. Read only when an
alert fires and the ``send_user`` setting is on.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

_log = logging.getLogger("pd_integrations.context.user")
MAX_ID = 128
_ID_ATTRIBUTES = ("pk", "id", "identity", "get_id", "username")


def user_id(user: object) -> str | None:
    """The id of ``user`` as text, or ``None`` (no user, anonymous, or no id)."""
    if user is None:
        return None
    try:
        if getattr(user, "is_authenticated", True) is False:
            return None
    except Exception:
        return None
    for name in _ID_ATTRIBUTES:
        try:
            value = getattr(user, name, None)
            if name == "get_id":
                value = value() if callable(value) else None
        except Exception:  # Starlette's BaseUser.identity raises NotImplementedError
            _log.debug("the user's %s could not be read", name, exc_info=True)
            continue
        if value is not None and value != "" and not callable(value):
            return str(value)[:MAX_ID]
    return None


def flask_login_user() -> object:
    """Flask-Login's ``current_user``, when the application uses Flask-Login."""
    module: Any = sys.modules.get("flask_login")
    if module is None:
        return None
    return module.current_user
