"""Compliance: body encryption keys, GDPR export and erasure by end user, retention.

Submodules are imported directly (`opsgate.compliance.erasure`, `.retention`, ...): this package
is also imported by the config schema, so it re-exports nothing that would pull the store in.
"""
