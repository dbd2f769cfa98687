"""A run: ``train_and_evaluate`` and what it needs (state, stop flag, schedule, augmentation, metrics, cost, tracking)."""
