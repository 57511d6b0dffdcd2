"""Guardrails: input and output checks (prompt injection, PII, secrets, canaries), the actions a
policy takes on what they find (block, flag, redact, sanitize, mask), sensitivity routing and
the monitor that counts verdicts and raises spike alerts."""
