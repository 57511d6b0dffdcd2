"""The built-in stages, one module each."""
