"""The knowledge layer: compat_matrix.toml as frozen data (model, vocab), its loading and validation (load,
schema), and the authoring tools (lint, merge, generate, refresh, commands). Imports nothing of the diagnosis
except where an authoring tool needs to evaluate (lint's contradiction check)."""
