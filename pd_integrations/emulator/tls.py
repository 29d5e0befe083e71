"""A throwaway certificate authority, so clients can talk to the emulator over verified TLS.

PagerDuty is only reachable over HTTPS and some clients (the official ``pagerduty``
package among them) refuse any other scheme. trustme makes a CA and a server
certificate in memory; the CA's PEM is written to a file clients can pass as
``verify=``. trustme is imported only here, so plain-HTTP use does not need it.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import weakref
from pathlib import Path

CA_FILE_NAME = "pd-emulator-ca.pem"
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_WILDCARDS = ("", "0.0.0.0", "::")  # noqa: S104 - names, not a bind


def _identities(host: str) -> list[str]:
    names = list(_LOOPBACK_NAMES)
    if host not in _WILDCARDS and host not in names:
        names.append(host)
    return names


class TLSMaterial:
    """The CA and a server certificate for ``host`` and the loopback names.

    With ``ca_file`` the CA PEM is written there and left in place; otherwise it goes to
    a private temporary directory that :meth:`cleanup` (or garbage collection) removes.
    """

    def __init__(self, host: str, ca_file: str | os.PathLike[str] | None = None) -> None:
        try:
            import trustme
        except ImportError:
            raise ImportError(
                "the emulator needs the 'trustme' package for TLS: "
                "pip install 'pd-integrations[emulator]'"
            ) from None
        authority = trustme.CA()
        certificate = authority.issue_cert(*_identities(host))
        self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_context.minimum_version = ssl.TLSVersion.TLSv1_2
        certificate.configure_cert(self.server_context)
        self.ca_pem: bytes = authority.cert_pem.bytes()
        self._tempdir: str | None = None
        if ca_file is None:
            self._tempdir = tempfile.mkdtemp(prefix="pd-emulator-")
            self.ca_path = Path(self._tempdir) / CA_FILE_NAME
        else:
            self.ca_path = Path(ca_file)
        self.ca_path.write_bytes(self.ca_pem)
        self._finalizer = weakref.finalize(self, _remove, self._tempdir)

    def client_context(self) -> ssl.SSLContext:
        """A client-side context that trusts only this CA."""
        return ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))

    def cleanup(self) -> None:
        """Remove the temporary CA file, if the emulator created one."""
        self._finalizer()


def _remove(directory: str | None) -> None:
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
