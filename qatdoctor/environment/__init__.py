"""The target side: everything qatdoctor learns about an environment, without importing torch or aimet itself.
`runner` (the one owner of child processes; `orphans`: the subreaper that catches those that left their group),
`_collector.py` and `_probe.py` (self-contained scripts that run in the target interpreter), `collect`/`facts`
(collector output → `Facts`), `probe`/`probe_cache` (probe output → `ProbeRun`), `assume` (facts given on the
command line), `prefetch` (the collector started before the CLI loads).

Imports `knowledge` and the data model; never `diagnose`, `recommend`, `lab`, `authoring` or `render`.
"""
