"""Fixes: `ranking` proposes candidate version sets, re-evaluates each against the matrix and ranks them by
what they clear; `commands` turns a set into the install command and constraints.

Imports `diagnose`, `knowledge` and the data model.
"""
