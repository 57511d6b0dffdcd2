"""Offline tooling (training, calibration, evaluation scripts): installable, never imported by
serving code (an import-linter contract checks it)."""
