"""Data transforms: pure functions from data to data of the same shape, applied before anything is rendered,
written or sent. `walk` (every string value of a record, rebuilt as it was), `redact` (credentials, home paths,
host and user names, GPU UUIDs), `controls` (terminal control sequences stripped). Part of the data layer: it
imports nothing of qatdoctor but the data model, and every layer may import it."""
