"""The live probe: tiny stand-in models (and the user's model, `--model`) through the real AIMET pipeline, in
the target interpreter: `_probe.py` runs there; `run.py` starts it, `cache.py` keeps its result,
`interpret.py` and `model_findings.py` turn it into findings."""

# Measured: the slowest reference run, RTMDet-tiny with the stand-ins on aimet-torch 1.32.2 (2 loaded CPU cores),
# took 45 s; 240 s leaves five times that for larger models and slower machines (--probe-timeout raises it).
DEFAULT_TIMEOUT = 240.0
