"""A non-2xx answer of the API server, as the callers decide on it."""

from __future__ import annotations

from collections.abc import Mapping

from controller import safe_json


class ApiError(Exception):
    """A non-2xx answer, with the Status fields a caller decides on."""

    def __init__(self, status: int, reason: str = "", message: str = "", retry_after: float | None = None):
        super().__init__(f"{status} {reason}: {message}".strip())
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        # What was asked, filled in by Kube for a caller that reports the failure on an object.
        self.verb = ""
        self.resource = ""
        self.object_name = ""

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409 and self.reason != "AlreadyExists"

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def gone(self) -> bool:
        return self.status == 410

    @property
    def permanent(self) -> bool:
        """Invalid (422), malformed (400) or too large (413): the same request gets the same answer."""
        return self.status in (400, 413, 422)

    @classmethod
    def from_response(cls, status: int, body: bytes, headers: Mapping[str, str]) -> ApiError:
        reason, message = "", ""
        try:
            parsed = safe_json.loads(body) if body else {}
            reason = str(parsed.get("reason", ""))
            message = str(parsed.get("message", ""))
        except (ValueError, AttributeError):
            message = body[:200].decode("utf-8", "replace")
        retry_after = None
        raw = headers.get("Retry-After")
        if raw:
            try:
                retry_after = float(raw)
            except ValueError:
                retry_after = None
        return cls(status, reason, message, retry_after)
