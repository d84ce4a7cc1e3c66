"""The live probe: tiny models through the real AIMET pipeline, in the target interpreter."""

DEFAULT_TIMEOUT = 600.0
