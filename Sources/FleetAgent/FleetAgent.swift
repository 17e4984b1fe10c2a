// FleetAgent: the device daemon behind `fleet-agent run` (issue 7, docs/agent.md).
//
// Pure pieces (time and data are parameters, unit-tested without I/O): `WindowAggregator`,
// `SessionTracker`/`SessionMarker`, `BufferPolicy`, `SyntheticSource`, `OutputInterpreter`,
// `ProcParsers`, `ReplayRequest`. Adapters: `TelemetryBuffer` (SQLite), `ResourceSampler`
// (/proc, /sys), `ModelLoader` (EdgeRuntime), and `Agent`, the loop that wires them to MQTT.
