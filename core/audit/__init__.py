"""The robustness audit: how much a judge's verdicts move when nothing that matters changed.

Its parts: perturbations (pure functions on a grading request, and the registry the CLI and the UI offer),
report (the statistics of each perturbed run vs the unperturbed one, and vs the human consensus) and runner
(re-grade a study's items under each perturbation, saving every judgment).
"""
