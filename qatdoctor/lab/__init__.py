"""The lab: throwaway environments and what runs in them. `envbuild` (uv/pip venvs), `cellplan`/`cellrun` (one
version set: plan, build, collect, probe), `verify` and `verify_compare` (a fix proven before it is printed),
`sweep`/`sweep_grid` (many sets → evidence), `evidence` (evidence records), and `qatdoctor fix`'s three: `apply`
(its policy: apply a verified recommendation in place, re-check, roll back), `backup` (the saved set: written with
a checksum, read strictly) and `restore` (undo: only what the fix installed, never what conda owns).

May import `core`, `environment`, `diagnose`, `recommend`, `knowledge` and the data model; never `render` or the CLI.
"""
