"""The diagnosis: `Facts` × `Matrix` (× `ProbeRun`) → `Finding`s. `conditions` (a rule's `when`), `rules`,
`requirements` (the req.* checks on wheel data), `evaluate` (findings and the verdict), `probe_findings` (the
stand-ins), `model_findings` (the user's model), `expectations` (a container build's expectations).

Pure functions over frozen data; imports only `knowledge` and the data model.
"""
