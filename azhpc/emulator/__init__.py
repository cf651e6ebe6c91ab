"""Local stand-ins for Azure services, for tests, workshops and laptops without a subscription.

- :mod:`azhpc.emulator.azurite`: :class:`~azhpc.emulator.azurite.Azurite`, Microsoft's Azure
  Storage emulator (npm package ``azurite``) on 127.0.0.1 on a free port; the ``emulated``
  profile's Data Lake.
- :mod:`azhpc.emulator.batch`: :class:`~azhpc.emulator.batch.BatchEmulator`, azhpc's Azure
  Batch REST emulator, which the real ``azure-batch`` SDK talks to; the ``emulated`` profile's
  compute.
- :mod:`azhpc.emulator.workshop`: ``azhpc emulator start|status|stop`` (both in the background).

Import the module you need: each is standard library only, and neither loads the other.
"""
