"""What a study tells its user: progress lines, the best trials, reports, diagnoses,
plots, exported configs, per-trial artifacts and the dashboard."""
