"""The local backend: long-lived worker processes on this machine.

``backend.py`` is the client side (one scheduler thread, the nodes' pipes, retries, shared
memory); ``node.py`` is the loop each worker process runs (``python -m azhpc.worker node``).
"""
