"""qatdoctor: version-compatibility resolver and environment doctor for AIMET QAT.

The layers, lowest first (ARCHITECTURE.md): the data model (`model`, `errors`, `exitcodes`, `atomic`,
`jsonio`); `knowledge` (the matrix); `environment` (collector, probe, runner); `diagnose` (findings);
`recommend` (fixes); `core` and `explain` (the commands' callable core); `lab` (throwaway environments);
`authoring` (matrix tools); `render`; and the CLI (`cli`, `cli_matrix`, `console`). `fixes` stands alone
(torch only), for the user's training code.
"""

__version__ = "0.1.0"
