"""Long-running device behaviours: what a connected device keeps doing on its own (telemetry,
answering its shadow's deltas; a job agent next). Each module drives `DeviceSession`s only,
so bench/ and tests can run a behaviour without the scenario engine; the engine's step of the
same name binds it to a fleet (`fleetsim/engine/steps/<behaviour>.py`)."""
