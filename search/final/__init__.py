"""A final model: train an exported config, evaluate it on the test split, save what
serving needs (SavedModel, TFLite, labels), and predict with it."""
