"""A model file whose import fails (a package the environment lacks)."""

import qatdoctor_no_such_package  # noqa: F401


def build() -> None:
    return None
