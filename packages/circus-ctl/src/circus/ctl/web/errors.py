"""Exceptions raised by the dashboard (``circus.ctl.web``)."""

from __future__ import annotations

from ..errors import CtlError

__all__ = ["DaemonDisconnected", "InsecureBindError", "TooManyFailures", "WebError"]


class WebError(CtlError):
    """Base class of the dashboard's own errors."""


class InsecureBindError(WebError):
    """circushttpd was asked to listen off loopback without a token.

    ``host`` names the address it would have bound.
    """

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(
            f"refusing to serve the dashboard on {host!r} without a login: anyone reaching that "
            "address could stop your processes. Set a token (--token-file PATH, or the "
            "CIRCUSHTTPD_TOKEN environment variable), or bind to 127.0.0.1"
        )


class DaemonDisconnected(WebError):
    """An action was asked of a daemon the dashboard cannot reach right now."""

    def __init__(self, endpoint: str, detail: str = "") -> None:
        self.endpoint = endpoint
        message = f"daemon at {endpoint} is disconnected"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class TooManyFailures(WebError):
    """Too many wrong tokens lately, from one client address or overall.

    ``retry_after``: seconds until a new attempt will be checked.
    """

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many failed logins; try again in {max(1, round(retry_after))} s")
