from __future__ import annotations

import ssl
from functools import lru_cache


@lru_cache(maxsize=8)
def client_tls_context(extra_ca_file: str | None) -> ssl.SSLContext:
    """Verify certificates and host names; trust ``extra_ca_file`` besides the system CAs.

    Cached: loading the system CAs costs ~20 ms, most of a no-change sync pass.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if extra_ca_file:
        context.load_verify_locations(cafile=extra_ca_file)
    return context
