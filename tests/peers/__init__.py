"""Peer test suites (CPython, joblib) run in place against azhpc."""
