"""qatdoctor: version-compatibility resolver and environment doctor for AIMET QAT."""

__version__ = "0.1.0"
