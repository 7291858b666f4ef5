"""The model and training core: run configs, spaces, data, models, schedules, training.

Nothing here imports Optuna (a test checks it): a space samples from any object with
Optuna's ``suggest_*`` methods, and ``fit`` takes Keras callbacks.  Usable on its own to
train one config, and the layer everything else is built on.
"""
