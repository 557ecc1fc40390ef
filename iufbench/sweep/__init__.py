"""`iufbench sweep`: (protocol, method, seed) pairs as Ray tasks running the engine, merged into one
run directory per protocol.

plan -> (cluster) -> tasks -> merge: `suite` reads suites/*.yaml, `plan` checks every input and
lays out the directories, `cluster` joins or starts Ray and checks its resources, `task` is the
Ray task (the engine on one pair), `merge` rebuilds a protocol's run directory from its pairs,
`driver` submits, waits, retries nothing itself (Ray does), merges and reports.
"""
