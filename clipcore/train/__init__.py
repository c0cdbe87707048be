"""Training commands for clipq's embedded models: ``python -m clipcore.train clip|detector``."""
