"""The knowledge layer: compat_matrix.toml as frozen data. `model` (the types), `vocab` (the names the data may
use), `load` (TOML or its compiled sidecar → `Matrix`), `schema` (validation against the published JSON
Schema), `versions` (version parsing and ranges) and `signatures` (the one matcher for failure signatures).

Imports only `qatdoctor.records`, `qatdoctor.errors` and `qatdoctor.atomic`: the data never imports the engine.
"""
