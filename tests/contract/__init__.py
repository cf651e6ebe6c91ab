"""The Batch REST contract: every request and response of the Batch emulator, in every test,
checked against Azure's own specification (``tests/data/batch-rest-spec``)."""
