"""The diagnosis: `Facts` × `Matrix` (× `ProbeRun`) → `Finding`s. `conditions` (a rule's `when`), `rules`,
`requirements` (the req.* checks on wheel data), `evaluate` (findings and the verdict), `judge` (a rule finding's
status, severity, scope and reasons: the decision table), `probe_findings` (the stand-ins' evidence),
`model_findings` (the user's model's evidence), `expectations` (a container build's expectations).

Pure functions over frozen data; imports only `knowledge` and the data model.
"""
