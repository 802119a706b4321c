"""Security fixtures: throwaway PKI, token files, and a session-wide check that no token leaks."""

from tests.support.security import leaks, pki, secured, token_file  # noqa: F401 - fixtures
