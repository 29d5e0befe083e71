"""``python -m pd_integrations``: the ``pd-integrations`` command."""

from __future__ import annotations

import sys

from pd_integrations.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
