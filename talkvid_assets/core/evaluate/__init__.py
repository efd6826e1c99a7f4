"""TalkVid-Bench evaluation: per-stratum FID, FVD, Sync-C / Sync-D and CSIM of a model's videos.

``frechet`` and ``bootstrap`` are the statistics, ``extractors`` the pluggable feature backends
(the published networks, weights via `talkvid models fetch`, and dlib's face descriptor
offline), ``media`` reads the bench's reference clips and the generated videos, ``harness``
computes the tables, ``references`` keeps the bench's side for the next model, and ``report``
prints and draws them. Everything an evaluation writes lies under ``EVALUATIONS_DIR`` of the
home.
"""

EVALUATIONS_DIR = "evaluations"


class EvaluationError(ValueError):
    """An evaluation that cannot start (no bench, no folder, a bad name); one line. Defined
    here so the CLI can name it without importing the evaluation's heavy modules."""
