"""TelemetryClient and its blocking twin SyncTelemetryClient (``telemetry.TelemetryService``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from eventwire._rpc import TELEMETRY_METHODS
from eventwire.api import telemetry_pb2, telemetry_pb2_grpc
from eventwire.client._base import _INIT_DOC, _Client, _enum, _new_id, _next_page, _Resumable, _Rpc
from eventwire.client._policy import DEFAULT_TELEMETRY_TIMEOUT
from eventwire.client._streams import ResumableStream, SyncResumableStream
from eventwire.client._twins import _Async, _Sync

__all__ = ["SyncTelemetryClient", "TelemetryClient"]

Severity = int | str
"""A ``telemetry.Severity`` value, or its name: ``"warning"``, ``"SEVERITY_WARNING"``."""


class _Telemetry(_Client):
    """The requests of ``telemetry.TelemetryService``, built once for both twins."""

    default_timeout = DEFAULT_TELEMETRY_TIMEOUT
    _methods = TELEMETRY_METHODS
    _stub_class = telemetry_pb2_grpc.TelemetryServiceStub

    def _report(
        self,
        device_id: str,
        alert_type: str,
        *,
        timestamp: int,
        idempotency_key: str | None,
        severity: Severity,
        message: str,
        attributes: Mapping[str, str] | None,
        timeout: float | None,
    ) -> _Rpc[telemetry_pb2.AlertResponse]:
        request = telemetry_pb2.AlertRequest(
            device_id=device_id,
            alert_type=alert_type,
            timestamp=timestamp,
            idempotency_key=idempotency_key or _new_id(),
            severity=_severity(severity, "severity"),
            message=message,
            attributes=dict(attributes or {}),
        )
        return self._rpc("ReportAlert", request, timeout)

    def _list(
        self,
        *,
        device_id: str,
        alert_type: str,
        min_severity: Severity,
        start: int,
        end: int,
        page_size: int,
        page_token: str,
        timeout: float | None,
    ) -> _Rpc[telemetry_pb2.ListAlertsResponse]:
        request = telemetry_pb2.ListAlertsRequest(
            device_id=device_id,
            alert_type=alert_type,
            min_severity=_severity(min_severity, "min_severity"),
            start=start,
            end=end,
            page_size=page_size,
            page_token=page_token,
        )
        return self._rpc("ListAlerts", request, timeout)

    def _watch(
        self,
        *,
        device_id: str,
        alert_type: str,
        min_severity: Severity,
        after: str,
        from_start: bool,
        timeout: float | None,
    ) -> _Resumable[telemetry_pb2.Alert]:
        severity = _severity(min_severity, "min_severity")

        def request(cursor: str) -> telemetry_pb2.WatchAlertsRequest:
            return telemetry_pb2.WatchAlertsRequest(
                device_id=device_id,
                alert_type=alert_type,
                min_severity=severity,
                after=cursor,
                # Until the first alert arrives, every call starts where the first
                # did (after and from_start together are the server's to refuse).
                from_start=from_start and cursor == after,
            )

        return self._resumable("WatchAlerts", request, after=after, ends=False, timeout=timeout)

    def _get(self, tracking_id: str, timeout: float | None) -> _Rpc[telemetry_pb2.Alert]:
        return self._rpc(
            "GetAlert", telemetry_pb2.GetAlertRequest(tracking_id=tracking_id), timeout
        )


def _severity(value: Severity, name: str) -> Any:
    return _enum(telemetry_pb2.Severity, "SEVERITY_", value, name)


class TelemetryClient(_Telemetry, _Async):
    """Async client of ``telemetry.TelemetryService``; use ``async with``."""

    __doc__ = (__doc__ or "") + _INIT_DOC

    async def report_alert(
        self,
        device_id: str,
        alert_type: str,
        *,
        timestamp: int = 0,
        idempotency_key: str | None = None,
        severity: Severity = 0,
        message: str = "",
        attributes: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> telemetry_pb2.AlertResponse:
        """Report an alert; retries reuse the idempotency key, so one tracking id comes back.

        ``severity``: ``"info"``, ``"warning"``, ``"critical"`` or a
        ``telemetry_pb2.Severity`` value.
        """
        return await self._call(
            self._report(
                device_id,
                alert_type,
                timestamp=timestamp,
                idempotency_key=idempotency_key,
                severity=severity,
                message=message,
                attributes=attributes,
                timeout=timeout,
            )
        )

    async def get_alert(
        self, tracking_id: str, *, timeout: float | None = None
    ) -> telemetry_pb2.Alert:
        return await self._call(self._get(tracking_id, timeout))

    async def list_alerts(
        self,
        *,
        device_id: str = "",
        alert_type: str = "",
        min_severity: Severity = 0,
        start: int = 0,
        end: int = 0,
        page_size: int = 0,
        timeout: float | None = None,
    ) -> AsyncIterator[telemetry_pb2.Alert]:
        """Every stored alert matching the filter, oldest first in commit order.

        Fetches page after page (``page_size`` alerts each, 0: the server's
        100) as the loop reaches them; each page is one call with the
        client's deadline (``timeout``) and retries. ``start``/``end`` bound
        the alert's timestamp (epoch ms, end exclusive).
        """
        page: _Rpc[Any] | None = self._list(
            device_id=device_id,
            alert_type=alert_type,
            min_severity=min_severity,
            start=start,
            end=end,
            page_size=page_size,
            page_token="",
            timeout=timeout,
        )
        while page is not None:
            reply: telemetry_pb2.ListAlertsResponse = await self._call(page)
            for alert in reply.alerts:
                yield alert
            page = _next_page(page, reply)

    async def list_alerts_page(
        self,
        *,
        device_id: str = "",
        alert_type: str = "",
        min_severity: Severity = 0,
        start: int = 0,
        end: int = 0,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> telemetry_pb2.ListAlertsResponse:
        """One page; pass its ``next_page_token`` (with the same filter) for the next."""
        return await self._call(
            self._list(
                device_id=device_id,
                alert_type=alert_type,
                min_severity=min_severity,
                start=start,
                end=end,
                page_size=page_size,
                page_token=page_token,
                timeout=timeout,
            )
        )

    def watch_alerts(
        self,
        *,
        device_id: str = "",
        alert_type: str = "",
        min_severity: Severity = 0,
        after: str = "",
        from_start: bool = False,
        timeout: float | None = None,
    ) -> ResumableStream[telemetry_pb2.Alert]:
        """Alerts as they commit, each exactly once, until closed.

        From now on by default; ``from_start``: from the oldest stored alert;
        ``after``: right after a cursor saved earlier (``stream.cursor``, or an
        alert's ``cursor`` from :meth:`list_alerts` with the same filter).
        A break (UNAVAILABLE: connection lost, server restarted or draining)
        is resumed after the last alert handed out, with the client's backoff,
        so none is missed or repeated. Until the first alert arrives there is
        no cursor: a watch "from now" that breaks before then resumes from
        now again. No deadline unless ``timeout`` is given, which then bounds
        the whole watch.
        """
        return self._resume(
            self._watch(
                device_id=device_id,
                alert_type=alert_type,
                min_severity=min_severity,
                after=after,
                from_start=from_start,
                timeout=timeout,
            )
        )


class SyncTelemetryClient(_Telemetry, _Sync):
    """Blocking twin of :class:`TelemetryClient`; use ``with``. Safe to share between threads."""

    __doc__ = (__doc__ or "") + _INIT_DOC

    def report_alert(
        self,
        device_id: str,
        alert_type: str,
        *,
        timestamp: int = 0,
        idempotency_key: str | None = None,
        severity: Severity = 0,
        message: str = "",
        attributes: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> telemetry_pb2.AlertResponse:
        return self._call(
            self._report(
                device_id,
                alert_type,
                timestamp=timestamp,
                idempotency_key=idempotency_key,
                severity=severity,
                message=message,
                attributes=attributes,
                timeout=timeout,
            )
        )

    def get_alert(self, tracking_id: str, *, timeout: float | None = None) -> telemetry_pb2.Alert:
        return self._call(self._get(tracking_id, timeout))

    def list_alerts(
        self,
        *,
        device_id: str = "",
        alert_type: str = "",
        min_severity: Severity = 0,
        start: int = 0,
        end: int = 0,
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[telemetry_pb2.Alert]:
        """Blocking twin of :meth:`TelemetryClient.list_alerts`."""
        page: _Rpc[Any] | None = self._list(
            device_id=device_id,
            alert_type=alert_type,
            min_severity=min_severity,
            start=start,
            end=end,
            page_size=page_size,
            page_token="",
            timeout=timeout,
        )
        while page is not None:
            reply: telemetry_pb2.ListAlertsResponse = self._call(page)
            yield from reply.alerts
            page = _next_page(page, reply)

    def list_alerts_page(
        self,
        *,
        device_id: str = "",
        alert_type: str = "",
        min_severity: Severity = 0,
        start: int = 0,
        end: int = 0,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> telemetry_pb2.ListAlertsResponse:
        return self._call(
            self._list(
                device_id=device_id,
                alert_type=alert_type,
                min_severity=min_severity,
                start=start,
                end=end,
                page_size=page_size,
                page_token=page_token,
                timeout=timeout,
            )
        )

    def watch_alerts(
        self,
        *,
        device_id: str = "",
        alert_type: str = "",
        min_severity: Severity = 0,
        after: str = "",
        from_start: bool = False,
        timeout: float | None = None,
    ) -> SyncResumableStream[telemetry_pb2.Alert]:
        """Blocking twin of :meth:`TelemetryClient.watch_alerts`; ``close()`` from any thread."""
        return self._resume(
            self._watch(
                device_id=device_id,
                alert_type=alert_type,
                min_severity=min_severity,
                after=after,
                from_start=from_start,
                timeout=timeout,
            )
        )
