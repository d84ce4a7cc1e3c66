"""The lab: throwaway environments and what runs in them. `envbuild` (uv/pip venvs), `cellplan`/`cellrun` (one
version set: plan, build, collect, probe), `verify` and `verify_compare` (a fix proven before it is printed),
`sweep`/`sweep_grid` (many sets → evidence), `evidence` (evidence records), `fix` (applying a verified fix in
place, with a backup).

May import `core`, `environment`, `diagnose`, `recommend`, `knowledge` and the data model; never `render` or the CLI.
"""
