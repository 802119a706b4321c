"""Retry throttling per target: gRPC A6 ``retryThrottling`` as a token bucket, free of I/O."""

from __future__ import annotations

import threading

from eventwire.client._policy import ThrottlePolicy

__all__ = ["RetryThrottle"]


class RetryThrottle:
    """A6 token bucket: failure -1, success +ratio, retries only above half full.

    One bucket belongs to one target; every call through a channel shares it,
    so when most calls to that target fail, retries stop for all of them.
    """

    def __init__(self, policy: ThrottlePolicy | None = None) -> None:
        self.policy = policy or ThrottlePolicy()
        self._lock = threading.Lock()
        self._tokens = self.policy.max_tokens

    @property
    def tokens(self) -> float:
        return self._tokens

    def on_failure(self) -> None:
        with self._lock:
            self._tokens = max(0.0, self._tokens - 1.0)

    def on_success(self) -> None:
        with self._lock:
            self._tokens = min(self.policy.max_tokens, self._tokens + self.policy.token_ratio)

    def allows_retry(self) -> bool:
        # A6: "retries are throttled while the token count is <= max_tokens / 2".
        return self._tokens > self.policy.max_tokens / 2
