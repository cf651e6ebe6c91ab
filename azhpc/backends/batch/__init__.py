"""Everything that talks to Azure Batch, through the ``azure-batch`` 15.x SDK.

From the service up:

- ``account.py``: where the account is, how to authenticate, SDK errors in azhpc's terms.
- ``pool_body.py``: a :class:`~azhpc.pools.PoolSpec` as Batch's pool body and start task.
- ``lifecycle.py``: one pool's life (:class:`~azhpc.backends.batch.lifecycle.BatchPool`).
- ``task_bodies.py``: the REST body of each task of a job.
- ``backend.py``: the backend (jobs, tasks, polling, outcomes).
- ``factory.py``: what :func:`azhpc.connect` calls for ``backend="batch"``.
- ``nodeview.py``: the live per-node view.
- ``pool.py``: :class:`azhpc.Pool`, a session on one pool (above the session layer).
- ``apps.py``: :func:`azhpc.run_on_pool` and the command it runs on the nodes.

The SDK is imported when a client is first made, never at ``import azhpc``.
"""
