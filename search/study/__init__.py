"""Studies: storage, the objectives, the sampler and the budget plan, a trial's lifecycle
from sampling to its stored outcome, recovery from killed workers, and the workers.

Built on ``search.core``; the only layer that drives Optuna trials.
"""
