"""The task and job model shared by every backend: states, specs, payloads, outcomes, worker."""
