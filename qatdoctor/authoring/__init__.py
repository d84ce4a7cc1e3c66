"""Authoring the matrix: `lint` (cross-field checks the schema cannot express), `generate` and `merge` (evidence →
matrix entries, edited with tomlkit), `refresh`/`wheels` (new releases and their wheels' metadata), `grid` (the
matrix as a release × torch grid, each cell evaluated by `diagnose`).

May import `knowledge`, `diagnose`, `recommend`, `lab.evidence` and the data model; never the CLI.
"""
