"""Live tests: real pools on a real Azure Batch account (``./dev test-live``)."""
